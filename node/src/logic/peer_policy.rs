//! Which peers to dial and drop besides the connection budget, without I/O: redialling
//! bootstraps, dialling relayed peers directly, and the spam budgets whose penalties end in
//! a graylist. How many peers a node keeps is [`super::connection_budget`]'s.
//!
//! [`crate::net::peer_manager`] drives this policy from the swarm's connection events.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use super::connection_budget::Watermarks;

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
    /// How many peers the node keeps.
    pub marks: Watermarks,
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

    /// The settings the policy was made with.
    pub fn settings(&self) -> &PeerSettings {
        &self.settings
    }

    /// The last connection to `peer` closed.
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.direct_tries.remove(peer);
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

    /// Runs from time to time: dials the bootstraps not connected (`connected` are the peers
    /// connected now), with a pause growing from 1 s to 30 s so that a restarted bootstrap is
    /// found again within seconds.
    pub fn heartbeat(&mut self, now: Instant, connected: &HashSet<PeerId>) -> Vec<PeerAction> {
        self.redial_bootstraps(now, connected)
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

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn policy(bootstraps: usize) -> PeerPolicy {
        PeerPolicy::new(PeerSettings {
            bootstraps: (0..bootstraps)
                .map(|i| {
                    let addr: Multiaddr = format!("/ip4/10.0.0.{i}/tcp/7433")
                        .parse()
                        .expect("an address");
                    (PeerId::random(), addr)
                })
                .collect(),
            marks: Watermarks {
                low: 8,
                high: 16,
                burst: 0,
                grace: Duration::from_secs(20),
                walk_every: secs(30),
            },
        })
    }

    fn set(peers: &[PeerId]) -> HashSet<PeerId> {
        peers.iter().copied().collect()
    }

    #[test]
    fn a_lost_bootstrap_is_redialled_after_1_2_4_up_to_30_seconds() {
        let start = Instant::now();
        let mut policy = policy(1);
        let none = HashSet::new();
        let mut dials = Vec::new();
        for s in 0..=120 {
            let now = start + secs(s);
            if !policy.heartbeat(now, &none).is_empty() {
                dials.push(s);
            }
        }
        assert_eq!(dials[..7], [0, 1, 3, 7, 15, 31, 61]);
        assert_eq!(dials[7], 91);
        // Connected again: the pause starts over.
        let bootstrap = policy.settings.bootstraps[0].0;
        let now = start + secs(200);
        assert!(policy.heartbeat(now, &set(&[bootstrap])).is_empty());
        assert_eq!(policy.heartbeat(now, &none).len(), 1);
        assert!(policy.heartbeat(now + secs(1), &none).len() == 1);
    }

    #[test]
    fn a_relayed_peer_is_dialled_directly_at_most_once_a_minute() {
        let start = Instant::now();
        let mut policy = policy(0);
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
    fn over_budget_lines_are_rejected_from_their_author_and_ignored_from_a_forwarder() {
        let now = Instant::now();
        let mut policy = policy(0);
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
        let mut policy = policy(0);
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
        let mut policy = policy(0);
        let author = PeerId::random();
        let mut penalty = 0.0;
        while !PeerPolicy::graylisted(Some(-penalty)) {
            penalty = policy.penalise(author, now);
        }
        assert!(penalty > 0.0);
        assert!(!PeerPolicy::graylisted(None));
    }
}
