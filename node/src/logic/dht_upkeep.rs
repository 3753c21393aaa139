//! How much of Kademlia's bootstrap a node runs, without I/O: the lookup of its own key
//! always, the refresh of every farther bucket at most once per [`REFRESH_EVERY`].
//!
//! libp2p-kad bootstraps on its own whenever a peer enters a routing table of fewer than
//! 20 entries, and again after a bootstrap during which that happened: at a join, that is
//! twice the own-key lookup plus one random lookup per bucket farther than the closest
//! neighbour's, about 25 requests each, 300–400 requests in all, nearly every one a new
//! connection with its own handshake. The own-key lookup is what puts a node in the DHT and
//! finds its neighbours; the bucket refreshes only keep far buckets fresh, which the peer
//! manager's walks, the lookups of names and peers, and inbound connections do as well. So
//! the driver cuts a bootstrap after its first step unless a refresh is due.

use std::{
    collections::HashSet,
    hash::Hash,
    time::{Duration, Instant},
};

/// The least time between two bootstraps that refresh every bucket; also the first one's
/// delay after the node starts.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10 * 60);

/// What the driver must do with a bootstrap that reported a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Let it go on.
    Continue,
    /// Finish it now: its next step (and the ones after) are skipped.
    Cut,
}

/// The bootstrap schedule of one node; `Q` names a query (libp2p-kad's `QueryId`).
#[derive(Debug)]
pub struct DhtUpkeep<Q> {
    /// When buckets were last refreshed (or the node started).
    last_refresh: Instant,
    /// Bootstraps being cut: each further step of theirs is finished at once.
    cutting: HashSet<Q>,
}

impl<Q: Eq + Hash> DhtUpkeep<Q> {
    /// The schedule of a node started at `started`.
    pub fn new(started: Instant) -> Self {
        Self {
            last_refresh: started,
            cutting: HashSet::new(),
        }
    }

    /// Bootstrap `query` finished step `count` (1 is the own-key lookup); `last` when it was
    /// its last.
    pub fn on_step(&mut self, query: Q, count: usize, last: bool, now: Instant) -> Step {
        if last {
            self.cutting.remove(&query);
            return Step::Continue;
        }
        if self.cutting.contains(&query) {
            return Step::Cut;
        }
        if count > 1 {
            return Step::Continue;
        }
        if now.saturating_duration_since(self.last_refresh) >= REFRESH_EVERY {
            self.last_refresh = now;
            Step::Continue
        } else {
            self.cutting.insert(query);
            Step::Cut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn bootstraps_of_the_first_minutes_stop_after_the_own_key_lookup() {
        let start = Instant::now();
        let mut upkeep = DhtUpkeep::new(start);
        // libp2p-kad's bootstrap at the join: cut after step 1, and every later step too.
        assert_eq!(upkeep.on_step(1, 1, false, start + secs(1)), Step::Cut);
        assert_eq!(upkeep.on_step(1, 2, false, start + secs(1)), Step::Cut);
        assert_eq!(upkeep.on_step(1, 3, false, start + secs(1)), Step::Cut);
        assert_eq!(upkeep.on_step(1, 4, true, start + secs(1)), Step::Continue);
        // The bootstrap started again right after it: cut as well.
        assert_eq!(upkeep.on_step(2, 1, false, start + secs(2)), Step::Cut);
        assert_eq!(upkeep.on_step(2, 2, true, start + secs(2)), Step::Continue);
        // A bootstrap whose own-key lookup was its only step needs nothing.
        assert_eq!(upkeep.on_step(3, 1, true, start + secs(3)), Step::Continue);
    }

    #[test]
    fn every_bucket_is_refreshed_once_per_interval() {
        let start = Instant::now();
        let mut upkeep = DhtUpkeep::new(start);
        let due = start + REFRESH_EVERY;
        assert_eq!(upkeep.on_step(1, 1, false, due), Step::Continue);
        assert_eq!(upkeep.on_step(1, 2, false, due), Step::Continue);
        assert_eq!(upkeep.on_step(1, 9, true, due), Step::Continue);
        // The next one within the interval is cut; the one after it runs whole.
        assert_eq!(upkeep.on_step(2, 1, false, due + secs(60)), Step::Cut);
        assert_eq!(upkeep.on_step(2, 2, true, due + secs(60)), Step::Continue);
        let next = due + REFRESH_EVERY;
        assert_eq!(upkeep.on_step(3, 1, false, next), Step::Continue);
        assert_eq!(upkeep.on_step(3, 2, false, next), Step::Continue);
    }

    #[test]
    fn cut_bootstraps_are_forgotten_once_they_end() {
        let start = Instant::now();
        let mut upkeep = DhtUpkeep::new(start);
        for query in 0..1000 {
            assert_eq!(upkeep.on_step(query, 1, false, start), Step::Cut);
            upkeep.on_step(query, 2, true, start);
        }
        assert!(upkeep.cutting.is_empty());
    }
}
