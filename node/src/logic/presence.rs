//! Who is online: the last presence each peer announced, who has fallen silent, who is
//! reported online or offline, whether a goodbye is fresh, and the timing rules for when
//! this node announces itself.
//!
//! Keys cost nothing, so the table holds against announcements of fresh keys that vanish:
//! the pause a peer may promise (`every_ms`, which stretches its timeout) is bounded by the
//! overlay size this node sees itself; a peer heard only through forwarders that are all
//! disconnected now loses its stretch; and a full table makes room for a contact or a member
//! of the user's rooms by evicting the least trusted entry, never such a one.
//!
//! A peer this node was connected to directly whose last connection the peer's side broke
//! (a crash, a `kill -9`, a cable pulled) is offline once [`CONNECTION_GRACE`] passed without
//! a new connection or a newer announcement: it is not listed for its whole timeout while
//! nothing can reach it. Announcements heard only through gossip still expire by silence.
//!
//! A peer that went offline is remembered for [`OFFLINE_MEMORY`]: a late copy of one of its
//! earlier announcements (gossip repeats messages for two minutes) does not bring it back,
//! so each change is reported once; only a newer announcement does.
//!
//! Plain data and functions; the caller passes the time, so tests need no clock.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use ipm_protocol::{limits::MAX_PRESENCE_EVERY_MS, name_record::name_key, Presence};
use libp2p::PeerId;

/// Most users tracked at once; announcements of further newcomers are ignored until some
/// fall silent.
pub const MAX_ONLINE_USERS: usize = 10_000;

/// Online users up to which every node announces itself once per base interval. Beyond it
/// each node stretches its interval in proportion, so that the overlay's presence traffic
/// stays what this many users make (the rule RTP uses for receiver reports, RFC 3550 §6.2):
/// with the default 10 s, two announcements a second however large the overlay grows.
pub const USERS_AT_BASE_RATE: usize = 20;

/// Oldest goodbye, by the sender's clock, that a bootstrap acts on, in ms: less than the time
/// gossip remembers duplicates (120 s).
pub const GOODBYE_MAX_AGE_MS: u64 = 100_000;

/// Whether a goodbye is recent enough at `now_ms` (ms since the Unix epoch) to end the
/// sender's registry session: gossip forgets duplicates after two minutes, so an older copy
/// may be a replay by someone else.
pub fn goodbye_is_fresh(presence: &Presence, now_ms: u64) -> bool {
    now_ms.saturating_sub(presence.sent_ms) < GOODBYE_MAX_AGE_MS
}

/// How long a directly connected peer whose last connection its side closed stays listed
/// while it may reconnect (never more than the table's timeout).
pub const CONNECTION_GRACE: Duration = Duration::from_secs(3);

/// How long a peer that went offline is remembered, so that late copies of its earlier
/// announcements are told apart from a return: gossip remembers messages for two minutes.
pub const OFFLINE_MEMORY: Duration = Duration::from_secs(120);

/// Most forwarders remembered per peer as the paths its announcements came by.
pub const MAX_PATHS: usize = 4;

/// How much longer than it sees itself another node's view of the overlay may be: the
/// longest pause a peer may promise is the one of a node seeing this many times the users.
pub const OVERLAY_SLACK: usize = 2;

/// The last announcement of one peer, when it arrived, and how long it may stay silent.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// What the peer announced.
    pub presence: Presence,
    /// When it arrived, by the local clock.
    pub at: Instant,
    /// Silence after which the peer counts as offline.
    pub timeout: Duration,
    /// When it was first heard (this time online).
    pub since: Instant,
    /// The forwarders its announcements came through, most recent last (none: not known).
    pub via: Vec<PeerId>,
    /// A contact or a member of the user's rooms: never evicted to make room.
    pub protected: bool,
    /// The direct connection to the peer broke: until when it may come back, and the send
    /// time of its last announcement then (only a newer one shows it is still there).
    pub lost: Option<Lost>,
    /// When it was reported offline (kept until [`OFFLINE_MEMORY`] has passed).
    pub offline_since: Option<Instant>,
}

/// A broken direct connection to an online peer, waiting for it to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The end of the grace: offline from then on.
    pub until: Instant,
    /// The send time of the last announcement held when the connection broke.
    pub sent_ms: u64,
}

impl Seen {
    fn online(&self, now: Instant) -> bool {
        self.offline_since.is_none()
            && now.saturating_duration_since(self.at) < self.timeout
            && self.lost.is_none_or(|lost| now < lost.until)
    }
}

/// What happened to the online users, for [`PresenceTable::handle`].
#[derive(Debug)]
pub enum Input {
    /// A user's announcement arrived (never this node's own). `name_pending`: whether its
    /// name is being looked up right now (then a newcomer is reported once it settles).
    Heard {
        /// The announcing peer (the message's signed source).
        peer: PeerId,
        /// What it announced.
        presence: Box<Presence>,
        /// Whether a lookup of `presence.name` is running.
        name_pending: bool,
        /// The peer that delivered the announcement.
        forwarder: PeerId,
        /// Whether the peer is a contact or a member of one of the user's rooms.
        protected: bool,
    },
    /// The node holds no connection to `peer` any more: users heard only through it lose
    /// the stretch of their timeout.
    ForwarderGone(PeerId),
    /// A connection to `peer` was established: a peer whose connection broke is back.
    Connected(PeerId),
    /// The peer's side broke the last connection to `peer` (not closed by this node): it is
    /// offline after [`CONNECTION_GRACE`] unless it connects or announces itself again.
    ConnectionLost(PeerId),
    /// The periodic check: users silent for too long are gone.
    Tick,
    /// A lookup of `name` settled: users waiting for it can be reported.
    NameSettled {
        /// The name looked up.
        name: String,
    },
}

/// What the driver must do about the online users.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Tell the user that `peer` came online (`Event::UserOnline`).
    Online(PeerId),
    /// Tell the user that `peer` went offline (`Event::UserOffline`).
    Offline(PeerId),
    /// A user not online before announced itself; `online` users are online now. It should
    /// hear of this node soon (see [`crate::logic::announcing`]).
    Newcomer {
        /// How many users are online, the newcomer included.
        online: usize,
    },
}

/// The online peers: whoever announced itself recently enough, and which of them were
/// reported to the user.
#[derive(Debug)]
pub struct PresenceTable {
    seen: HashMap<PeerId, Seen>,
    capacity: usize,
    timeout: Duration,
    interval: Duration,
    grace: Duration,
    /// Users who came online while their name was being looked up: they are reported once
    /// the lookup settles, under the name it allows.
    unreported: HashMap<PeerId, String>,
}

impl PresenceTable {
    /// A table in which a peer announcing every `interval` is offline after `timeout` of
    /// silence; a peer that promises a longer pause gets a proportionally longer timeout.
    pub fn new(timeout: Duration, interval: Duration) -> Self {
        Self::with_capacity(timeout, interval, MAX_ONLINE_USERS)
    }

    /// A table tracking at most `capacity` users.
    pub fn with_capacity(timeout: Duration, interval: Duration, capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            capacity,
            timeout,
            interval,
            grace: CONNECTION_GRACE.min(timeout),
            unreported: HashMap::new(),
        }
    }

    /// One step at `now`: records announcements, drops silent users and reports users whose
    /// name lookup settled.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        match input {
            Input::Heard {
                peer,
                presence,
                name_pending,
                forwarder,
                protected,
            } => {
                let mut actions = Vec::new();
                let path = Path {
                    forwarder: Some(forwarder),
                    protected,
                };
                if let Some(evicted) = self.make_room(now, &peer, protected) {
                    actions.extend(self.went_offline(evicted));
                }
                actions.extend(self.heard(now, peer, *presence, name_pending, path));
                actions
            }
            Input::ForwarderGone(forwarder) => {
                self.forwarder_gone(forwarder);
                self.handle(now, Input::Tick)
            }
            Input::Connected(peer) => {
                if let Some(seen) = self.seen.get_mut(&peer) {
                    if seen.offline_since.is_none() {
                        seen.lost = None;
                    }
                }
                Vec::new()
            }
            Input::ConnectionLost(peer) => {
                let grace = self.grace;
                if let Some(seen) = self.seen.get_mut(&peer).filter(|s| s.online(now)) {
                    if seen.lost.is_none() {
                        seen.lost = Some(Lost {
                            until: now + grace,
                            sent_ms: seen.presence.sent_ms,
                        });
                    }
                }
                self.handle(now, Input::Tick)
            }
            Input::Tick => {
                let gone: Vec<PeerId> = self.expire(now).into_iter().map(|(p, _)| p).collect();
                gone.into_iter()
                    .filter_map(|peer| self.went_offline(peer))
                    .collect()
            }
            Input::NameSettled { name } => {
                let key = name_key(&name);
                let waiting: Vec<PeerId> = self
                    .unreported
                    .iter()
                    .filter(|(_, n)| name_key(n) == key)
                    .map(|(p, _)| *p)
                    .collect();
                waiting
                    .into_iter()
                    .map(|peer| {
                        self.unreported.remove(&peer);
                        Action::Online(peer)
                    })
                    .collect()
            }
        }
    }

    /// Whether `peer` is online but not reported yet (its name is being looked up).
    pub fn is_unreported(&self, peer: &PeerId) -> bool {
        self.unreported.contains_key(peer)
    }

    fn heard(
        &mut self,
        now: Instant,
        peer: PeerId,
        presence: Presence,
        name_pending: bool,
        path: Path,
    ) -> Vec<Action> {
        if presence.leaving {
            let was_online = self.get(&peer, now).is_some();
            self.observe_via(peer, presence, now, path);
            return if was_online {
                self.went_offline(peer).into_iter().collect()
            } else {
                Vec::new()
            };
        }
        let name = presence.name.clone();
        if !self.observe_via(peer, presence, now, path) {
            return Vec::new();
        }
        let mut actions = Vec::new();
        if name_pending {
            self.unreported.insert(peer, name);
        } else {
            actions.push(Action::Online(peer));
        }
        actions.push(Action::Newcomer {
            online: self.online(now).count(),
        });
        actions
    }

    /// `peer` is offline: reported, unless it was never reported online (its name was still
    /// being looked up).
    fn went_offline(&mut self, peer: PeerId) -> Option<Action> {
        self.unreported
            .remove(&peer)
            .is_none()
            .then_some(Action::Offline(peer))
    }

    /// The longest pause between two announcements a peer may promise here: what a node
    /// seeing [`OVERLAY_SLACK`] times the users this node tracks would announce.
    pub fn longest_every(&self) -> Duration {
        // Peers remembered as offline do not count: a flood of keys that left would
        // otherwise make long pauses plausible for the next ones.
        let tracked = self
            .seen
            .values()
            .filter(|s| s.offline_since.is_none())
            .count();
        announce_every(self.interval, tracked.saturating_mul(OVERLAY_SLACK))
    }

    /// The silence after which the sender of `presence` counts as offline.
    fn timeout_of(&self, presence: &Presence) -> Duration {
        let every = presence
            .every_ms
            .map_or(self.interval, |ms| Duration::from_millis(ms.into()))
            .min(self.longest_every());
        if self.interval.is_zero() || every <= self.interval {
            return self.timeout;
        }
        self.timeout
            .mul_f64(every.as_secs_f64() / self.interval.as_secs_f64())
    }

    /// Records an announcement of `peer` received at `now`. An announcement
    /// sent before the one already held (gossip may reorder) only refreshes
    /// the time, unless the one held says the peer left. Returns true when the peer was not
    /// online before. A newcomer is ignored while the table is full (see `make_room`).
    ///
    /// A leaving announcement makes the peer offline at once; it is kept until the next
    /// [`PresenceTable::expire`], which drops it without returning it.
    pub fn observe(&mut self, peer: PeerId, presence: Presence, now: Instant) -> bool {
        let path = Path {
            forwarder: None,
            protected: false,
        };
        self.observe_via(peer, presence, now, path)
    }

    fn observe_via(&mut self, peer: PeerId, presence: Presence, now: Instant, path: Path) -> bool {
        let timeout = if presence.leaving {
            Duration::ZERO
        } else {
            self.timeout_of(&presence)
        };
        let full = self.seen.len() >= self.capacity;
        match self.seen.get_mut(&peer) {
            Some(seen) => {
                let was_online = seen.online(now);
                let newer = presence.sent_ms >= seen.presence.sent_ms;
                // Offline, only a later announcement brings the peer back: a copy of the
                // last one (or an older one) arriving late is no news.
                if !was_online && presence.sent_ms <= seen.presence.sent_ms {
                    return false;
                }
                if seen
                    .lost
                    .is_some_and(|lost| presence.sent_ms > lost.sent_ms)
                {
                    seen.lost = None;
                }
                if newer {
                    seen.presence = presence;
                    seen.timeout = timeout;
                }
                seen.at = seen.at.max(now);
                if seen.presence.leaving {
                    seen.offline_since.get_or_insert(now);
                } else if !was_online {
                    seen.since = now;
                    seen.offline_since = None;
                    seen.lost = None;
                }
                seen.protected = path.protected;
                if let Some(forwarder) = path.forwarder {
                    seen.via.retain(|p| *p != forwarder);
                    if seen.via.len() >= MAX_PATHS {
                        seen.via.remove(0);
                    }
                    seen.via.push(forwarder);
                }
                !was_online && seen.online(now)
            }
            None if full || presence.leaving => false,
            None => {
                self.seen.insert(
                    peer,
                    Seen {
                        presence,
                        at: now,
                        timeout,
                        since: now,
                        via: path.forwarder.into_iter().collect(),
                        protected: path.protected,
                        lost: None,
                        offline_since: None,
                    },
                );
                true
            }
        }
    }

    /// Before `peer` is heard at `now`: when the table is full and `peer` is new, evicts an
    /// entry to make room, and returns it when it was online. A user silent for its timeout
    /// goes first; otherwise, only for a `protected` newcomer, the least trusted entry: not
    /// protected, and first heard most recently. A newcomer that is not protected waits
    /// until some user falls silent.
    fn make_room(&mut self, now: Instant, peer: &PeerId, protected: bool) -> Option<PeerId> {
        if self.seen.len() < self.capacity || self.seen.contains_key(peer) {
            return None;
        }
        if let Some((silent, reported)) = self
            .seen
            .iter()
            .find(|(_, s)| !s.online(now))
            .map(|(p, s)| (*p, s.offline_since.is_some()))
        {
            self.seen.remove(&silent);
            return (!reported).then_some(silent);
        }
        if !protected {
            return None;
        }
        let least_trusted = self
            .seen
            .iter()
            .filter(|(_, s)| !s.protected)
            .max_by_key(|(_, s)| s.since)
            .map(|(p, _)| *p)?;
        self.seen.remove(&least_trusted);
        Some(least_trusted)
    }

    /// `forwarder` is disconnected: peers heard only through it lose the stretch of their
    /// timeout (they count as offline once the base timeout has passed since they were last
    /// heard).
    fn forwarder_gone(&mut self, forwarder: PeerId) {
        let base = self.timeout;
        for seen in self.seen.values_mut() {
            let before = seen.via.len();
            seen.via.retain(|p| *p != forwarder);
            if before > 0 && seen.via.is_empty() {
                seen.timeout = seen.timeout.min(base);
            }
        }
    }

    /// Marks offline every peer silent for its timeout or longer at `now`, or whose broken
    /// connection's grace is over, and returns them with their last announcement; peers
    /// that announced their leaving, or were returned before, are not returned again. Peers
    /// offline for [`OFFLINE_MEMORY`] are forgotten.
    pub fn expire(&mut self, now: Instant) -> Vec<(PeerId, Presence)> {
        self.seen.retain(|_, s| {
            s.offline_since
                .is_none_or(|since| now.saturating_duration_since(since) < OFFLINE_MEMORY)
        });
        let mut gone = Vec::new();
        for (peer, seen) in &mut self.seen {
            if seen.offline_since.is_none() && !seen.online(now) {
                seen.offline_since = Some(now);
                gone.push((*peer, seen.presence.clone()));
            }
        }
        gone
    }

    /// The peers online at `now`, in no particular order.
    pub fn online(&self, now: Instant) -> impl Iterator<Item = (&PeerId, &Presence)> {
        self.seen
            .iter()
            .filter(move |(_, s)| s.online(now))
            .map(|(p, s)| (p, &s.presence))
    }

    /// The last announcement of `peer`, if it is online at `now`.
    pub fn get(&self, peer: &PeerId, now: Instant) -> Option<&Presence> {
        self.seen
            .get(peer)
            .filter(|s| s.online(now))
            .map(|s| &s.presence)
    }
}

/// Where an announcement came from, as the table keeps it.
#[derive(Clone, Copy, Debug)]
struct Path {
    forwarder: Option<PeerId>,
    protected: bool,
}

/// The longest pause between two announcements of a node that sees `online` other users:
/// `base`, stretched beyond [`USERS_AT_BASE_RATE`] users, and never more than the protocol
/// allows.
pub fn announce_every(base: Duration, online: usize) -> Duration {
    let stretch = (online as f64 / USERS_AT_BASE_RATE as f64).max(1.0);
    base.mul_f64(stretch)
        .min(Duration::from_millis(MAX_PRESENCE_EVERY_MS.into()))
}

/// Newcomers per base interval that are each answered by about [`USERS_AT_BASE_RATE`]
/// users. When more join in one interval (a crowd arriving, a network healing), each is
/// answered by fewer, so that the answers of the whole overlay stay near this many times
/// [`USERS_AT_BASE_RATE`] per interval: every answer reaches every node, and a newcomer
/// hears of the others at their periodic announcements and from the bootstrap's list.
pub const NEWCOMERS_AT_FULL_ANSWER: usize = 2;

/// The chance that a node seeing `online` other users answers a newcomer at once, having
/// seen `newcomers` of them (this one included) within the last base interval: 1 up to
/// [`USERS_AT_BASE_RATE`] users and [`NEWCOMERS_AT_FULL_ANSWER`] newcomers, then falling
/// with both.
pub fn answer_chance(online: usize, newcomers: usize) -> f64 {
    let per_newcomer = (USERS_AT_BASE_RATE as f64 / online.max(1) as f64).min(1.0);
    let crowd = (NEWCOMERS_AT_FULL_ANSWER as f64 / newcomers.max(1) as f64).min(1.0);
    per_newcomer * crowd
}

/// The pause before the next periodic announcement: a random point in the second half of
/// `every` (`draw` in 0..=1), so that nodes started together drift apart instead of
/// announcing in bursts.
pub fn next_pause(every: Duration, draw: f64) -> Duration {
    every.mul_f64(0.5 + 0.5 * draw.clamp(0.0, 1.0))
}

/// Whether the node should announce itself at `now`: when its periodic announcement is due
/// (`next`), or sooner when an extra one is `wanted` (a newcomer should hear of us), but
/// never more than four times per `base` interval.
pub fn announcement_due(
    last: Option<Instant>,
    next: Option<Instant>,
    now: Instant,
    base: Duration,
    wanted: bool,
) -> bool {
    let Some(last) = last else {
        return true;
    };
    next.is_none_or(|next| now >= next)
        || (wanted && now.saturating_duration_since(last) >= base / 4)
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
        let mut table = PresenceTable::new(Duration::from_secs(30), Duration::from_secs(10));
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
        let mut table = PresenceTable::new(Duration::from_secs(30), Duration::from_secs(10));
        let a = PeerId::random();
        table.observe(a, presence("new", 10), t0);
        table.observe(a, presence("old", 5), t0 + Duration::from_secs(1));
        assert_eq!(table.get(&a, t0).unwrap().name, "new");
    }

    #[test]
    fn a_promised_longer_pause_stretches_the_timeout() {
        let t0 = Instant::now();
        let mut table = PresenceTable::new(Duration::from_secs(30), Duration::from_secs(10));
        // A node seeing 25 users allows the pauses of an overlay of 50: up to 25 s.
        for _ in 0..25 {
            table.observe(PeerId::random(), presence("other", 1), t0);
        }
        let (slow, fast) = (PeerId::random(), PeerId::random());
        let stretched = Presence {
            every_ms: Some(25_000),
            ..presence("slow", 1)
        };
        let short = Presence {
            every_ms: Some(2_000),
            ..presence("fast", 1)
        };
        table.observe(slow, stretched, t0);
        table.observe(fast, short, t0);
        // 25 s instead of 10: 75 s instead of 30; a shorter promise keeps the 30 s.
        let at = t0 + Duration::from_secs(74);
        assert!(table.get(&slow, at).is_some());
        assert!(table.get(&fast, at).is_none());
        assert!(table.get(&slow, t0 + Duration::from_secs(75)).is_none());
    }

    #[test]
    fn a_leaving_peer_is_offline_at_once_and_stays_so() {
        let t0 = Instant::now();
        let mut table = PresenceTable::new(Duration::from_secs(30), Duration::from_secs(10));
        let a = PeerId::random();
        assert!(table.observe(a, presence("alice", 10), t0));
        let leaving = Presence {
            leaving: true,
            ..presence("alice", 20)
        };
        assert!(!table.observe(a, leaving, t0));
        assert!(table.get(&a, t0).is_none());
        // A copy of an earlier announcement arriving late does not bring her back.
        assert!(!table.observe(a, presence("alice", 15), t0));
        assert!(table.get(&a, t0).is_none());
        // Her leaving was reported when it came, not again when it expires.
        assert!(table.expire(t0).is_empty());
        // Back later: online again.
        assert!(table.observe(a, presence("alice", 30), t0 + Duration::from_secs(1)));
        // A stranger's leaving is not recorded.
        let b = PeerId::random();
        let gone = Presence {
            leaving: true,
            ..presence("bob", 1)
        };
        assert!(!table.observe(b, gone, t0));
        assert_eq!(table.online(t0 + Duration::from_secs(1)).count(), 1);
    }

    #[test]
    fn the_interval_grows_with_the_overlay_and_is_capped() {
        let base = Duration::from_secs(10);
        assert_eq!(announce_every(base, 0), base);
        assert_eq!(announce_every(base, 20), base);
        assert_eq!(announce_every(base, 50), Duration::from_secs(25));
        assert_eq!(announce_every(base, 200), Duration::from_secs(100));
        assert_eq!(announce_every(base, 9_999), Duration::from_secs(600));
        assert_eq!(answer_chance(0, 1), 1.0);
        assert_eq!(answer_chance(20, 2), 1.0);
        assert_eq!(answer_chance(200, 1), 0.1);
        // A crowd of 50 newcomers in one interval: each is answered by 0.8 nodes of 1000,
        // so the overlay sends 40 answers for all of them, not 1 000.
        let chance = answer_chance(1000, 50);
        assert!((chance * 1000.0 * 50.0 - 40.0).abs() < 1e-6);
        let quick = Duration::from_millis(200);
        assert_eq!(announce_every(quick, 3), quick);
        assert_eq!(next_pause(base, 0.0), Duration::from_secs(5));
        assert_eq!(next_pause(base, 1.0), base);
        assert_eq!(next_pause(base, 7.0), base);
    }

    #[test]
    fn announcements_are_periodic_and_extra_ones_rate_limited() {
        let t0 = Instant::now();
        let base = Duration::from_secs(10);
        let s = Duration::from_secs;
        let next = Some(t0 + s(7));
        assert!(announcement_due(None, None, t0, base, false));
        assert!(!announcement_due(Some(t0), next, t0 + s(6), base, false));
        assert!(announcement_due(Some(t0), next, t0 + s(7), base, false));
        assert!(!announcement_due(Some(t0), next, t0 + s(2), base, true));
        assert!(announcement_due(Some(t0), next, t0 + s(3), base, true));
    }

    fn table() -> PresenceTable {
        PresenceTable::new(Duration::from_secs(30), Duration::from_secs(10))
    }

    fn heard(peer: PeerId, presence: Presence, name_pending: bool) -> Input {
        Input::Heard {
            peer,
            presence: Box::new(presence),
            name_pending,
            forwarder: peer,
            protected: false,
        }
    }

    #[test]
    fn a_newcomer_is_reported_online_and_counted() {
        let t0 = Instant::now();
        let mut table = table();
        let (a, b) = (PeerId::random(), PeerId::random());
        assert_eq!(
            table.handle(t0, heard(a, presence("alice", 1), false)),
            vec![Action::Online(a), Action::Newcomer { online: 1 }]
        );
        assert_eq!(
            table.handle(t0, heard(b, presence("bob", 1), false)),
            vec![Action::Online(b), Action::Newcomer { online: 2 }]
        );
        // Her next announcement is no news.
        assert!(table
            .handle(
                t0 + Duration::from_secs(5),
                heard(a, presence("alice", 2), false)
            )
            .is_empty());
    }

    #[test]
    fn a_newcomer_whose_name_is_looked_up_is_reported_when_it_settles() {
        let t0 = Instant::now();
        let mut table = table();
        let a = PeerId::random();
        assert_eq!(
            table.handle(t0, heard(a, presence("Alice", 1), true)),
            vec![Action::Newcomer { online: 1 }]
        );
        assert!(table.is_unreported(&a));
        let other = Input::NameSettled { name: "bob".into() };
        assert!(table.handle(t0, other).is_empty());
        // Names compare by their key.
        let settled = Input::NameSettled {
            name: "alice".into(),
        };
        assert_eq!(table.handle(t0, settled), vec![Action::Online(a)]);
        assert!(!table.is_unreported(&a));
    }

    #[test]
    fn a_goodbye_reports_the_user_offline_once() {
        let t0 = Instant::now();
        let mut table = table();
        let a = PeerId::random();
        table.handle(t0, heard(a, presence("alice", 1), false));
        let bye = Presence {
            leaving: true,
            ..presence("alice", 2)
        };
        assert_eq!(
            table.handle(t0, heard(a, bye.clone(), false)),
            vec![Action::Offline(a)]
        );
        assert!(table.handle(t0, heard(a, bye, false)).is_empty());
        assert!(table
            .handle(t0 + Duration::from_secs(60), Input::Tick)
            .is_empty());
    }

    #[test]
    fn a_silent_user_is_reported_offline_at_a_tick() {
        let t0 = Instant::now();
        let mut table = table();
        let a = PeerId::random();
        table.handle(t0, heard(a, presence("alice", 1), false));
        assert!(table
            .handle(t0 + Duration::from_secs(29), Input::Tick)
            .is_empty());
        assert_eq!(
            table.handle(t0 + Duration::from_secs(30), Input::Tick),
            vec![Action::Offline(a)]
        );
    }

    #[test]
    fn a_user_never_reported_online_is_not_reported_offline() {
        let t0 = Instant::now();
        let mut table = table();
        let (a, b) = (PeerId::random(), PeerId::random());
        table.handle(t0, heard(a, presence("alice", 1), true));
        table.handle(t0, heard(b, presence("bob", 1), true));
        let bye = Presence {
            leaving: true,
            ..presence("bob", 2)
        };
        assert!(table.handle(t0, heard(b, bye, false)).is_empty());
        assert!(table
            .handle(t0 + Duration::from_secs(30), Input::Tick)
            .is_empty());
        assert!(!table.is_unreported(&a) && !table.is_unreported(&b));
    }

    #[test]
    fn a_goodbye_older_than_100_s_is_not_fresh() {
        let now_ms = 1_700_000_000_000;
        let bye = |sent_ms| Presence {
            leaving: true,
            ..presence("alice", sent_ms)
        };
        assert!(goodbye_is_fresh(&bye(now_ms), now_ms));
        assert!(goodbye_is_fresh(&bye(now_ms - 99_999), now_ms));
        assert!(!goodbye_is_fresh(&bye(now_ms - 100_000), now_ms));
        assert!(!goodbye_is_fresh(&bye(now_ms - 500_000), now_ms));
        // A clock ahead of ours is fresh.
        assert!(goodbye_is_fresh(&bye(now_ms + 5_000), now_ms));
    }

    fn heard_via(peer: PeerId, presence: Presence, forwarder: PeerId, protected: bool) -> Input {
        Input::Heard {
            peer,
            presence: Box::new(presence),
            name_pending: false,
            forwarder,
            protected,
        }
    }

    fn ghost(sent_ms: u64) -> Presence {
        Presence {
            every_ms: Some(MAX_PRESENCE_EVERY_MS),
            ..presence("ghost", sent_ms)
        }
    }

    #[test]
    fn the_promised_pause_is_bounded_by_the_overlay_this_node_sees() {
        let t0 = Instant::now();
        let mut table = table();
        let mallory = PeerId::random();
        let ghosts: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
        for g in &ghosts {
            table.handle(t0, heard_via(*g, ghost(1), mallory, false));
        }
        // Ten users seen: no stretch is plausible (twenty users announce at the base rate).
        assert_eq!(table.longest_every(), Duration::from_secs(10));
        assert_eq!(
            table
                .handle(t0 + Duration::from_secs(30), Input::Tick)
                .len(),
            ghosts.len()
        );
        assert_eq!(table.online(t0 + Duration::from_secs(30)).count(), 0);
        // Before, ten minutes promised kept each listed for 60 times the timeout: 30 min.
    }

    #[test]
    fn users_heard_only_through_a_gone_forwarder_lose_their_stretch() {
        let t0 = Instant::now();
        let mut table = table();
        let (mallory, bootstrap) = (PeerId::random(), PeerId::random());
        // Enough users seen that a long pause is plausible.
        for _ in 0..200 {
            table.handle(t0, heard_via(PeerId::random(), ghost(1), mallory, false));
        }
        let bob = PeerId::random();
        table.handle(t0, heard_via(bob, ghost(1), mallory, false));
        table.handle(t0, heard_via(bob, ghost(2), bootstrap, false));
        let later = t0 + Duration::from_secs(31);
        // The first few ghosts were heard while too few users were seen for any stretch.
        assert!(table.online(later).count() > 180);
        let gone = table.handle(later, Input::ForwarderGone(mallory));
        assert_eq!(gone.len(), 200, "the ghosts are offline");
        assert!(!gone.contains(&Action::Offline(bob)));
        // Bob is still heard through the bootstrap.
        assert!(table.get(&bob, later).is_some());
        // Remembered as offline, the ghosts make no long pause plausible any more.
        assert_eq!(table.longest_every(), Duration::from_secs(10));
    }

    #[test]
    fn a_full_table_evicts_the_least_trusted_for_a_contact_and_never_a_protected_one() {
        const CAPACITY: usize = 100;
        let t0 = Instant::now();
        let mut table =
            PresenceTable::with_capacity(Duration::from_secs(30), Duration::from_secs(10), 100);
        let mallory = PeerId::random();
        let friend = PeerId::random();
        table.handle(t0, heard_via(friend, presence("friend", 1), friend, true));
        let member = PeerId::random();
        let at = |i: usize| t0 + Duration::from_millis(i as u64);
        table.handle(
            at(1),
            heard_via(member, presence("member", 1), member, true),
        );
        let mut newest = PeerId::random();
        for i in 2..CAPACITY {
            newest = PeerId::random();
            table.handle(
                at(i),
                heard_via(newest, presence("ghost", 1), mallory, false),
            );
        }
        assert_eq!(table.online(at(CAPACITY)).count(), CAPACITY);
        // Full: a stranger waits, a contact gets in by evicting the newest stranger.
        let now = at(CAPACITY);
        let stranger = PeerId::random();
        assert!(table
            .handle(now, heard_via(stranger, presence("s", 1), mallory, false))
            .is_empty());
        assert!(table.get(&stranger, now).is_none());
        let carol = PeerId::random();
        let actions = table.handle(now, heard_via(carol, presence("carol", 1), carol, true));
        assert!(actions.contains(&Action::Offline(newest)), "{actions:?}");
        assert!(actions.contains(&Action::Online(carol)));
        // However many protected newcomers come, the protected entries stay.
        for i in 0..(CAPACITY + 10) {
            let p = PeerId::random();
            table.handle(
                at(CAPACITY + 1 + i),
                heard_via(p, presence("p", 1), p, true),
            );
        }
        let end = at(3 * CAPACITY);
        assert!(table.get(&friend, end).is_some());
        assert!(table.get(&member, end).is_some());
        assert!(table.get(&carol, end).is_some());
        assert_eq!(table.online(end).count(), CAPACITY);
    }

    #[test]
    fn a_peer_whose_connection_broke_is_offline_after_the_grace_unless_it_comes_back() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut table = table();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        for (peer, name) in [(a, "alice"), (b, "bob"), (c, "carol")] {
            table.handle(t0, heard(peer, presence(name, 10), false));
        }
        for peer in [a, b, c] {
            assert!(table
                .handle(t0 + s(1), Input::ConnectionLost(peer))
                .is_empty());
        }
        // Listed while it may come back: bob reconnects, carol announces anew, and a late
        // copy of alice's last announcement is no sign of life.
        assert!(table.get(&a, t0 + s(2)).is_some());
        table.handle(t0 + s(2), Input::Connected(b));
        table.handle(t0 + s(2), heard(c, presence("carol", 11), false));
        assert!(table
            .handle(t0 + s(2), heard(a, presence("alice", 10), false))
            .is_empty());
        let end = t0 + s(1) + CONNECTION_GRACE;
        assert!(table.get(&a, end).is_none(), "listed no longer");
        assert_eq!(table.handle(end, Input::Tick), vec![Action::Offline(a)]);
        assert!(table.handle(end + s(1), Input::Tick).is_empty());
        assert!(table.get(&b, end).is_some() && table.get(&c, end).is_some());
        // Lost connections of a peer not heard at all change nothing.
        let d = PeerId::random();
        assert!(table.handle(end, Input::ConnectionLost(d)).is_empty());
        // Back with a new announcement: online once more.
        assert_eq!(
            table.handle(end + s(2), heard(a, presence("alice", 20), false)),
            vec![Action::Online(a), Action::Newcomer { online: 3 }]
        );
    }

    #[test]
    fn each_change_is_reported_once_whatever_copies_gossip_brings_late() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut table = table();
        let a = PeerId::random();
        let mut reported = Vec::new();
        reported.extend(table.handle(t0, heard(a, presence("alice", 1), false)));
        reported.extend(table.handle(t0 + s(1), heard(a, presence("alice", 2), false)));
        let bye = Presence {
            leaving: true,
            ..presence("alice", 3)
        };
        reported.extend(table.handle(t0 + s(2), heard(a, bye.clone(), false)));
        // Ticks, then late copies of every announcement, through other forwarders.
        for at in [3, 10, 40, 90] {
            reported.extend(table.handle(t0 + s(at), Input::Tick));
            for sent in [1, 2] {
                let copy = heard_via(a, presence("alice", sent), PeerId::random(), false);
                reported.extend(table.handle(t0 + s(at), copy));
            }
            reported.extend(table.handle(t0 + s(at), heard(a, bye.clone(), false)));
        }
        reported.retain(|r| !matches!(r, Action::Newcomer { .. }));
        assert_eq!(reported, vec![Action::Online(a), Action::Offline(a)]);
        // A silent user too: offline once, and not back with a copy of its last word.
        let b = PeerId::random();
        table.handle(t0, heard(b, presence("bob", 5), false));
        assert_eq!(
            table.handle(t0 + s(30), Input::Tick),
            vec![Action::Offline(b)]
        );
        assert!(table
            .handle(t0 + s(31), heard(b, presence("bob", 5), false))
            .is_empty());
        assert!(table.handle(t0 + s(40), Input::Tick).is_empty());
        // Forgotten after a while, to make room.
        table.handle(t0 + s(30) + OFFLINE_MEMORY, Input::Tick);
        assert!(table.seen.is_empty());
    }
}
