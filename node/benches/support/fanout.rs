//! Lobby fan-out: an overlay of N nodes that only know a bootstrap, and messages from random
//! publishers, timed from publish to each node's report with the one clock of this process.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use ipm_node::Config;
use ipm_protocol::Room;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

use super::{
    direct, machine,
    nodes::{self, bootstrap_config, loopback_tcp, user_config, Node},
    report::{opt, round},
    settings::{Section, Settings},
    stats::percentile_ms,
};

/// Nodes started at once: the bootstrap accepts at most 64 pending connections.
const START_BATCH: usize = 10;
/// Longest the overlay may take to form before measuring starts anyway.
const READY_WAIT: Duration = Duration::from_secs(60);
/// Longest the overlay may take to close its surplus connections.
const STEADY_WAIT: Duration = Duration::from_secs(120);
/// How long no connection may close for the overlay to count as steady.
const QUIET: Duration = Duration::from_secs(5);
/// Below this many busy cores the process counts as idle after the start-up storm.
const QUIET_CORES: f64 = 0.5;
/// Over how long the CPU use is averaged when waiting for the storm to pass.
const CPU_WINDOW: Duration = Duration::from_secs(2);
/// A delivery slower than this counts as late in the spread report.
const LATE: Duration = Duration::from_millis(100);
/// How long stragglers are waited for after the last message.
const DRAIN: Duration = Duration::from_secs(15);

/// A bootstrap and user nodes that were only told the bootstrap's address.
pub struct Overlay {
    /// The bootstrap.
    pub bootstrap: Node,
    /// The user nodes.
    pub nodes: Vec<Node>,
    /// Description of how the overlay formed, for the report.
    pub shape: Value,
    /// CPU cores this process keeps busy while the overlay is idle.
    pub idle_cores: Option<f64>,
}

impl Overlay {
    /// Starts a bootstrap and `n` nodes with the real `ipm` settings; each node dials only
    /// the bootstrap, like `ipm --bootstrap`, and finds the others through the DHT.
    pub async fn build(n: usize, idle: Duration) -> Overlay {
        let started = Instant::now();
        let cpu_at_start = machine::process_cpu();
        let max_connections = connection_cap(n);
        let bootstrap = nodes::spawn(bootstrap_config()).await;
        let mut all: Vec<Node> = Vec::with_capacity(n);
        let indexes: Vec<usize> = (0..n).collect();
        for batch in indexes.chunks(START_BATCH) {
            let spawned = futures::future::join_all(batch.iter().map(|i| {
                let config = Config {
                    bootstrap: vec![bootstrap.addr.clone()],
                    max_connections,
                    ..user_config(&format!("n{i}"), loopback_tcp())
                };
                let boot = bootstrap.addr.clone();
                async move {
                    let node = nodes::spawn(config).await;
                    // On a loaded machine a handshake can take longer than one try allows;
                    // the node also dials its bootstrap by itself, so a failure is reported
                    // and the node kept.
                    for attempt in 1..=3 {
                        match node
                            .client
                            .dial_within(boot.clone(), Duration::from_secs(20))
                            .await
                        {
                            Ok(_) => break,
                            Err(e) if attempt == 3 => {
                                eprintln!("  a node cannot reach the bootstrap: {e}")
                            }
                            Err(_) => {}
                        }
                    }
                    node
                }
            }))
            .await;
            all.extend(spawned);
        }
        let started_all = started.elapsed();
        let started_at = Instant::now();

        // Ready: every node sees some room peers (all of them in a small overlay).
        let want = n.min(4);
        let deadline = Instant::now() + READY_WAIT;
        let ready = loop {
            let counts = lobby_members(&all).await;
            if counts.iter().all(|c| *c >= want) {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let ready_after = started.elapsed();
        let steady = steady(&all, started_at + Config::node("").peer_grace).await;
        let steady_after = started.elapsed();
        // Every node started within a second: their DHT bootstraps, name claims and first
        // gossip make a start-up storm that a real overlay, where people start one by one,
        // never sees. Measured on its own, and waited out before the idle figure.
        let quiet = cpu_quiet().await;
        let quiet_after = started.elapsed();
        let start_cpu = machine::cpu_since(cpu_at_start).map(|cpu| cpu.as_secs_f64());
        // What the idle overlay costs: the CPU of this process while nothing is sent.
        let cpu_before = machine::process_cpu();
        tokio::time::sleep(idle).await;
        let idle_cores =
            machine::cpu_since(cpu_before).map(|cpu| cpu.as_secs_f64() / idle.as_secs_f64());

        let mut peers = Vec::with_capacity(n);
        for node in &all {
            peers.push(node.client.status().await.map_or(0, |s| s.peers.len()));
        }
        let bootstrap_peers = bootstrap.client.status().await.map_or(0, |s| s.peers.len());
        let members = lobby_members(&all).await;
        let shape = json!({
            "max_connections_per_node": max_connections,
            "started_s": round(started_all.as_secs_f64(), 1),
            "ready": ready,
            "ready_s": round(ready_after.as_secs_f64(), 1),
            "steady": steady,
            "steady_s": round(steady_after.as_secs_f64(), 1),
            "quiet": quiet,
            "quiet_s": round(quiet_after.as_secs_f64(), 1),
            "start_cpu_s": opt(start_cpu, 1),
            "peers_avg": round(peers.iter().sum::<usize>() as f64 / n as f64, 1),
            "peers_min": peers.iter().min(),
            "peers_max": peers.iter().max(),
            "lobby_members_min": members.iter().min(),
            "nodes_with_fewer_than_4_lobby_peers": members.iter().filter(|m| **m < 4).count(),
            "idle_cpu_cores": opt(idle_cores, 2),
            "bootstrap_peers": bootstrap_peers,
            "open_fds": std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count()),
            "rss_mb": machine::own_rss_kb().map(|kb| kb / 1024),
        });
        Overlay {
            bootstrap,
            nodes: all,
            shape,
            idle_cores,
        }
    }

    /// Stops every node.
    pub async fn stop(self) {
        let mut all = self.nodes;
        all.push(self.bootstrap);
        nodes::stop_all(all).await;
    }
}

/// Waits until the nodes stop closing surplus connections (none closed for [`QUIET`] once
/// `not_before` passed), so that the figures describe an overlay in its steady state; false
/// if it never settled.
async fn steady(nodes: &[Node], not_before: Instant) -> bool {
    let deadline = Instant::now() + STEADY_WAIT;
    let mut last = churn(nodes).1;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let closed = churn(nodes).1;
        if closed != last {
            last = closed;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= QUIET && Instant::now() >= not_before {
            return true;
        }
    }
    false
}

/// Waits until this process uses less than [`QUIET_CORES`] over a [`CPU_WINDOW`] (at most
/// [`STEADY_WAIT`]); returns whether it did.
async fn cpu_quiet() -> bool {
    let deadline = Instant::now() + STEADY_WAIT;
    loop {
        let before = machine::process_cpu();
        tokio::time::sleep(CPU_WINDOW).await;
        let Some(used) = machine::cpu_since(before) else {
            return false;
        };
        if used.as_secs_f64() / CPU_WINDOW.as_secs_f64() < QUIET_CORES {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// Lobby copies received after the first, summed over the nodes (gossipsub's metrics).
fn duplicate_copies(nodes: &[Node]) -> f64 {
    nodes
        .iter()
        .map(|node| {
            let metrics = ipm_node::net::metrics::render(&node.client.metrics());
            super::host::lobby_gossip(&metrics)["duplicates"]
                .as_f64()
                .unwrap_or(0.0)
        })
        .sum()
}

/// Connections opened and closed so far, over all nodes.
fn churn(nodes: &[Node]) -> (u64, u64) {
    nodes.iter().fold((0, 0), |(c, d), node| {
        let log = node.log.lock().unwrap();
        (c + log.connects, d + log.disconnects)
    })
}

/// The real `max_connections` of a node, lowered only when `n` nodes holding that many
/// connections could exhaust this process's file descriptors (each in-process connection
/// uses one per end; some are kept for listeners, files and dials in progress).
fn connection_cap(n: usize) -> u32 {
    let real = Config::node("").max_connections;
    let Ok((soft, _)) = rlimit::Resource::NOFILE.get() else {
        return real;
    };
    let spare = soft.saturating_sub(3000 + 2 * n as u64) / n.max(1) as u64;
    let cap = u32::try_from(spare).unwrap_or(u32::MAX).clamp(16, real);
    if cap < real {
        println!(
            "  {n:>4} nodes: max_connections lowered from {real} to {cap} per node to stay \
             within {soft} open files"
        );
    }
    cap
}

async fn lobby_members(nodes: &[Node]) -> Vec<usize> {
    let mut counts = Vec::with_capacity(nodes.len());
    for node in nodes {
        let count = node.client.status().await.map_or(0, |s| {
            s.rooms
                .iter()
                .find(|r| r.room == Room::Lobby)
                .map_or(0, |r| r.members.len())
        });
        counts.push(count);
    }
    counts
}

/// Publishes `settings.messages` lobby lines from random nodes and reports delivery, latency
/// and duplicates.
pub async fn measure(overlay: &Overlay, settings: &Settings) -> Value {
    let n = overlay.nodes.len();
    for node in &overlay.nodes {
        node.log.lock().unwrap().messages.clear();
    }
    let mut rng = StdRng::seed_from_u64(n as u64);
    let mut sent: Vec<(String, usize, Instant)> = Vec::with_capacity(settings.messages);
    let mut publish_errors = 0usize;
    let mut ticker = tokio::time::interval(settings.message_gap.max(Duration::from_millis(1)));
    let copies_before = duplicate_copies(&overlay.nodes);
    let cpu_before = machine::process_cpu();
    let publishing = Instant::now();
    let churn_before = churn(&overlay.nodes);
    for m in 0..settings.messages {
        ticker.tick().await;
        let publisher = rng.gen_range(0..n);
        let text = format!("bench {n} {m}");
        let at = Instant::now();
        match overlay.nodes[publisher]
            .client
            .publish(Room::Lobby, text.clone())
            .await
        {
            Ok(_) => sent.push((text, publisher, at)),
            Err(e) => {
                publish_errors += 1;
                eprintln!("publish failed: {e}");
            }
        }
    }

    // Wait until every node has every message it should, or the drain time is over.
    let expected = sent.len() * (n - 1);
    let deadline = Instant::now() + DRAIN;
    loop {
        let got: usize = overlay
            .nodes
            .iter()
            .map(|node| node.log.lock().unwrap().messages.len())
            .sum();
        if got >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let busy = machine::cpu_since(cpu_before);
    let window = publishing.elapsed();
    let churn_after = churn(&overlay.nodes);
    let copies = duplicate_copies(&overlay.nodes) - copies_before;

    // Per message, the latency of each of its deliveries; per node, its late deliveries.
    let mut by_message: Vec<Vec<Duration>> = vec![Vec::new(); sent.len()];
    let mut late_by_node = vec![0usize; n];
    let mut duplicates = 0usize;
    let mut lagged = 0u64;
    for (index, node) in overlay.nodes.iter().enumerate() {
        let log = node.log.lock().unwrap();
        lagged += log.lagged;
        // Each text is unique to one message (one id): a second report of it is a duplicate.
        let mut first: HashMap<&str, Instant> = HashMap::new();
        for (text, at) in &log.messages {
            if first.insert(text.as_str(), *at).is_some() {
                duplicates += 1;
            }
        }
        for (m, (text, publisher, at)) in sent.iter().enumerate() {
            if *publisher == index {
                continue;
            }
            if let Some(got) = first.get(text.as_str()) {
                let latency = got.saturating_duration_since(*at);
                by_message[m].push(latency);
                if latency > LATE {
                    late_by_node[index] += 1;
                }
            }
        }
    }
    let latencies: Vec<Duration> = by_message.concat();
    let delivery = if expected == 0 {
        0.0
    } else {
        latencies.len() as f64 / expected as f64
    };
    let p50 = percentile_ms(&latencies, 50.0);
    let p99 = percentile_ms(&latencies, 99.0);
    let max = percentile_ms(&latencies, 100.0);
    println!(
        "  {n:>4} nodes: delivered {:.2}% of {expected}, p50 {} ms, p99 {} ms, max {} ms, \
         {:.2} duplicates per node",
        delivery * 100.0,
        p50.map_or("-".into(), |v| format!("{v:.1}")),
        p99.map_or("-".into(), |v| format!("{v:.1}")),
        max.map_or("-".into(), |v| format!("{v:.1}")),
        duplicates as f64 / n as f64,
    );
    let late = late_deliveries(&by_message, &late_by_node);
    json!({
        "nodes": n,
        "node_settings_changed": super::host::settings_changed(&super::host::GOSSIP_VARS),
        "messages": sent.len(),
        "delivery_ratio": round(delivery, 4),
        "p50_ms": opt(p50, 1),
        "p99_ms": opt(p99, 1),
        "max_ms": opt(max, 1),
        "duplicates_per_node": round(duplicates as f64 / n as f64, 2),
        // Copies after the first that reached a node (each decoded and its signature
        // checked), from gossipsub's metrics; IDONTWANT stops some before they are sent.
        "duplicate_copies_per_node_per_message": round(
            copies / n as f64 / sent.len().max(1) as f64,
            2
        ),
        "publish_errors": publish_errors,
        "events_missed": lagged,
        "connects_while_sending": churn_after.0 - churn_before.0,
        "disconnects_while_sending": churn_after.1 - churn_before.1,
        "cpu_cores_busy": opt(busy.map(|b| b.as_secs_f64() / window.as_secs_f64()), 2),
        // Above what the idle overlay costs anyway.
        "cpu_ms_per_message": opt(
            busy.zip(overlay.idle_cores).map(|(busy, idle)| {
                (busy.as_secs_f64() - idle * window.as_secs_f64()).max(0.0) * 1000.0
                    / sent.len().max(1) as f64
            }),
            1
        ),
        "late": late,
        "overlay": overlay.shape.clone(),
    })
}

/// How the deliveries slower than [`LATE`] spread over messages and nodes: a few messages
/// late everywhere point at the publisher, a few nodes late for everything at those nodes.
fn late_deliveries(by_message: &[Vec<Duration>], late_by_node: &[usize]) -> Value {
    let ms = |d: Duration| round(d.as_secs_f64() * 1000.0, 1);
    let mut spread: Vec<(usize, usize, Duration, Duration)> = by_message
        .iter()
        .enumerate()
        .map(|(m, lat)| {
            let late = lat.iter().filter(|l| **l > LATE).count();
            let first = lat.iter().min().copied().unwrap_or_default();
            let last = lat.iter().max().copied().unwrap_or_default();
            (m, late, first, last)
        })
        .filter(|(_, late, _, _)| *late > 0)
        .collect();
    spread.sort_by(|a, b| b.1.cmp(&a.1).then(b.3.cmp(&a.3)));
    let worst: Vec<Value> = spread
        .iter()
        .take(5)
        .map(|(m, late, first, last)| {
            json!({ "message": m, "late": late, "first_ms": ms(*first), "last_ms": ms(*last) })
        })
        .collect();
    json!({
        "threshold_ms": LATE.as_millis() as u64,
        "deliveries": late_by_node.iter().sum::<usize>(),
        "messages": spread.len(),
        "nodes": late_by_node.iter().filter(|l| **l > 0).count(),
        "most_on_one_node": late_by_node.iter().max(),
        "worst_messages": worst,
    })
}

/// Every fan-out size, and the private-message figures on the overlay of their size.
pub async fn run_all(settings: &Settings) -> (Vec<Value>, Option<Value>) {
    let mut fanout = Vec::new();
    let mut direct_result = None;
    if settings.runs(Section::Fanout) {
        println!(
            "\n== lobby fan-out: {} messages, one every {} ms from a random node",
            settings.messages,
            settings.message_gap.as_millis()
        );
        for &n in &settings.fanout_nodes {
            let overlay = Overlay::build(n, settings.idle).await;
            println!("  {n:>4} nodes: overlay {}", overlay.shape);
            fanout.push(measure(&overlay, settings).await);
            if settings.runs(Section::Direct) && n == settings.direct_nodes {
                direct_result = Some(direct::measure(&overlay, settings).await);
            }
            overlay.stop().await;
        }
    }
    if settings.runs(Section::Direct) && direct_result.is_none() {
        let overlay = Overlay::build(settings.direct_nodes, settings.idle).await;
        println!(
            "  {:>4} nodes: overlay {}",
            settings.direct_nodes, overlay.shape
        );
        direct_result = Some(direct::measure(&overlay, settings).await);
        overlay.stop().await;
    }
    (fanout, direct_result)
}
