//! Who is online: the last presence each peer announced, and who has fallen silent.
//!
//! Plain data and functions; the caller passes the time, so tests need no clock.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use ipm_protocol::Presence;
use libp2p::PeerId;

/// Most users tracked at once; announcements of further newcomers are ignored until some
/// fall silent.
pub const MAX_ONLINE_USERS: usize = 10_000;

/// The last announcement of one peer and when it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// What the peer announced.
    pub presence: Presence,
    /// When it arrived, by the local clock.
    pub at: Instant,
}

/// The online peers: whoever announced itself less than `timeout` ago.
#[derive(Debug)]
pub struct PresenceTable {
    seen: HashMap<PeerId, Seen>,
    timeout: Duration,
}

impl PresenceTable {
    /// A table in which peers silent for `timeout` or longer are offline.
    pub fn new(timeout: Duration) -> Self {
        Self {
            seen: HashMap::new(),
            timeout,
        }
    }

    /// Records an announcement of `peer` received at `now`. An announcement
    /// sent before the one already held (gossip may reorder) only refreshes
    /// the time. Returns true when the peer was not online before. A newcomer is ignored
    /// while [`MAX_ONLINE_USERS`] are tracked.
    pub fn observe(&mut self, peer: PeerId, presence: Presence, now: Instant) -> bool {
        let timeout = self.timeout;
        let full = self.seen.len() >= MAX_ONLINE_USERS;
        match self.seen.get_mut(&peer) {
            Some(seen) => {
                let was_online = now.saturating_duration_since(seen.at) < timeout;
                if presence.sent_ms >= seen.presence.sent_ms {
                    seen.presence = presence;
                }
                seen.at = seen.at.max(now);
                !was_online
            }
            None if full => false,
            None => {
                self.seen.insert(peer, Seen { presence, at: now });
                true
            }
        }
    }

    /// Forgets every peer silent for the timeout or longer at `now` and
    /// returns them with their last announcement.
    pub fn expire(&mut self, now: Instant) -> Vec<(PeerId, Presence)> {
        let timeout = self.timeout;
        let gone: Vec<PeerId> = self
            .seen
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.at) >= timeout)
            .map(|(p, _)| *p)
            .collect();
        gone.into_iter()
            .filter_map(|p| self.seen.remove(&p).map(|s| (p, s.presence)))
            .collect()
    }

    /// The peers online at `now`, in no particular order.
    pub fn online(&self, now: Instant) -> impl Iterator<Item = (&PeerId, &Presence)> {
        let timeout = self.timeout;
        self.seen
            .iter()
            .filter(move |(_, s)| now.saturating_duration_since(s.at) < timeout)
            .map(|(p, s)| (p, &s.presence))
    }

    /// The last announcement of `peer`, if it is online at `now`.
    pub fn get(&self, peer: &PeerId, now: Instant) -> Option<&Presence> {
        self.seen
            .get(peer)
            .filter(|s| now.saturating_duration_since(s.at) < self.timeout)
            .map(|s| &s.presence)
    }
}

/// Whether the node should announce itself at `now`, given its last announcement: once per
/// `interval`, or sooner when an extra announcement is `wanted` (a newcomer should hear of
/// us), but never more than four times per interval.
pub fn announcement_due(
    last: Option<Instant>,
    now: Instant,
    interval: Duration,
    wanted: bool,
) -> bool {
    last.is_none_or(|at| {
        let since = now.saturating_duration_since(at);
        since >= interval || (wanted && since >= interval / 4)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::Room;

    fn presence(name: &str, sent_ms: u64) -> Presence {
        Presence {
            sent_ms,
            ..Presence::new(name, vec![Room::Lobby], None, None, None)
        }
    }

    #[test]
    fn silent_peers_drop_out() {
        let t0 = Instant::now();
        let mut table = PresenceTable::new(Duration::from_secs(30));
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(table.observe(a, presence("alice", 1), t0));
        assert!(table.observe(b, presence("bob", 1), t0));
        assert!(!table.observe(a, presence("alice", 2), t0 + Duration::from_secs(20)));
        let at = t0 + Duration::from_secs(31);
        assert_eq!(table.online(at).count(), 1);
        assert!(table.get(&b, at).is_none());
        let gone = table.expire(at);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, b);
        assert_eq!(gone[0].1.name, "bob");
        assert!(table.expire(at).is_empty());
        assert_eq!(table.get(&a, at).unwrap().name, "alice");
        // Back after falling silent counts as new.
        let late = t0 + Duration::from_secs(100);
        assert!(table.observe(a, presence("alice", 3), late));
    }

    #[test]
    fn an_older_announcement_does_not_replace_a_newer_one() {
        let t0 = Instant::now();
        let mut table = PresenceTable::new(Duration::from_secs(30));
        let a = PeerId::random();
        table.observe(a, presence("new", 10), t0);
        table.observe(a, presence("old", 5), t0 + Duration::from_secs(1));
        assert_eq!(table.get(&a, t0).unwrap().name, "new");
    }

    #[test]
    fn announcements_are_periodic_and_extra_ones_rate_limited() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(10);
        let s = Duration::from_secs;
        assert!(announcement_due(None, t0, interval, false));
        assert!(!announcement_due(Some(t0), t0 + s(9), interval, false));
        assert!(announcement_due(Some(t0), t0 + s(10), interval, false));
        assert!(!announcement_due(Some(t0), t0 + s(2), interval, true));
        assert!(announcement_due(Some(t0), t0 + s(3), interval, true));
    }
}
