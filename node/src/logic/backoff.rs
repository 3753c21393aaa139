//! The growing pause between retries: doubling from a first pause up to a ceiling.

use std::time::Duration;

/// The pause before retry number `attempts + 1`: `first` doubled `attempts` times, never
/// above `max`.
pub fn pause(first: Duration, attempts: u32, max: Duration) -> Duration {
    first.saturating_mul(1u32 << attempts.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling() {
        let (first, max) = (Duration::from_millis(500), Duration::from_secs(60));
        assert_eq!(pause(first, 0, max), first);
        assert_eq!(pause(first, 3, max), Duration::from_secs(4));
        assert_eq!(pause(first, 8, max), max);
        assert_eq!(pause(first, u32::MAX, max), max);
    }
}
