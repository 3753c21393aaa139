//! Read receipts and typing notices for private messages, the decisions: which received
//! messages asked for a receipt (and are owed one once shown), which peers understand
//! notices at all, and how often a typing notice may be sent or shown. Time is an argument.
//! Beside them, the marker shown before the lines a room caught up on ([`CatchUpMarkers`]).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

use ipm_protocol::MessageId;
use libp2p::PeerId;

/// Shortest pause between two typing notices sent to, or shown from, one peer.
pub const TYPING_EVERY: Duration = Duration::from_secs(3);

/// Most messages remembered as owed a receipt, and most peers remembered.
pub const MAX_TRACKED: usize = 4096;

/// What a node remembers about receipts and typing.
#[derive(Debug, Default)]
pub struct Notices {
    /// Received messages whose sender asked for a receipt, oldest first.
    owed: VecDeque<(MessageId, PeerId)>,
    /// Peers whose messages said they understand notices.
    understands: HashSet<PeerId>,
    understands_order: VecDeque<PeerId>,
    typing_sent: HashMap<PeerId, Instant>,
    typing_heard: HashMap<PeerId, Instant>,
}

impl Notices {
    /// A message `id` from `from` arrived; `asked` when it asks for a receipt.
    pub fn received(&mut self, from: PeerId, id: MessageId, asked: bool) {
        if !asked {
            return;
        }
        if self.understands.insert(from) {
            if self.understands_order.len() >= MAX_TRACKED {
                if let Some(old) = self.understands_order.pop_front() {
                    self.understands.remove(&old);
                }
            }
            self.understands_order.push_back(from);
        }
        if self.owed.len() >= MAX_TRACKED {
            self.owed.pop_front();
        }
        self.owed.push_back((id, from));
    }

    /// The user saw message `id` of the conversation with `peer` (every message of it when
    /// `None`): the receipts now owed to `peer`, each once.
    pub fn shown(&mut self, peer: PeerId, id: Option<MessageId>) -> Vec<MessageId> {
        let mut due = Vec::new();
        self.owed.retain(|(owed, from)| {
            let hit = *from == peer && id.is_none_or(|id| id == *owed);
            if hit {
                due.push(*owed);
            }
            !hit
        });
        due.truncate(ipm_protocol::limits::MAX_ACK_IDS);
        due
    }

    /// Whether a typing notice to `to` goes out now: `to` understands notices and the last
    /// one went out at least [`TYPING_EVERY`] ago.
    pub fn may_send_typing(&mut self, to: PeerId, now: Instant) -> bool {
        self.understands.contains(&to) && Self::due(&mut self.typing_sent, to, now)
    }

    /// Whether a typing notice heard from `from` is shown: at most one per
    /// [`TYPING_EVERY`].
    pub fn may_show_typing(&mut self, from: PeerId, now: Instant) -> bool {
        Self::due(&mut self.typing_heard, from, now)
    }

    fn due(last: &mut HashMap<PeerId, Instant>, peer: PeerId, now: Instant) -> bool {
        if last
            .get(&peer)
            .is_some_and(|t| now.saturating_duration_since(*t) < TYPING_EVERY)
        {
            return false;
        }
        if last.len() >= MAX_TRACKED {
            last.retain(|_, t| now.saturating_duration_since(*t) < TYPING_EVERY);
            if last.len() >= MAX_TRACKED {
                return false;
            }
        }
        last.insert(peer, now);
        true
    }
}

/// What the marker before caught-up lines says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUpMarker {
    /// `count` lines were said while the node was away from a room it had been in.
    WhileAway(usize),
    /// `count` lines were said before the node first came to the room.
    Earlier(usize),
    /// Back in a room it had been in, and nothing was said meanwhile.
    NothingNew,
}

impl CatchUpMarker {
    /// How many lines follow the marker.
    pub fn count(self) -> usize {
        match self {
            CatchUpMarker::WhileAway(n) | CatchUpMarker::Earlier(n) => n,
            CatchUpMarker::NothingNew => 0,
        }
    }

    /// Whether the node had been in the room before.
    pub fn been_here(self) -> bool {
        !matches!(self, CatchUpMarker::Earlier(_))
    }
}

/// Which rooms were told of their catch-up in this run, so that a second answer for a room
/// (a reconnection, a second bootstrap) that brings nothing new says nothing.
#[derive(Debug, Default)]
pub struct CatchUpMarkers {
    told: HashSet<String>,
}

impl CatchUpMarkers {
    /// The marker for an answer about the room `log` that brought `count` new lines;
    /// `been_here` when the node's log of the room held lines before. `None`: say nothing
    /// (nothing came, and this is a first visit or the room was told already).
    pub fn decide(&mut self, log: &str, been_here: bool, count: usize) -> Option<CatchUpMarker> {
        let first_answer = !self.told.contains(log);
        if self.told.len() >= MAX_TRACKED {
            self.told.clear();
        }
        self.told.insert(log.to_owned());
        match (count, been_here) {
            (0, true) if first_answer => Some(CatchUpMarker::NothingNew),
            (0, _) => None,
            (n, true) => Some(CatchUpMarker::WhileAway(n)),
            (n, false) => Some(CatchUpMarker::Earlier(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_says_nothing_of_being_away() {
        let mut markers = CatchUpMarkers::default();
        assert_eq!(markers.decide("lobby", false, 0), None);
        assert_eq!(
            markers.decide("interest-rust", false, 5),
            Some(CatchUpMarker::Earlier(5))
        );
    }

    #[test]
    fn lines_missed_are_counted_and_a_second_empty_answer_says_nothing() {
        let mut markers = CatchUpMarkers::default();
        let marker = markers.decide("lobby", true, 16);
        assert_eq!(marker, Some(CatchUpMarker::WhileAway(16)));
        let marker = CatchUpMarker::WhileAway(16);
        assert_eq!((marker.count(), marker.been_here()), (16, true));
        // The same lines again from a bootstrap, after a member answered first.
        assert_eq!(markers.decide("lobby", true, 0), None);
        // Away again later: what was missed is told.
        assert_eq!(
            markers.decide("lobby", true, 2),
            Some(CatchUpMarker::WhileAway(2))
        );
    }

    #[test]
    fn back_with_nothing_missed_is_told_once() {
        let mut markers = CatchUpMarkers::default();
        assert_eq!(
            markers.decide("lobby", true, 0),
            Some(CatchUpMarker::NothingNew)
        );
        assert_eq!(markers.decide("lobby", true, 0), None);
    }

    #[test]
    fn a_receipt_is_owed_once_and_only_when_asked() {
        let mut n = Notices::default();
        let (bob, carol) = (PeerId::random(), PeerId::random());
        let (a, b, c) = (
            MessageId::random(),
            MessageId::random(),
            MessageId::random(),
        );
        n.received(bob, a, true);
        n.received(bob, b, false);
        n.received(carol, c, true);
        assert_eq!(n.shown(bob, Some(b)), vec![]);
        assert_eq!(n.shown(carol, Some(a)), vec![]);
        assert_eq!(n.shown(bob, Some(a)), vec![a]);
        assert_eq!(n.shown(bob, Some(a)), vec![]);
        assert_eq!(n.shown(carol, None), vec![c]);
    }

    #[test]
    fn typing_goes_to_peers_that_understand_it_at_a_bounded_rate() {
        let mut n = Notices::default();
        let (bob, old) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        n.received(bob, MessageId::random(), true);
        n.received(old, MessageId::random(), false);
        assert!(!n.may_send_typing(old, t0));
        assert!(n.may_send_typing(bob, t0));
        assert!(!n.may_send_typing(bob, t0 + Duration::from_secs(1)));
        assert!(n.may_send_typing(bob, t0 + TYPING_EVERY));
        assert!(n.may_show_typing(old, t0));
        assert!(!n.may_show_typing(old, t0 + Duration::from_millis(10)));
    }

    #[test]
    fn memory_stays_bounded_against_many_keys() {
        let mut n = Notices::default();
        let now = Instant::now();
        for _ in 0..(MAX_TRACKED + 10) {
            let p = PeerId::random();
            n.received(p, MessageId::random(), true);
            n.may_show_typing(p, now);
        }
        assert!(n.owed.len() <= MAX_TRACKED);
        assert!(n.understands.len() <= MAX_TRACKED);
        assert!(n.typing_heard.len() <= MAX_TRACKED);
    }
}
