//! Read receipts, typing notices and unread counts in the event loop: what a frontend
//! reports as shown, the notices sent to and received from peers that asked for them, and
//! the unread lines of each conversation.

use std::{collections::HashMap, time::Instant};

use libp2p::{request_response::ResponseChannel, PeerId};
use tracing::{debug, warn};

use ipm_protocol::{direct::Notice, DirectRequest, DirectResponse, MessageId};

use super::EventLoop;
use crate::{
    client::conversation::Unread,
    client::Conversation,
    event::Event,
    logic::edits::{kind, receipt},
    logic::notices::Notices,
    logic::timeline::{self, Receipt},
    store::history::{direct_log, direct_peer, History},
    store::unread::{unread_in, SeenMarks},
};

/// Receipts owed and sent, and the unread counts.
#[derive(Debug)]
pub(crate) struct ReceiptState {
    notices: Notices,
    marks: SeenMarks,
    /// Unread lines by log, once counted from the log's tail; kept up to date after.
    pub(super) counts: HashMap<String, usize>,
}

impl ReceiptState {
    /// The marks kept at `marks` (in memory without a data dir).
    pub(crate) fn new(marks: Option<std::path::PathBuf>) -> Self {
        let marks = SeenMarks::load(marks.clone()).unwrap_or_else(|e| {
            warn!("cannot read the unread marks, counting from the start: {e}");
            SeenMarks::load(None).unwrap_or_default()
        });
        Self {
            notices: Notices::default(),
            marks,
            counts: HashMap::new(),
        }
    }
}

impl EventLoop {
    /// A private message `id` from `from` arrived; `asked` when it wants a read receipt.
    pub(super) fn heard_receipts(&mut self, from: PeerId, id: MessageId, asked: bool) {
        if self.config.receipts {
            self.receipts.notices.received(from, id, asked);
        }
    }

    /// A frontend showed line `id` of `conversation` (all of it when `None`) to its user.
    pub(super) fn shown(&mut self, conversation: &Conversation, id: Option<MessageId>) {
        let log = conversation.log();
        let was = self.receipts.counts.insert(log.clone(), 0);
        if was != Some(0) || id.is_none() {
            if let Err(e) = self.receipts.marks.mark(&log, ipm_protocol::now_ms()) {
                warn!("cannot write the unread marks: {e}");
            }
        }
        let Conversation::Direct(peer) = conversation else {
            return;
        };
        let due = self.receipts.notices.shown(*peer, id);
        if !due.is_empty() && self.config.receipts {
            self.send_notice(
                *peer,
                Notice {
                    id: MessageId::random(),
                    read: due,
                    typing: false,
                },
            );
        }
    }

    /// The user is typing to `to`: tell it, if it understands and one was not sent just now.
    pub(super) fn send_typing(&mut self, to: PeerId) {
        if self.config.receipts && self.receipts.notices.may_send_typing(to, Instant::now()) {
            self.send_notice(
                to,
                Notice {
                    id: MessageId::random(),
                    read: Vec::new(),
                    typing: true,
                },
            );
        }
    }

    fn send_notice(&mut self, to: PeerId, notice: Notice) {
        let behaviour = self.swarm.behaviour_mut();
        let request_id = behaviour
            .direct
            .send_request(&to, DirectRequest::Notice(notice));
        behaviour
            .peer_manager
            .request_sent(to, "direct", request_id);
    }

    /// Receipts and typing from `peer`: only for own messages to `peer`, and only when this
    /// node asks for them.
    pub(super) fn on_notice(
        &mut self,
        peer: PeerId,
        notice: Notice,
        channel: ResponseChannel<DirectResponse>,
    ) {
        let _ = self
            .swarm
            .behaviour_mut()
            .direct
            .send_response(channel, DirectResponse::Delivered { id: notice.id });
        if !self.config.receipts || self.directory.is_blocked(&peer) {
            return;
        }
        let name = self.directory.display_name(&peer);
        let log = direct_log(&peer);
        let me = self.local_peer_id().to_string();
        for id in notice.read {
            if self.recent_of(&log).author(&id) != Some(me.as_str()) {
                debug!(%peer, %id, "ignoring a receipt for a message that is not ours to them");
                continue;
            }
            if !self.changes.receipts.advance(id, Receipt::Read) {
                continue;
            }
            let entry = receipt(ipm_protocol::now_ms(), &id, kind::READ, &name);
            self.record_in(&log, &name, &entry);
            self.emit(Event::Read {
                id,
                by: peer,
                name: name.clone(),
            });
        }
        if notice.typing && self.receipts.notices.may_show_typing(peer, Instant::now()) {
            self.emit(Event::Typing { peer, from: name });
        }
    }

    /// A new line of others arrived in `log` (already appended to it).
    pub(super) fn count_unread(&mut self, log: &str) {
        if let Some(n) = self.receipts.counts.get_mut(log) {
            *n += 1;
        } else if self.store.history_dir.is_none() {
            self.receipts.counts.insert(log.to_owned(), 1);
        }
    }

    /// Every conversation with unread lines (every one kept, with `all`). A log not counted
    /// yet is counted once from its tail; after that the counts move with each line and
    /// each look.
    pub(super) fn unread_counts(&mut self, all: bool) -> Vec<Unread> {
        let logs = match &self.store.history_dir {
            Some(dir) => History::conversations(dir).unwrap_or_default(),
            None => self.receipts.counts.keys().cloned().collect(),
        };
        let mut out = Vec::new();
        for log in logs {
            let count = match self.receipts.counts.get(&log) {
                Some(n) => *n,
                None => {
                    let seen = self.receipts.marks.seen(&log);
                    let n = self.store.history_dir.as_deref().map_or(0, |dir| {
                        unread_in(dir, &log, seen, timeline::unread_since).unwrap_or(0)
                    });
                    self.receipts.counts.insert(log.clone(), n);
                    n
                }
            };
            let (conversation, name) = match direct_peer(&log) {
                Some(peer) => (
                    Conversation::Direct(peer),
                    self.directory.display_name(&peer),
                ),
                None => match room_of_slug(&log) {
                    Some(room) => (Conversation::Room(room.clone()), room.to_string()),
                    None => continue,
                },
            };
            if all || count > 0 {
                out.push(Unread {
                    conversation,
                    count,
                    name,
                });
            }
        }
        out
    }
}

/// The room whose log is `slug` (`lobby`, `geo-<hash>`, `interest-<tag>`).
fn room_of_slug(slug: &str) -> Option<ipm_protocol::Room> {
    let typed = match slug.split_once('-') {
        Some((kind, rest)) => format!("{kind}:{rest}"),
        None => slug.to_owned(),
    };
    ipm_protocol::Room::parse(&typed)
        .ok()
        .filter(|room| room.slug() == slug)
}
