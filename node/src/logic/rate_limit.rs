//! Spam control: token buckets per peer (room messages, requests) and the decaying penalty
//! that feeds gossipsub's application score. Pure state with an explicit clock, so tests
//! drive it without sockets or sleeps.

use std::{
    collections::HashMap,
    hash::Hash,
    time::{Duration, Instant},
};

/// One token bucket: `tokens` left, refilled since `updated`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket for each key (a peer, or a peer and a protocol), at most `max_keys` of
/// them; the idlest bucket is forgotten to make room (it would be full again anyway soon).
#[derive(Debug)]
pub struct TokenBuckets<K> {
    burst: f64,
    per_sec: f64,
    max_keys: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Clone> TokenBuckets<K> {
    /// Buckets holding `burst` tokens, refilled at `per_sec` tokens a second, for at most
    /// `max_keys` keys.
    pub fn new(burst: u32, per_sec: u32, max_keys: usize) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_sec: f64::from(per_sec),
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one token from `key`'s bucket at time `now`; false when the bucket is empty
    /// (the caller refuses the message or request).
    pub fn allow(&mut self, key: &K, now: Instant) -> bool {
        if !self.buckets.contains_key(key) && self.buckets.len() >= self.max_keys {
            self.evict_idlest();
        }
        let (burst, per_sec) = (self.burst, self.per_sec);
        let bucket = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn evict_idlest(&mut self) {
        let idlest = self
            .buckets
            .iter()
            .min_by_key(|(_, b)| b.updated)
            .map(|(k, _)| k.clone());
        if let Some(key) = idlest {
            self.buckets.remove(&key);
        }
    }
}

/// A penalty per peer that halves every `half_life`, for at most `max_keys` peers (the
/// smallest penalty is forgotten to make room).
#[derive(Debug)]
pub struct Penalties<K> {
    half_life: Duration,
    max_keys: usize,
    scores: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq + Clone> Penalties<K> {
    /// Penalties halving every `half_life`, for at most `max_keys` peers.
    pub fn new(half_life: Duration, max_keys: usize) -> Self {
        Self {
            half_life: half_life.max(Duration::from_millis(1)),
            max_keys: max_keys.max(1),
            scores: HashMap::new(),
        }
    }

    /// Adds `amount` to `key`'s penalty at `now`; returns the new (decayed) total.
    pub fn add(&mut self, key: &K, amount: f64, now: Instant) -> f64 {
        if !self.scores.contains_key(key) && self.scores.len() >= self.max_keys {
            let smallest = self
                .scores
                .iter()
                .map(|(k, (v, at))| (k, self.decayed(*v, *at, now)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k.clone());
            if let Some(k) = smallest {
                self.scores.remove(&k);
            }
        }
        let current = self.get(key, now);
        let total = current + amount;
        self.scores.insert(key.clone(), (total, now));
        total
    }

    /// `key`'s penalty at `now` (0 for an unknown peer).
    pub fn get(&self, key: &K, now: Instant) -> f64 {
        self.scores
            .get(key)
            .map_or(0.0, |(v, at)| self.decayed(*v, *at, now))
    }

    /// How many peers carry a penalty.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether no peer carries a penalty.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    fn decayed(&self, value: f64, at: Instant, now: Instant) -> f64 {
        let halvings =
            now.saturating_duration_since(at).as_secs_f64() / self.half_life.as_secs_f64();
        value * 0.5f64.powf(halvings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut buckets = TokenBuckets::new(3, 2, 16);
        let t0 = Instant::now();
        assert!((0..3).all(|_| buckets.allow(&"a", t0)));
        assert!(!buckets.allow(&"a", t0), "the burst is spent");
        // Half a second later one token (2 per second) is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(buckets.allow(&"a", t1));
        assert!(!buckets.allow(&"a", t1));
        // Another peer has its own bucket.
        assert!(buckets.allow(&"b", t1));
    }

    #[test]
    fn a_bucket_never_holds_more_than_the_burst() {
        let mut buckets = TokenBuckets::new(2, 100, 16);
        let t0 = Instant::now();
        assert!(buckets.allow(&1, t0));
        let later = t0 + Duration::from_secs(3600);
        assert!(buckets.allow(&1, later) && buckets.allow(&1, later));
        assert!(!buckets.allow(&1, later));
    }

    #[test]
    fn tracked_peers_are_bounded_and_the_idlest_goes_first() {
        let mut buckets = TokenBuckets::new(1, 0, 3);
        let t0 = Instant::now();
        for (i, key) in [1, 2, 3].iter().enumerate() {
            assert!(buckets.allow(key, t0 + Duration::from_secs(i as u64)));
        }
        // Key 1 is the idlest: a fourth key pushes it out, the others keep their empty buckets.
        assert!(buckets.allow(&4, t0 + Duration::from_secs(10)));
        assert_eq!(buckets.len(), 3);
        assert!(!buckets.allow(&3, t0 + Duration::from_secs(11)));
        for key in 100..10_000 {
            buckets.allow(&key, t0 + Duration::from_secs(20));
        }
        assert_eq!(buckets.len(), 3);
    }

    #[test]
    fn penalties_add_up_and_halve_every_half_life() {
        let mut penalties = Penalties::new(Duration::from_secs(60), 16);
        let t0 = Instant::now();
        assert_eq!(penalties.add(&"spammer", 10.0, t0), 10.0);
        assert_eq!(penalties.add(&"spammer", 10.0, t0), 20.0);
        let later = penalties.get(&"spammer", t0 + Duration::from_secs(60));
        assert!((later - 10.0).abs() < 1e-9, "{later}");
        assert_eq!(penalties.get(&"honest", t0), 0.0);
    }

    #[test]
    fn penalised_peers_are_bounded_and_the_smallest_penalty_goes_first() {
        let mut penalties = Penalties::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        penalties.add(&1, 100.0, t0);
        penalties.add(&2, 1.0, t0);
        penalties.add(&3, 50.0, t0);
        assert_eq!(penalties.len(), 2);
        assert_eq!(penalties.get(&2, t0), 0.0);
        assert_eq!(penalties.get(&1, t0), 100.0);
    }
}
