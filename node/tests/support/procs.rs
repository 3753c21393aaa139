//! Helpers for the tests of the real binaries: spawn `ipm-bootstrap` and `ipm --headless`
//! processes, read their output, and drive them with `ipm ctl`.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{mpsc, OnceLock},
    time::{Duration, Instant},
};

/// Longest any single wait on a process may take.
pub const PROC_WAIT: Duration = Duration::from_secs(30);

/// The `ipm` binary under test.
pub fn ipm() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ipm"))
}

/// `ipm-bootstrap` lives in another package; build it once, beside `ipm`.
pub fn ipm_bootstrap() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args([
                "build",
                "--quiet",
                "-p",
                "ipm-bootstrap",
                "--bin",
                "ipm-bootstrap",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
            if !cfg!(debug_assertions) {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("cargo runs");
            assert!(status.success(), "building ipm-bootstrap failed");
            ipm().with_file_name("ipm-bootstrap")
        })
        .clone()
}

/// A running process whose stdout lines arrive on a channel; killed when dropped.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Spawns `cmd` with its stdout read line by line.
    pub fn spawn(cmd: Command) -> Proc {
        Proc::spawn_with_stdin(cmd, Stdio::null())
    }

    /// Spawns `cmd` reading `stdin`, with its stdout read line by line.
    pub fn spawn_with_stdin(mut cmd: Command, stdin: Stdio) -> Proc {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("process starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The first stdout line `pick` accepts, within [`PROC_WAIT`].
    pub fn wait_line<T>(&self, what: &str, pick: impl FnMut(&str) -> Option<T>) -> T {
        self.wait_line_within(PROC_WAIT, what, pick)
    }

    /// The first stdout line `pick` accepts, within `within`.
    pub fn wait_line_within<T>(
        &self,
        within: Duration,
        what: &str,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(found) = pick(&line) {
                        return found;
                    }
                }
                Err(_) => panic!("{what} did not come within {within:?}"),
            }
        }
    }

    /// The first stdout line `pick` accepts within `within`, or `None` when none came.
    pub fn try_wait_line_within<T>(
        &self,
        within: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            if let Some(found) = pick(&line) {
                return Some(found);
            }
        }
    }

    /// Waits for a JSON event satisfying `pick`.
    pub fn wait_event(&self, what: &str, mut pick: impl FnMut(&serde_json::Value) -> bool) {
        self.wait_line(what, |line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            pick(&value).then_some(())
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts `ipm-bootstrap` on `dir` and returns it with the address it printed.
pub fn start_bootstrap(dir: &Path) -> (Proc, String) {
    let mut cmd = Command::new(ipm_bootstrap());
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
    let proc = Proc::spawn(cmd);
    let addr = proc.wait_line("bootstrap address", |line| {
        line.strip_prefix("listening on ")
            .filter(|a| a.contains("/p2p/"))
            .map(str::to_owned)
    });
    (proc, addr)
}

/// Starts `ipm --headless --json` as `name` on `dir`, joined through `bootstrap`, and waits
/// until it is connected.
pub fn start_node(name: &str, dir: &Path, bootstrap: &str) -> Proc {
    start_node_with(name, dir, bootstrap, &[])
}

/// Like [`start_node`], with more flags (e.g. `--geo`, `--interest`).
pub fn start_node_with(name: &str, dir: &Path, bootstrap: &str, flags: &[&str]) -> Proc {
    let mut cmd = Command::new(ipm());
    cmd.args(["--headless", "--json", "--no-mdns", "--name", name])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", bootstrap])
        .args(flags);
    let proc = Proc::spawn(cmd);
    proc.wait_event("connection to the bootstrap", |v| v["event"] == "connected");
    proc
}

/// Runs `ipm ctl` against the node of `dir`.
pub fn ctl(dir: &Path, words: &[&str]) -> Output {
    Command::new(ipm())
        .arg("ctl")
        .arg("--data-dir")
        .arg(dir)
        .args(words)
        .output()
        .expect("ipm ctl runs")
}

/// Runs `ipm ctl`, requires success, and returns what it printed.
pub fn ctl_ok(dir: &Path, words: &[&str]) -> String {
    let out = ctl(dir, words);
    assert!(
        out.status.success(),
        "ipm ctl {words:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The peer id of the node of `dir`, from `/status`.
pub fn peer_id(dir: &Path) -> String {
    let status = ctl_ok(dir, &["/status"]);
    status
        .lines()
        .find_map(|l| l.strip_prefix("peer id:"))
        .map(|s| s.trim().to_owned())
        .expect("status shows the peer id")
}

/// Polls `/status` until the lobby has `want` other members (subscriptions travel after
/// connecting; nodes find each other through the bootstrap's DHT and connect directly).
pub fn wait_for_lobby_peers(dir: &Path, want: usize) {
    let deadline = Instant::now() + PROC_WAIT;
    loop {
        let status = ctl_ok(dir, &["/status"]);
        let others = status
            .lines()
            .find_map(|l| l.trim().strip_prefix("lobby ("))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if others >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {want} others joined the lobby:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `ipm ctl <words>` on the node of `dir` until its output satisfies `ok` (bounded by
/// [`PROC_WAIT`]) and returns that output.
pub fn wait_for_output(
    dir: &Path,
    words: &[&str],
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + PROC_WAIT;
    loop {
        let out = ctl_ok(dir, words);
        if ok(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `/users` on the node of `dir` until every name of `names` heads a row: the user is
/// online and, for a plain name, its name record was found.
pub fn wait_for_users(dir: &Path, names: &[&str]) -> String {
    wait_for_output(dir, &["/users"], &format!("users {names:?}"), |users| {
        names.iter().all(|name| {
            users
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} ")))
        })
    })
}
