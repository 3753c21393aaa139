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

/// Raises the limit on open files to `wanted` when it is lower: the soft limit up to the
/// hard one, and the hard one too when the process may (root). Reports before and after.
pub fn raise_fd_limit(wanted: u64) -> Value {
    use rlimit::Resource;
    let before = Resource::NOFILE.get().ok();
    let mut note = String::new();
    if let Some((soft, hard)) = before {
        if soft < wanted {
            let result = if hard >= wanted {
                Resource::NOFILE.set(wanted, hard)
            } else {
                Resource::NOFILE
                    .set(wanted, wanted)
                    .or_else(|_| Resource::NOFILE.set(hard, hard))
            };
            if let Err(e) = result {
                note = format!("cannot raise the open-files limit: {e}");
                eprintln!("{note}");
            }
        }
    }
    let after = Resource::NOFILE.get().ok();
    if let Some((soft, _)) = after {
        if soft < wanted {
            eprintln!(
                "open-files limit {soft} is below the {wanted} the largest overlay may need: \
                 its nodes may fail to connect"
            );
        }
    }
    json!({
        "wanted": wanted,
        "soft_before": before.map(|(soft, _)| soft),
        "hard_before": before.map(|(_, hard)| hard),
        "soft_now": after.map(|(soft, _)| soft),
        "hard_now": after.map(|(_, hard)| hard),
        "note": note,
    })
}

/// `/proc/self/stat` and `/proc/self/status`, opened once at start: a large overlay may use
/// every file descriptor the process may have, and these must still be readable then.
struct SelfFiles {
    stat: std::fs::File,
    status: std::fs::File,
}

static SELF_FILES: std::sync::OnceLock<Option<std::sync::Mutex<SelfFiles>>> =
    std::sync::OnceLock::new();

/// Opens the files [`process_cpu`] and [`own_rss_kb`] read; call before anything else.
pub fn init() {
    clock_ticks();
    SELF_FILES.get_or_init(|| {
        let stat = std::fs::File::open("/proc/self/stat").ok()?;
        let status = std::fs::File::open("/proc/self/status").ok()?;
        Some(std::sync::Mutex::new(SelfFiles { stat, status }))
    });
}

fn read_again(file: &mut std::fs::File) -> Option<String> {
    use std::io::{Read, Seek};
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`.
pub fn process_cpu() -> Option<std::time::Duration> {
    let files = SELF_FILES.get()?.as_ref()?;
    let stat = read_again(&mut files.lock().ok()?.stat)?;
    cpu_in_stat(&stat)
}

/// Time the threads of this process have spent runnable but waiting for a core so far (the
/// second field of each `/proc/self/task/*/schedstat`): how much more CPU it would have used
/// on an idle machine with enough cores.
pub fn process_run_queue_wait() -> Option<std::time::Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(std::time::Duration::from_nanos(ns))
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_of(pid: u32) -> Option<std::time::Duration> {
    cpu_in_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn cpu_in_stat(stat: &str) -> Option<std::time::Duration> {
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; what follows the name starts at 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(std::time::Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks() as f64,
    ))
}

/// CPU time (user + system) of the children this process waited for so far (`cutime` and
/// `cstime` of `/proc/self/stat`): a program it ran, with every process that program waited
/// for.
pub fn children_cpu() -> Option<std::time::Duration> {
    let files = SELF_FILES.get()?.as_ref()?;
    let stat = read_again(&mut files.lock().ok()?.stat)?;
    ticks_in_stat(&stat, 13, 14)
}

/// CPU time of process `pid` and of the children it waited for so far.
pub fn cpu_with_children_of(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(cpu_in_stat(&stat)? + ticks_in_stat(&stat, 13, 14)?)
}

/// Whether process `pid` has live children (`/proc/<pid>/task/<pid>/children`).
pub fn has_children(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .is_ok_and(|c| !c.trim().is_empty())
}

fn ticks_in_stat(stat: &str, first: usize, second: usize) -> Option<std::time::Duration> {
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let a: u64 = fields.get(first)?.parse().ok()?;
    let b: u64 = fields.get(second)?.parse().ok()?;
    Some(std::time::Duration::from_secs_f64(
        (a + b) as f64 / clock_ticks() as f64,
    ))
}

/// CPU time used since `before` (a [`process_cpu`] reading).
pub fn cpu_since(before: Option<std::time::Duration>) -> Option<std::time::Duration> {
    Some(process_cpu()?.saturating_sub(before?))
}

/// Resident set size of this process in KiB.
pub fn own_rss_kb() -> Option<u64> {
    let files = SELF_FILES.get()?.as_ref()?;
    let status = read_again(&mut files.lock().ok()?.status)?;
    field_kb(&status, "VmRSS:")
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

/// CPU time (user + system) used so far by the live threads of this process whose name
/// starts with `prefix` (`/proc/self/task/*/comm`): one side of a transfer when each node
/// runs on a runtime of its own, with threads named after it.
pub fn threads_cpu(prefix: &str) -> std::time::Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return std::time::Duration::ZERO;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .filter_map(|task| cpu_in_stat(&std::fs::read_to_string(task.path().join("stat")).ok()?))
        .sum()
}
