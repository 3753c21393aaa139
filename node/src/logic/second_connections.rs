//! Which direct connections to one peer to close when there are several: two nodes that dial
//! each other at once end up with two, each with its own handshake, streams, pings and
//! buffers, and the node above its connection cap while its peers are within it.
//!
//! Only the end with the smaller peer id closes any, so the two ends never close different
//! ones and lose the peer. It keeps the oldest connection it dialled itself (else the
//! oldest) and closes the other direct ones once each is [`SECOND_GRACE`] old, so a request
//! that opened one has had its answer. Relayed connections are left alone: a direct one
//! beside a relayed one is the point of hole punching, and the relay closes its circuits.

use std::time::{Duration, Instant};

/// How long a second direct connection is left open before it is closed.
pub const SECOND_GRACE: Duration = Duration::from_secs(10);

/// One open connection to the peer.
#[derive(Clone, Copy, Debug)]
pub struct Open<C> {
    /// The driver's name for it.
    pub id: C,
    /// Whether this node dialled it.
    pub dialled_here: bool,
    /// Whether it runs through a relay.
    pub relayed: bool,
    /// When it was established.
    pub opened: Instant,
}

/// The connections among `open` (all to one peer) to close at `now`; `decides`: this node's
/// peer id is the smaller of the two.
pub fn surplus<C: Copy + PartialEq>(decides: bool, open: &[Open<C>], now: Instant) -> Vec<C> {
    if !decides {
        return Vec::new();
    }
    let direct = || open.iter().filter(|c| !c.relayed);
    let keep = direct()
        .filter(|c| c.dialled_here)
        .min_by_key(|c| c.opened)
        .or_else(|| direct().min_by_key(|c| c.opened));
    let Some(keep) = keep else {
        return Vec::new();
    };
    direct()
        .filter(|c| c.id != keep.id)
        .filter(|c| now.saturating_duration_since(c.opened) >= SECOND_GRACE)
        .map(|c| c.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(id: u32, dialled_here: bool, relayed: bool, opened: Instant) -> Open<u32> {
        Open {
            id,
            dialled_here,
            relayed,
            opened,
        }
    }

    #[test]
    fn of_two_dials_at_once_the_one_the_smaller_id_made_is_kept() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // The peer's dial arrived first; this node's own dial is kept all the same.
        let both = [open(1, false, false, t0), open(2, true, false, t0 + s(1))];
        assert!(
            surplus(true, &both, t0 + s(5)).is_empty(),
            "still in its grace"
        );
        assert_eq!(surplus(true, &both, t0 + s(11)), vec![1]);
        // The other end closes nothing, whatever it holds.
        let theirs = [open(7, true, false, t0), open(8, false, false, t0 + s(1))];
        assert!(surplus(false, &theirs, t0 + s(60)).is_empty());
        // Two dials of the same side: the older stays.
        let same = [open(3, false, false, t0 + s(2)), open(4, false, false, t0)];
        assert_eq!(surplus(true, &same, t0 + s(60)), vec![3]);
    }

    #[test]
    fn one_connection_or_a_relayed_one_is_left_alone() {
        let t0 = Instant::now();
        let late = t0 + Duration::from_secs(60);
        assert!(surplus(true, &[open(1, true, false, t0)], late).is_empty());
        let punched = [open(1, true, true, t0), open(2, false, false, t0)];
        assert!(surplus(true, &punched, late).is_empty());
        let relayed = [open(1, true, true, t0), open(2, false, true, t0)];
        assert!(surplus(true, &relayed, late).is_empty());
        assert!(surplus::<u32>(true, &[], late).is_empty());
    }
}
