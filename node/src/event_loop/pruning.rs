//! Keeps the number of connected peers near what the node wants.
//!
//! Every connection a DHT lookup opens stays open afterwards: gossipsub holds a stream on
//! each one to exchange subscriptions. Left alone, a node in a large overlay ends up
//! connected to most of it, and every one of those connections costs memory, pings and
//! gossip. Once a node holds more than `Config::max_peers` peers, the surplus is closed,
//! least recently used first, down to `Config::target_peers`. Never closed: bootstraps,
//! peers the user dialled, peers in one of the node's gossipsub meshes, peers connected or
//! used (a private message, a file chunk, a mailbox call) within `Config::peer_grace`.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use libp2p::PeerId;
use tracing::debug;

use super::EventLoop;

/// When each connected peer was last connected or used, and which ones the user dialled.
#[derive(Debug, Default)]
pub(super) struct Usage {
    last_used: HashMap<PeerId, Instant>,
    pinned: HashSet<PeerId>,
}

impl Usage {
    /// A peer connected or exchanged a request with this node.
    pub(super) fn touch(&mut self, peer: PeerId, now: Instant) {
        self.last_used.insert(peer, now);
    }

    /// The user asked for this peer: its connection is never closed to save resources.
    pub(super) fn pin(&mut self, peer: PeerId) {
        self.pinned.insert(peer);
    }

    /// The last connection to the peer closed.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.last_used.remove(peer);
        self.pinned.remove(peer);
    }

    /// Which of the `connected` peers to disconnect so that at most `target` stay, when
    /// more than `max` are connected. `protected` peers are kept whatever their count;
    /// the others go least recently used first, once idle for `grace`.
    pub(super) fn surplus(
        &self,
        connected: &[PeerId],
        protected: &HashSet<PeerId>,
        target: usize,
        max: usize,
        grace: Duration,
        now: Instant,
    ) -> Vec<PeerId> {
        if max == 0 || connected.len() <= max {
            return Vec::new();
        }
        let mut idle: Vec<(Instant, PeerId)> = connected
            .iter()
            .filter(|p| !protected.contains(p) && !self.pinned.contains(p))
            .filter_map(|p| {
                let used = self.last_used.get(p).copied().unwrap_or(now);
                (now.saturating_duration_since(used) >= grace).then_some((used, *p))
            })
            .collect();
        idle.sort();
        let excess = connected.len().saturating_sub(target);
        idle.into_iter().take(excess).map(|(_, p)| p).collect()
    }
}

impl EventLoop {
    /// Closes connections beyond what the node wants (see the module documentation).
    pub(super) fn prune_connections(&mut self, now: Instant) {
        if self.config.max_peers == 0
            || self.swarm.network_info().num_peers() <= self.config.max_peers
        {
            return;
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let mut protected: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        protected.extend(
            self.config
                .bootstrap
                .iter()
                .filter_map(crate::net::addresses::peer_of),
        );
        let surplus = self.usage.surplus(
            &connected,
            &protected,
            self.config.target_peers,
            self.config.max_peers,
            self.config.peer_grace,
            now,
        );
        for peer in surplus {
            debug!(%peer, "closing an idle connection outside every mesh");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(20);

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn nothing_closes_at_or_below_the_high_water_mark() {
        let usage = Usage::default();
        let connected = peers(10);
        let later = Instant::now() + GRACE * 2;
        let closed = usage.surplus(&connected, &HashSet::new(), 4, 10, GRACE, later);
        assert!(closed.is_empty());
    }

    #[test]
    fn surplus_goes_down_to_the_target_least_recently_used_first() {
        let start = Instant::now();
        let mut usage = Usage::default();
        let connected = peers(12);
        for (i, p) in connected.iter().enumerate() {
            usage.touch(*p, start + Duration::from_secs(i as u64));
        }
        let now = start + GRACE + Duration::from_secs(100);
        let closed = usage.surplus(&connected, &HashSet::new(), 8, 10, GRACE, now);
        assert_eq!(closed, connected[..4].to_vec());
    }

    #[test]
    fn protected_pinned_and_recent_peers_stay() {
        let start = Instant::now();
        let mut usage = Usage::default();
        let connected = peers(6);
        for p in &connected {
            usage.touch(*p, start);
        }
        let now = start + GRACE;
        usage.touch(connected[0], now - Duration::from_secs(1));
        usage.pin(connected[1]);
        let protected: HashSet<PeerId> = [connected[2]].into();
        let closed = usage.surplus(&connected, &protected, 0, 1, GRACE, now);
        assert_eq!(closed.len(), 3);
        assert!(closed.iter().all(|p| connected[3..].contains(p)));
    }

    #[test]
    fn forgetting_a_peer_unpins_it() {
        let start = Instant::now();
        let mut usage = Usage::default();
        let connected = peers(2);
        usage.touch(connected[0], start);
        usage.pin(connected[0]);
        usage.forget(&connected[0]);
        usage.touch(connected[0], start);
        let closed = usage.surplus(&connected, &HashSet::new(), 0, 1, GRACE, start + GRACE);
        assert!(closed.contains(&connected[0]));
    }
}
