//! How many peers a node stays connected to, without I/O: a low and a high watermark, a
//! grace period for new connections, trimming least useful first, room made for newcomers,
//! a share of outbound connections kept, and refilling below the low mark from the DHT.
//!
//! Left alone, every connection a DHT lookup opens stays open: gossipsub holds a stream on
//! each one. So the budget counts connected peers (not connections) and holds them at most
//! at the high mark:
//!
//! - Up to the ceiling (`high` plus `burst`) every peer is let in; one that connects while
//!   the node holds that many takes the place of the least useful trimmable one, or is
//!   refused when there is none. Bootstraps, peers the user
//!   dials and peers with a request in flight (a private message, a file chunk, a mailbox
//!   call) are always let in.
//! - Trimmable: in no gossipsub mesh of the node, not a bootstrap, not dialled by the user,
//!   no request in flight either way (nor one ended within [`EXCHANGE_LINGER`]), and
//!   connected or used longer ago than the grace period (`grace`; [`LOOKUP_GRACE`] for a
//!   connection only a DHT lookup opened).
//! - Above the high mark (a burst, or protected peers pushed it there), trimmable peers are
//!   closed down to it; above the low mark, connections only a DHT lookup opened are closed after
//!   [`LOOKUP_KEEP`], so that later lookups find them open instead of dialling again, and a
//!   newcomer at the ceiling takes the place of one of them once its short grace is over.
//! - A dial the budget would refuse once connected is refused before it starts
//!   ([`ConnectionBudget::may_dial`]): a handshake both sides pay for nothing is the most
//!   expensive way to say no.
//! - Least useful first: a negative gossipsub score, then connections only a lookup opened,
//!   then the least recently used. Outbound connections (which this node chose) are never
//!   trimmed below a third of the low mark, so peers that dial in cannot eclipse the node.
//! - Below the low mark the node walks the DHT (at most once per `walk_every`) and dials
//!   what it finds until pending dials and connections reach the low mark.
//!
//! [`crate::net::peer_manager`] drives it from the swarm's events.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use libp2p::PeerId;

/// The least time a connection only a DHT lookup opened is kept: long enough for the
/// lookup's request and for gossipsub to graft the peer into a mesh it needs. After it, a
/// newcomer at the high mark may take its place.
pub const LOOKUP_GRACE: Duration = Duration::from_secs(5);
/// How long a connection only a DHT lookup opened is kept above the low mark (below the high
/// one): the lookups of the next minute reuse it rather than dial the peer again, each new
/// connection costing both sides a Noise handshake.
pub const LOOKUP_KEEP: Duration = Duration::from_secs(60);
/// How long after its last request a peer still counts as busy, whatever the grace period:
/// a download asks for its next chunks only once it has written the last ones, which on a
/// slow or busy disk takes seconds, so a transfer in flight may have no request outstanding
/// for a while.
pub const EXCHANGE_LINGER: Duration = Duration::from_secs(10);
/// How long a dial of a discovered peer counts as pending.
const DIAL_PENDING: Duration = Duration::from_secs(20);

/// The numbers the budget keeps to.
#[derive(Clone, Debug)]
pub struct Watermarks {
    /// Below this many peers the node looks for more (0: never, as on a bootstrap).
    pub low: usize,
    /// The most peers the node keeps, but for the protected ones: above it, trimmable peers
    /// are closed once their grace is over.
    pub high: usize,
    /// How many peers above `high` are let in for their grace (see [`Watermarks::ceiling`]).
    pub burst: usize,
    /// How long a new or just used connection is never closed to save room.
    pub grace: Duration,
    /// The least time between two DHT walks to refill.
    pub walk_every: Duration,
}

impl Watermarks {
    /// The most peers the node connects to, but for the protected ones: `high` plus
    /// `burst`. Up to it a newcomer or a connection a DHT lookup opens is let in without
    /// closing anyone (its handshake is paid already, and the lookup's request needs it),
    /// and trimming takes the node back to `high` once the grace is over. At it, a
    /// newcomer takes the place of the least useful trimmable peer or is refused.
    pub fn ceiling(&self) -> usize {
        self.high + self.burst
    }

    /// Outbound connections kept when trimming: a third of the low mark.
    pub fn min_outbound(&self) -> usize {
        self.low.div_ceil(3)
    }
}

/// What a connected peer is to the node, as `/status` and the metrics count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// One of the bootstraps.
    Bootstrap,
    /// The user dialled it.
    User,
    /// In one of the node's gossipsub meshes.
    Mesh,
    /// This node dialled it (a DHT lookup or discovery), in no mesh.
    Dht,
    /// It dialled this node, in no mesh.
    Inbound,
}

impl Kind {
    /// Every kind, in the order they are shown.
    pub const ALL: [Kind; 5] = [
        Kind::Mesh,
        Kind::Dht,
        Kind::Inbound,
        Kind::Bootstrap,
        Kind::User,
    ];

    /// The label shown and used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Bootstrap => "bootstrap",
            Kind::User => "user",
            Kind::Mesh => "mesh",
            Kind::Dht => "dht",
            Kind::Inbound => "inbound",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What the node knows about its peers beyond the budget, at the moment of a decision.
#[derive(Clone, Copy, Debug)]
pub struct Standing<'a> {
    /// Peers in one of the node's gossipsub meshes.
    pub mesh: &'a HashSet<PeerId>,
    /// Peers with a request in flight, either way.
    pub busy: &'a HashSet<PeerId>,
    /// Gossipsub scores (a peer missing has none).
    pub scores: &'a HashMap<PeerId, f64>,
}

/// Whether a new connection is let in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Let it in.
    Accept,
    /// Let it in and close `0` to make room.
    Evict(PeerId),
    /// Refuse it: the node is full of peers it keeps.
    Deny,
}

#[derive(Clone, Debug)]
struct Record {
    outbound: bool,
    /// Dialled by the refill (else, outbound, by a DHT lookup or a request).
    dialled: bool,
    user: bool,
    last_used: Instant,
    /// When a request to or from it was last seen.
    last_exchange: Option<Instant>,
}

impl Record {
    fn lookup_only(&self) -> bool {
        self.outbound && !self.dialled && !self.user
    }

    /// Whether a request to or from the peer ended within [`EXCHANGE_LINGER`] of `now`.
    fn exchanged_lately(&self, now: Instant) -> bool {
        self.last_exchange
            .is_some_and(|at| now.saturating_duration_since(at) < EXCHANGE_LINGER)
    }
}

/// The connection budget of one node.
#[derive(Debug)]
pub struct ConnectionBudget {
    marks: Watermarks,
    bootstraps: HashSet<PeerId>,
    peers: HashMap<PeerId, Record>,
    /// Peers being closed: no longer counted, never picked twice.
    closing: HashSet<PeerId>,
    /// Discovered peers dialled, and when.
    dialling: HashMap<PeerId, Instant>,
    last_walk: Option<Instant>,
}

impl ConnectionBudget {
    /// A budget keeping to `marks`; `bootstraps` are always let in and never trimmed.
    pub fn new(marks: Watermarks, bootstraps: HashSet<PeerId>) -> Self {
        Self {
            marks,
            bootstraps,
            peers: HashMap::new(),
            closing: HashSet::new(),
            dialling: HashMap::new(),
            last_walk: None,
        }
    }

    /// Whether the next heartbeat needs gossipsub's scores of the peers: only above the
    /// high mark, where they rank which peers to close (to trim, or to make room for a
    /// newcomer at the burst's end). Below it nothing is closed by score, and a node at
    /// rest, just under the mark, is spared scoring every peer four times a second.
    pub fn needs_scores(&self) -> bool {
        self.connected() > self.marks.high
    }

    /// The watermarks.
    pub fn marks(&self) -> &Watermarks {
        &self.marks
    }

    /// Peers connected and not being closed.
    pub fn connected(&self) -> usize {
        self.peers.len() - self.closing.len()
    }

    /// Whether `peer` is one of the bootstraps.
    pub fn is_bootstrap(&self, peer: &PeerId) -> bool {
        self.bootstraps.contains(peer)
    }

    /// Whether the node looks for more peers.
    pub fn wants_peers(&self) -> bool {
        self.connected() < self.marks.low
    }

    /// A connection to `peer` (`outbound`: this node dialled; `user`: the user did) is
    /// about to be established. `busy`: a request to or from it is in flight.
    pub fn admit(
        &mut self,
        peer: PeerId,
        user: bool,
        busy: bool,
        standing: Standing<'_>,
        now: Instant,
    ) -> Admission {
        if self.peers.contains_key(&peer) && !self.closing.contains(&peer) {
            return Admission::Accept;
        }
        if self.connected() < self.marks.ceiling() {
            return Admission::Accept;
        }
        if let Some(victim) = self.least_useful(standing, now, 1).pop() {
            self.closing.insert(victim);
            return Admission::Evict(victim);
        }
        if user || busy || self.is_bootstrap(&peer) {
            Admission::Accept
        } else {
            Admission::Deny
        }
    }

    /// Whether dialling `peer` is worth it: whether [`ConnectionBudget::admit`] would let
    /// the connection in now, without taking any room.
    pub fn may_dial(
        &self,
        peer: &PeerId,
        user: bool,
        busy: bool,
        standing: Standing<'_>,
        now: Instant,
    ) -> bool {
        (self.peers.contains_key(peer) && !self.closing.contains(peer))
            || self.connected() < self.marks.ceiling()
            || user
            || busy
            || self.is_bootstrap(peer)
            || !self.least_useful(standing, now, 1).is_empty()
    }

    /// A first connection to `peer` is established (later ones change nothing but `user`).
    pub fn established(&mut self, peer: PeerId, outbound: bool, user: bool, now: Instant) {
        let dialled = self.dialling.remove(&peer).is_some();
        self.closing.remove(&peer);
        let record = self.peers.entry(peer).or_insert(Record {
            outbound,
            dialled,
            user,
            last_used: now,
            last_exchange: None,
        });
        record.user |= user;
    }

    /// The last connection to `peer` closed.
    pub fn closed(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        self.closing.remove(peer);
    }

    /// A dial of `peer` failed.
    pub fn dial_failed(&mut self, peer: &PeerId) {
        self.dialling.remove(peer);
    }

    /// `peer` exchanged a request with this node.
    pub fn used(&mut self, peer: &PeerId, now: Instant) {
        if let Some(record) = self.peers.get_mut(peer) {
            record.last_used = now;
            record.last_exchange = Some(now);
        }
    }

    /// Whether `peer` exchanged a request with this node within [`EXCHANGE_LINGER`] of `now`.
    pub fn exchanged_lately(&self, peer: &PeerId, now: Instant) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|r| r.exchanged_lately(now))
    }

    /// The user dialled `peer`: it is never closed to save room.
    pub fn pin(&mut self, peer: &PeerId) {
        if let Some(record) = self.peers.get_mut(peer) {
            record.user = true;
        }
    }

    /// Which peers to close now (see the module documentation).
    pub fn trim(&mut self, standing: Standing<'_>, now: Instant) -> Vec<PeerId> {
        let over_high = self.connected().saturating_sub(self.marks.high);
        let mut closed = self.least_useful(standing, now, over_high);
        self.closing.extend(closed.iter().copied());
        let over_low = self.connected().saturating_sub(self.marks.low);
        if over_low > 0 {
            let lookups: Vec<PeerId> = self
                .least_useful(standing, now, usize::MAX)
                .into_iter()
                .filter(|p| {
                    self.peers.get(p).is_some_and(|r| {
                        r.lookup_only() && now.saturating_duration_since(r.last_used) >= LOOKUP_KEEP
                    })
                })
                .take(over_low)
                .collect();
            self.closing.extend(lookups.iter().copied());
            closed.extend(lookups);
        }
        closed
    }

    /// Whether to walk the DHT for more peers now; counts the walk when so.
    pub fn walk(&mut self, now: Instant) -> bool {
        self.expire_dials(now);
        let due = self
            .last_walk
            .is_none_or(|at| now >= at + self.marks.walk_every);
        if due && self.connected() + self.dialling.len() < self.marks.low {
            self.last_walk = Some(now);
            return true;
        }
        false
    }

    /// The DHT reported `peer`: whether to dial it (the node wants peers and has not
    /// dialled enough already); counts the dial when so.
    pub fn discovered(&mut self, peer: PeerId, now: Instant) -> bool {
        self.expire_dials(now);
        if self.peers.contains_key(&peer) || self.dialling.contains_key(&peer) {
            return false;
        }
        if self.connected() + self.dialling.len() >= self.marks.low {
            return false;
        }
        self.dialling.insert(peer, now);
        true
    }

    /// A peer found on the LAN is dialled below the high mark, whatever the low one: it is
    /// next door.
    pub fn nearby(&self, peer: &PeerId) -> bool {
        !self.peers.contains_key(peer) && self.connected() < self.marks.high
    }

    /// What `peer` is to the node (`None` when not connected).
    pub fn kind(&self, peer: &PeerId, mesh: &HashSet<PeerId>) -> Option<Kind> {
        let record = self.peers.get(peer)?;
        Some(if self.is_bootstrap(peer) {
            Kind::Bootstrap
        } else if record.user {
            Kind::User
        } else if mesh.contains(peer) {
            Kind::Mesh
        } else if record.outbound {
            Kind::Dht
        } else {
            Kind::Inbound
        })
    }

    /// How many connected peers are of each kind (every kind present, maybe with 0), not
    /// counting those being closed: at most the high mark, but for protected peers.
    pub fn counts(&self, mesh: &HashSet<PeerId>) -> Vec<(Kind, usize)> {
        let mut counts: HashMap<Kind, usize> = HashMap::new();
        for peer in self.peers.keys().filter(|p| !self.closing.contains(p)) {
            if let Some(kind) = self.kind(peer, mesh) {
                *counts.entry(kind).or_default() += 1;
            }
        }
        Kind::ALL
            .iter()
            .map(|k| (*k, counts.get(k).copied().unwrap_or(0)))
            .collect()
    }

    fn expire_dials(&mut self, now: Instant) {
        self.dialling
            .retain(|_, at| now.saturating_duration_since(*at) < DIAL_PENDING);
    }

    /// Up to `count` trimmable peers, least useful first, keeping the outbound share.
    fn least_useful(&self, standing: Standing<'_>, now: Instant, count: usize) -> Vec<PeerId> {
        if count == 0 {
            return Vec::new();
        }
        let mut candidates: Vec<(f64, bool, Instant, PeerId, bool)> = self
            .peers
            .iter()
            .filter(|(p, r)| {
                !self.closing.contains(p)
                    && !self.is_bootstrap(p)
                    && !r.user
                    && !standing.mesh.contains(p)
                    && !standing.busy.contains(p)
                    && now.saturating_duration_since(r.last_used) >= self.grace(r)
                    && !r.exchanged_lately(now)
            })
            .map(|(p, r)| {
                let score = standing.scores.get(p).copied().unwrap_or(0.0).min(0.0);
                (score, !r.lookup_only(), r.last_used, *p, r.outbound)
            })
            .collect();
        candidates.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.cmp(&b.1))
                .then(a.2.cmp(&b.2))
                .then(a.3.cmp(&b.3))
        });
        let mut outbound = self
            .peers
            .iter()
            .filter(|(p, r)| r.outbound && !self.closing.contains(p))
            .count();
        let keep = self.marks.min_outbound();
        let mut picked = Vec::new();
        for (_, _, _, peer, is_outbound) in candidates {
            if picked.len() == count {
                break;
            }
            if is_outbound {
                if outbound <= keep {
                    continue;
                }
                outbound -= 1;
            }
            picked.push(peer);
        }
        picked
    }

    fn grace(&self, record: &Record) -> Duration {
        if record.lookup_only() {
            LOOKUP_GRACE.min(self.marks.grace)
        } else {
            self.marks.grace
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(20);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Marks `low` and `high`, no burst, [`GRACE`], walks every 10 s.
    fn marks(low: usize, high: usize) -> Watermarks {
        Watermarks {
            low,
            high,
            burst: 0,
            grace: GRACE,
            walk_every: secs(10),
        }
    }

    fn budget(low: usize, high: usize) -> ConnectionBudget {
        ConnectionBudget::new(marks(low, high), HashSet::new())
    }

    #[test]
    fn scores_are_needed_only_above_the_high_mark() {
        let mut b = budget(2, 4);
        let t0 = Instant::now();
        connect(&mut b, 4, t0);
        assert!(!b.needs_scores(), "at the mark nothing is closed by score");
        let extra = connect(&mut b, 1, t0);
        assert!(b.needs_scores());
        b.closed(&extra[0]);
        assert!(!b.needs_scores());
    }

    struct World {
        mesh: HashSet<PeerId>,
        busy: HashSet<PeerId>,
        scores: HashMap<PeerId, f64>,
    }

    impl World {
        fn new() -> Self {
            Self {
                mesh: HashSet::new(),
                busy: HashSet::new(),
                scores: HashMap::new(),
            }
        }

        fn standing(&self) -> Standing<'_> {
            Standing {
                mesh: &self.mesh,
                busy: &self.busy,
                scores: &self.scores,
            }
        }
    }

    /// `n` peers connected at `at`, inbound.
    fn connect(budget: &mut ConnectionBudget, n: usize, at: Instant) -> Vec<PeerId> {
        (0..n)
            .map(|_| {
                let p = PeerId::random();
                budget.established(p, false, false, at);
                p
            })
            .collect()
    }

    fn sorted(mut peers: Vec<PeerId>) -> Vec<PeerId> {
        peers.sort();
        peers
    }

    #[test]
    fn nothing_closes_at_or_below_the_high_mark() {
        let start = Instant::now();
        let mut budget = budget(4, 10);
        connect(&mut budget, 10, start);
        let world = World::new();
        assert!(budget.trim(world.standing(), start + GRACE * 3).is_empty());
    }

    #[test]
    fn a_burst_above_the_high_mark_is_let_in_and_trimmed_after_its_grace() {
        let start = Instant::now();
        let mut budget = ConnectionBudget::new(
            Watermarks {
                burst: 3,
                ..marks(4, 10)
            },
            HashSet::new(),
        );
        let world = World::new();
        connect(&mut budget, 10, start);
        // Up to the ceiling newcomers come in without anyone closed, even in their grace.
        for _ in 0..3 {
            let peer = PeerId::random();
            assert!(budget.may_dial(&peer, false, false, world.standing(), start));
            assert_eq!(
                budget.admit(peer, false, false, world.standing(), start),
                Admission::Accept
            );
            budget.established(peer, true, false, start);
        }
        assert_eq!(budget.connected(), 13);
        // At the ceiling, with everyone in their grace, the next one is refused.
        let late = PeerId::random();
        assert!(!budget.may_dial(&late, false, false, world.standing(), start));
        assert_eq!(
            budget.admit(late, false, false, world.standing(), start),
            Admission::Deny
        );
        // Within the grace nothing closes; after it, the node goes back to the high mark.
        assert!(budget.trim(world.standing(), start + secs(1)).is_empty());
        assert_eq!(budget.trim(world.standing(), start + GRACE).len(), 3);
        assert_eq!(budget.connected(), 10);
    }

    #[test]
    fn above_the_high_mark_the_least_recently_used_go_first() {
        let start = Instant::now();
        let mut budget = budget(4, 10);
        let peers = connect(&mut budget, 12, start);
        for (i, p) in peers.iter().enumerate() {
            budget.used(p, start + secs(i as u64));
        }
        let world = World::new();
        let closed = budget.trim(world.standing(), start + GRACE + secs(100));
        assert_eq!(sorted(closed), sorted(peers[..2].to_vec()));
        assert_eq!(budget.connected(), 10);
        // Being closed, they are not picked again.
        assert!(budget.trim(world.standing(), start + secs(200)).is_empty());
    }

    #[test]
    fn mesh_bootstrap_user_busy_and_recent_peers_are_never_trimmed() {
        let start = Instant::now();
        let bootstrap = PeerId::random();
        let mut budget = ConnectionBudget::new(
            Watermarks {
                low: 0,
                high: 1,
                burst: 0,
                grace: GRACE,
                walk_every: secs(10),
            },
            [bootstrap].into_iter().collect(),
        );
        budget.established(bootstrap, true, false, start);
        let peers = connect(&mut budget, 6, start);
        let now = start + GRACE;
        budget.used(&peers[0], now - secs(1));
        budget.pin(&peers[1]);
        let mut world = World::new();
        world.mesh.insert(peers[2]);
        world.busy.insert(peers[3]);
        let closed = budget.trim(world.standing(), now);
        assert_eq!(sorted(closed), sorted(peers[4..].to_vec()));
        // Once the request is answered the peer goes too.
        world.busy.clear();
        assert_eq!(budget.trim(world.standing(), now), vec![peers[3]]);
    }

    #[test]
    fn a_peer_between_two_requests_stays_whatever_the_grace() {
        let start = Instant::now();
        let mut budget = ConnectionBudget::new(
            Watermarks {
                low: 0,
                high: 0,
                burst: 0,
                grace: Duration::ZERO,
                walk_every: secs(10),
            },
            HashSet::new(),
        );
        let peer = connect(&mut budget, 1, start)[0];
        budget.used(&peer, start);
        let world = World::new();
        let almost = start + EXCHANGE_LINGER - Duration::from_millis(1);
        assert!(budget.trim(world.standing(), almost).is_empty());
        assert_eq!(
            budget.trim(world.standing(), start + EXCHANGE_LINGER),
            vec![peer]
        );
    }

    #[test]
    fn a_negative_score_goes_before_a_lookup_which_goes_before_an_idle_peer() {
        let start = Instant::now();
        let mut budget = budget(0, 2);
        let idle = connect(&mut budget, 2, start)[0];
        let lookup = PeerId::random();
        budget.established(lookup, true, false, start + secs(10));
        let mut world = World::new();
        let scored = connect(&mut budget, 1, start + secs(10))[0];
        world.scores.insert(scored, -5.0);
        let now = start + GRACE + secs(10);
        // Four peers, high mark 2: two go, the worst score first, then the lookup.
        let closed = budget.trim(world.standing(), now);
        assert_eq!(closed, vec![scored, lookup]);
        let _ = idle;
    }

    #[test]
    fn connections_only_a_lookup_opened_close_above_the_low_mark_after_a_minute() {
        let start = Instant::now();
        let mut budget = budget(2, 10);
        connect(&mut budget, 2, start);
        let lookups: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for p in &lookups {
            budget.established(*p, true, false, start);
        }
        let world = World::new();
        assert!(budget
            .trim(world.standing(), start + LOOKUP_KEEP - secs(1))
            .is_empty());
        let closed = budget.trim(world.standing(), start + LOOKUP_KEEP);
        // Down to the low mark, keeping a third of it outbound: one lookup connection stays.
        assert_eq!(closed.len(), 2);
        assert!(closed.iter().all(|p| lookups.contains(p)));
    }

    #[test]
    fn refill_dials_are_not_lookups_and_keep_their_grace() {
        let start = Instant::now();
        let mut budget = budget(2, 10);
        connect(&mut budget, 3, start);
        let found = PeerId::random();
        assert!(!budget.discovered(found, start), "at the low mark already");
        let mut budget2 = self::budget(2, 10);
        assert!(budget2.discovered(found, start));
        budget2.established(found, true, false, start);
        connect(&mut budget2, 2, start);
        let world = World::new();
        assert!(budget2
            .trim(world.standing(), start + LOOKUP_KEEP)
            .is_empty());
    }

    #[test]
    fn a_newcomer_at_the_high_mark_replaces_a_lookup_connection_after_its_short_grace() {
        let start = Instant::now();
        let mut budget = budget(0, 2);
        connect(&mut budget, 1, start);
        let lookup = PeerId::random();
        budget.established(lookup, true, false, start);
        let world = World::new();
        let newcomer = PeerId::random();
        assert_eq!(
            budget.admit(newcomer, false, false, world.standing(), start + secs(1)),
            Admission::Deny
        );
        assert_eq!(
            budget.admit(
                newcomer,
                false,
                false,
                world.standing(),
                start + LOOKUP_GRACE
            ),
            Admission::Evict(lookup)
        );
    }

    #[test]
    fn a_dial_that_would_be_refused_once_connected_is_not_started() {
        let start = Instant::now();
        let mut budget = budget(0, 2);
        let peers = connect(&mut budget, 2, start);
        let mut world = World::new();
        world.mesh.extend(peers.iter().copied());
        let later = start + GRACE;
        let stranger = PeerId::random();
        assert!(!budget.may_dial(&stranger, false, false, world.standing(), later));
        // The user's dials, requests in flight and peers already connected are always made.
        assert!(budget.may_dial(&stranger, true, false, world.standing(), later));
        assert!(budget.may_dial(&stranger, false, true, world.standing(), later));
        assert!(budget.may_dial(&peers[0], false, false, world.standing(), later));
        // With a peer that may make room, the dial goes ahead, and nothing is closed yet.
        world.mesh.remove(&peers[1]);
        assert!(budget.may_dial(&stranger, false, false, world.standing(), later));
        assert_eq!(budget.connected(), 2);
    }

    #[test]
    fn a_newcomer_at_the_high_mark_takes_the_place_of_the_least_useful_or_is_refused() {
        let start = Instant::now();
        let mut budget = budget(0, 2);
        let peers = connect(&mut budget, 2, start);
        let mut world = World::new();
        let newcomer = PeerId::random();
        // Everyone within the grace period: refused.
        assert_eq!(
            budget.admit(newcomer, false, false, world.standing(), start + secs(1)),
            Admission::Deny
        );
        // A peer already connected opens a second connection freely.
        assert_eq!(
            budget.admit(peers[0], false, false, world.standing(), start + secs(1)),
            Admission::Accept
        );
        // Past the grace, the least recently used makes room.
        budget.used(&peers[0], start + secs(5));
        let later = start + GRACE + secs(5);
        assert_eq!(
            budget.admit(newcomer, false, false, world.standing(), later),
            Admission::Evict(peers[1])
        );
        budget.established(newcomer, false, false, later);
        assert_eq!(budget.connected(), 2);
        // The rest is in a mesh: another newcomer is refused, unless protected.
        world.mesh.insert(peers[0]);
        let other = PeerId::random();
        assert_eq!(
            budget.admit(other, false, false, world.standing(), later),
            Admission::Deny
        );
        assert_eq!(
            budget.admit(other, true, false, world.standing(), later),
            Admission::Accept
        );
        assert_eq!(
            budget.admit(other, false, true, world.standing(), later),
            Admission::Accept
        );
    }

    #[test]
    fn a_third_of_the_low_mark_stays_outbound() {
        let start = Instant::now();
        let mut budget = budget(6, 6);
        let outbound: Vec<PeerId> = (0..4)
            .map(|_| {
                let p = PeerId::random();
                assert!(budget.discovered(p, start));
                budget.established(p, true, false, start);
                p
            })
            .collect();
        let inbound = connect(&mut budget, 2, start + secs(1));
        let world = World::new();
        let later = start + GRACE * 2;
        // Newcomers dialling in push out the inbound peers and two outbound ones (the
        // oldest), never the last two outbound.
        let mut evicted = Vec::new();
        for i in 0..6 {
            let newcomer = PeerId::random();
            match budget.admit(newcomer, false, false, world.standing(), later) {
                Admission::Evict(victim) => {
                    evicted.push(victim);
                    budget.closed(&victim);
                    budget.established(newcomer, false, false, later + secs(i));
                }
                Admission::Accept | Admission::Deny => break,
            }
        }
        assert_eq!(evicted.len(), 4);
        assert!(inbound.iter().all(|p| evicted.contains(p)));
        assert_eq!(outbound.iter().filter(|p| !evicted.contains(p)).count(), 2);
    }

    #[test]
    fn below_the_low_mark_the_dht_is_walked_at_most_once_per_interval() {
        let start = Instant::now();
        let mut budget = budget(3, 10);
        assert!(budget.walk(start));
        assert!(!budget.walk(start + secs(9)));
        assert!(budget.walk(start + secs(10)));
        connect(&mut budget, 3, start);
        assert!(!budget.walk(start + secs(30)));
    }

    #[test]
    fn discovered_peers_are_dialled_until_dials_and_peers_reach_the_low_mark() {
        let start = Instant::now();
        let mut budget = budget(3, 10);
        connect(&mut budget, 1, start);
        let found: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let dialled: Vec<bool> = found.iter().map(|p| budget.discovered(*p, start)).collect();
        assert_eq!(dialled, [true, true, false, false]);
        assert!(!budget.discovered(found[0], start), "dialling already");
        budget.dial_failed(&found[0]);
        assert!(budget.discovered(found[2], start));
        // A dial that never ends stops counting after a while.
        assert!(budget.discovered(found[3], start + DIAL_PENDING));
    }

    #[test]
    fn peers_are_counted_by_kind() {
        let start = Instant::now();
        let bootstrap = PeerId::random();
        let mut budget = ConnectionBudget::new(
            Watermarks {
                low: 2,
                high: 10,
                burst: 0,
                grace: GRACE,
                walk_every: secs(10),
            },
            [bootstrap].into_iter().collect(),
        );
        budget.established(bootstrap, true, false, start);
        let user = PeerId::random();
        budget.established(user, true, true, start);
        let inbound = connect(&mut budget, 3, start);
        let dht = PeerId::random();
        budget.established(dht, true, false, start);
        let mesh: HashSet<PeerId> = [inbound[0], user].into_iter().collect();
        let counts: HashMap<Kind, usize> = budget.counts(&mesh).into_iter().collect();
        assert_eq!(counts[&Kind::Bootstrap], 1);
        assert_eq!(counts[&Kind::User], 1);
        assert_eq!(counts[&Kind::Mesh], 1);
        assert_eq!(counts[&Kind::Inbound], 2);
        assert_eq!(counts[&Kind::Dht], 1);
        assert_eq!(budget.kind(&dht, &mesh), Some(Kind::Dht));
    }
}
