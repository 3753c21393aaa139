//! Budgets per network address for the bootstrap's services: fresh keys cost nothing, an
//! address costs something. IPv4 addresses count one by one, IPv6 ones by /64 (what one
//! host or home is usually given), peers without a direct address share one budget, and a
//! peer on an address exempt from the per-address limits (loopback, by default) has its own.

use std::collections::HashMap;

pub use crate::logic::address_key::AddressKey;

/// Most addresses a [`WindowCounter`] tracks; past that the oldest window is forgotten.
pub const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// Counts events per address in fixed windows (e.g. new names per hour).
#[derive(Debug)]
pub struct WindowCounter {
    limit: u32,
    window_ms: u64,
    windows: HashMap<AddressKey, (u64, u32)>,
}

impl WindowCounter {
    /// At most `limit` events per address in each window of `window_ms`.
    pub fn new(limit: u32, window_ms: u64) -> Self {
        Self {
            limit,
            window_ms: window_ms.max(1),
            windows: HashMap::new(),
        }
    }

    /// Whether `key` may have one more event at `now_ms`.
    pub fn allows(&self, key: AddressKey, now_ms: u64) -> bool {
        match self.windows.get(&key) {
            Some((start, count)) if now_ms < start.saturating_add(self.window_ms) => {
                *count < self.limit
            }
            _ => self.limit > 0,
        }
    }

    /// Counts one event of `key` at `now_ms`.
    pub fn count(&mut self, key: AddressKey, now_ms: u64) {
        let window_ms = self.window_ms;
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_TRACKED_ADDRESSES {
            self.windows
                .retain(|_, (start, _)| now_ms < start.saturating_add(window_ms));
            if self.windows.len() >= MAX_TRACKED_ADDRESSES {
                if let Some(oldest) = self
                    .windows
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(k, _)| *k)
                {
                    self.windows.remove(&oldest);
                }
            }
        }
        let entry = self.windows.entry(key).or_insert((now_ms, 0));
        if now_ms >= entry.0.saturating_add(window_ms) {
            *entry = (now_ms, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_allows_its_limit_and_starts_over_when_it_ends() {
        let key = AddressKey::V4([192, 0, 2, 1]);
        let other = AddressKey::V4([192, 0, 2, 2]);
        let mut counter = WindowCounter::new(2, 1_000);
        for _ in 0..2 {
            assert!(counter.allows(key, 10));
            counter.count(key, 10);
        }
        assert!(!counter.allows(key, 999));
        assert!(counter.allows(other, 999));
        assert!(counter.allows(key, 1_010));
        counter.count(key, 1_010);
        assert!(counter.allows(key, 1_010));
    }
}
