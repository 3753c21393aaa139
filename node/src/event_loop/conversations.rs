//! Conversation logs in the event loop: answering a frontend's request for the last entries
//! of a room's or a private conversation's history, and its searches.

use tokio::sync::oneshot;

use super::EventLoop;
use crate::{
    client::{Conversation, NodeError},
    store::history::{Entry, History},
    store::search::{search, Hit, Query, MAX_HITS},
};

impl EventLoop {
    /// Answers with the last `count` entries of `conversation`, read off the loop (a log
    /// can be long); a node without a history folder has none.
    pub(super) fn history(
        &self,
        conversation: Conversation,
        count: usize,
        reply: oneshot::Sender<Result<Vec<Entry>, NodeError>>,
    ) {
        let Some(dir) = self.store.history_dir.clone() else {
            let _ = reply.send(Ok(Vec::new()));
            return;
        };
        tokio::task::spawn_blocking(move || {
            let entries = History::read_last(&dir, &conversation.log(), count);
            let _ = reply.send(entries.map_err(NodeError::History));
        });
    }

    /// Answers with the newest hits of `query` in `only` (every conversation when `None`),
    /// read off the loop.
    pub(super) fn search(
        &self,
        query: Query,
        only: Option<Conversation>,
        reply: oneshot::Sender<Result<Vec<Hit>, NodeError>>,
    ) {
        let Some(dir) = self.store.history_dir.clone() else {
            let _ = reply.send(Ok(Vec::new()));
            return;
        };
        tokio::task::spawn_blocking(move || {
            let log = only.map(|c| c.log());
            let hits = search(&dir, &query, log.as_deref(), MAX_HITS);
            let _ = reply.send(hits.map_err(NodeError::History));
        });
    }
}
