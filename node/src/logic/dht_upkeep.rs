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
//!
//! A routing table stays under 20 entries for a while after a join (only peers that answered
//! enter it), and every inbound connection meanwhile starts another bootstrap: five or six
//! own-key lookups in the first minute, each asking the same neighbours again. So a bootstrap
//! that starts within [`OWN_KEY_EVERY`] of the last own-key lookup is cut as soon as the
//! driver sees it.

use std::{
    collections::HashSet,
    hash::Hash,
    time::{Duration, Instant},
};

/// The least time between two bootstraps that refresh every bucket; also the first one's
/// delay after the node starts.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10 * 60);
/// The least time between two own-key lookups, but for the refresh of every bucket.
pub const OWN_KEY_EVERY: Duration = Duration::from_secs(60);

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
    /// When the last own-key lookup started.
    last_own_key: Option<Instant>,
    /// Bootstraps already seen running, until they end.
    seen: HashSet<Q>,
    /// Bootstraps being cut: each further step of theirs is finished at once.
    cutting: HashSet<Q>,
}

impl<Q: Eq + Hash> DhtUpkeep<Q> {
    /// The schedule of a node started at `started`.
    pub fn new(started: Instant) -> Self {
        Self {
            last_refresh: started,
            last_own_key: None,
            seen: HashSet::new(),
            cutting: HashSet::new(),
        }
    }

    /// Bootstrap `query` is running at `now` (the driver looks whenever Kademlia reports
    /// something; a query already seen keeps its verdict): cut when another own-key lookup
    /// started within [`OWN_KEY_EVERY`] and no refresh is due.
    pub fn running(&mut self, query: Q, now: Instant) -> Step {
        if self.cutting.contains(&query) {
            return Step::Cut;
        }
        if self.seen.contains(&query) {
            return Step::Continue;
        }
        let refresh_due = now.saturating_duration_since(self.last_refresh) >= REFRESH_EVERY;
        let recent = self
            .last_own_key
            .is_some_and(|at| now.saturating_duration_since(at) < OWN_KEY_EVERY);
        if recent && !refresh_due {
            self.cutting.insert(query);
            return Step::Cut;
        }
        self.last_own_key = Some(now);
        self.seen.insert(query);
        Step::Continue
    }

    /// Bootstrap `query` finished step `count` (1 is the own-key lookup); `last` when it was
    /// its last.
    pub fn on_step(&mut self, query: Q, count: usize, last: bool, now: Instant) -> Step {
        if last {
            self.cutting.remove(&query);
            self.seen.remove(&query);
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

    #[test]
    fn own_key_lookups_started_soon_after_another_are_cut_at_once() {
        let start = Instant::now();
        let mut upkeep = DhtUpkeep::new(start);
        // The join's bootstrap runs its own-key lookup, seen as often as Kademlia reports.
        assert_eq!(upkeep.running(1, start), Step::Continue);
        assert_eq!(upkeep.running(1, start + secs(1)), Step::Continue);
        assert_eq!(upkeep.on_step(1, 1, false, start + secs(2)), Step::Cut);
        upkeep.on_step(1, 2, true, start + secs(2));
        // The next ones within the minute are cut before their first step ends.
        assert_eq!(upkeep.running(2, start + secs(3)), Step::Cut);
        assert_eq!(upkeep.running(2, start + secs(4)), Step::Cut);
        upkeep.on_step(2, 1, true, start + secs(4));
        assert_eq!(
            upkeep.running(3, start + OWN_KEY_EVERY - secs(1)),
            Step::Cut
        );
        upkeep.on_step(3, 1, true, start + OWN_KEY_EVERY);
        // A minute after the last one, another may run.
        let later = start + OWN_KEY_EVERY;
        assert_eq!(upkeep.running(4, later), Step::Continue);
        assert_eq!(upkeep.on_step(4, 1, false, later + secs(1)), Step::Cut);
        upkeep.on_step(4, 2, true, later + secs(1));
        assert!(upkeep.seen.is_empty() && upkeep.cutting.is_empty());
        // A refresh of every bucket is never cut.
        let due = start + REFRESH_EVERY;
        assert_eq!(upkeep.running(5, later + secs(2)), Step::Cut);
        assert_eq!(upkeep.running(6, due), Step::Continue);
    }
}
