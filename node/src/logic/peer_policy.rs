//! Which peers to dial, keep and drop, without I/O: the connection budget and pruning,
//! redialling bootstraps, dialling relayed peers directly, and the spam budgets whose
//! penalties end in a graylist.
//!
//! Every connection a DHT lookup opens stays open afterwards: gossipsub holds a stream on
//! each one to exchange subscriptions. Left alone, a node in a large overlay ends up
//! connected to most of it. Once a node holds more than `max_peers` peers, the surplus is
//! closed, least recently used first, down to `target_peers`. Never closed: bootstraps,
//! peers the user dialled, peers in one of the node's gossipsub meshes, peers connected or
//! used (a private message, a file chunk, a mailbox call) within `grace`.
//!
//! [`crate::net::peer_manager`] drives this policy from the swarm's connection events.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId};

use ipm_protocol::limits;

use super::{
    backoff,
    rate_limit::{Penalties, TokenBuckets},
};

/// The first pause before a lost bootstrap is dialled again.
const FIRST_REDIAL: Duration = Duration::from_secs(1);
/// The longest pause between two dials of a lost bootstrap.
const MAX_REDIAL: Duration = Duration::from_secs(30);
/// How long before a peer reached only through a relay is dialled directly again.
pub const DIRECT_RETRY: Duration = Duration::from_secs(60);

/// What the policy is given once, when the node is built.
#[derive(Clone, Debug)]
pub struct PeerSettings {
    /// The bootstraps, each with the address it is dialled at.
    pub bootstraps: Vec<(PeerId, Multiaddr)>,
    /// How many peers the node looks for through the DHT (0: none, as on a bootstrap).
    pub target_peers: usize,
    /// Above this many peers the surplus is closed (0: never).
    pub max_peers: usize,
    /// How long a new or just used connection is never closed to save resources.
    pub grace: Duration,
}

/// When to dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialWhen {
    /// Only when not connected and not dialling already.
    Disconnected,
    /// Even when connected (a direct connection beside a relayed one).
    Always,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAction {
    /// Dial `peer`, at `addrs` (or the addresses the swarm knows when empty).
    Dial {
        /// The peer.
        peer: PeerId,
        /// Where.
        addrs: Vec<Multiaddr>,
        /// Under which condition.
        when: DialWhen,
    },
    /// Close every connection to `peer`.
    Disconnect(PeerId),
}

/// What became of a room message checked against its author's budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverBudget {
    /// The author delivered it itself: reject it (its score drops).
    Reject,
    /// An honest peer forwarded it with budget left: ignore it without punishing the
    /// forwarder.
    Ignore,
}

/// The peer policy of one node.
#[derive(Debug)]
pub struct PeerPolicy {
    settings: PeerSettings,
    last_used: HashMap<PeerId, Instant>,
    pinned: HashSet<PeerId>,
    /// Per lost bootstrap: when it is due again and how many dials failed.
    redial: HashMap<PeerId, (Instant, u32)>,
    /// When each peer reached only through a relay was last dialled directly.
    direct_tries: HashMap<PeerId, Instant>,
    room_messages: TokenBuckets<PeerId>,
    requests: TokenBuckets<(PeerId, &'static str)>,
    penalties: Penalties<PeerId>,
}

impl PeerPolicy {
    /// A policy with `settings`.
    pub fn new(settings: PeerSettings) -> Self {
        Self {
            settings,
            last_used: HashMap::new(),
            pinned: HashSet::new(),
            redial: HashMap::new(),
            direct_tries: HashMap::new(),
            room_messages: TokenBuckets::new(
                limits::ROOM_MESSAGE_BURST,
                limits::ROOM_MESSAGES_PER_SEC,
                limits::MAX_RATE_TRACKED_PEERS,
            ),
            requests: TokenBuckets::new(
                limits::REQUEST_BURST,
                limits::REQUESTS_PER_SEC,
                limits::MAX_RATE_TRACKED_PEERS,
            ),
            penalties: Penalties::new(
                Duration::from_secs_f64(limits::SPAM_PENALTY_HALF_LIFE_SECS),
                limits::MAX_RATE_TRACKED_PEERS,
            ),
        }
    }

    /// Whether `peer` is one of the bootstraps.
    pub fn is_bootstrap(&self, peer: &PeerId) -> bool {
        self.settings.bootstraps.iter().any(|(p, _)| p == peer)
    }

    /// A peer connected or exchanged a request with this node.
    pub fn used(&mut self, peer: PeerId, now: Instant) {
        self.last_used.insert(peer, now);
    }

    /// The user asked for this peer: its connection is never closed to save resources.
    pub fn pin(&mut self, peer: PeerId) {
        self.pinned.insert(peer);
    }

    /// The last connection to `peer` closed.
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.last_used.remove(peer);
        self.pinned.remove(peer);
        self.direct_tries.remove(peer);
    }

    /// Whether the node looks for more peers while it has `connected`.
    pub fn wants_peers(&self, connected: usize) -> bool {
        connected < self.settings.target_peers
    }

    /// The DHT or the LAN reported `peer`: dial it while the node wants peers.
    pub fn discovered(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        is_connected: bool,
        connected: usize,
    ) -> Option<PeerAction> {
        (!is_connected && self.wants_peers(connected)).then_some(PeerAction::Dial {
            peer,
            addrs,
            when: DialWhen::Disconnected,
        })
    }

    /// A peer found on the LAN is dialled whatever the budget: it is next door.
    pub fn found_nearby(
        &self,
        peer: PeerId,
        addr: Multiaddr,
        is_connected: bool,
    ) -> Option<PeerAction> {
        (!is_connected).then_some(PeerAction::Dial {
            peer,
            addrs: vec![addr],
            when: DialWhen::Disconnected,
        })
    }

    /// A peer reached only through a relay (`relayed_only`) may well share a network with
    /// this node (both met at the bootstrap first): dials the non-relayed addresses it
    /// listens on, at most once per [`DIRECT_RETRY`].
    pub fn identified(
        &mut self,
        peer: PeerId,
        relayed_only: bool,
        direct_addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Option<PeerAction> {
        if !relayed_only || direct_addrs.is_empty() {
            return None;
        }
        if self
            .direct_tries
            .get(&peer)
            .is_some_and(|at| now < *at + DIRECT_RETRY)
        {
            return None;
        }
        self.direct_tries.insert(peer, now);
        Some(PeerAction::Dial {
            peer,
            addrs: direct_addrs,
            when: DialWhen::Always,
        })
    }

    /// Runs from time to time: dials the bootstraps not connected, with a pause growing
    /// from 1 s to 30 s so that a restarted bootstrap is found again within seconds, and
    /// closes the surplus of connections (see the module documentation). `connected` are
    /// the peers connected now, `mesh` those in one of the node's gossipsub meshes.
    pub fn heartbeat(
        &mut self,
        now: Instant,
        connected: &HashSet<PeerId>,
        mesh: &HashSet<PeerId>,
    ) -> Vec<PeerAction> {
        let mut actions = self.redial_bootstraps(now, connected);
        actions.extend(
            self.surplus(connected, mesh, now)
                .into_iter()
                .map(PeerAction::Disconnect),
        );
        actions
    }

    fn redial_bootstraps(&mut self, now: Instant, connected: &HashSet<PeerId>) -> Vec<PeerAction> {
        let mut actions = Vec::new();
        for (peer, addr) in &self.settings.bootstraps {
            if connected.contains(peer) {
                self.redial.remove(peer);
                continue;
            }
            let (due, attempts) = self.redial.get(peer).copied().unwrap_or((now, 0));
            if due > now {
                continue;
            }
            let pause = backoff::pause(FIRST_REDIAL, attempts, MAX_REDIAL);
            self.redial.insert(*peer, (now + pause, attempts + 1));
            actions.push(PeerAction::Dial {
                peer: *peer,
                addrs: vec![addr.clone()],
                when: DialWhen::Disconnected,
            });
        }
        actions
    }

    /// Which connected peers to disconnect so that at most `target_peers` stay, when more
    /// than `max_peers` are connected; least recently used first, once idle for `grace`.
    fn surplus(
        &self,
        connected: &HashSet<PeerId>,
        mesh: &HashSet<PeerId>,
        now: Instant,
    ) -> Vec<PeerId> {
        let max = self.settings.max_peers;
        if max == 0 || connected.len() <= max {
            return Vec::new();
        }
        let mut idle: Vec<(Instant, PeerId)> = connected
            .iter()
            .filter(|p| !mesh.contains(p) && !self.pinned.contains(p) && !self.is_bootstrap(p))
            .filter_map(|p| {
                let used = self.last_used.get(p).copied().unwrap_or(now);
                (now.saturating_duration_since(used) >= self.settings.grace).then_some((used, *p))
            })
            .collect();
        idle.sort();
        let excess = connected.len().saturating_sub(self.settings.target_peers);
        idle.into_iter().take(excess).map(|(_, p)| p).collect()
    }

    /// Checks a room message by `author`, delivered by `forwarder`, against the author's
    /// budget; `None` when within it.
    pub fn room_message(
        &mut self,
        author: PeerId,
        forwarder: PeerId,
        now: Instant,
    ) -> Option<OverBudget> {
        if self.room_messages.allow(&author, now) {
            return None;
        }
        Some(if author == forwarder {
            OverBudget::Reject
        } else {
            OverBudget::Ignore
        })
    }

    /// Whether a request from `peer` on `protocol` is within the peer's budget.
    pub fn request(&mut self, peer: PeerId, protocol: &'static str, now: Instant) -> bool {
        self.requests.allow(&(peer, protocol), now)
    }

    /// Penalises the author of a rejected or over-budget message; the penalty to subtract
    /// from its gossipsub score.
    pub fn penalise(&mut self, author: PeerId, now: Instant) -> f64 {
        self.penalties.add(&author, limits::SPAM_PENALTY, now)
    }

    /// Whether a peer whose gossipsub score is `score` is cut off.
    pub fn graylisted(score: Option<f64>) -> bool {
        score.is_some_and(|s| s < limits::GRAYLIST_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(20);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn policy(bootstraps: usize, target: usize, max: usize) -> PeerPolicy {
        PeerPolicy::new(PeerSettings {
            bootstraps: (0..bootstraps)
                .map(|i| {
                    let addr: Multiaddr = format!("/ip4/10.0.0.{i}/tcp/7433")
                        .parse()
                        .expect("an address");
                    (PeerId::random(), addr)
                })
                .collect(),
            target_peers: target,
            max_peers: max,
            grace: GRACE,
        })
    }

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    fn set(peers: &[PeerId]) -> HashSet<PeerId> {
        peers.iter().copied().collect()
    }

    fn disconnected(actions: &[PeerAction]) -> Vec<PeerId> {
        actions
            .iter()
            .filter_map(|a| match a {
                PeerAction::Disconnect(p) => Some(*p),
                PeerAction::Dial { .. } => None,
            })
            .collect()
    }

    #[test]
    fn nothing_closes_at_or_below_the_high_water_mark() {
        let mut policy = policy(0, 4, 10);
        let connected = peers(10);
        let later = Instant::now() + GRACE * 2;
        let actions = policy.heartbeat(later, &set(&connected), &HashSet::new());
        assert!(actions.is_empty());
    }

    #[test]
    fn surplus_goes_down_to_the_target_least_recently_used_first() {
        let start = Instant::now();
        let mut policy = policy(0, 8, 10);
        let connected = peers(12);
        for (i, p) in connected.iter().enumerate() {
            policy.used(*p, start + secs(i as u64));
        }
        let now = start + GRACE + secs(100);
        let mut closed = disconnected(&policy.heartbeat(now, &set(&connected), &HashSet::new()));
        let mut oldest = connected[..4].to_vec();
        closed.sort();
        oldest.sort();
        assert_eq!(closed, oldest);
    }

    #[test]
    fn mesh_pinned_bootstrap_and_recent_peers_stay() {
        let start = Instant::now();
        let mut policy = policy(1, 0, 1);
        let bootstrap = policy.settings.bootstraps[0].0;
        let mut connected = peers(6);
        connected.push(bootstrap);
        for p in &connected {
            policy.used(*p, start);
        }
        let now = start + GRACE;
        policy.used(connected[0], now - secs(1));
        policy.pin(connected[1]);
        let mesh = set(&[connected[2]]);
        let closed = disconnected(&policy.heartbeat(now, &set(&connected), &mesh));
        assert_eq!(closed.len(), 3);
        assert!(closed.iter().all(|p| connected[3..6].contains(p)));
    }

    #[test]
    fn a_disconnected_peer_is_no_longer_pinned() {
        let start = Instant::now();
        let mut policy = policy(0, 0, 1);
        let connected = peers(2);
        policy.used(connected[0], start);
        policy.pin(connected[0]);
        policy.disconnected(&connected[0]);
        policy.used(connected[0], start);
        let closed =
            disconnected(&policy.heartbeat(start + GRACE, &set(&connected), &HashSet::new()));
        assert!(closed.contains(&connected[0]));
    }

    #[test]
    fn a_lost_bootstrap_is_redialled_after_1_2_4_up_to_30_seconds() {
        let start = Instant::now();
        let mut policy = policy(1, 0, 0);
        let none = HashSet::new();
        let mut dials = Vec::new();
        for s in 0..=120 {
            let now = start + secs(s);
            if !policy.heartbeat(now, &none, &none).is_empty() {
                dials.push(s);
            }
        }
        assert_eq!(dials[..7], [0, 1, 3, 7, 15, 31, 61]);
        assert_eq!(dials[7], 91);
        // Connected again: the pause starts over.
        let bootstrap = policy.settings.bootstraps[0].0;
        let now = start + secs(200);
        assert!(policy.heartbeat(now, &set(&[bootstrap]), &none).is_empty());
        assert_eq!(policy.heartbeat(now, &none, &none).len(), 1);
        assert!(policy.heartbeat(now + secs(1), &none, &none).len() == 1);
    }

    #[test]
    fn a_relayed_peer_is_dialled_directly_at_most_once_a_minute() {
        let start = Instant::now();
        let mut policy = policy(0, 8, 0);
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/10.0.0.9/tcp/4001".parse().expect("an address");
        assert_eq!(
            policy.identified(peer, false, vec![addr.clone()], start),
            None
        );
        assert!(policy.identified(peer, true, vec![], start).is_none());
        assert_eq!(
            policy.identified(peer, true, vec![addr.clone()], start),
            Some(PeerAction::Dial {
                peer,
                addrs: vec![addr.clone()],
                when: DialWhen::Always
            })
        );
        assert!(policy
            .identified(peer, true, vec![addr.clone()], start + secs(59))
            .is_none());
        assert!(policy
            .identified(peer, true, vec![addr], start + DIRECT_RETRY)
            .is_some());
    }

    #[test]
    fn discovered_peers_are_dialled_only_below_the_target() {
        let policy = policy(0, 2, 0);
        let peer = PeerId::random();
        assert!(policy.discovered(peer, vec![], false, 1).is_some());
        assert!(policy.discovered(peer, vec![], false, 2).is_none());
        assert!(policy.discovered(peer, vec![], true, 0).is_none());
        let bootstrap_like = PeerPolicy::new(PeerSettings {
            bootstraps: vec![],
            target_peers: 0,
            max_peers: 0,
            grace: GRACE,
        });
        assert!(bootstrap_like.discovered(peer, vec![], false, 0).is_none());
    }

    #[test]
    fn over_budget_lines_are_rejected_from_their_author_and_ignored_from_a_forwarder() {
        let now = Instant::now();
        let mut policy = policy(0, 8, 0);
        let (author, forwarder) = (PeerId::random(), PeerId::random());
        let burst = limits::ROOM_MESSAGE_BURST;
        for _ in 0..burst {
            assert_eq!(policy.room_message(author, forwarder, now), None);
        }
        assert_eq!(
            policy.room_message(author, forwarder, now),
            Some(OverBudget::Ignore)
        );
        assert_eq!(
            policy.room_message(author, author, now),
            Some(OverBudget::Reject)
        );
    }

    #[test]
    fn requests_have_a_budget_per_peer_and_protocol() {
        let now = Instant::now();
        let mut policy = policy(0, 8, 0);
        let peer = PeerId::random();
        for _ in 0..limits::REQUEST_BURST {
            assert!(policy.request(peer, "direct", now));
        }
        assert!(!policy.request(peer, "direct", now));
        assert!(policy.request(peer, "file", now));
        assert!(policy.request(PeerId::random(), "direct", now));
    }

    #[test]
    fn penalties_add_up_to_the_graylist() {
        let now = Instant::now();
        let mut policy = policy(0, 8, 0);
        let author = PeerId::random();
        let mut penalty = 0.0;
        while !PeerPolicy::graylisted(Some(-penalty)) {
            penalty = policy.penalise(author, now);
        }
        assert!(penalty > 0.0);
        assert!(!PeerPolicy::graylisted(None));
    }
}
