//! End-to-end tests of the real binaries: `ipm-bootstrap` plus `ipm --headless` processes
//! driven with `ipm ctl`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::Duration,
};

use support::procs::*;

fn is_message(v: &serde_json::Value, from: &str, text: &str) -> bool {
    v["event"] == "message" && v["from"] == from && v["text"] == text && v["room"] == "lobby"
}

#[test]
fn a_user_who_quits_is_shown_offline_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = start_bootstrap(&tmp.path().join("bootstrap"));
    let (alice_dir, bob_dir) = (tmp.path().join("alice"), tmp.path().join("bob"));
    let alice = start_node("alice", &alice_dir, &addr);
    let _bob = start_node("bob", &bob_dir, &addr);
    alice.wait_event("bob's presence", |v| {
        v["event"] == "user_online" && v["name"] == "bob"
    });

    ctl_ok(&bob_dir, &["/quit"]);
    // Silence alone would take the 30 s presence timeout: the goodbye is what tells her.
    alice.wait_line_within(Duration::from_secs(10), "bob going offline", |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v["event"] == "user_offline" && v["name"] == "bob").then_some(())
    });
    let users = ctl_ok(&alice_dir, &["/users"]);
    assert!(!users.contains("bob"), "{users}");
}

#[test]
fn three_nodes_chat_survive_kill_9_and_keep_their_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = start_bootstrap(&tmp.path().join("bootstrap"));
    let dirs: Vec<PathBuf> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    let alice = start_node("alice", &dirs[0], &addr);
    let mut bob = start_node("bob", &dirs[1], &addr);
    let carol = start_node("carol", &dirs[2], &addr);
    for dir in &dirs {
        wait_for_lobby_peers(dir, 3);
    }
    wait_for_users(&dirs[1], &["alice"]);
    wait_for_users(&dirs[2], &["alice"]);

    let sent = ctl_ok(&dirs[0], &["hello", "from", "alice", ":wave:"]);
    assert!(sent.starts_with("sent "), "{sent}");
    for node in [&bob, &carol] {
        node.wait_event("alice's line", |v| {
            is_message(v, "alice", "hello from alice 👋")
        });
    }

    let bob_id = peer_id(&dirs[1]);
    bob.kill9();
    let bob = start_node("bob", &dirs[1], &addr);
    assert_eq!(
        peer_id(&dirs[1]),
        bob_id,
        "bob keeps his peer id across kill -9"
    );
    let history = ctl_ok(&dirs[1], &["/history", "lobby", "20"]);
    assert!(history.contains("alice: hello from alice 👋"), "{history}");

    wait_for_lobby_peers(&dirs[1], 3);
    wait_for_lobby_peers(&dirs[2], 3);
    wait_for_users(&dirs[1], &["carol"]);
    ctl_ok(&dirs[2], &["back", "again"]);
    bob.wait_event("carol's line after the restart", |v| {
        is_message(v, "carol", "back again")
    });

    let saved = tmp.path().join("chat.txt");
    let out = ctl_ok(&dirs[1], &["/save", "lobby", saved.to_str().unwrap()]);
    assert!(out.contains("saved 2 messages"), "{out}");
    let text = std::fs::read_to_string(&saved).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with(" alice: hello from alice 👋"), "{text}");
    assert!(lines[1].ends_with(" carol: back again"), "{text}");
    drop(alice);
}

fn run(args: &[&str]) -> Output {
    Command::new(ipm())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ipm runs")
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let last = err.lines().last().unwrap_or("").to_owned();
    assert!(last.starts_with("ipm: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    last
}

#[test]
fn bad_input_gives_a_one_line_error_and_a_nonzero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    let missing = tmp.path().join("no/parent");
    let err = one_line_error(&run(&[
        "--headless",
        "--data-dir",
        missing.to_str().unwrap(),
    ]));
    assert!(err.contains("does not exist"), "{err}");

    let dir = tmp.path().join("lonely");
    let err = one_line_error(&run(&[
        "--headless",
        "--no-mdns",
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--bootstrap",
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWFns9ahtDBvZfQ2tTqkux6FC9qc6k9KvPmGbY9vnXcFNP",
    ]));
    assert!(err.contains("cannot reach any bootstrap"), "{err}");

    let err = one_line_error(&run(&[
        "--name",
        "bad#name",
        "--data-dir",
        dir.to_str().unwrap(),
    ]));
    assert!(err.contains("bad name"), "{err}");

    let out = ctl(&dir, &["/status"]);
    let err = one_line_error(&out);
    assert!(err.contains("no ipm node is running"), "{err}");
}

#[test]
fn piped_stdin_runs_commands_until_end_of_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("n");
    let mut child = Command::new(ipm())
        .args([
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
        ])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "/help status").unwrap();
        writeln!(stdin, "/join interest:Rust Lang").unwrap();
        writeln!(stdin, "/join interest:rust-lang").unwrap();
        writeln!(stdin, "/rooms").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/status"), "{text}");
    assert!(
        text.contains("usage: /join"),
        "a tag with a space is two words: {text}"
    );
    assert!(text.contains("joined interest:rust-lang"), "{text}");
    assert!(text.contains("* interest:rust-lang"), "{text}");
}

fn field(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// Waits for a JSON event and returns it.
fn wait_json(
    proc: &Proc,
    what: &str,
    mut pick: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    proc.wait_line(what, |line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        pick(&value).then_some(value)
    })
}

#[test]
fn private_messages_and_files_between_processes_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = start_bootstrap(&tmp.path().join("bootstrap"));
    let dirs: Vec<PathBuf> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| tmp.path().join(n))
        .collect();
    let mut alice = start_node("alice", &dirs[0], &addr);
    let mut bob = start_node("bob", &dirs[1], &addr);
    let carol = start_node("carol", &dirs[2], &addr);
    let alice_id = peer_id(&dirs[0]);
    let bob_id = peer_id(&dirs[1]);

    let out = ctl_ok(&dirs[0], &["/msg", &bob_id, "hi", "bob"]);
    assert!(out.starts_with("delivered to"), "{out}");
    let got = wait_json(&bob, "alice's private message", |v| v["event"] == "direct");
    assert_eq!(
        (field(&got, "text"), field(&got, "peer")),
        ("hi bob".into(), alice_id.clone())
    );
    // Carol's next event about messages is a lobby line sent afterwards, never the private one.
    for dir in &dirs {
        wait_for_lobby_peers(dir, 3);
    }
    // Carol shows alice by her plain name once the DHT confirmed it.
    wait_for_users(&dirs[2], &["alice"]);
    ctl_ok(&dirs[0], &["after", "the", "private", "one"]);
    carol.wait_event("the lobby line", |v| {
        assert_ne!(v["event"], "direct", "carol got a private message");
        is_message(v, "alice", "after the private one")
    });

    // Bob goes away; alice's message waits in her outbox, even through her own kill -9.
    bob.kill9();
    let out = ctl_ok(&dirs[0], &["/msg", &bob_id, "later"]);
    assert!(out.contains("queued"), "{out}");
    alice.kill9();
    alice = start_node("alice", &dirs[0], &addr);
    bob = start_node("bob", &dirs[1], &addr);
    let got = wait_json(&bob, "the queued message", |v| v["event"] == "direct");
    assert_eq!(field(&got, "text"), "later");
    wait_json(&alice, "the delivery report", |v| v["event"] == "delivered");
    // Exactly once, also in bob's log of the conversation.
    let history = ctl_ok(&dirs[1], &["/history", &alice_id, "10"]);
    assert_eq!(history.matches("later").count(), 1, "{history}");
    // Until bob's node has checked alice's name record, she is shown as alice#xxxx.
    let first = history.lines().next().unwrap_or_default();
    assert!(
        first.contains(" alice") && first.ends_with(": hi bob"),
        "{history}"
    );

    // A file: offered, accepted with ipm ctl, verified.
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let src = tmp.path().join("photo.jpg");
    std::fs::write(&src, &data).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&data))
    };
    let out = ctl_ok(&dirs[0], &["/send-file", &bob_id, src.to_str().unwrap()]);
    assert!(out.contains("offered"), "{out}");
    let offer = wait_json(&bob, "the file offer", |v| v["event"] == "file_offer");
    assert_eq!(field(&offer, "name"), "photo.jpg");
    let id = field(&offer, "transfer");
    let out = ctl_ok(&dirs[1], &["/accept", &id[..8]]);
    assert!(out.starts_with("downloading photo.jpg"), "{out}");
    let done = wait_json(&bob, "the received file", |v| {
        v["event"] == "file_received" || v["event"] == "file_failed"
    });
    assert_eq!(done["event"], "file_received", "{done}");
    assert_eq!(field(&done, "sha256"), sha);
    assert_eq!(std::fs::read(field(&done, "path")).unwrap(), data);
    let transfers = ctl_ok(&dirs[1], &["/transfers"]);
    assert!(transfers.contains("received:"), "{transfers}");
}

/// Runs `ipm --headless` as `name` on `dir` through `bootstrap` and returns its exit once it
/// stops on its own (bounded by [`PROC_WAIT`]).
fn run_until_exit(name: &str, dir: &std::path::Path, bootstrap: &str) -> Output {
    let child = Command::new(ipm())
        .args(["--headless", "--json", "--no-mdns", "--name", name])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", bootstrap])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ipm starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PROC_WAIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("ipm --name {name} kept running although the name is taken");
        }
    }
}

#[test]
fn a_name_registered_at_the_bootstrap_stays_its_owners_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let boot_dir = tmp.path().join("bootstrap");
    let (mut bootstrap, addr) = start_bootstrap(&boot_dir);
    let alice_dir = tmp.path().join("alice");
    let mut alice = start_node("alice", &alice_dir, &addr);
    wait_json(&alice, "the registration", |v| {
        v["event"] == "registered" && v["name"] == "alice" && v["new"] == true
    });
    let alice_id = peer_id(&alice_dir);

    // Another user (another data dir, so another key) cannot start under the name.
    let out = run_until_exit("alice", &tmp.path().join("mallory"), &addr);
    assert!(!out.status.success());
    let err = one_line_error(&out);
    assert!(
        err.contains("the name \"alice\" is registered to another user at bootstrap")
            && err.ends_with("pick another with --name"),
        "{err}"
    );

    // Alice restarts on her data dir: she logs in with her name.
    alice.kill9();
    let alice = start_node("alice", &alice_dir, &addr);
    wait_json(&alice, "the login", |v| {
        v["event"] == "registered" && v["name"] == "alice" && v["new"] == false
    });

    // A second user sees alice by her plain name, as the registry confirmed it.
    let bob_dir = tmp.path().join("bob");
    let _bob = start_node("bob", &bob_dir, &addr);
    let users = wait_for_users(&bob_dir, &["alice"]);
    assert!(users.contains(&alice_id), "{users}");

    // The bootstrap restarts on its data dir (at a new port): the name is still taken.
    bootstrap.kill9();
    let (_bootstrap, addr) = start_bootstrap(&boot_dir);
    let out = run_until_exit("alice", &tmp.path().join("mallory"), &addr);
    assert!(!out.status.success());
    assert!(
        one_line_error(&out).contains("is registered to another user"),
        "{}",
        one_line_error(&out)
    );
}
