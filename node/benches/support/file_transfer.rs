//! File transfer: one file between two in-process nodes over TCP and over QUIC, with the
//! streams of `/ipm/file/2` and with the chunk requests of `/ipm/file/1` (the previous
//! release), a `/get` of a file two members share in the lobby (pieces from both at once),
//! next to a plain TCP copy and scp of the same bytes, all over loopback. Each node, and
//! each end of the plain copy, runs on a runtime of its own, so that the CPU of each side is
//! measured apart; scp's sides are its own processes and those of the private sshd.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use ipm_node::{client::OfferTarget, Client, Event};
use ipm_protocol::{Room, TransferId};
use libp2p::{Multiaddr, PeerId};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    baseline, machine,
    nodes::{self, loopback_quic, loopback_tcp, user_config},
    report::round,
    settings::Settings,
    stats::mbps,
};

/// Writes `bytes` of pseudo-random (incompressible) data to `path`; returns its SHA-256, hex.
fn write_test_file(path: &Path, bytes: u64) -> String {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    file.flush().unwrap();
    file.get_ref().sync_all().unwrap();
    hex::encode(hasher.finalize())
}

/// One measured copy: wall time, the CPU this process spent during it, and for ipm the CPU
/// of each side.
struct Copy {
    elapsed: Duration,
    cpu: Duration,
    sides: Option<(Duration, Duration)>,
}

/// CPU-seconds per GiB moved.
fn per_gib(cpu: Duration, bytes: u64) -> f64 {
    cpu.as_secs_f64() * (1u64 << 30) as f64 / bytes.max(1) as f64
}

impl Copy {
    fn json(&self, bytes: u64) -> Value {
        let side = |pick: fn(&(Duration, Duration)) -> Duration| {
            self.sides
                .as_ref()
                .map_or(Value::Null, |s| json!(round(per_gib(pick(s), bytes), 2)))
        };
        json!({
            "seconds": round(self.elapsed.as_secs_f64(), 2),
            "mbps": round(mbps(bytes, self.elapsed), 0),
            "cpu_cores_busy": round(self.cpu.as_secs_f64() / self.elapsed.as_secs_f64(), 2),
            "sender_cpu_s_per_gib": side(|s| s.0),
            "receiver_cpu_s_per_gib": side(|s| s.1),
        })
    }
}

/// Thread names of the runtime each side of a transfer runs on.
const SENDER_THREADS: &str = "ipm-sender";
const RECEIVER_THREADS: &str = "ipm-receiver";

/// A runtime of two workers whose threads are all named `name`.
fn side_runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// Which file protocol the nodes of a transfer speak.
#[derive(Clone, Copy)]
enum Protocol {
    /// `/ipm/file/2`: one stream per download.
    Streams,
    /// `/ipm/file/1`: chunk requests, as the previous release.
    Chunks,
}

/// Sends `path` from one node to another that both listen only on `listen`, and waits for
/// the receiver's verified file. The node checks the SHA-256; so does this function.
async fn ipm_transfer(
    path: &Path,
    bytes: u64,
    sha256: &str,
    listen: Multiaddr,
    base: &Path,
    protocol: Protocol,
) -> Result<Copy, String> {
    let config = |name: &str| {
        let mut config = user_config(name, listen.clone());
        config.file_streams = matches!(protocol, Protocol::Streams);
        config
    };
    let (sender_rt, receiver_rt) = (side_runtime(SENDER_THREADS), side_runtime(RECEIVER_THREADS));
    let (sender_config, base_dir) = (config("sender"), base.to_owned());
    let sender = sender_rt
        .spawn(async move { nodes::spawn_with_data_dir(sender_config, &base_dir).await })
        .await
        .map_err(|e| e.to_string())?;
    let (receiver_config, base_dir) = (config("receiver"), base.to_owned());
    let receiver = receiver_rt
        .spawn(async move { nodes::spawn_with_data_dir(receiver_config, &base_dir).await })
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        receiver
            .client
            .dial_within(sender.addr.clone(), Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?;
        let mut events = receiver.client.events();
        let id = sender
            .client
            .offer_file(OfferTarget::Peer(receiver.peer()), path.to_owned())
            .await
            .map_err(|e| e.to_string())?;
        nodes::wait_event(&mut events, Duration::from_secs(20), |e| match e {
            Event::FileOffer { transfer, .. } if *transfer == id => Some(()),
            _ => None,
        })
        .await
        .ok_or("the offer did not arrive")?;
        receive(&receiver.client, &mut events, id, bytes, sha256).await
    }
    .await;
    nodes::stop_all(vec![sender, receiver]).await;
    sender_rt.shutdown_background();
    receiver_rt.shutdown_background();
    result
}

/// Accepts `id` on `receiver` and waits for its verified file: the wall time from the
/// accept, the CPU of the process and of each side meanwhile. The node checks the SHA-256;
/// so does this function.
async fn receive(
    receiver: &Client,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    id: TransferId,
    bytes: u64,
    sha256: &str,
) -> Result<Copy, String> {
    // At least 2 MB/s, or give up.
    let limit = Duration::from_secs(60 + bytes / 2_000_000);
    let cpu_before = machine::process_cpu();
    let sides_before = (
        machine::threads_cpu(SENDER_THREADS),
        machine::threads_cpu(RECEIVER_THREADS),
    );
    let started = Instant::now();
    receiver
        .accept(&id.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let outcome = nodes::wait_event(events, limit, |e| match e {
        Event::FileReceived {
            transfer,
            path,
            sha256,
            ..
        } if *transfer == id => Some(Ok((path.clone(), sha256.clone()))),
        Event::FileFailed { transfer, reason } if *transfer == id => Some(Err(reason.clone())),
        _ => None,
    })
    .await
    .ok_or_else(|| format!("no file after {}s", limit.as_secs()))?;
    let elapsed = started.elapsed();
    let cpu = machine::cpu_since(cpu_before).unwrap_or_default();
    let sides = (
        machine::threads_cpu(SENDER_THREADS).saturating_sub(sides_before.0),
        machine::threads_cpu(RECEIVER_THREADS).saturating_sub(sides_before.1),
    );
    let (got, got_sha) = outcome?;
    let size = std::fs::metadata(&got).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&got);
    if got_sha != sha256 || size != bytes {
        return Err(format!(
            "received {size} bytes with sha256 {got_sha}, expected {bytes} bytes with {sha256}"
        ));
    }
    Ok(Copy {
        elapsed,
        cpu,
        sides: Some(sides),
    })
}

/// Waits (at most 30 s) until `client` sees someone else in the lobby.
async fn sees_lobby(client: &Client) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.status().await.map_err(|e| e.to_string())?;
        let members = status
            .rooms
            .iter()
            .find(|r| r.room == Room::Lobby)
            .map_or(0, |r| r.members.len());
        if members > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the lobby did not form".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two nodes share `path` in the lobby (each announces it), a third connected to both
/// `/get`s it: pieces come from both senders at once. Each node runs on a runtime of its
/// own; the senders' threads are both counted as the sending side.
async fn ipm_get_from_two(
    path: &Path,
    bytes: u64,
    sha256: &str,
    base: &Path,
) -> Result<Copy, String> {
    let rts = [
        side_runtime(&format!("{SENDER_THREADS}-a")),
        side_runtime(&format!("{SENDER_THREADS}-b")),
        side_runtime(RECEIVER_THREADS),
    ];
    let mut started = Vec::new();
    for (rt, name) in rts.iter().zip(["alice", "bob", "carol"]) {
        let (config, base_dir) = (user_config(name, loopback_tcp()), base.to_owned());
        let node = rt
            .spawn(async move { nodes::spawn_with_data_dir(config, &base_dir).await })
            .await
            .map_err(|e| e.to_string())?;
        started.push(node);
    }
    let result = async {
        let [alice, bob, receiver] = started.as_slice() else {
            return Err("three nodes did not start".to_owned());
        };
        for sender in [alice, bob] {
            receiver
                .client
                .dial_within(sender.addr.clone(), Duration::from_secs(10))
                .await
                .map_err(|e| e.to_string())?;
            sees_lobby(&sender.client).await?;
        }
        sees_lobby(&receiver.client).await?;
        let mut events = receiver.client.events();
        let mut first = None;
        for sender in [alice, bob] {
            let peer: PeerId = sender.peer();
            sender
                .client
                .offer_file(OfferTarget::Room(Room::Lobby), path.to_owned())
                .await
                .map_err(|e| e.to_string())?;
            let id = nodes::wait_event(&mut events, Duration::from_secs(20), |e| match e {
                Event::FileOffer {
                    transfer,
                    peer: from,
                    ..
                } if *from == peer => Some(*transfer),
                _ => None,
            })
            .await
            .ok_or("a shared file did not arrive")?;
            first.get_or_insert(id);
        }
        let id = first.ok_or("no shared file")?;
        receive(&receiver.client, &mut events, id, bytes, sha256).await
    }
    .await;
    nodes::stop_all(started).await;
    for rt in rts {
        rt.shutdown_background();
    }
    result
}

/// The plain copy, each end on a runtime of its own.
async fn raw_copy(src: &Path, dst: &Path) -> Result<Copy, String> {
    let (sender_rt, receiver_rt) = (side_runtime("raw-sender"), side_runtime("raw-receiver"));
    let cpu_before = machine::process_cpu();
    let sides_before = (
        machine::threads_cpu("raw-sender"),
        machine::threads_cpu("raw-receiver"),
    );
    let (from, to, receiver) = (src.to_owned(), dst.to_owned(), receiver_rt.handle().clone());
    let elapsed = sender_rt
        .spawn(async move { baseline::raw_tcp_copy(&from, &to, &receiver).await })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let cpu = machine::cpu_since(cpu_before).unwrap_or_default();
    let sides = (
        machine::threads_cpu("raw-sender").saturating_sub(sides_before.0),
        machine::threads_cpu("raw-receiver").saturating_sub(sides_before.1),
    );
    sender_rt.shutdown_background();
    receiver_rt.shutdown_background();
    let _ = std::fs::remove_file(dst);
    Ok(Copy {
        elapsed,
        cpu,
        sides: Some(sides),
    })
}

fn show(name: &str, bytes: u64, result: &Result<Copy, String>) -> Value {
    match result {
        Ok(copy) => {
            let sides = copy.sides.map_or(String::new(), |(s, r)| {
                format!(
                    "; CPU-s per GiB: sender {:.2}, receiver {:.2}",
                    per_gib(s, bytes),
                    per_gib(r, bytes)
                )
            });
            println!(
                "  {name:<16} {:>8.0} Mbit/s  ({:.2} s, {:.2} cores busy in this process{sides})",
                mbps(bytes, copy.elapsed),
                copy.elapsed.as_secs_f64(),
                copy.cpu.as_secs_f64() / copy.elapsed.as_secs_f64()
            );
            copy.json(bytes)
        }
        Err(e) => {
            println!("  {name:<16} failed: {e}");
            json!({ "error": e })
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Value {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => json!(round(a / b, 2)),
        _ => Value::Null,
    }
}

fn skipped<T>() -> Result<T, String> {
    Err("skipped (IPM_BENCH_FILE_METHODS)".to_owned())
}

/// Where the files of one round live: RAM (tmpfs) shows the network path alone, disk adds
/// what the storage costs (every copy ends with an fsync).
struct Medium {
    name: &'static str,
    base: PathBuf,
}

fn is_tmpfs(dir: &str) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let mut f = l.split_whitespace();
            (f.nth(1), f.next()) == (Some(dir), Some("tmpfs"))
        })
}

fn media(settings: &Settings) -> Vec<Medium> {
    let wanted = |name: &str| settings.file_media.iter().any(|m| m == name);
    let mut media = Vec::new();
    if wanted("ram") && is_tmpfs("/dev/shm") {
        media.push(Medium {
            name: "ram",
            base: PathBuf::from("/dev/shm"),
        });
    }
    if wanted("disk") || media.is_empty() {
        media.push(Medium {
            name: "disk",
            base: std::env::temp_dir(),
        });
    }
    media
}

/// One round of every copy with source and destination on `medium`.
async fn round_on(
    settings: &Settings,
    medium: &Medium,
    bytes: u64,
) -> serde_json::Map<String, Value> {
    println!("  -- files in {} ({})", medium.base.display(), medium.name);
    let dir = tempfile::Builder::new()
        .prefix("ipm-bench-files-")
        .tempdir_in(&medium.base)
        .unwrap();
    let src: PathBuf = dir.path().join("payload.bin");
    let sha256 = {
        let src = src.clone();
        tokio::task::spawn_blocking(move || write_test_file(&src, bytes))
            .await
            .unwrap()
    };
    let dst = dir.path().join("copy.bin");
    let base = &medium.base;
    let raw = if settings.copies("raw") {
        raw_copy(&src, &dst).await
    } else {
        skipped()
    };
    let ipm = |method: &'static str, listen: Multiaddr, protocol: Protocol| {
        let (src, sha256) = (&src, &sha256);
        async move {
            if settings.copies(method) {
                ipm_transfer(src, bytes, sha256, listen, base, protocol).await
            } else {
                skipped()
            }
        }
    };
    let tcp = ipm("tcp", loopback_tcp(), Protocol::Streams).await;
    let tcp_two = if settings.copies("tcp_two") {
        ipm_get_from_two(&src, bytes, &sha256, base).await
    } else {
        skipped()
    };
    let tcp_v1 = ipm("tcp_v1", loopback_tcp(), Protocol::Chunks).await;
    let quic = ipm("quic", loopback_quic(), Protocol::Streams).await;
    let quic_v1 = ipm("quic_v1", loopback_quic(), Protocol::Chunks).await;
    let scp = if !settings.copies("scp") {
        skipped()
    } else {
        let (src, dst) = (src.clone(), dst.clone());
        tokio::task::spawn_blocking(move || {
            let result = baseline::scp(&src, &dst);
            let _ = std::fs::remove_file(&dst);
            result
        })
        .await
        .unwrap()
    };
    let raw_json = show("raw TCP", bytes, &raw);
    let tcp_json = show("ipm TCP", bytes, &tcp);
    let tcp_two_json = show("ipm TCP, 2 senders", bytes, &tcp_two);
    let tcp_v1_json = show("ipm TCP, file/1", bytes, &tcp_v1);
    let quic_json = show("ipm QUIC", bytes, &quic);
    let quic_v1_json = show("ipm QUIC, file/1", bytes, &quic_v1);
    let (scp_json, scp_cipher) = match &scp {
        Ok(s) => {
            let copy = Ok(Copy {
                elapsed: s.elapsed,
                cpu: Duration::ZERO,
                sides: s.client_cpu.zip(s.server_cpu),
            });
            (show("scp", bytes, &copy), Value::from(s.cipher.clone()))
        }
        Err(e) => {
            println!("  scp              not measured: {e}");
            (json!({ "error": e }), Value::Null)
        }
    };
    let rate = |r: &Result<Copy, String>| r.as_ref().ok().map(|c| mbps(bytes, c.elapsed));
    let scp_rate = scp.as_ref().ok().map(|s| mbps(bytes, s.elapsed));
    let num = |v: Option<f64>| v.map_or(Value::Null, |v| json!(round(v, 0)));
    let out = json!({
        "medium": medium.name,
        "dir": medium.base.display().to_string(),
        "sha256_checked": tcp.is_ok() && quic.is_ok(),
        "sides": "sender / receiver CPU: ipm's runtimes (both senders together for tcp_two), the plain copy's two runtimes, scp+ssh / sshd and its sessions",
        "tcp_mbps": num(rate(&tcp)),
        "tcp_two_mbps": num(rate(&tcp_two)),
        "tcp_v1_mbps": num(rate(&tcp_v1)),
        "quic_mbps": num(rate(&quic)),
        "quic_v1_mbps": num(rate(&quic_v1)),
        "raw_tcp_mbps": num(rate(&raw)),
        "scp_mbps": num(scp_rate),
        "tcp_vs_raw": ratio(rate(&tcp), rate(&raw)),
        "quic_vs_raw": ratio(rate(&quic), rate(&raw)),
        "tcp_vs_scp": ratio(rate(&tcp), scp_rate),
        "tcp_vs_tcp_v1": ratio(rate(&tcp), rate(&tcp_v1)),
        "tcp_two_vs_tcp": ratio(rate(&tcp_two), rate(&tcp)),
        "tcp_v1_vs_raw": ratio(rate(&tcp_v1), rate(&raw)),
        "quic_v1_vs_raw": ratio(rate(&quic_v1), rate(&raw)),
        "scp_cipher": scp_cipher,
        "details": {
            "tcp": tcp_json,
            "tcp_two": tcp_two_json,
            "tcp_v1": tcp_v1_json,
            "quic": quic_json,
            "quic_v1": quic_v1_json,
            "raw_tcp": raw_json,
            "scp": scp_json,
        },
    });
    match out {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// The `file_transfer` section: the first medium (RAM when /dev/shm is a tmpfs) gives the
/// headline figures, the others are reported as `on_<medium>`.
pub async fn run(settings: &Settings) -> Value {
    let bytes = settings.file_mb * 1024 * 1024;
    println!("\n== file transfer: {} MiB over loopback", settings.file_mb);
    let raw_memory = baseline::raw_tcp_memory(bytes)
        .await
        .map(|elapsed| Copy {
            elapsed,
            cpu: Duration::ZERO,
            sides: None,
        })
        .map_err(|e| e.to_string());
    show("raw TCP, no file", bytes, &raw_memory);
    let mut out = serde_json::Map::new();
    out.insert("file_mb".into(), json!(settings.file_mb));
    out.insert(
        "raw_tcp_memory_mbps".into(),
        raw_memory
            .as_ref()
            .map_or(Value::Null, |c| json!(round(mbps(bytes, c.elapsed), 0))),
    );
    for (i, medium) in media(settings).iter().enumerate() {
        let round = round_on(settings, medium, bytes).await;
        if i == 0 {
            out.extend(round);
        } else {
            out.insert(format!("on_{}", medium.name), Value::Object(round));
        }
    }
    Value::Object(out)
}
