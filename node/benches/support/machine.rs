//! The machine the figures come from, its file-descriptor limit, and a process's memory.

use serde_json::{json, Value};

/// Cores, CPU model, memory and kernel, as the report shows them.
pub fn describe() -> Value {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".to_owned(), |(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_kb = field_kb(&meminfo, "MemTotal:").unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let ram_gib = ram_kb as f64 / 1024.0 / 1024.0;
    let load = load_average();
    json!({
        "cores": cores,
        "cpu": model,
        "ram_gib": (ram_gib * 10.0).round() / 10.0,
        "kernel": kernel,
        "load_average_at_start": load,
        "summary": format!("{cores} cores, {model}, {ram_gib:.1} GiB RAM, Linux {kernel}"),
    })
}

/// The 1-minute load average: other work on the machine competes with the bench for cores.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The `kB` value of a `/proc` status line starting with `key`.
pub fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field_kb(&status, "VmRSS:")
}

/// Raises the soft limit on open files towards `wanted` (never above the hard limit) and
/// reports what it was and what it is now.
pub fn raise_fd_limit(wanted: u64) -> Value {
    let before = rlimit::Resource::NOFILE.get().ok();
    let after = match rlimit::increase_nofile_limit(wanted) {
        Ok(now) => Some(now),
        Err(e) => {
            eprintln!("cannot raise the open-files limit: {e}");
            None
        }
    };
    json!({
        "wanted": wanted,
        "soft_before": before.map(|(soft, _)| soft),
        "hard": before.map(|(_, hard)| hard),
        "soft_now": after,
    })
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`.
pub fn process_cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; what follows the name starts at 3.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    std::time::Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}
