//! A node host: a child process of the overlay bench that runs many real nodes in one tokio
//! runtime, takes commands as JSON lines on stdin and reports what its nodes saw as JSON
//! lines on stdout, each stamped with the wall clock (parent and hosts share one host clock).

use std::{
    collections::HashMap,
    io::Write,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ipm_node::{Client, Config, Event, GossipSettings};
use ipm_protocol::Room;
use libp2p::{identity::Keypair, Multiaddr};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::{broadcast, mpsc},
    task::JoinHandle,
};

use super::machine;

/// Set in the environment of a child that is to act as a node host.
pub const HOST_ENV: &str = "IPM_BENCH_OVERLAY_HOST";

/// Set to a host's number (1 for the first node host, 0 for the bootstrap's): that host logs
/// to stderr what `RUST_LOG` asks for.
pub const LOG_HOST_ENV: &str = "IPM_BENCH_OVERLAY_LOG_HOST";

/// Set to `<node index>:<file>`: each time the parent asks for stats, the host holding that
/// node writes the node's Prometheus metrics to the file (the last write is the run's end).
pub const METRICS_ENV: &str = "IPM_BENCH_OVERLAY_METRICS";

/// Longest a node may take to start listening.
const START_WAIT: Duration = Duration::from_secs(30);

/// What the parent asks of a host.
#[derive(Debug, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
enum Command {
    /// Start node `index` listening on `listen`, knowing only `bootstrap` (none: it is the
    /// bootstrap, with the bootstrap's real settings).
    Start {
        index: usize,
        listen: String,
        bootstrap: Option<String>,
    },
    /// Node `index` sends lobby line number `seq`, with the wall clock in its text.
    Publish { index: usize, seq: u64 },
    /// Node `index` leaves (shuts down as `ipm` does on quit).
    Stop { index: usize },
    /// Report connections and lobby members of every node, CPU and RSS of the process.
    Stats,
    /// Stop everything and exit.
    Exit,
}

/// Microseconds since the epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The lobby line of message `seq` sent at `at_us`.
pub fn message_text(seq: u64, at_us: u64) -> String {
    format!("ovl {seq} {at_us}")
}

/// Message number and send time out of a lobby line of this bench.
pub fn parse_text(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.strip_prefix("ovl ")?.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

struct Hosted {
    client: Client,
    task: JoinHandle<()>,
    recorder: JoinHandle<()>,
}

/// Runs the host until the parent says `exit` or closes stdin; never returns.
pub fn run() -> ! {
    machine::init();
    let me = std::env::var(HOST_ENV).unwrap_or_default();
    if std::env::var(LOG_HOST_ENV).is_ok_and(|h| h.trim() == me.trim()) {
        ipm_node::logging::init("info");
    }
    let _ = machine::raise_fd_limit(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(serve());
    runtime.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(0)
}

async fn serve() {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
    let writer = std::thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        while let Some(line) = out_rx.blocking_recv() {
            if writeln!(lock, "{line}").is_err() {
                return;
            }
            // Flush only when nothing else is waiting, so bursts go out in one write.
            if out_rx.is_empty() && lock.flush().is_err() {
                return;
            }
        }
    });
    let mut nodes: HashMap<usize, Hosted> = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    // Nodes start in tasks of their own, so that joins go at the parent's pace and a slow
    // start holds up no other command; each hands its node back here.
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<(usize, Hosted)>();
    loop {
        let line = tokio::select! {
            Some((index, hosted)) = started_rx.recv() => {
                nodes.insert(index, hosted);
                continue;
            }
            line = lines.next_line() => match line {
                Ok(Some(line)) => line,
                _ => break,
            },
        };
        let command: Command = match serde_json::from_str(&line) {
            Ok(c) => c,
            Err(e) => {
                let _ = out_tx.send(json!({"ev": "error", "error": e.to_string()}));
                continue;
            }
        };
        match command {
            Command::Start {
                index,
                listen,
                bootstrap,
            } => {
                let out = out_tx.clone();
                let started = started_tx.clone();
                tokio::spawn(async move {
                    match start(index, &listen, bootstrap.as_deref(), out.clone()).await {
                        Ok((hosted, addr)) => {
                            let _ = started.send((index, hosted));
                            let _ = out.send(json!({
                                "ev": "started", "index": index, "addr": addr.to_string(),
                                "at_us": now_us(),
                            }));
                        }
                        Err(error) => {
                            let _ = out.send(json!({
                                "ev": "start_failed", "index": index, "error": error,
                            }));
                        }
                    }
                });
            }
            Command::Publish { index, seq } => {
                let Some(node) = nodes.get(&index) else {
                    continue;
                };
                let client = node.client.clone();
                let out = out_tx.clone();
                tokio::spawn(async move {
                    let at_us = now_us();
                    let result = client.publish(Room::Lobby, message_text(seq, at_us)).await;
                    let _ = out.send(json!({
                        "ev": "published", "index": index, "seq": seq, "at_us": at_us,
                        "ok": result.is_ok(),
                        "error": result.err().map(|e| e.to_string()),
                    }));
                });
            }
            Command::Stop { index } => {
                if let Some(node) = nodes.remove(&index) {
                    let out = out_tx.clone();
                    tokio::spawn(async move {
                        node.client.shutdown().await;
                        let _ = tokio::time::timeout(Duration::from_secs(5), node.task).await;
                        node.recorder.abort();
                        let _ = out.send(json!({"ev": "stopped", "index": index}));
                    });
                }
            }
            Command::Stats => {
                let clients: Vec<(usize, Client)> =
                    nodes.iter().map(|(i, n)| (*i, n.client.clone())).collect();
                let out = out_tx.clone();
                tokio::spawn(async move {
                    let asked = clients.into_iter().map(|(index, client)| async move {
                        write_metrics_if_asked(index, &client);
                        let metrics = ipm_node::net::metrics::render(&client.metrics());
                        let status = client.status().await.ok()?;
                        let connections: usize = status.peers.iter().map(|p| p.addrs.len()).sum();
                        let lobby = status
                            .rooms
                            .iter()
                            .find(|r| r.room == Room::Lobby)
                            .map_or(0, |r| r.members.len());
                        Some(json!({
                            "index": index, "peers": status.peers.len(),
                            "connections": connections, "lobby": lobby,
                            "kad": kad_queries(&metrics),
                            "gossip": lobby_gossip(&metrics),
                        }))
                    });
                    let per_node: Vec<Value> = futures::future::join_all(asked)
                        .await
                        .into_iter()
                        .flatten()
                        .collect();
                    let _ = out.send(json!({
                        "ev": "stats", "nodes": per_node,
                        "cpu_s": machine::process_cpu().map(|c| c.as_secs_f64()),
                        "wait_s": machine::process_run_queue_wait().map(|c| c.as_secs_f64()),
                        "rss_kb": machine::own_rss_kb(),
                        "fds": std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count()),
                    }));
                });
            }
            Command::Exit => break,
        }
    }
    while let Ok((index, hosted)) = started_rx.try_recv() {
        nodes.insert(index, hosted);
    }
    let stopping = nodes.into_values().map(|node| async move {
        node.client.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(3), node.task).await;
        node.recorder.abort();
    });
    futures::future::join_all(stopping).await;
    drop(out_tx);
    let _ = writer.join();
}

/// Writes the metrics of node `index` where [`METRICS_ENV`] asks for them.
fn write_metrics_if_asked(index: usize, client: &Client) {
    let Ok(asked) = std::env::var(METRICS_ENV) else {
        return;
    };
    let Some((node, path)) = asked.split_once(':') else {
        return;
    };
    if node.trim().parse() == Ok(index) {
        let text = ipm_node::net::metrics::render(&client.metrics());
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("cannot write the metrics of node {index} to {path}: {e}");
        }
    }
}

/// The node's gossipsub figures of the lobby so far, from its metrics `text`: `duplicates`
/// (copies of lines received after the first, each decoded and its signature checked) and
/// `mesh` (peers in its lobby mesh now).
pub fn lobby_gossip(text: &str) -> Value {
    let lobby = format!("=\"{}\"", Room::Lobby.topic());
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with('{'))
            .filter(|line| line.contains(&lobby))
            .filter_map(|line| line.rsplit(' ').next()?.trim().parse::<f64>().ok())
            .sum()
    };
    json!({
        "duplicates": sum("ipm_gossipsub_topic_msg_recv_counts_unfiltered_total")
            - sum("ipm_gossipsub_topic_msg_recv_counts_total"),
        "mesh": sum("ipm_gossipsub_mesh_peer_counts"),
    })
}

/// The node's Kademlia queries so far, by type (`GetRecord`, `GetClosestPeers`, ...): for
/// each, `[progress events, requests sent]`, read from its metrics
/// (`ipm_libp2p_kad_query_result_num_requests`, observed on each progress event with the
/// requests of that step: a bootstrap reports once per bucket it refreshes, each step with
/// its own requests; a record lookup reports each record found with its requests so far).
fn kad_queries(text: &str) -> Value {
    let mut by_type = serde_json::Map::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("ipm_libp2p_kad_query_result_num_requests_") else {
            continue;
        };
        let (slot, rest) = match rest.split_once("{type=\"") {
            Some(("count", rest)) => (0, rest),
            Some(("sum", rest)) => (1, rest),
            _ => continue,
        };
        let Some((kind, value)) = rest.split_once("\"}") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let entry = by_type
            .entry(kind.to_owned())
            .or_insert_with(|| json!([0.0, 0.0]));
        entry[slot] = json!(value);
    }
    Value::Object(by_type)
}

/// The settings `ipm` runs a node with, but for those `IPM_BENCH_OVERLAY_TARGET_PEERS`,
/// `IPM_BENCH_OVERLAY_MAX_PEERS`, `IPM_BENCH_OVERLAY_PEER_BURST` and
/// `IPM_BENCH_OVERLAY_DISCOVERY_S` set (the low and high watermarks, the burst above the high
/// one and the least time between two DHT walks) and those of [`gossip_overrides`], for
/// experiments; unset by default.
pub fn node_config(index: usize) -> Config {
    let mut config = Config::node(format!("n{index}"));
    let var = number_var;
    if let Some(low) = var("IPM_BENCH_OVERLAY_TARGET_PEERS") {
        config.target_peers = low as usize;
    }
    if let Some(high) = var("IPM_BENCH_OVERLAY_MAX_PEERS") {
        config.max_peers = high as usize;
    }
    if let Some(burst) = var("IPM_BENCH_OVERLAY_PEER_BURST") {
        config.peer_burst = burst as usize;
    }
    if let Some(secs) = var("IPM_BENCH_OVERLAY_DISCOVERY_S") {
        config.discovery_interval = Duration::from_secs(secs.max(1));
    }
    gossip_overrides(&mut config.gossip);
    config
}

/// The variables [`gossip_overrides`] reads.
pub const GOSSIP_VARS: [&str; 3] = [
    "IPM_BENCH_OVERLAY_MESH",
    "IPM_BENCH_OVERLAY_FLOOD_PUBLISH",
    "IPM_BENCH_OVERLAY_IDONTWANT_MIN",
];

/// Changes `gossip` where `IPM_BENCH_OVERLAY_MESH` (`low,n,high`),
/// `IPM_BENCH_OVERLAY_FLOOD_PUBLISH` (0 or 1) or `IPM_BENCH_OVERLAY_IDONTWANT_MIN` (bytes) are
/// set, for experiments with the overlay's and the fan-out's nodes.
pub fn gossip_overrides(gossip: &mut GossipSettings) {
    let var = number_var;
    if let Some([low, n, high]) = std::env::var(GOSSIP_VARS[0]).ok().and_then(|v| {
        let sizes: Vec<usize> = v.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        <[usize; 3]>::try_from(sizes).ok()
    }) {
        gossip.mesh_low = low;
        gossip.mesh = n;
        gossip.mesh_high = high;
    }
    if let Some(flood) = var(GOSSIP_VARS[1]) {
        gossip.flood_publish = flood != 0;
    }
    if let Some(bytes) = var(GOSSIP_VARS[2]) {
        gossip.idontwant_min_bytes = bytes as usize;
    }
}

/// The number in the environment variable `name`, when it is set to one.
fn number_var(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// `NAME=value` of each of `vars` that is set.
pub fn settings_changed(vars: &[&str]) -> Vec<String> {
    vars.iter()
        .filter_map(|k| Some(format!("{k}={}", std::env::var(k).ok()?)))
        .collect()
}

/// The bootstrap's own settings (`Config::bootstrap`), listening on `listen`. Every node of
/// the bench dials from 127.1.255.253; that is a loopback address, which the bootstrap's
/// per-address limits and budgets leave out by default (`AddressLimits::loopback_exempt`),
/// so each node counts as if it came from an address of its own.
pub fn bootstrap_config(listen: Multiaddr) -> Config {
    Config {
        listen: vec![listen],
        ..Config::bootstrap()
    }
}

async fn start(
    index: usize,
    listen: &str,
    bootstrap: Option<&str>,
    out: mpsc::UnboundedSender<Value>,
) -> Result<(Hosted, Multiaddr), String> {
    let listen: Multiaddr = listen.parse().map_err(|e| format!("{e}"))?;
    let config = match bootstrap {
        Some(boot) => Config {
            listen: vec![listen],
            mdns: false,
            bootstrap: vec![boot.parse().map_err(|e| format!("{e}"))?],
            ..node_config(index)
        },
        None => bootstrap_config(listen),
    };
    let (client, event_loop) =
        ipm_node::start(Keypair::generate_ed25519(), config).map_err(|e| e.to_string())?;
    let mut events = client.events();
    let task = tokio::spawn(event_loop.run());
    let addr = tokio::time::timeout(START_WAIT, async {
        loop {
            match events.recv().await {
                Ok(Event::Listening { addr }) => return Some(addr),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| "did not start listening".to_owned())?;
    if let Some(boot) = bootstrap.and_then(|b| b.parse::<Multiaddr>().ok()) {
        // As `ipm --bootstrap` does; the answer says whether the link works.
        let client = client.clone();
        let out = out.clone();
        tokio::spawn(async move {
            if let Err(e) = client.dial_within(boot, Duration::from_secs(30)).await {
                let _ =
                    out.send(json!({"ev": "dial_failed", "index": index, "error": e.to_string()}));
            }
        });
    }
    let recorder = tokio::spawn(record(index, events, out));
    Ok((
        Hosted {
            client,
            task,
            recorder,
        },
        addr,
    ))
}

/// Forwards the lobby lines node `index` reports, stamped on arrival.
async fn record(
    index: usize,
    mut events: broadcast::Receiver<Event>,
    out: mpsc::UnboundedSender<Value>,
) {
    loop {
        match events.recv().await {
            Ok(Event::Message { text, .. }) => {
                let at_us = now_us();
                if let Some((seq, _)) = parse_text(&text) {
                    let _ =
                        out.send(json!({"ev": "msg", "index": index, "seq": seq, "at_us": at_us}));
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let _ = out.send(json!({"ev": "lagged", "index": index, "missed": n}));
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
