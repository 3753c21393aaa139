//! Which rooms a bootstrap forwards: a room is joined once two peers want it, from two
//! addresses (or, for a few rooms per address, two peers sharing one address behind a
//! NAT); each peer and each address counts towards a bounded number of rooms; a forwarded
//! room that fewer than two peers want for a while is left. A peer subscribing to
//! thousands of junk topics gets none of them forwarded, and real new rooms still are.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use ipm_protocol::{limits, Room};
use libp2p::PeerId;

/// Where a peer wanting a room connects from, for counting distinct addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A remote IP address.
    Ip(IpAddr),
    /// A peer of this host (loopback) when each one counts as its own address.
    Local(PeerId),
    /// A peer without a direct connection (only through a relay).
    Relayed,
}

impl Origin {
    /// The origin of `peer` connected from `ip`; `local_distinct`: loopback peers count as
    /// distinct addresses (every process of the host shares one).
    pub fn of(peer: PeerId, ip: Option<IpAddr>, local_distinct: bool) -> Origin {
        match ip {
            Some(ip) if local_distinct && ip.is_loopback() => Origin::Local(peer),
            Some(ip) => Origin::Ip(ip),
            None => Origin::Relayed,
        }
    }
}

/// The numbers a [`RoomDemand`] works with.
#[derive(Debug, Clone, Copy)]
pub struct ForwardLimits {
    /// Most rooms forwarded at once.
    pub max_rooms: usize,
    /// Most rooms one peer's subscriptions count towards.
    pub per_peer: usize,
    /// Most room subscriptions counted from one address, all its peers together.
    pub per_address: usize,
    /// Most rooms forwarded for peers that all share one address.
    pub shared_address_rooms: usize,
    /// How long a forwarded room fewer than two peers want is kept.
    pub idle: Duration,
}

impl Default for ForwardLimits {
    fn default() -> Self {
        Self {
            max_rooms: limits::MAX_FORWARDED_ROOMS,
            per_peer: limits::MAX_FORWARD_WANTS_PER_PEER,
            per_address: limits::MAX_FORWARD_WANTS_PER_ADDRESS,
            shared_address_rooms: limits::MAX_FORWARDED_ROOMS_PER_SHARED_ADDRESS,
            idle: Duration::from_millis(limits::FORWARD_IDLE_MS),
        }
    }
}

/// A room being forwarded.
#[derive(Debug)]
struct Forwarded {
    /// The address charged for it, when it was joined for peers sharing one address.
    charged: Option<Origin>,
    /// Since when fewer than two peers want it.
    idle_since: Option<Instant>,
}

/// Who wants which room, and which rooms are forwarded.
#[derive(Debug, Default)]
pub struct RoomDemand {
    limits: ForwardLimits,
    wants: HashMap<Room, HashMap<PeerId, Origin>>,
    by_peer: HashMap<PeerId, HashSet<Room>>,
    by_origin: HashMap<Origin, usize>,
    forwarded: HashMap<Room, Forwarded>,
    charged: HashMap<Origin, usize>,
}

impl RoomDemand {
    /// Demand counted with `limits`.
    pub fn new(limits: ForwardLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// `peer`, connected from `origin`, subscribed to `room`; `joined`: whether this node
    /// is in the room already (its own rooms, like the lobby, are never left). The room to
    /// join, if any.
    pub fn subscribed(
        &mut self,
        peer: PeerId,
        origin: Origin,
        room: Room,
        joined: bool,
    ) -> Option<Room> {
        let rooms = self.by_peer.entry(peer).or_default();
        if !rooms.contains(&room) {
            let from_origin = self.by_origin.get(&origin).copied().unwrap_or(0);
            if rooms.len() >= self.limits.per_peer || from_origin >= self.limits.per_address {
                if rooms.is_empty() {
                    self.by_peer.remove(&peer);
                }
                return None;
            }
            rooms.insert(room.clone());
            *self.by_origin.entry(origin).or_default() += 1;
            self.wants
                .entry(room.clone())
                .or_default()
                .insert(peer, origin);
        }
        let (peers, origins) = self.support(&room);
        if let Some(forwarded) = self.forwarded.get_mut(&room) {
            if peers >= 2 {
                forwarded.idle_since = None;
            }
            return None;
        }
        if joined || peers < 2 || self.forwarded.len() >= self.limits.max_rooms {
            return None;
        }
        let charged = if origins >= 2 {
            None
        } else {
            let count = self.charged.get(&origin).copied().unwrap_or(0);
            if count >= self.limits.shared_address_rooms {
                return None;
            }
            *self.charged.entry(origin).or_default() += 1;
            Some(origin)
        };
        self.forwarded.insert(
            room.clone(),
            Forwarded {
                charged,
                idle_since: None,
            },
        );
        Some(room)
    }

    /// How many peers want `room`, and from how many addresses.
    fn support(&self, room: &Room) -> (usize, usize) {
        self.wants.get(room).map_or((0, 0), |peers| {
            let origins: HashSet<&Origin> = peers.values().collect();
            (peers.len(), origins.len())
        })
    }

    /// `peer` left `room`.
    pub fn unsubscribed(&mut self, peer: &PeerId, room: &Room, now: Instant) {
        let Some(rooms) = self.by_peer.get_mut(peer) else {
            return;
        };
        if !rooms.remove(room) {
            return;
        }
        if rooms.is_empty() {
            self.by_peer.remove(peer);
        }
        self.drop_want(peer, room, now);
    }

    /// `peer` disconnected: it wants nothing any more.
    pub fn peer_gone(&mut self, peer: &PeerId, now: Instant) {
        for room in self.by_peer.remove(peer).unwrap_or_default() {
            self.drop_want(peer, &room, now);
        }
    }

    fn drop_want(&mut self, peer: &PeerId, room: &Room, now: Instant) {
        let Some(peers) = self.wants.get_mut(room) else {
            return;
        };
        if let Some(origin) = peers.remove(peer) {
            if let Some(count) = self.by_origin.get_mut(&origin) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.by_origin.remove(&origin);
                }
            }
        }
        let left = peers.len();
        if left == 0 {
            self.wants.remove(room);
        }
        if left < 2 {
            if let Some(forwarded) = self.forwarded.get_mut(room) {
                forwarded.idle_since.get_or_insert(now);
            }
        }
    }

    /// The forwarded rooms fewer than two peers have wanted for the idle time: they are
    /// left now.
    pub fn idle(&mut self, now: Instant) -> Vec<Room> {
        let idle = self.limits.idle;
        let gone: Vec<Room> = self
            .forwarded
            .iter()
            .filter(|(_, f)| {
                f.idle_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= idle)
            })
            .map(|(room, _)| room.clone())
            .collect();
        for room in &gone {
            if let Some(Forwarded {
                charged: Some(origin),
                ..
            }) = self.forwarded.remove(room)
            {
                if let Some(count) = self.charged.get_mut(&origin) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.charged.remove(&origin);
                    }
                }
            }
        }
        gone
    }

    /// How many rooms are forwarded.
    pub fn forwarded(&self) -> usize {
        self.forwarded.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(tag: &str) -> Room {
        Room::interest(tag).expect("a tag")
    }

    fn ip(s: &str) -> Origin {
        Origin::Ip(s.parse().expect("an address"))
    }

    #[test]
    fn a_room_is_forwarded_once_two_peers_from_two_addresses_want_it() {
        let mut demand = RoomDemand::new(ForwardLimits::default());
        let (alice, bob) = (PeerId::random(), PeerId::random());
        assert_eq!(
            demand.subscribed(alice, ip("192.0.2.1"), room("rust"), false),
            None
        );
        assert_eq!(
            demand.subscribed(bob, ip("198.51.100.2"), room("rust"), false),
            Some(room("rust"))
        );
        // Joined once only.
        let carol = PeerId::random();
        assert_eq!(
            demand.subscribed(carol, ip("203.0.113.3"), room("rust"), false),
            None
        );
        // The node's own rooms are never taken over.
        assert_eq!(
            demand.subscribed(alice, ip("192.0.2.1"), Room::Lobby, true),
            None
        );
        assert_eq!(
            demand.subscribed(bob, ip("198.51.100.2"), Room::Lobby, true),
            None
        );
        assert_eq!(demand.forwarded(), 1);
    }

    #[test]
    fn one_peer_with_thousands_of_junk_rooms_gets_none_and_real_rooms_still_pass() {
        let mut demand = RoomDemand::new(ForwardLimits::default());
        let junk = PeerId::random();
        for i in 0..10_000 {
            assert_eq!(
                demand.subscribed(junk, ip("192.0.2.66"), room(&format!("junk{i}")), false),
                None
            );
        }
        assert_eq!(
            demand.by_peer[&junk].len(),
            limits::MAX_FORWARD_WANTS_PER_PEER
        );
        let (alice, bob) = (PeerId::random(), PeerId::random());
        demand.subscribed(alice, ip("198.51.100.1"), room("real"), false);
        assert_eq!(
            demand.subscribed(bob, ip("203.0.113.2"), room("real"), false),
            Some(room("real"))
        );
    }

    #[test]
    fn many_keys_on_one_address_get_only_a_few_rooms() {
        let mut demand = RoomDemand::new(ForwardLimits::default());
        let mut joined = 0;
        for i in 0..1_000 {
            let topic = room(&format!("junk{}", i / 2));
            if demand
                .subscribed(PeerId::random(), ip("192.0.2.66"), topic, false)
                .is_some()
            {
                joined += 1;
            }
        }
        assert_eq!(joined, limits::MAX_FORWARDED_ROOMS_PER_SHARED_ADDRESS);
        // Two users behind one NAT still share a room.
        let (alice, bob) = (PeerId::random(), PeerId::random());
        demand.subscribed(alice, ip("198.51.100.7"), room("home"), false);
        assert_eq!(
            demand.subscribed(bob, ip("198.51.100.7"), room("home"), false),
            Some(room("home"))
        );
    }

    #[test]
    fn two_addresses_get_at_most_their_share_of_subscriptions() {
        let mut demand = RoomDemand::new(ForwardLimits::default());
        let mut joined = 0;
        for i in 0..5_000 {
            let topic = room(&format!("junk{i}"));
            demand.subscribed(PeerId::random(), ip("192.0.2.66"), topic.clone(), false);
            if demand
                .subscribed(PeerId::random(), ip("192.0.2.67"), topic, false)
                .is_some()
            {
                joined += 1;
            }
        }
        assert_eq!(joined, limits::MAX_FORWARD_WANTS_PER_ADDRESS);
    }

    #[test]
    fn a_room_two_peers_no_longer_want_is_left_after_the_idle_time() {
        let now = Instant::now();
        let limits = ForwardLimits::default();
        let mut demand = RoomDemand::new(limits);
        let (alice, bob) = (PeerId::random(), PeerId::random());
        demand.subscribed(alice, ip("192.0.2.1"), room("rust"), false);
        demand.subscribed(bob, ip("198.51.100.2"), room("rust"), false);
        // Quiet for long, but wanted: kept.
        assert!(demand.idle(now + limits.idle * 10).is_empty());
        demand.unsubscribed(&bob, &room("rust"), now);
        assert!(demand.idle(now + limits.idle / 2).is_empty());
        // Bob is back in time: kept.
        demand.subscribed(bob, ip("198.51.100.2"), room("rust"), false);
        assert!(demand.idle(now + limits.idle * 2).is_empty());
        demand.peer_gone(&alice, now);
        assert_eq!(demand.idle(now + limits.idle), vec![room("rust")]);
        assert_eq!(demand.forwarded(), 0);
        // Wanted by two again: joined again.
        assert_eq!(
            demand.subscribed(alice, ip("192.0.2.1"), room("rust"), false),
            Some(room("rust"))
        );
    }

    #[test]
    fn loopback_peers_count_as_distinct_addresses_only_when_told() {
        let peer = PeerId::random();
        let lo = Some("127.0.0.1".parse().expect("an address"));
        assert_eq!(Origin::of(peer, lo, true), Origin::Local(peer));
        assert_eq!(Origin::of(peer, lo, false), ip("127.0.0.1"));
        assert_eq!(Origin::of(peer, None, true), Origin::Relayed);
    }
}
