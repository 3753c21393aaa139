//! The loop's side of a `/get` from several members (see `net::multi_download`): finds the
//! members who announced the same file in the room (`logic::piece_plan::share_sources`),
//! gives each a range opener on `/ipm/file/2` and a chunk fetcher on `/ipm/file/1`, and runs
//! the download task. The bytes never pass through the loop.

use libp2p::PeerId;
use tokio::task::JoinHandle;

use ipm_protocol::TransferId;

use super::{
    files::{ask_chunk, Internal},
    EventLoop,
};
use crate::{
    logic::piece_plan::share_sources,
    net::{
        download::{FetchError, Job, Opened},
        file_stream,
        multi_download::{self, FetchChunk, OpenRange, Source},
    },
};

impl EventLoop {
    /// Starts the download of `job` from every member sharing it when there are several (or
    /// when such a download was started before a restart); `None` leaves it to the download
    /// from one sender.
    pub(super) fn spawn_multi_source(&self, job: Job) -> Option<JoinHandle<()>> {
        let id = job.transfer;
        let found = share_sources(&self.store.transfers, id, |peer| {
            self.directory.is_blocked(peer)
        });
        if found.is_empty() || (found.len() < 2 && !multi_download::has_piece_map(&job)) {
            return None;
        }
        let sources: Vec<Source<libp2p::Stream>> = found
            .into_iter()
            .map(|(peer, transfer)| Source {
                name: self.directory.display_name(&peer),
                open: self.range_opener(peer, transfer, job.size),
                fetch: self.chunk_fetcher(peer, transfer),
            })
            .collect();
        tracing::debug!(%id, sources = sources.len(), "downloading from several members");
        let size = job.size;
        Some(self.download_task(
            id,
            size,
            |_| {},
            move |progress| async move { multi_download::run(&job, sources, progress).await },
        ))
    }

    /// Opens streams of byte ranges of `transfer` (a file of `size` bytes) from `peer`, or
    /// says "unsupported" on a node speaking only `/ipm/file/1`.
    fn range_opener(
        &self,
        peer: PeerId,
        transfer: TransferId,
        size: u64,
    ) -> OpenRange<libp2p::Stream> {
        let control = self
            .config
            .file_streams
            .then(|| self.swarm.behaviour().stream.new_control());
        let internal = self.internal_tx.clone();
        Box::new(move |start: u64, end: u64| {
            let control = control.clone();
            let internal = internal.clone();
            multi_download::boxed(async move {
                let Some(mut control) = control else {
                    return Ok(Opened::Unsupported);
                };
                let opened =
                    file_stream::open_range(&mut control, peer, transfer, (start, end), size).await;
                if matches!(opened, Err(FetchError::Retry(_))) {
                    let _ = internal.try_send(Internal::SenderUnreachable(peer));
                }
                opened
            })
        })
    }

    /// Fetches chunks of `transfer` from `peer` over `/ipm/file/1`, through the loop.
    fn chunk_fetcher(&self, peer: PeerId, transfer: TransferId) -> FetchChunk {
        let internal = self.internal_tx.clone();
        std::sync::Arc::new(move |offset: u64, len: u32| {
            multi_download::boxed(ask_chunk(internal.clone(), peer, transfer, offset, len))
        })
    }
}
