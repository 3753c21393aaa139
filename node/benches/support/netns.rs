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
    io::{BufRead, Read, Write},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// Set in the environment of the child that delays packets, to the delay in ms.
pub const LINK_ENV: &str = "IPM_BENCH_OVERLAY_LINK";

/// MTU of `tun0`: large, like loopback's, so that TCP sends few packets.
const MTU: u16 = 65_000;

/// A namespace with delayed links; deleted on drop.
pub struct Namespace {
    name: String,
    delay_ms: u64,
    delayer: Option<Child>,
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
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut ready);
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

    /// Packets the kernel dropped on the way to the delay process so far.
    pub fn link_drops(&self) -> Option<u64> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "cat",
                "/sys/class/net/tun0/statistics/tx_dropped",
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
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
    std::thread::spawn(move || {
        while let Ok((due, packet)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let _ = writer.write(&packet);
        }
    });
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
        sink.clear();
    }
    std::process::exit(0)
}
