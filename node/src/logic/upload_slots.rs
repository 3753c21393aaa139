//! Which streamed uploads may start: places per peer, per address and in all, with a reserve
//! that only files offered to one person (or fetched by a contact) may use. Keys are free
//! and addresses are not, so room shares are capped per address; and however many keys and
//! addresses fetch a room's share, they never hold the places a direct transfer needs.

use std::{collections::HashMap, hash::Hash};

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
}

impl UploadLimits {
    /// A user's node: 32 uploads, 8 of them kept for direct transfers; one peer may hold 8
    /// (one per download), one address 8 of the 24 room shares may hold.
    pub const fn node() -> Self {
        Self {
            total: 32,
            reserved: 8,
            per_peer: 8,
            per_address: 8,
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
    /// Room shares hold every place they may.
    #[error("too many shared files going out at once")]
    Shared,
    /// Every place is taken.
    #[error("too many files going out at once")]
    All,
}

/// The places taken, by peer `P` and address `A`.
#[derive(Debug)]
pub struct UploadSlots<P, A> {
    limits: UploadLimits,
    peers: HashMap<P, usize>,
    addresses: HashMap<A, usize>,
    shared: usize,
    all: usize,
}

impl<P: Hash + Eq + Clone, A: Hash + Eq + Clone> UploadSlots<P, A> {
    /// No place taken, within `limits`.
    pub fn new(limits: UploadLimits) -> Self {
        Self {
            limits,
            peers: HashMap::new(),
            addresses: HashMap::new(),
            shared: 0,
            all: 0,
        }
    }

    /// Whether `peer` holds every place one peer may: its next request is busy whatever
    /// it asks for.
    pub fn peer_full(&self, peer: &P) -> bool {
        self.peers.get(peer).copied().unwrap_or(0) >= self.limits.per_peer
    }

    /// Takes a place for an upload of `class` to `peer` at `address`, or says why not. Each
    /// place taken is given back once with [`UploadSlots::give_back`] and the same arguments.
    pub fn take(&mut self, peer: &P, address: &A, class: UploadClass) -> Result<(), Busy> {
        if self.peer_full(peer) {
            return Err(Busy::Peer);
        }
        if self.all >= self.limits.total {
            return Err(Busy::All);
        }
        if class == UploadClass::Shared {
            if self.shared >= self.limits.shared() {
                return Err(Busy::Shared);
            }
            if self.addresses.get(address).copied().unwrap_or(0) >= self.limits.per_address {
                return Err(Busy::Address);
            }
            *self.addresses.entry(address.clone()).or_insert(0) += 1;
            self.shared += 1;
        }
        *self.peers.entry(peer.clone()).or_insert(0) += 1;
        self.all += 1;
        Ok(())
    }

    /// Gives back a place [`UploadSlots::take`] gave.
    pub fn give_back(&mut self, peer: &P, address: &A, class: UploadClass) {
        if class == UploadClass::Shared {
            self.shared = self.shared.saturating_sub(1);
            release(&mut self.addresses, address);
        }
        release(&mut self.peers, peer);
        self.all = self.all.saturating_sub(1);
    }

    /// Places taken: in all, and by room shares.
    pub fn taken(&self) -> (usize, usize) {
        (self.all, self.shared)
    }
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

    /// Takes places for `keys` peers at `address`, `each` per peer; returns how many
    /// were given.
    fn flood(slots: &mut Slots, keys: std::ops::Range<u32>, address: u32, each: usize) -> usize {
        let mut given = 0;
        for key in keys {
            for _ in 0..each {
                given += usize::from(slots.take(&key, &address, UploadClass::Shared).is_ok());
            }
        }
        given
    }

    #[test]
    fn four_slow_keys_on_one_address_hold_one_address_worth() {
        let mut slots = Slots::new(UploadLimits::node());
        // Four keys on one address, eight streams each: one address's worth of places.
        assert_eq!(flood(&mut slots, 0..4, 1, 8), 8);
        // A direct transfer to a friend, and a room share fetched from another address,
        // both start.
        assert_eq!(slots.take(&100, &1, UploadClass::Direct), Ok(()));
        assert_eq!(slots.take(&101, &2, UploadClass::Shared), Ok(()));
        assert_eq!(slots.take(&5, &1, UploadClass::Shared), Err(Busy::Address));
    }

    #[test]
    fn a_thousand_keys_on_sixteen_addresses_leave_the_reserve_free() {
        let limits = UploadLimits::node();
        let mut slots = Slots::new(limits);
        let mut given = 0;
        for address in 0..16u32 {
            given += flood(&mut slots, address * 100..address * 100 + 62, address, 8);
        }
        assert_eq!(given, limits.shared());
        assert_eq!(
            slots.take(&5000, &99, UploadClass::Shared),
            Err(Busy::Shared)
        );
        // Every reserved place goes to direct transfers, whatever their address.
        for friend in 0..limits.reserved as u32 {
            assert_eq!(
                slots.take(&(9000 + friend), &1, UploadClass::Direct),
                Ok(())
            );
        }
        assert_eq!(slots.take(&9999, &50, UploadClass::Direct), Err(Busy::All));
        assert_eq!(slots.taken(), (limits.total, limits.shared()));
    }

    #[test]
    fn direct_transfers_may_use_the_whole_pool_but_one_peer_only_its_share() {
        let limits = UploadLimits::node();
        let mut slots = Slots::new(limits);
        for _ in 0..limits.per_peer {
            assert_eq!(slots.take(&1, &1, UploadClass::Direct), Ok(()));
        }
        assert!(slots.peer_full(&1));
        assert_eq!(slots.take(&1, &1, UploadClass::Direct), Err(Busy::Peer));
        // Direct transfers are not counted against their address.
        assert_eq!(slots.take(&2, &1, UploadClass::Shared), Ok(()));
        let mut given = 1 + limits.per_peer;
        for peer in 3..100 {
            given += usize::from(slots.take(&peer, &peer, UploadClass::Direct).is_ok());
        }
        assert_eq!(given, limits.total);
    }

    #[test]
    fn places_come_back_and_nothing_is_left_behind() {
        let mut slots = Slots::new(UploadLimits::node());
        assert_eq!(flood(&mut slots, 0..4, 1, 2), 8);
        assert_eq!(slots.take(&7, &3, UploadClass::Direct), Ok(()));
        for key in 0..4 {
            for _ in 0..2 {
                slots.give_back(&key, &1, UploadClass::Shared);
            }
        }
        assert_eq!(slots.take(&50, &1, UploadClass::Shared), Ok(()));
        slots.give_back(&50, &1, UploadClass::Shared);
        slots.give_back(&7, &3, UploadClass::Direct);
        assert_eq!(slots.taken(), (0, 0));
        assert!(slots.peers.is_empty() && slots.addresses.is_empty());
    }
}
