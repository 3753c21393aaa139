//! Memory: the resident size of a real `ipm --headless` process when idle, and what each
//! connection to it adds (peers are in-process nodes of this bench dialling it).

use std::{
    io::BufRead,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc,
    },
    time::Duration,
};

use ipm_node::Config;
use libp2p::Multiaddr;
use serde_json::{json, Value};

use super::{
    machine::rss_kb,
    nodes::{self, loopback_quic, loopback_tcp, Node},
    report::{opt, round},
    settings::Settings,
};

/// How long the process is left alone before its size is read.
const SETTLE: Duration = Duration::from_secs(5);
/// Connection counts measured.
const STEPS: [usize; 2] = [10, 100];

/// The `ipm` process, killed when dropped.
struct Daemon {
    child: Child,
    connections: Arc<AtomicUsize>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ipm --headless --json` on loopback TCP and QUIC; returns it and its TCP address.
fn start_daemon(settings: &Settings, dir: &std::path::Path) -> Result<(Daemon, Multiaddr), String> {
    let mut cmd = Command::new(&settings.ipm_bin);
    cmd.args(["--headless", "--json", "--no-mdns", "--name", "idle"])
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg(loopback_tcp().to_string())
        .arg("--listen")
        .arg(loopback_quic().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let log = dir.join("stderr.log");
    match std::fs::File::create(&log) {
        Ok(file) => cmd.stderr(file),
        Err(_) => cmd.stderr(Stdio::null()),
    };
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("IPM_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", settings.ipm_bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let connections = Arc::new(AtomicUsize::new(0));
    let daemon = Daemon {
        child,
        connections: connections.clone(),
    };
    let (addr_tx, addr_rx) = mpsc::channel();
    // Reads the JSON events for the whole life of the process, so its stdout never blocks.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match event["event"].as_str() {
                Some("listening") => {
                    if let Some(addr) = event["addr"].as_str() {
                        if addr.contains("/tcp/") {
                            let _ = addr_tx.send(addr.to_owned());
                        }
                    }
                }
                Some("connected") => {
                    connections.fetch_add(1, Ordering::SeqCst);
                }
                Some("disconnected") => {
                    connections.fetch_sub(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        format!(
            "ipm did not report a TCP listen address within 60 s ({})",
            said.lines().last().unwrap_or("nothing on stderr")
        )
    })?;
    let addr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    Ok((daemon, addr))
}

/// Median of a few readings of the resident size, in KiB.
async fn settled_rss_kb(pid: u32) -> Option<u64> {
    tokio::time::sleep(SETTLE).await;
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.extend(rss_kb(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    samples.sort();
    samples.get(samples.len() / 2).copied()
}

/// The `memory` section.
pub async fn run(settings: &Settings) -> Value {
    println!(
        "\n== memory of `ipm --headless` ({})",
        settings.ipm_bin.display()
    );
    // Let the nodes of earlier sections finish closing first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let dir = tempfile::Builder::new()
        .prefix("ipm-bench-daemon-")
        .tempdir()
        .unwrap();
    let (daemon, addr) = match start_daemon(settings, dir.path()) {
        Ok(started) => started,
        Err(e) => {
            println!("  not measured: {e}");
            return json!({ "error": e });
        }
    };
    let pid = daemon.child.id();
    let idle = settled_rss_kb(pid).await;

    let mut peers: Vec<Node> = Vec::new();
    let mut steps = Vec::new();
    for want in STEPS {
        while peers.len() < want {
            let config = Config {
                target_peers: 0,
                ..nodes::user_config(&format!("peer{}", peers.len()), loopback_tcp())
            };
            let peer = nodes::spawn(config).await;
            if let Err(e) = peer
                .client
                .dial_within(addr.clone(), Duration::from_secs(10))
                .await
            {
                eprintln!("a peer could not connect: {e}");
            }
            peers.push(peer);
        }
        let rss = settled_rss_kb(pid).await;
        let connected = daemon.connections.load(Ordering::SeqCst);
        let per = match (rss, idle) {
            (Some(rss), Some(idle)) if connected > 0 => {
                Some((rss as f64 - idle as f64) / connected as f64)
            }
            _ => None,
        };
        println!(
            "  {connected:>4} connections: RSS {} MiB, {} KiB per connection",
            rss.map_or("-".into(), |r| format!("{:.1}", r as f64 / 1024.0)),
            per.map_or("-".into(), |p| format!("{p:.0}"))
        );
        steps.push((want, connected, rss, per));
    }
    nodes::stop_all(peers).await;
    drop(daemon);

    let idle_mb = idle.map(|kb| kb as f64 / 1024.0);
    println!(
        "  idle: RSS {} MiB",
        idle_mb.map_or("-".into(), |v| format!("{v:.1}"))
    );
    let mut out = serde_json::Map::new();
    out.insert("idle_rss_mb".into(), opt(idle_mb, 1));
    for (want, connected, rss, per) in steps {
        out.insert(format!("per_connection_kb_at_{want}"), opt(per, 0));
        out.insert(
            format!("rss_mb_at_{want}"),
            opt(rss.map(|kb| kb as f64 / 1024.0), 1),
        );
        out.insert(format!("connections_at_{want}"), json!(connected));
    }
    out.insert("settle_s".into(), json!(round(SETTLE.as_secs_f64(), 0)));
    Value::Object(out)
}
