//! Replies, reactions, edits and deletions in the event loop: resolving a reference to a
//! recent line, sending the change to a room or a peer, and checking a received change
//! against the author of the line it is about before it is logged or shown.

use std::collections::HashMap;

use libp2p::PeerId;
use tokio::sync::oneshot;
use tracing::debug;

use ipm_protocol::{change::fallback_text, Change, DirectMessage, MessageId, Op, Room};

use super::EventLoop;
use crate::{
    client::conversation::{Changed, ConversationRequest},
    client::{Conversation, NodeError},
    event::Event,
    logic::edits::{self, Recent, Ref, RefError},
    logic::one_emoji,
    logic::receipt_ledger::ReceiptLedger,
    logic::timeline::{Line, Timeline},
    store::history::{direct_peer, is_direct_log, EntryChange, History, MAX_READ},
};

/// Lines of each conversation remembered to resolve references and check authors.
pub(super) const RECENT_LINES: usize = 1000;

/// Conversations whose recent lines are kept at once.
const MAX_RECENT_CONVERSATIONS: usize = 256;

/// The recent lines of the conversations touched lately.
#[derive(Debug, Default)]
pub(crate) struct ChangeState {
    recent: HashMap<String, Recent>,
    /// Which receipts of own private messages the user was shown.
    pub(super) receipts: ReceiptLedger,
}

/// What a received message is, once its change (if any) is checked.
#[derive(Debug)]
pub(super) enum Checked {
    /// A plain line (also a change of a kind this release does not know).
    Plain,
    /// A change this node will not show: a forged edit or deletion, or a reaction to an
    /// unknown line.
    Refused,
    /// A change to log and show.
    Change {
        /// What it does.
        op: Op,
        /// To which line.
        target: MessageId,
        /// How the log records it.
        re: EntryChange,
        /// The text the log keeps.
        text: String,
    },
}

impl EventLoop {
    pub(super) fn on_conversation_request(&mut self, request: ConversationRequest) {
        match request {
            ConversationRequest::Change {
                conversation,
                target,
                or_private,
                op,
                text,
                reply,
            } => {
                let own_only = matches!(op, Op::Edit(_) | Op::Delete);
                match self.resolve(conversation, &target, or_private, own_only) {
                    Ok((conversation, target)) => {
                        self.send_change(conversation, target, op, text, reply)
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            ConversationRequest::Lines {
                conversation,
                count,
                reply,
            } => self.lines(conversation, count, reply),
            ConversationRequest::Shown { conversation, id } => self.shown(&conversation, id),
            ConversationRequest::Typing { to } => self.send_typing(to),
            ConversationRequest::Unread { reply } => {
                let _ = reply.send(self.unread_counts(false));
            }
            ConversationRequest::List { reply } => {
                let _ = reply.send(self.unread_counts(true));
            }
        }
    }

    /// The recent lines of the log `log`, read from its tail the first time.
    pub(super) fn recent_of(&mut self, log: &str) -> &mut Recent {
        let state = &mut self.changes.recent;
        if !state.contains_key(log) && state.len() >= MAX_RECENT_CONVERSATIONS {
            if let Some(any) = state.keys().next().cloned() {
                state.remove(&any);
            }
        }
        let dir = self.store.history_dir.as_deref();
        state.entry(log.to_owned()).or_insert_with(|| {
            let entries = dir
                .map(|d| History::read_last(d, log, RECENT_LINES).unwrap_or_default())
                .unwrap_or_default();
            Recent::from_entries(&entries, RECENT_LINES)
        })
    }

    /// Notes a new line of `log` (after it was appended to the log, if there is one).
    pub(super) fn note_line(&mut self, log: &str, id: MessageId, author: &PeerId, own: bool) {
        // A list not read yet reads the line from the log when it is first needed.
        // Private conversations are read at once: a reference typed without a user is
        // looked for in those in memory.
        if self.changes.recent.contains_key(log)
            || self.store.history.is_none()
            || is_direct_log(log)
        {
            self.recent_of(log).push(id, &author.to_string(), own);
        }
    }

    /// Checks the change `re` of message `id` that `author` (authenticated) sent to `log`.
    pub(super) fn check_change(
        &mut self,
        log: &str,
        author: &PeerId,
        re: Option<&Change>,
        text: &str,
    ) -> Checked {
        let Some((change, op)) = re.and_then(|c| c.op().map(|op| (c, op))) else {
            return Checked::Plain;
        };
        let target = change.target;
        let recent = self.recent_of(log);
        let allowed = match op {
            Op::Reply => true,
            Op::React(_) | Op::Edit(_) if recent.is_deleted(&target) => false,
            // A reaction is one emoji, whatever a peer's software sends.
            Op::React(ref emoji) if !one_emoji::is_one_emoji(emoji) => false,
            Op::React(_) => recent.author(&target).is_some(),
            Op::Edit(_) | Op::Delete => recent.may_change(&target, &author.to_string()),
        };
        if !allowed {
            debug!(%author, %target, "refusing a change of a deleted line or of another's line");
            return Checked::Refused;
        }
        if op == Op::Delete {
            recent.deleted(&target);
            // A deleted line no longer waits to be read: counted again from the log.
            if self.store.history_dir.is_some() {
                self.receipts.counts.remove(log);
            }
        }
        Checked::Change {
            re: edits::entry_change(target, &op),
            text: edits::entry_text(&op, text),
            target,
            op,
        }
    }

    /// The event showing change `op` of line `target`, by `peer`, in `room` (none: private).
    pub(super) fn change_event(
        &self,
        room: Option<&Room>,
        id: MessageId,
        peer: PeerId,
        target: MessageId,
        op: Op,
        text: String,
    ) -> Event {
        let room = room.map(ToString::to_string);
        let from = self.directory.display_name(&peer);
        match op {
            Op::React(emoji) => Event::Reaction {
                room,
                id,
                target,
                from,
                peer,
                emoji,
            },
            Op::Edit(text) => Event::Edited {
                room,
                id,
                target,
                from,
                peer,
                text,
            },
            Op::Delete => Event::Deleted {
                room,
                id,
                target,
                from,
                peer,
            },
            Op::Reply => match room.and_then(|r| Room::parse(&r).ok()) {
                Some(room) => Event::Message {
                    room,
                    id,
                    from,
                    peer,
                    text,
                    distance_km: None,
                    reply_to: Some(target),
                },
                None => Event::Direct {
                    id,
                    from,
                    peer,
                    text,
                    reply_to: Some(target),
                },
            },
        }
    }

    /// The line `target` names in `conversation` or, with `or_private` and a prefix found
    /// in no line there, in a private conversation whose recent lines are in memory.
    fn resolve(
        &mut self,
        conversation: Conversation,
        target: &Ref,
        or_private: bool,
        own_only: bool,
    ) -> Result<(Conversation, MessageId), RefError> {
        let here = self
            .recent_of(&conversation.log())
            .resolve(target, own_only);
        match here {
            Err(RefError::NotFound(_)) if or_private => {}
            other => return other.map(|id| (conversation, id)),
        }
        let mut found = Vec::new();
        let mut refused = None;
        for (log, recent) in &self.changes.recent {
            let Some(peer) = direct_peer(log) else {
                continue;
            };
            match recent.resolve(target, own_only) {
                Ok(id) => found.push((Conversation::Direct(peer), id)),
                Err(RefError::NotFound(_)) => {}
                Err(e) => refused = Some(e),
            }
        }
        match (found.len(), refused) {
            (1, None) => Ok(found.remove(0)),
            (0, Some(e)) => Err(e),
            (0, None) => here.map(|id| (conversation, id)),
            (count, _) => Err(RefError::Ambiguous {
                prefix: target.to_string(),
                count: count.max(2),
            }),
        }
    }

    /// `/reply`, `/react`, `/edit`, `/delete`: sends the change of line `target`.
    fn send_change(
        &mut self,
        conversation: Conversation,
        target: MessageId,
        op: Op,
        text: String,
        reply: oneshot::Sender<Result<Changed, NodeError>>,
    ) {
        if op == Op::Delete {
            self.recent_of(&conversation.log()).deleted(&target);
        }
        let change = Change::new(target, &op);
        let wire = fallback_text(&op, &text);
        let logged = (
            edits::entry_text(&op, &text),
            edits::entry_change(target, &op),
        );
        match conversation {
            Conversation::Room(room) => {
                let sent = self
                    .publish_with(room.clone(), wire, Some(change), Some(logged))
                    .map(|p| Changed {
                        conversation: Conversation::Room(room),
                        id: p.id,
                        target,
                        reached: p.peers,
                        with: None,
                    });
                let _ = reply.send(sent);
            }
            Conversation::Direct(peer) => {
                let mut message = DirectMessage::new(&self.config.name, &wire);
                message.re = Some(change);
                let (tx, rx) = oneshot::channel();
                let with = Some(self.directory.display_name(&peer));
                self.send_direct_message(peer, message, Some(logged), tx);
                tokio::spawn(async move {
                    let outcome = rx.await.unwrap_or(Err(NodeError::Stopped));
                    let _ = reply.send(outcome.map(|o| Changed {
                        conversation: Conversation::Direct(peer),
                        id: o.id,
                        target,
                        reached: usize::from(o.delivered),
                        with,
                    }));
                });
            }
        }
    }

    /// Answers with the last `count` lines of `conversation`, folded, read off the loop.
    fn lines(
        &self,
        conversation: Conversation,
        count: usize,
        reply: oneshot::Sender<Result<Vec<Line>, NodeError>>,
    ) {
        let Some(dir) = self.store.history_dir.clone() else {
            let _ = reply.send(Ok(Vec::new()));
            return;
        };
        // An own private message is delivered once the outbox no longer holds it.
        let waiting: std::collections::HashSet<String> = match &conversation {
            Conversation::Direct(peer) => self
                .store
                .outbox
                .for_peer(peer)
                .iter()
                .map(|p| p.message.id.to_string())
                .collect(),
            Conversation::Room(_) => std::collections::HashSet::new(),
        };
        let direct = matches!(conversation, Conversation::Direct(_));
        let names = self.directory.labels();
        tokio::task::spawn_blocking(move || {
            // Changes take entries of their own: read more than the lines asked for.
            let want = count.saturating_mul(4).saturating_add(200).min(MAX_READ);
            let entries = History::read_last(&dir, &conversation.log(), want);
            let _ = reply.send(
                entries
                    .map(|e| {
                        let mut lines = Timeline::from_entries(&e).lines();
                        for line in lines.iter_mut() {
                            line.relabel(&names);
                            if direct && line.entry.outgoing {
                                line.delivered |= !waiting.contains(&line.entry.id);
                            }
                        }
                        let skip = lines.len().saturating_sub(count);
                        lines.split_off(skip)
                    })
                    .map_err(NodeError::History),
            );
        });
    }
}
