//! Which streamed uploads may start: places per peer, per address, per network and in all,
//! with a reserve that only files offered to one person (or fetched by a contact) may use.
//! Keys are free and addresses are not, so room shares are capped per address, and per
//! network (an IPv4 /24) for addresses taken from one block; and however many keys and
//! addresses fetch a room's share, they never hold the places a direct transfer needs.
//!
//! A place is not held forever by a slow reader either: when a request is turned away for
//! want of a place, the room share holding one longest, if it has held it for
//! [`SHARE_LEASE`], gives it up at its next buffer (its downloader asks again later and
//! resumes where it was).

use std::{
    collections::HashMap,
    hash::Hash,
    time::{Duration, Instant},
};

use crate::logic::address_key::AddressKey;

/// How long a room share keeps its place once another request waits for one.
pub const SHARE_LEASE: Duration = Duration::from_secs(120);

/// An address, and the network it belongs to.
pub trait Network: Hash + Eq + Clone {
    /// The network: for an IPv4 address its /24 (an IPv6 key is a /64 already).
    fn network(&self) -> Self;
}

impl Network for AddressKey {
    fn network(&self) -> Self {
        match self {
            Self::V4([a, b, c, _]) => Self::V4([*a, *b, *c, 0]),
            other => *other,
        }
    }
}

/// What kind of upload asks for a place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UploadClass {
    /// A file (or folder) offered to this one peer, or anything fetched by a contact: may
    /// use the reserve, and is not counted against its address.
    Direct,
    /// A file shared with a room, fetched by anyone in it.
    Shared,
}

/// How many uploads run at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadLimits {
    /// Uploads to everyone together.
    pub total: usize,
    /// Of `total`, the places only [`UploadClass::Direct`] uploads may take.
    pub reserved: usize,
    /// Uploads to one peer, of either class.
    pub per_peer: usize,
    /// Shared uploads to every peer of one address together.
    pub per_address: usize,
    /// Shared uploads to every address of one network together.
    pub per_network: usize,
}

impl UploadLimits {
    /// A user's node: 32 uploads, 8 of them kept for direct transfers; one peer may hold 8
    /// (one per download), one address 8 and one network 16 of the 24 room shares may hold.
    pub const fn node() -> Self {
        Self {
            total: 32,
            reserved: 8,
            per_peer: 8,
            per_address: 8,
            per_network: 16,
        }
    }

    /// The places room shares may hold together.
    pub fn shared(&self) -> usize {
        self.total.saturating_sub(self.reserved)
    }
}

/// Why an upload may not start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// The peer holds all the places one peer may.
    #[error("too many downloads from this peer at once")]
    Peer,
    /// The peers of its address hold all the shared places one address may.
    #[error("too many downloads from this address at once")]
    Address,
    /// The addresses of its network hold all the shared places one network may.
    #[error("too many downloads from this network at once")]
    Network,
    /// Room shares hold every place they may.
    #[error("too many shared files going out at once")]
    Shared,
    /// Every place is taken.
    #[error("too many files going out at once")]
    All,
}

/// One place taken, to give back with [`UploadSlots::give_back`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

#[derive(Debug)]
struct Held<P, A> {
    peer: P,
    address: A,
    class: UploadClass,
    since: Instant,
    /// Asked to give its place up.
    yielding: bool,
}

/// The places taken, by peer `P` and address `A`.
#[derive(Debug)]
pub struct UploadSlots<P, A> {
    limits: UploadLimits,
    peers: HashMap<P, usize>,
    addresses: HashMap<A, usize>,
    networks: HashMap<A, usize>,
    held: HashMap<Ticket, Held<P, A>>,
    next: u64,
    shared: usize,
    all: usize,
}

impl<P: Hash + Eq + Clone, A: Network> UploadSlots<P, A> {
    /// No place taken, within `limits`.
    pub fn new(limits: UploadLimits) -> Self {
        Self {
            limits,
            peers: HashMap::new(),
            addresses: HashMap::new(),
            networks: HashMap::new(),
            held: HashMap::new(),
            next: 0,
            shared: 0,
            all: 0,
        }
    }

    /// Whether `peer` holds every place one peer may: its next request is busy whatever
    /// it asks for.
    pub fn peer_full(&self, peer: &P) -> bool {
        self.peers.get(peer).copied().unwrap_or(0) >= self.limits.per_peer
    }

    /// Takes a place at `now` for an upload of `class` to `peer` at `address`, or says why
    /// not. A request turned away for want of a place (not for its peer's, address's or
    /// network's share) asks the longest held room share past its [`SHARE_LEASE`] to give
    /// its place up.
    pub fn take(
        &mut self,
        peer: &P,
        address: &A,
        class: UploadClass,
        now: Instant,
    ) -> Result<Ticket, Busy> {
        let taken = self.try_take(peer, address, class);
        if let Err(Busy::Shared | Busy::All) = taken {
            self.ask_one_to_yield(now);
        }
        taken?;
        let ticket = Ticket(self.next);
        self.next += 1;
        let held = Held {
            peer: peer.clone(),
            address: address.clone(),
            class,
            since: now,
            yielding: false,
        };
        self.held.insert(ticket, held);
        Ok(ticket)
    }

    /// Counts a place for `peer` at `address`, if one is free.
    fn try_take(&mut self, peer: &P, address: &A, class: UploadClass) -> Result<(), Busy> {
        // The asker's own shares first: one over them waits for its own places only.
        if self.peer_full(peer) {
            return Err(Busy::Peer);
        }
        let shared = class == UploadClass::Shared;
        let network = address.network();
        if shared {
            if count(&self.addresses, address) >= self.limits.per_address {
                return Err(Busy::Address);
            }
            if count(&self.networks, &network) >= self.limits.per_network {
                return Err(Busy::Network);
            }
        }
        if self.all >= self.limits.total {
            return Err(Busy::All);
        }
        if shared {
            if self.shared >= self.limits.shared() {
                return Err(Busy::Shared);
            }
            *self.addresses.entry(address.clone()).or_insert(0) += 1;
            *self.networks.entry(network).or_insert(0) += 1;
            self.shared += 1;
        }
        *self.peers.entry(peer.clone()).or_insert(0) += 1;
        self.all += 1;
        Ok(())
    }

    /// The room share held longest, past its lease and not yet asked, is asked to give its
    /// place up.
    fn ask_one_to_yield(&mut self, now: Instant) {
        let oldest = self
            .held
            .values_mut()
            .filter(|h| h.class == UploadClass::Shared && !h.yielding)
            .filter(|h| now.saturating_duration_since(h.since) >= SHARE_LEASE)
            .min_by_key(|h| h.since);
        if let Some(held) = oldest {
            held.yielding = true;
        }
    }

    /// Whether the upload holding `ticket` must end (at its next buffer) to give its place
    /// to a waiting request.
    pub fn must_yield(&self, ticket: Ticket) -> bool {
        self.held.get(&ticket).is_some_and(|h| h.yielding)
    }

    /// Gives back a place [`UploadSlots::take`] gave; a ticket given back already is ignored.
    pub fn give_back(&mut self, ticket: Ticket) {
        let Some(held) = self.held.remove(&ticket) else {
            return;
        };
        if held.class == UploadClass::Shared {
            self.shared = self.shared.saturating_sub(1);
            release(&mut self.addresses, &held.address);
            release(&mut self.networks, &held.address.network());
        }
        release(&mut self.peers, &held.peer);
        self.all = self.all.saturating_sub(1);
    }

    /// Places taken: in all, and by room shares.
    pub fn taken(&self) -> (usize, usize) {
        (self.all, self.shared)
    }
}

/// The places `key` holds.
fn count<K: Hash + Eq>(counts: &HashMap<K, usize>, key: &K) -> usize {
    counts.get(key).copied().unwrap_or(0)
}

/// One less for `key`, forgetting it at zero (so that the maps hold only current holders).
fn release<K: Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(used) = counts.get_mut(key) {
        *used = used.saturating_sub(1);
        if *used == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Slots = UploadSlots<u32, u32>;
    const SHARED: UploadClass = UploadClass::Shared;
    const DIRECT: UploadClass = UploadClass::Direct;

    /// Addresses of the tests: 256 to a network.
    impl Network for u32 {
        fn network(&self) -> Self {
            self / 256
        }
    }

    /// Takes places at `now` for `keys` peers at `address`, `each` per peer; returns the
    /// tickets given.
    fn flood(
        slots: &mut Slots,
        keys: std::ops::Range<u32>,
        address: u32,
        each: usize,
        now: Instant,
    ) -> Vec<Ticket> {
        let mut given = Vec::new();
        for key in keys {
            for _ in 0..each {
                given.extend(slots.take(&key, &address, SHARED, now).ok());
            }
        }
        given
    }

    #[test]
    fn four_slow_keys_on_one_address_hold_one_address_worth() {
        let now = Instant::now();
        let mut slots = Slots::new(UploadLimits::node());
        // Four keys on one address, eight streams each: one address's worth of places.
        assert_eq!(flood(&mut slots, 0..4, 1, 8, now).len(), 8);
        // A direct transfer to a friend, and a room share fetched from another address,
        // both start.
        assert!(slots.take(&100, &1, DIRECT, now).is_ok());
        assert!(slots.take(&101, &2, SHARED, now).is_ok());
        assert_eq!(slots.take(&5, &1, SHARED, now), Err(Busy::Address));
        assert_eq!(slots.take(&0, &1, SHARED, now), Err(Busy::Peer));
    }

    #[test]
    fn a_thousand_keys_on_sixteen_addresses_leave_the_reserve_free() {
        let now = Instant::now();
        let limits = UploadLimits::node();
        let mut slots = Slots::new(limits);
        let mut given = 0;
        for address in 0..16u32 {
            let keys = address * 100..address * 100 + 62;
            given += flood(&mut slots, keys, address * 256, 8, now).len();
        }
        assert_eq!(given, limits.shared());
        assert_eq!(slots.take(&5000, &99, SHARED, now), Err(Busy::Shared));
        // Every reserved place goes to direct transfers, whatever their address.
        for friend in 0..limits.reserved as u32 {
            assert!(slots.take(&(9000 + friend), &1, DIRECT, now).is_ok());
        }
        assert_eq!(slots.take(&9999, &50, DIRECT, now), Err(Busy::All));
        assert_eq!(slots.taken(), (limits.total, limits.shared()));
    }

    #[test]
    fn addresses_of_one_network_hold_one_network_worth() {
        let now = Instant::now();
        let limits = UploadLimits::node();
        let mut slots = Slots::new(limits);
        // Sixteen addresses of one block, many keys each.
        let mut given = 0;
        for address in 0..16u32 {
            given += flood(
                &mut slots,
                address * 100..address * 100 + 62,
                address,
                8,
                now,
            )
            .len();
        }
        assert_eq!(given, limits.per_network);
        assert_eq!(slots.take(&5000, &17, SHARED, now), Err(Busy::Network));
        // Another network still gets room shares, and friends direct transfers.
        assert!(slots.take(&6000, &256, SHARED, now).is_ok());
        assert!(slots.take(&7000, &3, DIRECT, now).is_ok());
        // An IPv4 address counts in its /24; an IPv6 key is a network already.
        let v4 = AddressKey::V4([192, 0, 2, 7]);
        assert_eq!(v4.network(), AddressKey::V4([192, 0, 2, 0]));
        assert_eq!(v4.network(), AddressKey::V4([192, 0, 2, 200]).network());
        let v6 = AddressKey::V6([32, 1, 13, 184, 0, 0, 0, 1]);
        assert_eq!(v6.network(), v6);
    }

    #[test]
    fn direct_transfers_may_use_the_whole_pool_but_one_peer_only_its_share() {
        let now = Instant::now();
        let limits = UploadLimits::node();
        let mut slots = Slots::new(limits);
        for _ in 0..limits.per_peer {
            assert!(slots.take(&1, &1, DIRECT, now).is_ok());
        }
        assert!(slots.peer_full(&1));
        assert_eq!(slots.take(&1, &1, DIRECT, now), Err(Busy::Peer));
        // Direct transfers are not counted against their address.
        assert!(slots.take(&2, &1, SHARED, now).is_ok());
        let mut given = 1 + limits.per_peer;
        for peer in 3..100 {
            given += usize::from(slots.take(&peer, &peer, DIRECT, now).is_ok());
        }
        assert_eq!(given, limits.total);
    }

    #[test]
    fn places_come_back_and_nothing_is_left_behind() {
        let now = Instant::now();
        let mut slots = Slots::new(UploadLimits::node());
        let flooded = flood(&mut slots, 0..4, 1, 2, now);
        assert_eq!(flooded.len(), 8);
        let direct = slots
            .take(&7, &3, DIRECT, now)
            .unwrap_or_else(|e| panic!("{e}"));
        for ticket in &flooded[..2] {
            slots.give_back(*ticket);
            // Given back twice: counted once.
            slots.give_back(*ticket);
        }
        let again = slots
            .take(&50, &1, SHARED, now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(slots.take(&51, &1, SHARED, now).map(|_| ()), Ok(()));
        assert_eq!(slots.take(&52, &1, SHARED, now), Err(Busy::Address));
        for ticket in flooded[2..].iter().chain([&again, &direct]) {
            slots.give_back(*ticket);
        }
        assert_eq!(slots.taken(), (1, 1), "the place of key 51");
        assert_eq!(slots.peers.len(), 1);
    }

    #[test]
    fn a_share_held_past_its_lease_gives_its_place_to_a_waiting_request() {
        let t0 = Instant::now();
        let limits = UploadLimits::node();
        let mut slots = Slots::new(limits);
        // Two addresses take two thirds of the room shares' places at t0, a third the rest
        // a minute later.
        let old: Vec<Ticket> = (0..2u32)
            .flat_map(|a| flood(&mut slots, a * 10..a * 10 + 1, a * 256, 8, t0))
            .collect();
        let later = t0 + Duration::from_secs(60);
        let young = flood(&mut slots, 20..21, 512, 8, later);
        assert_eq!(slots.taken().1, limits.shared());
        // Before the lease is over, a waiting request asks nobody to yield.
        let before = t0 + SHARE_LEASE - Duration::from_secs(1);
        assert_eq!(slots.take(&99, &2304, SHARED, before), Err(Busy::Shared));
        assert!(old.iter().chain(&young).all(|t| !slots.must_yield(*t)));
        // After it, each request turned away asks one of the oldest shares to yield.
        let after = t0 + SHARE_LEASE;
        assert_eq!(slots.take(&99, &2304, SHARED, after), Err(Busy::Shared));
        assert_eq!(slots.take(&98, &2304, SHARED, after), Err(Busy::Shared));
        let yielding: Vec<&Ticket> = old.iter().filter(|t| slots.must_yield(**t)).collect();
        assert_eq!(yielding.len(), 2);
        assert!(
            young.iter().all(|t| !slots.must_yield(*t)),
            "not past its lease"
        );
        // A request turned away for its own address's share asks nobody.
        assert_eq!(slots.take(&21, &512, SHARED, after), Err(Busy::Address));
        assert_eq!(old.iter().filter(|t| slots.must_yield(**t)).count(), 2);
        // The yielded place goes to the next request.
        slots.give_back(*yielding[0]);
        assert!(slots.take(&99, &2304, SHARED, after).is_ok());
        // Direct transfers never yield.
        let mut full = Slots::new(UploadLimits {
            total: 2,
            reserved: 1,
            per_peer: 8,
            per_address: 8,
            per_network: 8,
        });
        let direct = full
            .take(&1, &1, DIRECT, t0)
            .unwrap_or_else(|e| panic!("{e}"));
        let shared = full
            .take(&2, &2, SHARED, t0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(full.take(&3, &3, DIRECT, after), Err(Busy::All));
        assert!(!full.must_yield(direct));
        assert!(full.must_yield(shared));
    }
}
