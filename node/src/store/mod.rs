//! What a node keeps on disk: the data dir, append-only journals, conversation history,
//! the outbox, transfers (and the manifests of offered folders), contacts, names heard from peers, settings, the identity key and sealed messages.

pub mod contacts;
pub mod data_dir;
pub mod folder_source;
pub mod heard_names;
pub mod history;
pub mod identity;
pub mod journal;
pub mod outbox;
pub mod sealed;
pub mod search;
pub mod settings;
pub mod transfers;
pub mod unread;

use std::path::{Path, PathBuf};

use data_dir::DataDir;
use history::History;
use outbox::Outbox;
use transfers::Transfers;

/// A file or folder of the data dir that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {}: {source}", path.display())]
pub struct OpenError {
    /// The file or folder.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl OpenError {
    /// A closure that wraps an I/O error about `path`.
    pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
        move |source| OpenError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a user's node keeps: its history, outbox and transfers (in memory without a data
/// dir, and on a bootstrap, which has no user).
#[derive(Debug)]
pub struct NodeStore {
    /// Conversation logs.
    pub history: Option<History>,
    /// Where the conversation logs are.
    pub history_dir: Option<PathBuf>,
    /// Private messages not yet acknowledged.
    pub outbox: Outbox,
    /// File offers and transfers.
    pub transfers: Transfers,
    /// Where finished downloads go.
    pub downloads: Option<PathBuf>,
}

impl NodeStore {
    /// Keeps everything in memory.
    pub fn in_memory() -> Self {
        Self {
            history: None,
            history_dir: None,
            outbox: Outbox::in_memory(),
            transfers: Transfers::default(),
            downloads: None,
        }
    }

    /// Opens what a user's node keeps in `dir`.
    pub fn open(dir: &DataDir) -> Result<Self, OpenError> {
        let downloads = dir.downloads();
        data_dir::create_private_dir(&downloads).map_err(OpenError::at(&downloads))?;
        let history_dir = dir.history();
        Ok(Self {
            history: Some(History::open(history_dir.clone()).map_err(OpenError::at(&history_dir))?),
            outbox: Outbox::open(&dir.outbox()).map_err(OpenError::at(&dir.outbox()))?,
            transfers: Transfers::open(&dir.transfers())
                .map_err(OpenError::at(&dir.transfers()))?,
            history_dir: Some(history_dir),
            downloads: Some(downloads),
        })
    }
}
