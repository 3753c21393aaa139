//! Searching the conversation logs from the event loop: read off the loop, each hit shown
//! under its author's name now.

use tokio::sync::oneshot;

use super::EventLoop;
use crate::{
    client::{Conversation, NodeError},
    logic::timeline,
    store::history::direct_peer,
    store::search::{search, Hit, Query, MAX_HITS},
};

impl EventLoop {
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
        let labels = self.directory.labels();
        tokio::task::spawn_blocking(move || {
            let log = only.map(|c| c.log());
            let matching = |entries| timeline::matching(entries, &query);
            let hits = search(&dir, log.as_deref(), MAX_HITS, matching).map(|mut hits| {
                for hit in &mut hits {
                    hit.entry.from = labels.label(&hit.entry.peer, &hit.entry.from).to_owned();
                    if let Some(with) = &hit.with {
                        let peer = direct_peer(&hit.conversation)
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let peer = peer.as_str();
                        hit.with = Some(labels.label(peer, with).to_owned());
                    }
                }
                hits
            });
            let _ = reply.send(hits.map_err(NodeError::History));
        });
    }
}
