//! A full disk, with real processes: bob's data dir is a small tmpfs (mounted in a user and
//! mount namespace of its own, so no privilege is needed) that the test fills. A lobby line
//! bob types is then reported as not sent and does not reach alice, the page's upload is
//! refused before its body is read and leaves nothing behind, and once space is back
//! everything works again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use support::procs::{self, ctl, ctl_ok, start_bootstrap, start_node, wait_for_lobby_peers, Proc};

/// Size of bob's data dir.
const DISK: &str = "24m";

/// Starts bob as `ipm --headless --json --web` on a fresh tmpfs mounted at `mount`, in a
/// namespace of its own; answers the process, the path through which the test reaches its
/// data dir from outside (`/proc/PID/root/...`) and the web UI's URL.
fn start_bob_on_tmpfs(mount: &Path, bootstrap: &str) -> (Proc, PathBuf, String) {
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size={DISK},mode=700 tmpfs \"$1\" && exec \"$2\" --headless --json \
             --no-mdns --name bob --web 127.0.0.1:0 --data-dir \"$1\" \
             --listen /ip4/127.0.0.1/tcp/0 --bootstrap \"$3\""
        ))
        .arg("sh")
        .arg(mount)
        .arg(procs::ipm())
        .arg(bootstrap)
        .env_remove("IPM_PASSPHRASE");
    let proc = Proc::spawn(cmd);
    let url = proc.wait_line("bob's web UI", |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["event"] == "web").then(|| v["url"].as_str().map(str::to_owned))?
    });
    let inside = PathBuf::from(format!("/proc/{}/root", proc.pid())).join(
        mount
            .strip_prefix("/")
            .expect("the mount point is an absolute path"),
    );
    (proc, inside, url)
}

/// Writes zeros to `path` until the disk holding it is full; answers the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk failed otherwise: {e}"),
        }
    }
    let _ = file.sync_all();
    written
}

/// The lobby lines alice has received so far, up to and including `last`.
fn alice_hears_until(alice: &Proc, last: &str) -> Vec<String> {
    let mut heard = Vec::new();
    alice.wait_line(&format!("alice hears {last:?}"), |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        if v["event"] == "message" && v["room"] == "lobby" {
            let text = v["text"].as_str().unwrap_or_default().to_owned();
            heard.push(text.clone());
            return (text == last).then_some(());
        }
        None
    });
    heard
}

#[test]
fn a_full_disk_reports_a_line_as_not_sent_and_refuses_an_upload_leaving_nothing_behind() {
    let (boot_dir, alice_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mount = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = start_bootstrap(boot_dir.path());
    let alice = start_node("alice", alice_dir.path(), &addr);
    let (_bob, bob_dir, url) = start_bob_on_tmpfs(mount.path(), &addr);
    wait_for_lobby_peers(&bob_dir, 1);
    ctl_ok(&bob_dir, &["before the disk fills"]);
    alice_hears_until(&alice, "before the disk fills");

    let filler = bob_dir.join("filler");
    let filled = fill(&filler);
    println!("bob's disk filled with {} KiB", filled / 1024);

    // Lines typed now go into what is left of the log's last block, then one cannot be
    // kept: bob is told, and it is not sent.
    let mut sent = Vec::new();
    let (refused, said) = (0..200)
        .find_map(|i| {
            let text = format!("while the disk is full {i}");
            let out = ctl(&bob_dir, &[&text]);
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() {
                sent.push(text);
                return None;
            }
            Some((text, said))
        })
        .expect("a line is refused once the log's last block is full");
    println!(
        "{} lines still fitted; then bob is told: {}",
        sent.len(),
        said.trim()
    );
    assert!(said.contains("not sent"), "{said}");

    // The page's upload of a file larger than the free space is refused before its body is
    // sent: no `100 Continue`, no partial file.
    let port: u16 = url
        .trim_start_matches("http://")
        .split(['/', '#'])
        .next()
        .and_then(|host| host.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let token = url.split("#token=").nth(1).unwrap();
    let (status, body) = browser::raw_http(
        port,
        &format!(
            "POST /api/upload?name=big.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             x-ipm-token: {token}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            64 << 20
        ),
    );
    println!("the upload is answered {status}: {body}");
    assert_eq!(status, 507, "{body}");
    assert!(body.contains("not enough disk space"), "{body}");
    let uploads = bob_dir.join("web-uploads");
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the refused upload left {left:?}");

    // Space is back: the next line is sent, logged and heard; every line reported sent was
    // heard and kept, the refused one never was.
    std::fs::remove_file(&filler).unwrap();
    ctl_ok(&bob_dir, &["the disk has room again"]);
    let heard = alice_hears_until(&alice, "the disk has room again");
    assert!(
        !heard.contains(&refused),
        "alice got the line bob was told was not sent: {heard:?}"
    );
    assert!(sent.iter().all(|t| heard.contains(t)), "{heard:?}");
    let history = ctl_ok(&bob_dir, &["/history", "lobby", "300"]);
    assert!(history.contains("the disk has room again"), "{history}");
    assert!(!history.contains(&refused), "{history}");
    assert!(
        sent.iter().all(|t| history.contains(t.as_str())),
        "{history}"
    );
}
