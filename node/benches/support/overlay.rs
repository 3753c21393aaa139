//! Overlay at scale: hundreds of real nodes (TCP, Noise, Yamux, the settings of `ipm`) spread
//! over several host processes inside a network namespace whose loopback delays every packet,
//! joining one by one through one bootstrap; lobby lines from random nodes, optionally while
//! nodes leave and join, timed with the wall clock written into each line.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use serde_json::{json, Value};

use super::{
    host::{self, now_us, HOST_ENV},
    netns::Namespace,
    report::{opt, round},
    settings::{sizes_var, var},
    stats::percentile_ms,
};

/// The bootstrap's index in the host protocol.
const BOOTSTRAP: usize = 1_000_000;
/// How long a node must have been online before a message for it to count as expected, and
/// stay online after it.
const WINDOW: Duration = Duration::from_secs(10);
/// How often connection counts are sampled while messages flow.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Above this many cores' worth of threads waiting for a core on average, a run is reported
/// as bound by the machine's CPU.
const CPU_BOUND_WAIT_CORES: f64 = 0.25;
/// Longest a host may take to answer a stats request.
const STATS_WAIT: Duration = Duration::from_secs(60);

/// The knobs of the overlay section, from `IPM_BENCH_OVERLAY_*`.
#[derive(Clone, Debug)]
pub struct OverlaySettings {
    /// `IPM_BENCH_OVERLAY_NODES`: sizes (default `100,500,1000`).
    pub sizes: Vec<usize>,
    /// `IPM_BENCH_OVERLAY_CHURN`: size of the churn run, 0 for none (default 1000).
    pub churn_nodes: usize,
    /// `IPM_BENCH_OVERLAY_DELAY_MS`: one-way delay of every link (default 50).
    pub delay_ms: u64,
    /// `IPM_BENCH_OVERLAY_MESSAGES`: lobby lines per stable run (default 100).
    pub messages: usize,
    /// `IPM_BENCH_OVERLAY_GAP_MS`: pause between two lines (default 250).
    pub gap: Duration,
    /// `IPM_BENCH_OVERLAY_JOIN_PER_S`: nodes joining per second (default 20).
    pub join_per_s: f64,
    /// `IPM_BENCH_OVERLAY_SETTLE_S`: wait after the last join (default 30).
    pub settle: Duration,
    /// `IPM_BENCH_OVERLAY_IDLE_S`: idle window for CPU and bytes (default 10).
    pub idle: Duration,
    /// `IPM_BENCH_OVERLAY_CHURN_S`: length of the churn run (default 120).
    pub churn_len: Duration,
    /// `IPM_BENCH_OVERLAY_CHURN_PCT`: share of nodes leaving and joining per minute (default 10).
    pub churn_pct: f64,
    /// `IPM_BENCH_OVERLAY_PER_HOST`: nodes per host process (default 100).
    pub per_host: usize,
    /// `IPM_BENCH_OVERLAY_DRAIN_S`: wait for stragglers after the last line (default 10).
    pub drain: Duration,
}

impl OverlaySettings {
    /// Reads the environment.
    pub fn from_env() -> Self {
        let sizes = sizes_var("IPM_BENCH_OVERLAY_NODES").unwrap_or_else(|| vec![100, 500, 1000]);
        Self {
            sizes,
            churn_nodes: var("IPM_BENCH_OVERLAY_CHURN", 1000usize),
            delay_ms: var("IPM_BENCH_OVERLAY_DELAY_MS", 50u64),
            messages: var("IPM_BENCH_OVERLAY_MESSAGES", 100usize).max(1),
            gap: Duration::from_millis(var("IPM_BENCH_OVERLAY_GAP_MS", 250u64).max(1)),
            join_per_s: var("IPM_BENCH_OVERLAY_JOIN_PER_S", 20f64).max(0.1),
            settle: Duration::from_secs(var("IPM_BENCH_OVERLAY_SETTLE_S", 30u64)),
            idle: Duration::from_secs(var("IPM_BENCH_OVERLAY_IDLE_S", 10u64).max(1)),
            churn_len: Duration::from_secs(var("IPM_BENCH_OVERLAY_CHURN_S", 120u64).max(10)),
            churn_pct: var("IPM_BENCH_OVERLAY_CHURN_PCT", 10f64).max(0.0),
            per_host: var("IPM_BENCH_OVERLAY_PER_HOST", 100usize).max(1),
            drain: Duration::from_secs(var("IPM_BENCH_OVERLAY_DRAIN_S", 10u64).max(1)),
        }
    }

    /// The knobs, for the report.
    pub fn to_json(&self) -> Value {
        json!({
            "sizes": self.sizes, "churn_nodes": self.churn_nodes, "delay_ms": self.delay_ms,
            "messages": self.messages, "gap_ms": self.gap.as_millis() as u64,
            "join_per_s": self.join_per_s, "settle_s": self.settle.as_secs(),
            "idle_s": self.idle.as_secs(), "churn_s": self.churn_len.as_secs(),
            "churn_pct_per_min": self.churn_pct, "nodes_per_host": self.per_host,
            "drain_s": self.drain.as_secs(),
            "node_settings_changed": node_settings_changed(),
        })
    }
}

/// The node settings changed from `ipm`'s for an experiment (see [`super::host::node_config`]).
fn node_settings_changed() -> Vec<String> {
    let peers = [
        "IPM_BENCH_OVERLAY_TARGET_PEERS",
        "IPM_BENCH_OVERLAY_MAX_PEERS",
        "IPM_BENCH_OVERLAY_PEER_BURST",
        "IPM_BENCH_OVERLAY_DISCOVERY_S",
    ];
    host::settings_changed(&[&peers[..], &host::GOSSIP_VARS[..]].concat())
}

/// The listen address of node `index`: its own loopback address, so that every node dials
/// from its own IP as users do (the peer manager counts per IP).
fn listen_of(index: usize) -> String {
    format!("/ip4/127.1.{}.{}/tcp/0", index / 250, index % 250 + 1)
}

struct Host {
    child: Child,
    stdin: ChildStdin,
}

impl Host {
    fn send(&mut self, command: Value) {
        let _ = writeln!(self.stdin, "{command}");
        let _ = self.stdin.flush();
    }
}

#[derive(Default, Clone)]
struct NodeState {
    host: usize,
    started_us: Option<u64>,
    stopped_us: Option<u64>,
    /// Started before the measuring began and never stopped.
    stable: bool,
}

/// One overlay being driven.
struct Run {
    hosts: Vec<Host>,
    events: mpsc::Receiver<(usize, Value)>,
    nodes: Vec<NodeState>,
    bootstrap_addr: Option<String>,
    published: HashMap<u64, (usize, u64)>,
    publish_errors: usize,
    received: HashMap<u64, HashMap<usize, u64>>,
    duplicates: usize,
    lagged: u64,
    start_failures: usize,
    dial_failures: usize,
    stats: Vec<Value>,
}

impl Run {
    fn spawn(hosts: usize, ns: &Namespace) -> Run {
        let (tx, events) = mpsc::channel();
        let exe = std::env::current_exe().expect("own executable");
        let hosts = (0..hosts)
            .map(|h| {
                // The bootstrap's host may run ahead of the nodes on the cores, as a
                // bootstrap on a machine of its own would (`IPM_BENCH_OVERLAY_BOOTSTRAP_NICE`).
                let nice = var("IPM_BENCH_OVERLAY_BOOTSTRAP_NICE", 0i32);
                let mut command = if h == 0 && nice != 0 {
                    let mut c = ns.command(std::path::Path::new("nice"));
                    c.args(["-n", &nice.to_string()]).arg(&exe);
                    c
                } else {
                    ns.command(&exe)
                };
                let mut child = command
                    .env(HOST_ENV, h.to_string())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("a node host");
                let stdout = child.stdout.take().expect("stdout");
                let stdin = child.stdin.take().expect("stdin");
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { return };
                        if let Ok(v) = serde_json::from_str::<Value>(&line) {
                            if tx.send((h, v)).is_err() {
                                return;
                            }
                        }
                    }
                });
                Host { child, stdin }
            })
            .collect();
        Run {
            hosts,
            events,
            nodes: Vec::new(),
            bootstrap_addr: None,
            published: HashMap::new(),
            publish_errors: 0,
            received: HashMap::new(),
            duplicates: 0,
            lagged: 0,
            start_failures: 0,
            dial_failures: 0,
            stats: Vec::new(),
        }
    }

    fn handle(&mut self, host: usize, v: Value) {
        let index = v["index"].as_u64().map(|i| i as usize);
        match v["ev"].as_str() {
            Some("msg") => {
                let (Some(i), Some(seq), Some(at)) =
                    (index, v["seq"].as_u64(), v["at_us"].as_u64())
                else {
                    return;
                };
                let first = self.received.entry(seq).or_default().entry(i).or_insert(at);
                if *first != at {
                    self.duplicates += 1;
                    *first = (*first).min(at);
                }
            }
            Some("published") => {
                let (Some(i), Some(seq), Some(at)) =
                    (index, v["seq"].as_u64(), v["at_us"].as_u64())
                else {
                    return;
                };
                if v["ok"].as_bool() == Some(true) {
                    self.published.insert(seq, (i, at));
                } else {
                    self.publish_errors += 1;
                    eprintln!("  publish failed: {}", v["error"]);
                }
            }
            Some("started") => {
                let Some(i) = index else { return };
                if i == BOOTSTRAP {
                    self.bootstrap_addr = v["addr"].as_str().map(str::to_owned);
                } else if let Some(node) = self.nodes.get_mut(i) {
                    node.started_us = v["at_us"].as_u64();
                }
            }
            Some("start_failed") => {
                self.start_failures += 1;
                eprintln!(
                    "  node {index:?} on host {host} did not start: {}",
                    v["error"]
                );
            }
            Some("dial_failed") => {
                self.dial_failures += 1;
                if self.dial_failures <= 5 {
                    eprintln!(
                        "  node {index:?} cannot reach the bootstrap: {}",
                        v["error"]
                    );
                }
            }
            Some("lagged") => self.lagged += v["missed"].as_u64().unwrap_or(0),
            Some("stats") => self.stats.push(v),
            _ => {}
        }
    }

    /// Handles events until `until`.
    fn pump_until(&mut self, until: Instant) {
        loop {
            let now = Instant::now();
            if now >= until {
                // Take what is already there without waiting.
                while let Ok((h, v)) = self.events.try_recv() {
                    self.handle(h, v);
                }
                return;
            }
            match self.events.recv_timeout(until - now) {
                Ok((h, v)) => self.handle(h, v),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn pump(&mut self, d: Duration) {
        self.pump_until(Instant::now() + d);
    }

    /// Asks every host for its stats and waits for all the answers.
    fn sample(&mut self) -> Vec<Value> {
        self.stats.clear();
        for host in &mut self.hosts {
            host.send(json!({"cmd": "stats"}));
        }
        let deadline = Instant::now() + STATS_WAIT;
        while self.stats.len() < self.hosts.len() && Instant::now() < deadline {
            self.pump(Duration::from_millis(50));
        }
        std::mem::take(&mut self.stats)
    }

    fn start_bootstrap(&mut self, port: u16) -> bool {
        self.hosts[0].send(json!({
            "cmd": "start", "index": BOOTSTRAP,
            "listen": format!("/ip4/127.1.255.254/tcp/{port}"), "bootstrap": null,
        }));
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.bootstrap_addr.is_none() && Instant::now() < deadline {
            self.pump(Duration::from_millis(50));
        }
        self.bootstrap_addr.is_some()
    }

    /// Starts a new node on the next host (round robin over the node hosts, host 0 being the
    /// bootstrap's); returns its index.
    fn start_node(&mut self) -> usize {
        let index = self.nodes.len();
        let host = 1 + index % (self.hosts.len() - 1);
        self.nodes.push(NodeState {
            host,
            ..NodeState::default()
        });
        self.hosts[host].send(json!({
            "cmd": "start", "index": index, "listen": listen_of(index),
            "bootstrap": self.bootstrap_addr,
        }));
        index
    }

    fn stop_node(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.stopped_us = Some(now_us());
        node.stable = false;
        let host = node.host;
        self.hosts[host].send(json!({"cmd": "stop", "index": index}));
    }

    fn online(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].started_us.is_some() && self.nodes[*i].stopped_us.is_none())
            .collect()
    }

    fn exit(mut self) {
        for host in &mut self.hosts {
            host.send(json!({"cmd": "exit"}));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for host in &mut self.hosts {
            loop {
                match host.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100))
                    }
                    _ => {
                        let _ = host.child.kill();
                        let _ = host.child.wait();
                        break;
                    }
                }
            }
        }
    }
}

/// Totals of one stats sample: CPU seconds and RSS of all hosts, and per-node connections.
struct Sample {
    cpu_s: f64,
    /// Seconds the hosts' threads waited for a core.
    wait_s: f64,
    rss_kb: u64,
    connections: Vec<u64>,
    peers: Vec<u64>,
    lobby: Vec<u64>,
    fds_max: u64,
    /// Kademlia query progress events and requests, by query type, summed over the nodes.
    kad: std::collections::BTreeMap<String, (f64, f64)>,
    /// Per node: duplicate lobby copies received so far.
    lobby_duplicates: HashMap<u64, f64>,
    /// Peers in each node's lobby mesh.
    lobby_mesh: Vec<u64>,
}

impl Sample {
    /// Duplicate lobby copies received from `before` to this sample, summed over the nodes
    /// present in both (a node that left takes its count with it).
    fn duplicate_copies_since(&self, before: &Sample) -> f64 {
        self.lobby_duplicates
            .iter()
            .filter_map(|(index, now)| Some((now - before.lobby_duplicates.get(index)?).max(0.0)))
            .sum()
    }
}

fn summarize(stats: &[Value]) -> Sample {
    let mut s = Sample {
        cpu_s: 0.0,
        wait_s: 0.0,
        rss_kb: 0,
        connections: Vec::new(),
        peers: Vec::new(),
        lobby: Vec::new(),
        fds_max: 0,
        kad: std::collections::BTreeMap::new(),
        lobby_duplicates: HashMap::new(),
        lobby_mesh: Vec::new(),
    };
    for host in stats {
        s.cpu_s += host["cpu_s"].as_f64().unwrap_or(0.0);
        s.wait_s += host["wait_s"].as_f64().unwrap_or(0.0);
        s.rss_kb += host["rss_kb"].as_u64().unwrap_or(0);
        s.fds_max = s.fds_max.max(host["fds"].as_u64().unwrap_or(0));
        for node in host["nodes"].as_array().into_iter().flatten() {
            if node["index"].as_u64() == Some(BOOTSTRAP as u64) {
                continue;
            }
            s.connections
                .push(node["connections"].as_u64().unwrap_or(0));
            s.lobby.push(node["lobby"].as_u64().unwrap_or(0));
            s.peers.push(node["peers"].as_u64().unwrap_or(0));
            let gossip = &node["gossip"];
            if let Some(index) = node["index"].as_u64() {
                s.lobby_duplicates
                    .insert(index, gossip["duplicates"].as_f64().unwrap_or(0.0));
            }
            s.lobby_mesh
                .push(gossip["mesh"].as_f64().unwrap_or(0.0) as u64);
            for (kind, figures) in node["kad"].as_object().into_iter().flatten() {
                let entry = s.kad.entry(kind.clone()).or_default();
                entry.0 += figures[0].as_f64().unwrap_or(0.0);
                entry.1 += figures[1].as_f64().unwrap_or(0.0);
            }
        }
    }
    s
}

/// Kademlia figures per node, by query type.
fn kad_per_node(sample: &Sample, nodes: f64) -> Value {
    let per_node = |v: f64| round(v / nodes.max(1.0), 1);
    sample
        .kad
        .iter()
        .map(|(kind, (events, requests))| {
            (
                kind.clone(),
                json!([per_node(*events), per_node(*requests)]),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

fn mean(v: &[u64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<u64>() as f64 / v.len() as f64)
}

/// One overlay of `n` nodes; with `churn`, nodes leave and join while the lines flow.
fn run_one(n: usize, churn: bool, settings: &OverlaySettings, ns: &Namespace, port: u16) -> Value {
    let started = Instant::now();
    let label = if churn { "churn" } else { "stable" };
    let node_hosts = n.div_ceil(settings.per_host).max(1);
    let mut run = Run::spawn(node_hosts + 1, ns);
    if !run.start_bootstrap(port) {
        run.exit();
        return json!({"nodes": n, "churn": churn, "error": "the bootstrap did not start"});
    }
    let bytes_at_start = ns.link_bytes();
    let delayer_cpu_at_start = ns.delayer_cpu_s();
    let link_at_start = ns.link_counters();

    // Join: one node every 1/join_per_s seconds, each knowing only the bootstrap.
    let pace = Duration::from_secs_f64(1.0 / settings.join_per_s);
    let mut next = Instant::now();
    for _ in 0..n {
        run.start_node();
        next += pace;
        run.pump_until(next);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while run.online().len() + run.start_failures < n && Instant::now() < deadline {
        run.pump(Duration::from_millis(100));
    }
    let joined_s = started.elapsed().as_secs_f64();
    println!(
        "  {n:>5} nodes ({label}): {} joined in {joined_s:.0} s, settling {} s",
        run.online().len(),
        settings.settle.as_secs()
    );
    run.pump(settings.settle);
    for i in run.online() {
        run.nodes[i].stable = true;
    }

    // Idle: nothing sent; what presence, the DHT and gossip heartbeats cost.
    let idle_before = summarize(&run.sample());
    let bytes_idle_before = ns.link_bytes();
    let idle_started = Instant::now();
    run.pump(settings.idle);
    let idle_after = summarize(&run.sample());
    let bytes_idle_after = ns.link_bytes();
    let idle_s = idle_started.elapsed().as_secs_f64();
    let online_idle = run.online().len().max(1) as f64;
    let idle_cores = (idle_after.cpu_s - idle_before.cpu_s) / idle_s;
    let idle_wait_cores = (idle_after.wait_s - idle_before.wait_s) / idle_s;
    let idle_bytes_per_node_s = bytes_idle_after
        .zip(bytes_idle_before)
        .map(|(a, b)| a.saturating_sub(b) as f64 / idle_s / online_idle);

    // Lines from random online nodes; with churn, a share of the nodes leaves and as many
    // new ones join, spread evenly over each minute.
    let mut rng = StdRng::seed_from_u64(n as u64 + u64::from(churn));
    let messages = if churn {
        (settings.churn_len.as_millis() / settings.gap.as_millis().max(1)) as usize
    } else {
        settings.messages
    };
    let churn_per_min = (n as f64 * settings.churn_pct / 100.0).round() as usize;
    let churn_every = if churn && churn_per_min > 0 {
        Some(Duration::from_secs_f64(60.0 / churn_per_min as f64))
    } else {
        None
    };
    let mut samples = vec![idle_after.connections.clone()];
    let bytes_before = ns.link_bytes();
    let link_before = ns.link_counters();
    let cpu_before = idle_after.cpu_s;
    let wait_before = idle_after.wait_s;
    let sending = Instant::now();
    let mut next_line = Instant::now();
    let mut next_churn = churn_every.map(|e| Instant::now() + e);
    let mut next_sample = Instant::now() + SAMPLE_EVERY;
    let (mut left, mut joined) = (0usize, 0usize);
    let mut seq = 0u64;
    while (seq as usize) < messages {
        let now = Instant::now();
        if now >= next_line {
            let online = run.online();
            if let Some(&publisher) = online.choose(&mut rng) {
                let host = run.nodes[publisher].host;
                run.hosts[host].send(json!({"cmd": "publish", "index": publisher, "seq": seq}));
            }
            seq += 1;
            next_line += settings.gap;
        }
        if let (Some(at), Some(every)) = (next_churn, churn_every) {
            if now >= at {
                let stable: Vec<usize> = run.online();
                if let Some(&leaving) = stable.get(rng.gen_range(0..stable.len().max(1))) {
                    run.stop_node(leaving);
                    left += 1;
                }
                run.start_node();
                joined += 1;
                next_churn = Some(at + every);
            }
        }
        if now >= next_sample {
            // Asked without waiting: the answers are gathered as they come.
            for host in &mut run.hosts {
                host.send(json!({"cmd": "stats"}));
            }
            next_sample = Instant::now() + SAMPLE_EVERY;
        }
        let wake = [Some(next_line), next_churn, Some(next_sample)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_line);
        run.pump_until(wake);
    }
    run.pump(settings.drain.max(WINDOW));
    samples.extend(
        std::mem::take(&mut run.stats)
            .iter()
            .map(|host| summarize(std::slice::from_ref(host)).connections),
    );
    let end = summarize(&run.sample());
    samples.push(end.connections.clone());
    let bytes_after = ns.link_bytes();
    let link_after = ns.link_counters();
    let window_s = sending.elapsed().as_secs_f64();
    let bytes_total_after = ns.link_bytes();

    // Delivery to every node online from WINDOW before a line until WINDOW after it.
    let window_us = WINDOW.as_micros() as u64;
    let mut latencies = Vec::new();
    let (mut expected, mut expected_stable, mut got_stable) = (0usize, 0usize, 0usize);
    for (seq, (publisher, at)) in &run.published {
        let got = run.received.get(seq);
        for (i, node) in run.nodes.iter().enumerate() {
            if i == *publisher {
                continue;
            }
            let Some(start) = node.started_us else {
                continue;
            };
            let whole = start + window_us <= *at
                && node.stopped_us.is_none_or(|stop| stop >= at + window_us);
            if !whole {
                continue;
            }
            expected += 1;
            let arrival = got.and_then(|g| g.get(&i));
            if node.stable {
                expected_stable += 1;
                got_stable += usize::from(arrival.is_some());
            }
            if let Some(arrival) = arrival {
                latencies.push(Duration::from_micros(arrival.saturating_sub(*at)));
            }
        }
    }
    let ratio = |got: usize, of: usize| (of > 0).then(|| got as f64 / of as f64);
    let delivery = ratio(latencies.len(), expected);
    let delivery_stable = ratio(got_stable, expected_stable);
    let p = |q| percentile_ms(&latencies, q);
    let sent = run.published.len().max(1) as f64;
    let online_end = run.online().len().max(1) as f64;
    let bytes_msg = bytes_after.zip(bytes_before).map(|(a, b)| {
        let extra = a.saturating_sub(b) as f64
            - idle_bytes_per_node_s.unwrap_or(0.0) * online_end * window_s;
        extra.max(0.0) / online_end / sent
    });
    let conn_max = samples.iter().flatten().copied().max();
    let conn_mean = mean(&samples.iter().flatten().copied().collect::<Vec<u64>>());
    let node_config = super::host::node_config(0);
    let high_watermark = node_config.max_peers;
    let ceiling = node_config.max_peers + node_config.peer_burst;
    let result = json!({
        "nodes": n,
        "link_delay_ms": settings.delay_ms,
        "churn": churn,
        "transport": ns.describe(node_hosts, settings.per_host),
        "messages": run.published.len(),
        "publish_errors": run.publish_errors,
        "delivery_ratio": opt(delivery, 5),
        "delivery_ratio_stable": opt(delivery_stable, 5),
        "expected_deliveries": expected,
        "p50_ms": opt(p(50.0), 1),
        "p95_ms": opt(p(95.0), 1),
        "p99_ms": opt(p(99.0), 1),
        "max_ms": opt(p(100.0), 1),
        "duplicates_per_node_per_message": round(
            end.duplicate_copies_since(&idle_after) / online_end / sent,
            3
        ),
        "duplicates_note": "copies of a lobby line a node received after its first one, per \
            node and line, while lines flowed (from each node's gossipsub metrics: every copy \
            decoded and its signature checked, less the new ones); copies that IDONTWANT \
            stopped before they were sent are not in it",
        "repeated_message_events": run.duplicates,
        "lobby_mesh_mean": opt(mean(&end.lobby_mesh), 1),
        "lobby_mesh_max": end.lobby_mesh.iter().max(),
        "bytes_in_per_node_per_message": opt(bytes_msg, 0),
        "idle_bytes_in_per_node_per_s": opt(idle_bytes_per_node_s, 0),
        "bytes_in_per_node_per_s_while_sending": opt(
            bytes_after
                .zip(bytes_before)
                .map(|(a, b)| a.saturating_sub(b) as f64 / online_end / window_s),
            0
        ),
        "idle_cpu_cores": round(idle_cores, 3),
        "idle_cpu_ms_per_node_per_s": round(idle_cores * 1000.0 / online_idle, 3),
        "connections_per_node_mean": opt(conn_mean, 1),
        "connections_per_node_max": conn_max,
        "connection_cap": ceiling,
        "connection_cap_note": "the most peers a node connects to but for protected ones: \
            the high watermark Config::node().max_peers plus peer_burst, the newcomers and \
            lookup connections let in for their grace before trimming back to the mark",
        "high_watermark": high_watermark,
        "peers_per_node_mean": opt(mean(&end.peers), 1),
        "peers_per_node_max": end.peers.iter().max(),
        "lobby_members_min": end.lobby.iter().min(),
        "lobby_members_mean": opt(mean(&end.lobby), 1),
        "cpu_s": round(end.cpu_s, 1),
        "cpu_cores_while_sending": round((end.cpu_s - cpu_before) / window_s, 2),
        "rss_mb": end.rss_kb / 1024,
        "idle_cpu_wait_cores": round(idle_wait_cores, 3),
        "cpu_wait_cores_while_sending": round((end.wait_s - wait_before) / window_s, 2),
        "cpu_bound": (end.wait_s - wait_before) / window_s > CPU_BOUND_WAIT_CORES,
        "cpu_wait_note": "threads of the hosts runnable but waiting for a core (schedstat), \
            on average: what they would have used more on an idle machine with enough cores",
        "link": link_after.since(&link_at_start),
        "link_while_sending": link_after.since(&link_before),
        "link_note": "kernel counters: backlog drops (softnet_stat, whole machine), tun0 drops \
            both ways, write errors of the delay process, TCP retransmissions and timeouts \
            (SYNs included) in the namespace; link is the whole run, link_while_sending \
            the lines and the drain",
        "link_delay_cpu_s": opt(ns.delayer_cpu_s().zip(delayer_cpu_at_start).map(|(a, b)| a - b), 1),
        "rss_mb_per_node": round(end.rss_kb as f64 / 1024.0 / online_end, 1),
        "fds_max_per_host": end.fds_max,
        "kad_queries_per_node": kad_per_node(&end, online_end),
        "kad_queries_note": "Kademlia queries of the nodes online at the end, by type: \
            [progress events, requests sent] per node over the whole run, from each node's \
            metrics (a node that left takes its figures with it)",
        "hops_p50": null,
        "hops_max": null,
        "hops_note": "gossip messages carry no hop count",
        "left": left,
        "joined_during": joined,
        "start_failures": run.start_failures,
        "bootstrap_dial_failures": run.dial_failures,
        "events_missed": run.lagged,
        "joined_s": round(joined_s, 1),
        "loopback_bytes_total": bytes_total_after.zip(bytes_at_start).map(|(a, b)| a.saturating_sub(b)),
        "elapsed_s": round(started.elapsed().as_secs_f64(), 1),
    });
    println!("  {n:>5} nodes ({label}): {result}");
    let wait_cores = (end.wait_s - wait_before) / window_s;
    if wait_cores > CPU_BOUND_WAIT_CORES {
        println!(
            "  {n:>5} nodes ({label}): CPU-bound: the hosts' threads waited for a core {wait_cores:.1} \
             cores on average while lines flowed (using {:.1}); latency and delivery measure \
             the machine, not the links",
            (end.cpu_s - cpu_before) / window_s
        );
    }
    run.exit();
    result
}

/// Every size, then the churn run; a list for `overlay` in the report.
pub fn run_all() -> Vec<Value> {
    let settings = OverlaySettings::from_env();
    println!(
        "\n== overlay at scale: {}",
        serde_json::to_string(&settings.to_json()).unwrap_or_default()
    );
    let ns = match Namespace::create(settings.delay_ms) {
        Ok(ns) => ns,
        Err(e) => {
            println!("  overlay skipped: {e}");
            return vec![json!({"error": e})];
        }
    };
    println!("  links: {}", ns.describe(0, settings.per_host));
    let mut out = Vec::new();
    let mut port = 4001;
    for &n in &settings.sizes {
        out.push(run_one(n, false, &settings, &ns, port));
        port += 1;
    }
    if settings.churn_nodes >= 2 {
        out.push(run_one(settings.churn_nodes, true, &settings, &ns, port));
    }
    out
}

/// Table rows for the overlay runs.
pub fn rows(out: &Value) -> Vec<(String, String)> {
    let show = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    out["overlay"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["nodes"].is_number())
        .map(|r| {
            (
                format!(
                    "overlay {} nodes{}, {} ms links: delivery (stable), p50/p95/p99/max ms, conn mean/max",
                    show(&r["nodes"]),
                    if r["churn"] == true { " churn" } else { "" },
                    show(&r["link_delay_ms"])
                ),
                format!(
                    "{} ({}) , {} / {} / {} / {} , {} / {}",
                    show(&r["delivery_ratio"]),
                    show(&r["delivery_ratio_stable"]),
                    show(&r["p50_ms"]),
                    show(&r["p95_ms"]),
                    show(&r["p99_ms"]),
                    show(&r["max_ms"]),
                    show(&r["connections_per_node_mean"]),
                    show(&r["connections_per_node_max"]),
                ),
            )
        })
        .collect()
}
