//! Private-message delivery, without I/O: when a waiting message goes on the wire (never
//! twice at once), when the sender's wait ends in "queued" (reported once), when an
//! unreachable peer is tried again, what a failed request or an answer means, and which
//! arriving messages are shown (blocked senders and second copies dropped) and answered
//! with the away text.
//!
//! The driver keeps the outbox on disk and tells the machine what it holds
//! ([`Delivery::restore`] at start, [`Input::Queued`] for each new message; answers remove
//! messages). It passes the current time to every step and carries out the [`Action`]s.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use ipm_protocol::{DirectResponse, MessageId};
use libp2p::PeerId;

use crate::logic::{backoff, directory::RecentIds};

/// How many received (sender, id) pairs are remembered per run to drop duplicates quickly.
pub const SEEN_DIRECT: usize = 100_000;
/// The pause before the first retry of an unreachable peer; it doubles with each attempt.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);

/// Something that happened to the outgoing side.
#[derive(Debug)]
pub enum Input {
    /// Message `id` for `to` was written to the outbox; `user_waits` when its sender waits
    /// for the outcome (a `/msg`, not an away reply).
    Queued {
        /// The recipient.
        to: PeerId,
        /// The message.
        id: MessageId,
        /// Whether the sender waits for the outcome.
        user_waits: bool,
    },
    /// `peer` may be reachable now: it connected, or the DHT found its addresses.
    Reachable {
        /// The peer.
        peer: PeerId,
    },
    /// The DHT search for `peer` found nothing.
    NotFound {
        /// The peer.
        peer: PeerId,
    },
    /// Time passed: deadlines and retries are due.
    Tick,
    /// `peer` answered the request that carried message `id`.
    Answered {
        /// The recipient that answered.
        peer: PeerId,
        /// The message the request carried.
        id: MessageId,
        /// Its answer.
        response: DirectResponse,
    },
    /// The request that carried message `id` to `peer` failed.
    Failed {
        /// The recipient.
        peer: PeerId,
        /// The message the request carried.
        id: MessageId,
        /// True when no connection could be made (no known address).
        dial_failure: bool,
    },
    /// The away text changed: everyone may get the new one once.
    AwayChanged,
}

/// A private message that arrived, as far as the machine needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming {
    /// Its sender.
    pub from: PeerId,
    /// Its id.
    pub id: MessageId,
    /// Whether it is an automatic away reply itself.
    pub auto_reply: bool,
    /// Whether the user blocked the sender.
    pub blocked: bool,
    /// Whether the user is away (has an away text).
    pub away: bool,
}

/// Why an arriving message is not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The user blocked its sender.
    Blocked,
    /// A copy with the same id from the same sender arrived before (this run or before a
    /// restart). An id is only a duplicate per sender: whoever saw an id (a bootstrap sees
    /// the ids of sealed messages) cannot pre-empt the real message with a copy of its own.
    Duplicate,
}

/// How the sender's wait for a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The recipient acknowledged it.
    Delivered,
    /// It waits in the outbox (and at the mailboxes).
    Queued,
    /// The recipient refused it, for this reason.
    Refused(String),
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send waiting message `id` to `to` (dialling it if it is not connected).
    Send {
        /// The recipient.
        to: PeerId,
        /// The message, as the outbox holds it.
        id: MessageId,
    },
    /// Search the DHT for `peer`'s addresses; answer with [`Input::Reachable`] or
    /// [`Input::NotFound`].
    LookUp {
        /// The peer.
        peer: PeerId,
    },
    /// The outbox forgets message `id` (the recipient answered).
    Forget {
        /// The message.
        id: MessageId,
    },
    /// Answer the sender waiting for message `id`.
    Answer {
        /// The message.
        id: MessageId,
        /// Its recipient.
        to: PeerId,
        /// How the wait ended.
        outcome: Outcome,
    },
    /// Message `id` missed its first delivery: tell the user it waits (once per message)
    /// and hand sealed copies to the mailboxes.
    Queued {
        /// The message.
        id: MessageId,
        /// Its recipient.
        to: PeerId,
    },
    /// Tell the user `to` acknowledged message `id`.
    Delivered {
        /// The message.
        id: MessageId,
        /// Its recipient.
        to: PeerId,
    },
    /// Tell the user `to` refused message `id`.
    Refused {
        /// The message.
        id: MessageId,
        /// Its recipient.
        to: PeerId,
        /// Why, in the recipient's words.
        reason: String,
    },
}

/// What the driver must do with an arriving message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// An arriving message is not shown.
    Drop {
        /// Its sender.
        from: PeerId,
        /// Its id.
        id: MessageId,
        /// Why.
        why: Dropped,
    },
    /// The sender is not blocked: the name its message carries may be learnt.
    LearnName {
        /// The sender.
        from: PeerId,
    },
    /// Send the away text to `to`.
    AutoReply {
        /// The sender of the message being answered.
        to: PeerId,
    },
    /// Show and log arriving message `id` from `from`.
    Show {
        /// The sender.
        from: PeerId,
        /// The message.
        id: MessageId,
    },
}

/// When an unreachable peer is tried next, and how often it was tried.
#[derive(Debug, Clone, Copy)]
struct Retry {
    at: Instant,
    attempts: u32,
}

/// Delivery bookkeeping: what waits for whom, what is on the wire, who waits for an
/// answer, when to retry, and what arrived.
#[derive(Debug)]
pub struct Delivery {
    wait: Duration,
    max_retry: Duration,
    /// The outbox's messages per recipient, oldest first.
    waiting: BTreeMap<PeerId, Vec<MessageId>>,
    recipient: HashMap<MessageId, PeerId>,
    sending: HashSet<MessageId>,
    deadlines: HashMap<MessageId, Instant>,
    announced_queued: HashSet<MessageId>,
    retry: HashMap<PeerId, Retry>,
    received: RecentIds<(PeerId, MessageId)>,
    loaded_history: HashSet<PeerId>,
    auto_replied: HashSet<PeerId>,
}

impl Delivery {
    /// A machine whose users wait `wait` for an acknowledgement before their message is
    /// reported queued, and whose retries of an unreachable peer pause at most `max_retry`.
    pub fn new(wait: Duration, max_retry: Duration) -> Self {
        Self {
            wait,
            max_retry,
            waiting: BTreeMap::new(),
            recipient: HashMap::new(),
            sending: HashSet::new(),
            deadlines: HashMap::new(),
            announced_queued: HashSet::new(),
            retry: HashMap::new(),
            received: RecentIds::new(SEEN_DIRECT),
            loaded_history: HashSet::new(),
            auto_replied: HashSet::new(),
        }
    }

    /// Learns a message the outbox held at start (oldest first); nobody waits for it and it
    /// goes out on the first tick.
    pub fn restore(&mut self, to: PeerId, id: MessageId) {
        self.remember(to, id);
    }

    /// Whether message `id` was reported as queued (it missed its first delivery).
    pub fn was_queued(&self, id: &MessageId) -> bool {
        self.announced_queued.contains(id)
    }

    /// The waiting messages already reported queued, by recipient and oldest first: what a
    /// newly connected mailbox is handed.
    pub fn queued(&self) -> Vec<MessageId> {
        self.waiting
            .values()
            .flatten()
            .filter(|id| self.was_queued(id))
            .copied()
            .collect()
    }

    /// Whether message `id` is on the wire now.
    pub fn is_sending(&self, id: &MessageId) -> bool {
        self.sending.contains(id)
    }

    /// How many messages wait in the outbox.
    pub fn len(&self) -> usize {
        self.recipient.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.recipient.is_empty()
    }

    /// One step of the outgoing side: `now` is the current time.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        match input {
            Input::Queued { to, id, user_waits } => {
                self.remember(to, id);
                self.retry.remove(&to);
                if user_waits {
                    self.deadlines.insert(id, now + self.wait);
                }
                self.flush(to, &mut actions);
            }
            Input::Reachable { peer } => self.flush(peer, &mut actions),
            Input::NotFound { peer } => {
                let idle: Vec<MessageId> = self
                    .waiting_for(&peer)
                    .iter()
                    .filter(|id| !self.sending.contains(id))
                    .copied()
                    .collect();
                for id in idle {
                    self.report_queued(id, &mut actions);
                }
            }
            Input::Tick => self.tick(now, &mut actions),
            Input::Answered { peer, id, response } => {
                self.sending.remove(&id);
                self.answered(peer, id, response, &mut actions);
            }
            Input::Failed {
                peer,
                id,
                dial_failure,
            } => {
                self.sending.remove(&id);
                // A peer with no known address may still be found through the DHT before
                // the user's wait is over; anything else is queued now.
                if dial_failure {
                    actions.push(Action::LookUp { peer });
                } else {
                    self.report_queued(id, &mut actions);
                }
            }
            Input::AwayChanged => self.auto_replied.clear(),
        }
        actions
    }

    /// What to do with an arriving message. `earlier` gives the ids of messages received
    /// from its sender before this run (from the conversation's log); it is called at most
    /// once per sender.
    pub fn receive(
        &mut self,
        incoming: Incoming,
        earlier: impl FnOnce() -> Vec<MessageId>,
    ) -> Vec<Reaction> {
        let Incoming {
            from,
            id,
            auto_reply,
            blocked,
            away,
        } = incoming;
        if blocked {
            return vec![Reaction::Drop {
                from,
                id,
                why: Dropped::Blocked,
            }];
        }
        let mut actions = vec![Reaction::LearnName { from }];
        if self.loaded_history.insert(from) {
            for seen in earlier() {
                self.received.insert((from, seen));
            }
        }
        if !self.received.insert((from, id)) {
            actions.push(Reaction::Drop {
                from,
                id,
                why: Dropped::Duplicate,
            });
            return actions;
        }
        // The first message of each sender while away, never an automatic reply (two
        // away users would answer each other forever).
        if away && !auto_reply && self.auto_replied.insert(from) {
            actions.push(Reaction::AutoReply { to: from });
        }
        actions.push(Reaction::Show { from, id });
        actions
    }

    /// Forgets that message `id` from `from` arrived: it was shown but could not be logged,
    /// so it was not acknowledged and its sender's next copy must be taken again.
    pub fn unreceive(&mut self, from: PeerId, id: MessageId) {
        self.received.remove(&(from, id));
    }

    fn remember(&mut self, to: PeerId, id: MessageId) {
        if self.recipient.insert(id, to).is_none() {
            self.waiting.entry(to).or_default().push(id);
        }
    }

    fn forget(&mut self, id: &MessageId) {
        let Some(to) = self.recipient.remove(id) else {
            return;
        };
        if let Some(list) = self.waiting.get_mut(&to) {
            list.retain(|w| w != id);
            if list.is_empty() {
                self.waiting.remove(&to);
            }
        }
    }

    fn waiting_for(&self, peer: &PeerId) -> &[MessageId] {
        self.waiting.get(peer).map_or(&[], Vec::as_slice)
    }

    /// Sends every waiting message for `peer` that is not already on the wire.
    fn flush(&mut self, peer: PeerId, actions: &mut Vec<Action>) {
        let idle: Vec<MessageId> = self
            .waiting_for(&peer)
            .iter()
            .filter(|id| !self.sending.contains(id))
            .copied()
            .collect();
        for id in idle {
            self.sending.insert(id);
            actions.push(Action::Send { to: peer, id });
        }
    }

    /// Reports queued the messages whose sender's wait is over, and retries unreachable
    /// peers with a growing pause.
    fn tick(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let late: Vec<MessageId> = self
            .deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.report_queued(id, actions);
        }
        let peers: Vec<PeerId> = self.waiting.keys().copied().collect();
        for peer in peers {
            let retry = self.retry.get(&peer).copied();
            let due = retry.is_none_or(|r| r.at <= now);
            let idle = self
                .waiting_for(&peer)
                .iter()
                .any(|id| !self.sending.contains(id));
            if due && idle {
                let attempts = retry.map_or(0, |r| r.attempts);
                let pause = backoff::pause(FIRST_RETRY, attempts, self.max_retry);
                self.retry.insert(
                    peer,
                    Retry {
                        at: now + pause,
                        attempts: attempts + 1,
                    },
                );
                self.flush(peer, actions);
            }
        }
    }

    /// Message `id` is not delivered yet: the waiting sender hears so, and the user is told
    /// once that it waits.
    fn report_queued(&mut self, id: MessageId, actions: &mut Vec<Action>) {
        let Some(to) = self.recipient.get(&id).copied() else {
            return;
        };
        if self.deadlines.remove(&id).is_some() {
            actions.push(Action::Answer {
                id,
                to,
                outcome: Outcome::Queued,
            });
        }
        if self.announced_queued.insert(id) {
            actions.push(Action::Queued { id, to });
        }
    }

    fn answered(
        &mut self,
        peer: PeerId,
        id: MessageId,
        response: DirectResponse,
        actions: &mut Vec<Action>,
    ) {
        let refused = match response {
            DirectResponse::Delivered { id: acked } if acked == id => None,
            DirectResponse::Delivered { .. } => Some("acknowledged another message".to_owned()),
            DirectResponse::Refused { reason, .. } => Some(reason),
        };
        self.forget(&id);
        actions.push(Action::Forget { id });
        self.announced_queued.remove(&id);
        self.retry.remove(&peer);
        let user_waits = self.deadlines.remove(&id).is_some();
        match refused {
            None => {
                if user_waits {
                    actions.push(Action::Answer {
                        id,
                        to: peer,
                        outcome: Outcome::Delivered,
                    });
                }
                actions.push(Action::Delivered { id, to: peer });
            }
            Some(reason) => {
                if user_waits {
                    actions.push(Action::Answer {
                        id,
                        to: peer,
                        outcome: Outcome::Refused(reason.clone()),
                    });
                }
                actions.push(Action::Refused {
                    id,
                    to: peer,
                    reason,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn machine() -> Delivery {
        Delivery::new(secs(5.0), secs(4.0))
    }

    fn incoming(from: PeerId, id: MessageId) -> Incoming {
        Incoming {
            from,
            id,
            auto_reply: false,
            blocked: false,
            away: false,
        }
    }

    fn sends(actions: &[Action]) -> Vec<MessageId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Queues a message for `to` (the user waiting) and fails its first send as unreachable.
    fn queued_unreachable(d: &mut Delivery, t0: Instant, to: PeerId) -> MessageId {
        let id = MessageId::random();
        d.handle(
            t0,
            Input::Queued {
                to,
                id,
                user_waits: true,
            },
        );
        d.handle(
            t0,
            Input::Failed {
                peer: to,
                id,
                dial_failure: false,
            },
        );
        id
    }

    #[test]
    fn a_new_message_goes_on_the_wire_at_once_and_not_twice() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let id = MessageId::random();
        let actions = d.handle(
            t0,
            Input::Queued {
                to: bob,
                id,
                user_waits: true,
            },
        );
        assert_eq!(actions, vec![Action::Send { to: bob, id }]);
        assert!(d.is_sending(&id));
        // Connecting, a tick and a second message send nothing twice.
        assert!(d.handle(t0, Input::Reachable { peer: bob }).is_empty());
        assert!(sends(&d.handle(t0 + secs(1.0), Input::Tick)).is_empty());
        let second = MessageId::random();
        let actions = d.handle(
            t0,
            Input::Queued {
                to: bob,
                id: second,
                user_waits: false,
            },
        );
        assert_eq!(sends(&actions), vec![second]);
    }

    #[test]
    fn an_unreachable_peer_is_retried_with_a_growing_pause_up_to_the_ceiling() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let id = queued_unreachable(&mut d, t0, bob);
        let fail = |d: &mut Delivery, at| {
            d.handle(
                at,
                Input::Failed {
                    peer: bob,
                    id,
                    dial_failure: false,
                },
            )
        };
        // The first tick after the failure tries again, then after 0.5 s, 1 s, 2 s, 4 s, 4 s.
        let mut at = t0 + secs(0.1);
        for pause in [0.5, 1.0, 2.0, 4.0, 4.0] {
            assert_eq!(sends(&d.handle(at, Input::Tick)), vec![id]);
            fail(&mut d, at);
            assert!(
                sends(&d.handle(at + secs(pause) - secs(0.01), Input::Tick)).is_empty(),
                "retried before {pause} s"
            );
            at += secs(pause);
        }
        assert_eq!(sends(&d.handle(at, Input::Tick)), vec![id]);
    }

    #[test]
    fn a_new_message_starts_the_retries_over() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let id = queued_unreachable(&mut d, t0, bob);
        for i in 0..4 {
            let at = t0 + secs(10.0 * f64::from(i));
            assert_eq!(sends(&d.handle(at, Input::Tick)), vec![id]);
            d.handle(
                at,
                Input::Failed {
                    peer: bob,
                    id,
                    dial_failure: false,
                },
            );
        }
        // Four attempts: the next waits the ceiling. A new message goes out with the older
        // one and resets the count: after both fail, the next tick tries again at once.
        let t1 = t0 + secs(30.0);
        let newer = MessageId::random();
        let actions = d.handle(
            t1,
            Input::Queued {
                to: bob,
                id: newer,
                user_waits: false,
            },
        );
        assert_eq!(sends(&actions), vec![id, newer]);
        for failed in [id, newer] {
            d.handle(
                t1,
                Input::Failed {
                    peer: bob,
                    id: failed,
                    dial_failure: false,
                },
            );
        }
        assert_eq!(sends(&d.handle(t1, Input::Tick)), vec![id, newer]);
    }

    #[test]
    fn the_users_wait_ends_in_queued_exactly_once() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let id = MessageId::random();
        d.handle(
            t0,
            Input::Queued {
                to: bob,
                id,
                user_waits: true,
            },
        );
        assert!(d.handle(t0 + secs(4.9), Input::Tick).is_empty());
        let actions = d.handle(t0 + secs(5.0), Input::Tick);
        assert_eq!(
            actions,
            vec![
                Action::Answer {
                    id,
                    to: bob,
                    outcome: Outcome::Queued
                },
                Action::Queued { id, to: bob },
            ]
        );
        assert!(d.was_queued(&id));
        // Later failures and ticks report nothing again.
        let actions = d.handle(
            t0 + secs(6.0),
            Input::Failed {
                peer: bob,
                id,
                dial_failure: false,
            },
        );
        assert!(actions.is_empty());
        let actions = d.handle(t0 + secs(7.0), Input::Tick);
        assert_eq!(actions, vec![Action::Send { to: bob, id }]);
        assert_eq!(d.queued(), vec![id]);
    }

    #[test]
    fn a_dial_failure_looks_the_peer_up_and_other_failures_queue() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let id = MessageId::random();
        d.handle(
            t0,
            Input::Queued {
                to: bob,
                id,
                user_waits: true,
            },
        );
        let actions = d.handle(
            t0,
            Input::Failed {
                peer: bob,
                id,
                dial_failure: true,
            },
        );
        assert_eq!(actions, vec![Action::LookUp { peer: bob }]);
        assert!(!d.was_queued(&id));
        // The lookup found the peer: the message goes out again.
        assert_eq!(
            d.handle(t0, Input::Reachable { peer: bob }),
            vec![Action::Send { to: bob, id }]
        );
        let actions = d.handle(
            t0,
            Input::Failed {
                peer: bob,
                id,
                dial_failure: false,
            },
        );
        assert_eq!(
            actions,
            vec![
                Action::Answer {
                    id,
                    to: bob,
                    outcome: Outcome::Queued
                },
                Action::Queued { id, to: bob },
            ]
        );
    }

    #[test]
    fn a_lookup_that_finds_nothing_queues_what_is_not_on_the_wire() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let (idle, busy) = (MessageId::random(), MessageId::random());
        d.handle(
            t0,
            Input::Queued {
                to: bob,
                id: idle,
                user_waits: false,
            },
        );
        d.handle(
            t0,
            Input::Failed {
                peer: bob,
                id: idle,
                dial_failure: true,
            },
        );
        d.handle(
            t0,
            Input::Queued {
                to: bob,
                id: busy,
                user_waits: true,
            },
        );
        // `idle` is sent again with `busy`; only `busy` fails.
        d.handle(
            t0,
            Input::Failed {
                peer: bob,
                id: busy,
                dial_failure: true,
            },
        );
        let actions = d.handle(t0, Input::NotFound { peer: bob });
        assert_eq!(
            actions,
            vec![
                Action::Answer {
                    id: busy,
                    to: bob,
                    outcome: Outcome::Queued
                },
                Action::Queued { id: busy, to: bob },
            ]
        );
    }

    #[test]
    fn an_ack_removes_the_message_and_stops_retries() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let id = MessageId::random();
        d.handle(
            t0,
            Input::Queued {
                to: bob,
                id,
                user_waits: true,
            },
        );
        let actions = d.handle(
            t0 + secs(0.2),
            Input::Answered {
                peer: bob,
                id,
                response: DirectResponse::Delivered { id },
            },
        );
        assert_eq!(
            actions,
            vec![
                Action::Forget { id },
                Action::Answer {
                    id,
                    to: bob,
                    outcome: Outcome::Delivered
                },
                Action::Delivered { id, to: bob },
            ]
        );
        assert!(d.is_empty());
        // Neither the deadline nor a retry brings it back.
        assert!(d.handle(t0 + secs(10.0), Input::Tick).is_empty());
        assert!(d.handle(t0, Input::Reachable { peer: bob }).is_empty());
    }

    #[test]
    fn an_ack_after_the_wait_tells_only_the_event_and_clears_queued() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let id = queued_unreachable(&mut d, t0, bob);
        assert!(d.was_queued(&id));
        d.handle(t0 + secs(1.0), Input::Tick);
        let actions = d.handle(
            t0 + secs(1.0),
            Input::Answered {
                peer: bob,
                id,
                response: DirectResponse::Delivered { id },
            },
        );
        assert_eq!(
            actions,
            vec![Action::Forget { id }, Action::Delivered { id, to: bob }]
        );
        assert!(!d.was_queued(&id));
        assert!(d.queued().is_empty());
    }

    #[test]
    fn a_refusal_or_a_wrong_ack_removes_the_message_and_says_why() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let id = MessageId::random();
        d.handle(
            t0,
            Input::Queued {
                to: bob,
                id,
                user_waits: true,
            },
        );
        let reason = "too long".to_owned();
        let actions = d.handle(
            t0,
            Input::Answered {
                peer: bob,
                id,
                response: DirectResponse::Refused {
                    id,
                    reason: reason.clone(),
                },
            },
        );
        assert_eq!(
            actions,
            vec![
                Action::Forget { id },
                Action::Answer {
                    id,
                    to: bob,
                    outcome: Outcome::Refused(reason.clone())
                },
                Action::Refused {
                    id,
                    to: bob,
                    reason
                },
            ]
        );
        let other = MessageId::random();
        d.handle(
            t0,
            Input::Queued {
                to: bob,
                id: other,
                user_waits: false,
            },
        );
        let actions = d.handle(
            t0,
            Input::Answered {
                peer: bob,
                id: other,
                response: DirectResponse::Delivered {
                    id: MessageId::random(),
                },
            },
        );
        assert_eq!(
            actions,
            vec![
                Action::Forget { id: other },
                Action::Refused {
                    id: other,
                    to: bob,
                    reason: "acknowledged another message".into()
                },
            ]
        );
    }

    #[test]
    fn restored_messages_go_out_on_the_first_tick_in_order() {
        let (mut d, t0, bob) = (machine(), Instant::now(), PeerId::random());
        let (a, b) = (MessageId::random(), MessageId::random());
        d.restore(bob, a);
        d.restore(bob, b);
        assert_eq!(d.len(), 2);
        assert_eq!(sends(&d.handle(t0, Input::Tick)), vec![a, b]);
        assert!(!d.was_queued(&a));
    }

    #[test]
    fn a_second_copy_of_an_id_is_dropped() {
        let (mut d, alice) = (machine(), PeerId::random());
        let id = MessageId::random();
        assert_eq!(
            d.receive(incoming(alice, id), Vec::new),
            vec![
                Reaction::LearnName { from: alice },
                Reaction::Show { from: alice, id }
            ]
        );
        assert_eq!(
            d.receive(incoming(alice, id), || panic!("the log is read once")),
            vec![
                Reaction::LearnName { from: alice },
                Reaction::Drop {
                    from: alice,
                    id,
                    why: Dropped::Duplicate
                }
            ]
        );
    }

    #[test]
    fn an_id_sent_first_by_another_sender_does_not_suppress_the_real_message() {
        let (mut d, alice, mallory) = (machine(), PeerId::random(), PeerId::random());
        let id = MessageId::random();
        assert!(d
            .receive(incoming(mallory, id), Vec::new)
            .contains(&Reaction::Show { from: mallory, id }));
        assert!(d
            .receive(incoming(alice, id), Vec::new)
            .contains(&Reaction::Show { from: alice, id }));
        // Another sender's log holding the id does not make it a duplicate either.
        let carol = PeerId::random();
        assert!(d
            .receive(incoming(carol, MessageId::random()), || vec![id])
            .iter()
            .all(|r| !matches!(r, Reaction::Drop { .. })));
        assert!(d
            .receive(incoming(alice, id), Vec::new)
            .contains(&Reaction::Drop {
                from: alice,
                id,
                why: Dropped::Duplicate
            }));
    }

    #[test]
    fn a_message_that_could_not_be_logged_is_taken_again() {
        let (mut d, alice) = (machine(), PeerId::random());
        let id = MessageId::random();
        assert!(d
            .receive(incoming(alice, id), Vec::new)
            .contains(&Reaction::Show { from: alice, id }));
        d.unreceive(alice, id);
        assert!(d
            .receive(incoming(alice, id), Vec::new)
            .contains(&Reaction::Show { from: alice, id }));
    }

    #[test]
    fn ids_from_the_conversations_log_are_dropped_and_the_log_is_read_once() {
        let (mut d, alice) = (machine(), PeerId::random());
        let (old, new) = (MessageId::random(), MessageId::random());
        let mut reads = 0;
        let actions = d.receive(incoming(alice, old), || {
            reads += 1;
            vec![old]
        });
        assert!(actions.contains(&Reaction::Drop {
            from: alice,
            id: old,
            why: Dropped::Duplicate
        }));
        let actions = d.receive(incoming(alice, new), || {
            reads += 1;
            Vec::new()
        });
        assert!(actions.contains(&Reaction::Show {
            from: alice,
            id: new
        }));
        assert_eq!(reads, 1);
    }

    #[test]
    fn a_blocked_sender_is_dropped_without_reading_its_log() {
        let (mut d, alice) = (machine(), PeerId::random());
        let id = MessageId::random();
        let blocked = Incoming {
            blocked: true,
            ..incoming(alice, id)
        };
        assert_eq!(
            d.receive(blocked, || panic!("no log read for a blocked sender")),
            vec![Reaction::Drop {
                from: alice,
                id,
                why: Dropped::Blocked
            }]
        );
        // Unblocked later, the same message is new.
        assert!(d
            .receive(incoming(alice, id), Vec::new)
            .contains(&Reaction::Show { from: alice, id }));
    }

    #[test]
    fn the_away_reply_goes_once_per_sender_and_never_to_an_auto_reply() {
        let (mut d, alice, bob) = (machine(), PeerId::random(), PeerId::random());
        let away = |from| Incoming {
            away: true,
            ..incoming(from, MessageId::random())
        };
        let replies = |actions: Vec<Reaction>| {
            actions
                .iter()
                .filter(|a| matches!(a, Reaction::AutoReply { .. }))
                .count()
        };
        // The reply comes before the message is shown (and logged).
        let first = away(alice);
        assert_eq!(
            d.receive(first, Vec::new),
            vec![
                Reaction::LearnName { from: alice },
                Reaction::AutoReply { to: alice },
                Reaction::Show {
                    from: alice,
                    id: first.id
                }
            ]
        );
        assert_eq!(replies(d.receive(away(alice), Vec::new)), 0);
        let auto = Incoming {
            auto_reply: true,
            ..away(bob)
        };
        assert_eq!(replies(d.receive(auto, Vec::new)), 0);
        assert_eq!(replies(d.receive(away(bob), Vec::new)), 1);
        // Not away: no reply.
        assert_eq!(
            replies(d.receive(incoming(PeerId::random(), MessageId::random()), Vec::new)),
            0
        );
        // A new away text goes to everyone once more.
        d.handle(Instant::now(), Input::AwayChanged);
        assert_eq!(replies(d.receive(away(alice), Vec::new)), 1);
    }
}
