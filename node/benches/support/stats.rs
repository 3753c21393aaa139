//! Percentiles and rates.

use std::time::Duration;

/// The `p`-th percentile (0..=100) of `samples` in milliseconds, nearest-rank; `None` when empty.
pub fn percentile_ms(samples: &[Duration], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted: Vec<Duration> = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index].as_secs_f64() * 1000.0)
}

/// Megabits per second for `bytes` moved in `elapsed`.
pub fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}
