//! Offering a folder (`/send-file` or `/share` of a folder): it is walked and hashed here,
//! off the event loop, then handed to the node as one offer.

use std::path::PathBuf;

use tokio::sync::oneshot;

use ipm_protocol::TransferId;

use crate::{
    client::{Client, FileError, NodeError, OfferTarget, Request},
    store::folder_source::{walk, Walked},
};

/// A folder to offer, walked, with the channel its answer goes back on.
#[derive(Debug)]
pub struct FolderAsk {
    /// Who it goes to.
    pub target: OfferTarget,
    /// The folder, canonical.
    pub source: PathBuf,
    /// Its files.
    pub walked: Walked,
    /// The new transfer, or why the folder was not offered.
    pub reply: oneshot::Sender<Result<TransferId, NodeError>>,
}

impl Client {
    /// Offers the folder at `source` (canonical) as one transfer: every file is read once
    /// here to hash it.
    pub(crate) async fn offer_folder(
        &self,
        target: OfferTarget,
        source: PathBuf,
    ) -> Result<TransferId, NodeError> {
        let root = source.clone();
        let walked = tokio::task::spawn_blocking(move || walk(&root))
            .await
            .map_err(FileError::Hashing)?
            .map_err(FileError::Folder)?;
        self.ask(|reply| {
            Request::Folder(FolderAsk {
                target,
                source,
                walked,
                reply,
            })
        })
        .await?
    }
}
