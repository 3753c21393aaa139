//! What a run measures, from `IPM_BENCH_*` environment variables.

use std::time::Duration;

use serde_json::{json, Value};

/// One part of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// File transfer next to raw TCP and scp.
    Files,
    /// Lobby fan-out latency.
    Fanout,
    /// Private-message round trip and first contact.
    Direct,
    /// Resident memory of the `ipm` binary.
    Memory,
    /// Hundreds of nodes over delayed links in several processes (only when asked for).
    Overlay,
}

impl Section {
    fn parse(name: &str) -> Option<Section> {
        match name.trim() {
            "file" | "files" | "file_transfer" => Some(Section::Files),
            "fanout" => Some(Section::Fanout),
            "direct" => Some(Section::Direct),
            "memory" => Some(Section::Memory),
            "overlay" => Some(Section::Overlay),
            _ => None,
        }
    }
}

/// Every knob of a run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `IPM_BENCH_ONLY`: comma-separated sections (`file,fanout,direct,memory,overlay`); all
    /// but `overlay` by default.
    pub only: Vec<Section>,
    /// `IPM_BENCH_FILE_MB`: size of the transferred file in MiB (default 1024).
    pub file_mb: u64,
    /// `IPM_BENCH_FILE_METHODS`: which copies run (`raw,tcp,tcp_two,tcp_v1,quic,quic_v1,scp`,
    /// all by default; `_v1` is the chunk protocol of the previous release, `tcp_two` a `/get`
    /// of a file two members share); a subset is handy under a profiler.
    pub file_methods: Vec<String>,
    /// `IPM_BENCH_FILE_MEDIA`: where the files live (`ram,disk` by default; `ram` is used only
    /// when /dev/shm is a tmpfs).
    pub file_media: Vec<String>,
    /// `IPM_BENCH_FANOUT_NODES`: overlay sizes (default `10,50,200`).
    pub fanout_nodes: Vec<usize>,
    /// `IPM_BENCH_MESSAGES`: lobby messages per overlay (default 100).
    pub messages: usize,
    /// `IPM_BENCH_MESSAGE_GAP_MS`: pause between two lobby messages (default 250 ms: four a
    /// second, a busy room).
    pub message_gap: Duration,
    /// `IPM_BENCH_IDLE_S`: how long each overlay is watched idle, before any message, for
    /// `idle_cpu_cores` (default 3; longer to attach a profiler).
    pub idle: Duration,
    /// `IPM_BENCH_DIRECT_MESSAGES`: private messages for the round trip (default 200).
    pub direct_messages: usize,
    /// `IPM_BENCH_FIRST_CONTACTS`: first contacts measured (default 40).
    pub first_contacts: usize,
    /// `IPM_BENCH_DIRECT_NODES`: overlay size for the private-message figures (default 50).
    pub direct_nodes: usize,
    /// `IPM_BENCH_IPM_BIN`: the `ipm` binary for the memory figures (default: the one cargo
    /// built for this bench).
    pub ipm_bin: std::path::PathBuf,
}

/// The number in `name`, else `default` (a value that is not a number is reported and
/// ignored).
pub fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("ignoring {name}={v}: not a number");
            default
        }),
        Err(_) => default,
    }
}

/// The overlay sizes listed in `name` (`10,50,200`; sizes below 2 left out), `None` when
/// it is not set.
pub fn sizes_var(name: &str) -> Option<Vec<usize>> {
    std::env::var(name).ok().map(|v| {
        v.split(',')
            .filter_map(|n| n.trim().parse().ok())
            .filter(|n| *n >= 2)
            .collect()
    })
}

impl Settings {
    /// Reads the environment.
    pub fn from_env() -> Self {
        let only = std::env::var("IPM_BENCH_ONLY")
            .map(|v| v.split(',').filter_map(Section::parse).collect())
            .unwrap_or_default();
        let fanout_nodes = sizes_var("IPM_BENCH_FANOUT_NODES")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec![10, 50, 200]);
        let ipm_bin = std::env::var_os("IPM_BENCH_IPM_BIN")
            .map(Into::into)
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_ipm").into());
        let list = |name: &str, default: &str| -> Vec<String> {
            std::env::var(name)
                .unwrap_or_else(|_| default.to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Self {
            only,
            file_methods: list(
                "IPM_BENCH_FILE_METHODS",
                "raw,tcp,tcp_two,tcp_v1,quic,quic_v1,scp",
            ),
            file_media: list("IPM_BENCH_FILE_MEDIA", "ram,disk"),
            file_mb: var("IPM_BENCH_FILE_MB", 1024u64).max(1),
            fanout_nodes,
            messages: var("IPM_BENCH_MESSAGES", 100usize).max(1),
            message_gap: Duration::from_millis(var("IPM_BENCH_MESSAGE_GAP_MS", 250u64)),
            idle: Duration::from_secs(var("IPM_BENCH_IDLE_S", 3u64).max(1)),
            direct_messages: var("IPM_BENCH_DIRECT_MESSAGES", 200usize).max(1),
            first_contacts: var("IPM_BENCH_FIRST_CONTACTS", 40usize).max(1),
            direct_nodes: var("IPM_BENCH_DIRECT_NODES", 50usize).max(3),
            ipm_bin,
        }
    }

    /// Whether `section` is part of this run.
    pub fn runs(&self, section: Section) -> bool {
        self.only.contains(&section) || (self.only.is_empty() && section != Section::Overlay)
    }

    /// File descriptors the largest overlay may need. In one process each connection holds
    /// one descriptor per end, and a node may hold up to 256 connections (`max_connections`);
    /// a 200-node overlay was seen to use about 86 per node, over 17 000 descriptors.
    pub fn fd_limit_wanted(&self) -> u64 {
        let largest = self
            .fanout_nodes
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(100);
        largest as u64 * 256 + 1024
    }

    /// One line per knob, for the top of the output.
    pub fn describe(&self) -> String {
        format!(
            "file {} MiB; fan-out over {:?} nodes, {} messages {} ms apart; {} private messages, \
             {} first contacts in a {}-node overlay",
            self.file_mb,
            self.fanout_nodes,
            self.messages,
            self.message_gap.as_millis(),
            self.direct_messages,
            self.first_contacts,
            self.direct_nodes,
        )
    }

    /// Whether the file copy `method` (`raw`, `tcp`, `quic`, `scp`) runs.
    pub fn copies(&self, method: &str) -> bool {
        self.file_methods.iter().any(|m| m == method)
    }

    /// The knobs, for the JSON report.
    pub fn to_json(&self) -> Value {
        json!({
            "file_mb": self.file_mb,
            "fanout_nodes": self.fanout_nodes,
            "messages": self.messages,
            "message_gap_ms": self.message_gap.as_millis() as u64,
            "direct_messages": self.direct_messages,
            "first_contacts": self.first_contacts,
            "direct_nodes": self.direct_nodes,
            "chunk_len_bytes": ipm_node::net::download::CHUNK_LEN,
            "chunks_in_flight": ipm_node::net::download::IN_FLIGHT,
        })
    }
}
