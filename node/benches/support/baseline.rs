//! The alternatives ipm's file transfer is compared with: a plain tokio TCP copy over loopback
//! and `scp` to a private `sshd` on loopback. Like ipm, each copy ends with the received file
//! synced to disk, so all of them do the same work at the receiving end.

use std::{
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Buffer of the plain copies.
const BUF: usize = 1 << 20;

/// Copies the file `src` to `dst` through one loopback TCP connection: read the file, write
/// the socket; read the socket, write the file, fsync. The receiving end runs on `receiver`
/// (so that its CPU can be told apart). Returns the wall time.
pub async fn raw_tcp_copy(
    src: &Path,
    dst: &Path,
    receiver: &tokio::runtime::Handle,
) -> io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let dst = dst.to_owned();
    let started = Instant::now();
    let receiver = receiver.spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut file = tokio::fs::File::create(&dst).await?;
        let mut buf = vec![0u8; BUF];
        let mut total = 0u64;
        loop {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).await?;
            total += n as u64;
        }
        file.flush().await?;
        file.sync_all().await?;
        Ok::<u64, io::Error>(total)
    });
    let mut socket = TcpStream::connect(addr).await?;
    let mut file = tokio::fs::File::open(src).await?;
    let mut buf = vec![0u8; BUF];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        socket.write_all(&buf[..n]).await?;
    }
    socket.shutdown().await?;
    drop(socket);
    let received = receiver.await.map_err(io::Error::other)??;
    let elapsed = started.elapsed();
    let sent = tokio::fs::metadata(src).await?.len();
    if received != sent {
        return Err(io::Error::other(format!(
            "received {received} of {sent} bytes"
        )));
    }
    Ok(elapsed)
}

/// Sends `bytes` of memory through one loopback TCP connection to a reader that drops them:
/// the ceiling of the loopback path itself, without any disk.
pub async fn raw_tcp_memory(bytes: u64) -> io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let started = Instant::now();
    let receiver = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = vec![0u8; BUF];
        let mut total = 0u64;
        loop {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        Ok::<u64, io::Error>(total)
    });
    let mut socket = TcpStream::connect(addr).await?;
    let buf = vec![0x5au8; BUF];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        socket.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    socket.shutdown().await?;
    drop(socket);
    let received = receiver.await.map_err(io::Error::other)??;
    if received != bytes {
        return Err(io::Error::other(format!(
            "received {received} of {bytes} bytes"
        )));
    }
    Ok(started.elapsed())
}

/// The first of `names` found on `PATH` or as an absolute path.
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    names.iter().find_map(|name| {
        let direct = PathBuf::from(name);
        if direct.is_absolute() {
            return direct.is_file().then_some(direct);
        }
        dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
    })
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            err.lines().next().unwrap_or("no message")
        ))
    }
}

/// A private `sshd` on a free loopback port, killed when dropped.
struct Sshd {
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `scp` over loopback took, or why it could not run here.
pub struct ScpResult {
    /// Wall time of `scp` plus the fsync of the received file.
    pub elapsed: Duration,
    /// CPU of `scp` and the `ssh` it ran (the sending side).
    pub client_cpu: Option<Duration>,
    /// CPU of `sshd` and the session processes it ran for the copy (the receiving side).
    pub server_cpu: Option<Duration>,
    /// The cipher ssh negotiated first by default.
    pub cipher: String,
}

/// Copies `src` to `dst` with `scp` to a private `sshd` started for this run on a free
/// loopback port, with a throwaway host key and client key in a temporary folder, logging in
/// as the current user. Fails (with the reason) when ssh, scp or sshd is not installed.
pub fn scp(src: &Path, dst: &Path) -> Result<ScpResult, String> {
    let missing =
        |what: &str| format!("{what} is not installed (Debian: openssh-server, openssh-client)");
    let sshd = find(&["/usr/sbin/sshd", "sshd"]).ok_or_else(|| missing("sshd"))?;
    let ssh = find(&["ssh"]).ok_or_else(|| missing("ssh"))?;
    let scp = find(&["scp"]).ok_or_else(|| missing("scp"))?;
    let keygen = find(&["ssh-keygen"]).ok_or_else(|| missing("ssh-keygen"))?;
    let sftp_server = find(&[
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/libexec/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]);
    let user = run(Command::new("id").arg("-un"))?;

    let dir = tempfile::Builder::new()
        .prefix("ipm-bench-sshd-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let path = |name: &str| dir.path().join(name);
    for key in ["host_key", "client_key"] {
        run(Command::new(&keygen)
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path(key)))?;
    }
    std::fs::copy(path("client_key.pub"), path("authorized_keys")).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let subsystem = sftp_server.as_ref().map_or(String::new(), |p| {
        format!("Subsystem sftp {}\n", p.display())
    });
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
         AuthorizedKeysFile {auth}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\nLogLevel ERROR\n{subsystem}",
        host = path("host_key").display(),
        pid = path("sshd.pid").display(),
        auth = path("authorized_keys").display(),
    );
    std::fs::write(path("sshd_config"), config).map_err(|e| e.to_string())?;
    // sshd insists on its privilege-separation folder, which its service script normally
    // creates at boot; create it the same way when it is missing and we may.
    let _ = std::fs::create_dir_all("/run/sshd");
    let log = std::fs::File::create(path("sshd.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&sshd)
        .args(["-D", "-e", "-f"])
        .arg(path("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start sshd: {e}"))?;
    let mut server = Sshd { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = server.child.try_wait().ok().flatten().is_some();
        if exited || Instant::now() > deadline {
            let log = std::fs::read_to_string(path("sshd.log")).unwrap_or_default();
            return Err(format!(
                "sshd did not start: {}",
                log.lines().next().unwrap_or("no message")
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let key = path("client_key");
    let common = |cmd: &mut Command| {
        cmd.arg("-F").arg("/dev/null").arg("-i").arg(&key).args([
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
        ]);
    };
    let mut check = Command::new(&ssh);
    common(&mut check);
    check
        .args(["-p", &port.to_string()])
        .arg(format!("{user}@127.0.0.1"))
        .arg("true");
    run(&mut check).map_err(|e| format!("ssh to the private sshd failed: {e}"))?;
    let mut cipher = Command::new(&ssh);
    common(&mut cipher);
    cipher.args(["-G", "127.0.0.1"]);
    let cipher = run(&mut cipher)
        .ok()
        .and_then(|out| {
            out.lines()
                .find_map(|l| l.strip_prefix("ciphers "))
                .and_then(|c| c.split(',').next())
                .map(str::to_owned)
        })
        .unwrap_or_default();

    let mut copy = Command::new(&scp);
    common(&mut copy);
    if sftp_server.is_none() {
        // Without an SFTP server, scp's original protocol.
        copy.arg("-O");
    }
    copy.args(["-q", "-P", &port.to_string()])
        .arg(src)
        .arg(format!("{user}@127.0.0.1:{}", dst.display()));
    let sshd_pid = server.child.id();
    wait_for_sessions(sshd_pid);
    let (client_before, server_before) = (
        super::machine::children_cpu(),
        super::machine::cpu_with_children_of(sshd_pid),
    );
    let started = Instant::now();
    run(&mut copy)?;
    std::fs::File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dst.display()))?;
    let elapsed = started.elapsed();
    let client_cpu = super::machine::children_cpu()
        .zip(client_before)
        .map(|(after, before)| after.saturating_sub(before));
    wait_for_sessions(sshd_pid);
    let server_cpu = super::machine::cpu_with_children_of(sshd_pid)
        .zip(server_before)
        .map(|(after, before)| after.saturating_sub(before));
    drop(server);
    let (sent, got) = (
        std::fs::metadata(src).map_err(|e| e.to_string())?.len(),
        std::fs::metadata(dst).map_err(|e| e.to_string())?.len(),
    );
    if sent != got {
        return Err(format!("scp delivered {got} of {sent} bytes"));
    }
    Ok(ScpResult {
        elapsed,
        cipher,
        client_cpu,
        server_cpu,
    })
}

/// Waits (at most 5 s) until `sshd` has reaped the session processes of the last login, so
/// that their CPU is in its children's time.
fn wait_for_sessions(sshd: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while super::machine::has_children(sshd) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}
