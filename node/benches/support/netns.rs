//! The links of the overlay bench: a network namespace of its own in which every packet
//! between two node addresses goes through a TUN device and is held there for the one-way
//! delay by a small process of this bench (the kernel here has no `netem`), created at start
//! and deleted at the end (needs root).
//!
//! Each node listens on its own address in 127.1.0.0/16 (libp2p dials from the unspecified
//! address, so every connection comes from 127.1.255.253); a routing rule sends locally
//! generated packets to that range out of `tun0`, the delay process writes each back into
//! `tun0` after the delay, and the kernel delivers it locally.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::Path,
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// Set in the environment of the child that delays packets, to the delay in ms.
pub const LINK_ENV: &str = "IPM_BENCH_OVERLAY_LINK";

/// MTU of `tun0`: large, like loopback's, so that TCP sends few packets.
const MTU: u16 = 65_000;

/// A namespace with delayed links; deleted on drop.
pub struct Namespace {
    name: String,
    delay_ms: u64,
    delayer: Option<Child>,
    /// The delay process's stdin and stdout, to ask it for its counts.
    delayer_io: Mutex<Option<(ChildStdin, BufReader<ChildStdout>)>>,
}

/// Where packets between nodes can be lost outside the bench's own queue, and what TCP did
/// about losses, as counted by the kernel (`None`: could not be read).
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkCounters {
    /// Packets dropped because a CPU's input backlog was full (`netdev_max_backlog`; second
    /// column of `/proc/net/softnet_stat`, all CPUs; the whole machine, not only the bench).
    pub backlog_drops: Option<u64>,
    /// Packets `tun0` dropped on their way back in.
    pub rx_dropped: Option<u64>,
    /// Packets `tun0` dropped on their way to the delay process.
    pub tx_dropped: Option<u64>,
    /// TCP segments sent again (`RetransSegs`, SYNs included).
    pub retransmitted: Option<u64>,
    /// Of those, SYNs and SYN-ACKs sent again (`TCPSynRetrans`).
    pub syn_retransmitted: Option<u64>,
    /// TCP retransmission timeouts (`TCPTimeouts`).
    pub timeouts: Option<u64>,
    /// TCP segments sent.
    pub segments_out: Option<u64>,
    /// TCP connections opened (`ActiveOpens`).
    pub connections_opened: Option<u64>,
    /// TCP resets sent (`OutRsts`): connections closed with data unread, or segments for
    /// connections already gone.
    pub resets_sent: Option<u64>,
    /// Segments a receiving socket dropped (backlog or receive queue full, out-of-order
    /// queue pruned).
    pub socket_drops: Option<u64>,
    /// Connections a listener dropped (`ListenDrops`: accept queue full).
    pub listen_drops: Option<u64>,
    /// Packets the delay process could not write back into `tun0`.
    pub write_errors: Option<u64>,
}

impl LinkCounters {
    /// What was counted between `before` and `self`, for the output.
    pub fn since(&self, before: &LinkCounters) -> Value {
        let d = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a.saturating_sub(b));
        json!({
            "backlog_drops": d(self.backlog_drops, before.backlog_drops),
            "tun_rx_dropped": d(self.rx_dropped, before.rx_dropped),
            "tun_tx_dropped": d(self.tx_dropped, before.tx_dropped),
            "delay_write_errors": d(self.write_errors, before.write_errors),
            "tcp_segments_out": d(self.segments_out, before.segments_out),
            "tcp_retransmitted_segments": d(self.retransmitted, before.retransmitted),
            "tcp_syn_retransmitted": d(self.syn_retransmitted, before.syn_retransmitted),
            "tcp_retransmission_timeouts": d(self.timeouts, before.timeouts),
            "tcp_socket_drops": d(self.socket_drops, before.socket_drops),
            "tcp_listen_drops": d(self.listen_drops, before.listen_drops),
            "tcp_connections_opened": d(self.connections_opened, before.connections_opened),
            "tcp_resets_sent": d(self.resets_sent, before.resets_sent),
        })
    }
}

/// The sum of the second column (drops, hex) of `/proc/net/softnet_stat`.
fn backlog_drops(softnet_stat: &str) -> u64 {
    softnet_stat
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .sum()
}

/// Counter `name` of `group` in the text of `/proc/net/snmp` or `/proc/net/netstat`: a line
/// of names and a line of values, each starting with `group:`.
fn proc_counter(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let at = names.split_whitespace().position(|n| n == name);
        if let Some(at) = at {
            return values.split_whitespace().nth(at)?.parse().ok();
        }
    }
    None
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Namespace {
    /// Creates the namespace, its TUN device and routes, and starts the delay process.
    pub fn create(delay_ms: u64) -> Result<Namespace, String> {
        let name = format!("ipm-bench-{}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        let mut ns = Namespace {
            name,
            delay_ms,
            delayer: None,
            delayer_io: Mutex::new(None),
        };
        let x = |ns: &Namespace, cmd: &str| -> Result<(), String> {
            let mut args = vec!["ip", "netns", "exec", &ns.name];
            args.extend(cmd.split(' '));
            run(&args)
        };
        x(&ns, "ip link set lo up")?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // Ahead of the nodes on the cores: a delay process waiting for a core would add its
        // wait to every packet.
        let mut child = ns
            .command(Path::new("nice"))
            .args(["-n", "-10"])
            .arg(&exe)
            .env(LINK_ENV, delay_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("delay process: {e}"))?;
        let mut ready = String::new();
        if let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) {
            let mut output = BufReader::new(output);
            let _ = output.read_line(&mut ready);
            ns.delayer_io = Mutex::new(Some((input, output)));
        }
        ns.delayer = Some(child);
        if ready.trim() != "ready" {
            return Err(format!("the delay process did not start: {}", ready.trim()));
        }
        for cmd in [
            // The kernel's queue towards the delay process: its default of 500 packets
            // overflows in bursts, and each drop costs a TCP retransmission timeout.
            "ip link set tun0 txqueuelen 100000",
            "ip route add 127.1.0.0/16 dev tun0 table 100 src 127.1.255.253",
            "ip rule add pref 10 iif lo to 127.1.0.0/16 lookup 100",
            "ip rule add pref 100 lookup local",
            "ip rule del pref 0",
        ] {
            x(&ns, cmd)?;
        }
        for dev in ["all", "default", "lo", "tun0"] {
            for (key, value) in [("rp_filter", 0), ("route_localnet", 1), ("accept_local", 1)] {
                x(
                    &ns,
                    &format!("sysctl -qw net.ipv4.conf.{dev}.{key}={value}"),
                )?;
            }
        }
        Ok(ns)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Bytes of every packet between nodes so far (IP headers included), counted once.
    pub fn link_bytes(&self) -> Option<u64> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "cat",
                "/sys/class/net/tun0/statistics/tx_bytes",
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// The counters that show packets lost on the links or recovered by TCP, so far.
    pub fn link_counters(&self) -> LinkCounters {
        let read = |path: &str| {
            Command::new("ip")
                .args(["netns", "exec", &self.name, "cat", path])
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let tun = |name: &str| {
            read(&format!("/sys/class/net/tun0/statistics/{name}"))
                .trim()
                .parse()
                .ok()
        };
        let mut snmp = read("/proc/net/snmp");
        snmp.push_str(&read("/proc/net/netstat"));
        let counter = |group: &str, name: &str| proc_counter(&snmp, group, name);
        LinkCounters {
            backlog_drops: std::fs::read_to_string("/proc/net/softnet_stat")
                .ok()
                .map(|t| backlog_drops(&t)),
            rx_dropped: tun("rx_dropped"),
            tx_dropped: tun("tx_dropped"),
            retransmitted: counter("Tcp", "RetransSegs"),
            syn_retransmitted: counter("TcpExt", "TCPSynRetrans"),
            timeouts: counter("TcpExt", "TCPTimeouts"),
            segments_out: counter("Tcp", "OutSegs"),
            connections_opened: counter("Tcp", "ActiveOpens"),
            resets_sent: counter("Tcp", "OutRsts"),
            socket_drops: [
                "TCPBacklogDrop",
                "TCPRcvQDrop",
                "TCPOFODrop",
                "PFMemallocDrop",
            ]
            .iter()
            .map(|name| counter("TcpExt", name))
            .sum(),
            listen_drops: counter("TcpExt", "ListenDrops"),
            write_errors: self.delayer_write_errors(),
        }
    }

    /// Packets the delay process could not write back into `tun0` so far.
    fn delayer_write_errors(&self) -> Option<u64> {
        let mut io = self.delayer_io.lock().ok()?;
        let (input, output) = io.as_mut()?;
        writeln!(input, "counts").ok()?;
        input.flush().ok()?;
        let mut line = String::new();
        output.read_line(&mut line).ok()?;
        line.trim().strip_prefix("write_errors ")?.parse().ok()
    }

    /// CPU seconds the delay process used so far.
    pub fn delayer_cpu_s(&self) -> Option<f64> {
        let pid = self.delayer.as_ref()?.id();
        super::machine::cpu_of(pid).map(|d| d.as_secs_f64())
    }

    /// How the links are made, for the output.
    pub fn describe(&self, hosts: usize, per_host: usize) -> String {
        let hosts = if hosts == 0 {
            format!("up to {per_host} nodes per process")
        } else {
            format!("{hosts} processes of up to {per_host} nodes, plus one for the bootstrap")
        };
        format!(
            "real TCP+Noise+Yamux between processes in network namespace {}, every packet held \
             {} ms in a TUN delay process ({} ms round trip); {hosts}; each node listening on its \
             own 127.1.x.y address, dialling from 127.1.255.253",
            self.name,
            self.delay_ms,
            2 * self.delay_ms
        )
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Closing its stdin tells the delay process to exit.
        if let Ok(mut io) = self.delayer_io.lock() {
            io.take();
        }
        if let Some(mut child) = self.delayer.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(e) = run(&["ip", "netns", "del", &self.name]) {
            eprintln!("{e}");
        }
    }
}

/// The delay process: creates `tun0` and writes back every packet read from it `delay_ms`
/// later, in order. Exits when its parent closes stdin.
pub fn run_delayer(delay_ms: u64) -> ! {
    let mut config = tun::Configuration::default();
    config.tun_name("tun0").mtu(MTU).up();
    let device = match tun::create(&config) {
        Ok(d) => d,
        Err(e) => {
            println!("cannot create tun0: {e}");
            std::process::exit(1)
        }
    };
    let delay = Duration::from_millis(delay_ms);
    let (mut reader, mut writer) = device.split();
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; usize::from(MTU) + 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(n) if n > 0 => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    });
    let write_errors = Arc::new(AtomicU64::new(0));
    let errors = write_errors.clone();
    std::thread::spawn(move || {
        while let Ok((due, packet)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if writer.write(&packet).is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    println!("ready");
    let _ = std::io::stdout().flush();
    // Each line asks for the counts; the end of stdin ends the process.
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
        line.clear();
        println!("write_errors {}", write_errors.load(Ordering::Relaxed));
        let _ = std::io::stdout().flush();
    }
    std::process::exit(0)
}
