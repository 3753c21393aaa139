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

/// Starts another user (another data dir, so another key) as `alice` and checks that it
/// runs as `alice#xxxx`, told so in one line, without saving the name.
fn second_alice_is_told_the_name_is_taken(dir: &std::path::Path, bootstrap: &str) {
    let mallory = start_node("alice", dir, bootstrap);
    mallory.wait_event("the name refused", |v| {
        v["event"] == "error"
            && v["message"].as_str().is_some_and(|m| {
                m.starts_with("the name alice is taken") && m.contains("see you as alice#")
            })
    });
    let status = ctl_ok(dir, &["/status"]);
    assert!(status.contains("alice#"), "{status}");
    drop(mallory);
    let saved = std::fs::read_to_string(dir.join("settings.json")).unwrap_or_default();
    assert!(
        !saved.contains("\"alice\""),
        "the refused name was saved: {saved}"
    );
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

    // Another user (another data dir, so another key) runs as alice#xxxx and is told so.
    second_alice_is_told_the_name_is_taken(&tmp.path().join("mallory"), &addr);

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
    second_alice_is_told_the_name_is_taken(&tmp.path().join("mallory2"), &addr);
}

/// Starts `ipm --headless --json` alone on `dir` (no bootstrap) and waits until it listens.
fn start_alone(dir: &std::path::Path) -> Proc {
    let mut cmd = Command::new(ipm());
    cmd.args(["--headless", "--json", "--no-mdns", "--name", "alice"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"]);
    let proc = Proc::spawn(cmd);
    proc.wait_event("the node listening", |v| v["event"] == "listening");
    proc
}

/// Runs `program args` with a stdout whose reader is gone before anything is written, and
/// returns how it ended with its stderr (bounded by [`PROC_WAIT`]).
fn run_with_closed_stdout(
    program: &std::path::Path,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    drop(child.stdout.take());
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        text
    });
    let deadline = std::time::Instant::now() + PROC_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "{} {args:?} kept running with its stdout closed",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap())
}

/// A pipeline that stops reading (`ipm ctl /users | grep -q bob`) ends every binary quietly:
/// no panic, no signal, exit 0.
#[test]
fn a_closed_stdout_ends_every_binary_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("alice");
    let _alice = start_alone(&dir);
    let dir_arg = dir.to_str().unwrap();
    let quiet = |what: String, (status, stderr): (std::process::ExitStatus, String)| {
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{what}: {stderr}");
        assert_eq!(
            status.code(),
            Some(0),
            "{what} ended by {status:?}: {stderr}"
        );
    };
    for round in 0..20 {
        for words in [&["/help"][..], &["/status"], &["/emoji"], &["/users"]] {
            let mut args = vec!["ctl", "--data-dir", dir_arg];
            args.extend_from_slice(words);
            quiet(
                format!("round {round}: ipm ctl {words:?}"),
                run_with_closed_stdout(&ipm(), &args),
            );
        }
    }
    quiet(
        "ipm completions bash".into(),
        run_with_closed_stdout(&ipm(), &["completions", "bash"]),
    );
    // The daemon's events and the bootstrap's addresses: each stops as on a quit.
    let node = tmp.path().join("bob");
    quiet(
        "ipm --headless --json".into(),
        run_with_closed_stdout(
            &ipm(),
            &[
                "--headless",
                "--json",
                "--no-mdns",
                "--data-dir",
                node.to_str().unwrap(),
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ],
        ),
    );
    let boot = tmp.path().join("bootstrap");
    quiet(
        "ipm-bootstrap".into(),
        run_with_closed_stdout(
            &ipm_bootstrap(),
            &[
                "--data-dir",
                boot.to_str().unwrap(),
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
            ],
        ),
    );
}

/// Whether `text` holds a run of `n` hex digits (a whole message id).
fn has_hex_run(text: &str, n: usize) -> bool {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .any(|word| word.len() >= n)
}

/// What `ipm ctl` answers reads as the prompt does: short references, emoji shortcodes,
/// a reaction that is one emoji.
#[test]
fn ctl_answers_with_short_references_and_one_emoji_reactions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("alice");
    let _alice = start_alone(&dir);

    let sent = ctl_ok(&dir, &["hello", ":laughing:"]);
    assert!(sent.starts_with("sent ("), "{sent}");
    assert!(
        !has_hex_run(&sent, 8),
        "a short reference, not the id: {sent}"
    );
    let reference = &sent["sent (".len()..sent.find(')').unwrap()];
    assert_eq!(reference.len(), 4, "{sent}");
    let history = ctl_ok(&dir, &["/history", "lobby", "5"]);
    assert!(history.contains("alice: hello 😆"), "{history}");
    assert!(history.contains(&format!("({reference}")), "{history}");

    let reacted = ctl_ok(&dir, &["/react", reference, ":party:"]);
    assert!(reacted.contains("reacted 🎉"), "{reacted}");
    assert!(!has_hex_run(&reacted, 8), "{reacted}");

    for word in ["hello", ":nope:", "👍👍"] {
        let out = ctl(&dir, &["/react", "last", word]);
        assert_eq!(out.status.code(), Some(1), "/react last {word}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("one emoji") && err.contains("/emoji"), "{err}");
    }
    let history = ctl_ok(&dir, &["/history", "lobby", "5"]);
    assert!(
        !history.contains("hello 1"),
        "a refused reaction counts: {history}"
    );
    assert!(history.contains("🎉 1"), "{history}");

    let list = ctl_ok(&dir, &["/emoji"]);
    for code in [
        ":laughing:",
        ":shrug:",
        ":party:",
        ":tada:",
        ":+1:",
        ":thinking:",
    ] {
        assert!(list.contains(code), "{code} missing from:\n{list}");
    }
    let hearts = ctl_ok(&dir, &["/emoji", "heart"]);
    assert!(hearts.contains("💔 :broken_heart:"), "{hearts}");
    assert!(!hearts.contains(":joy:"), "{hearts}");
}

/// Every `--help` fits 80 columns, however wide the terminal says it is, and an example is
/// never cut in the middle.
#[test]
fn help_fits_80_columns_and_keeps_examples_whole() {
    let helps = [
        (ipm(), vec!["--help"]),
        (ipm(), vec!["ctl", "--help"]),
        (ipm(), vec!["completions", "--help"]),
        (ipm_bootstrap(), vec!["--help"]),
    ];
    for columns in [None, Some("200"), Some("80")] {
        for (program, args) in &helps {
            let mut cmd = Command::new(program);
            cmd.args(args);
            match columns {
                Some(c) => cmd.env("COLUMNS", c),
                None => cmd.env_remove("COLUMNS"),
            };
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{args:?}");
            let help = String::from_utf8(out.stdout).unwrap();
            for line in help.lines() {
                assert!(
                    line.chars().count() <= 80,
                    "{args:?} (COLUMNS={columns:?}) has a line of {} columns:\n{line}",
                    line.chars().count()
                );
            }
            if args[0] != "completions" {
                assert!(help.contains("Examples:"), "{args:?}: {help}");
            }
        }
    }
    let out = Command::new(ipm()).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.lines().any(|l| l
            .trim()
            .starts_with("ipm --name alice --bootstrap /ip4/203.0.113.7/tcp/7433/p2p/")),
        "{help}"
    );
}

/// The bootstrap says what an operator needs on stdout and logs nothing but problems.
#[test]
fn the_bootstrap_prints_its_addresses_and_services_and_logs_only_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("bootstrap.log");
    let mut cmd = Command::new(ipm_bootstrap());
    cmd.arg("--data-dir")
        .arg(tmp.path().join("bootstrap"))
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(stdout).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines
            .recv_timeout(PROC_WAIT)
            .unwrap_or_else(|_| panic!("no address within {PROC_WAIT:?}: {seen:?}"));
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_owned();
        }
        seen.push(line);
    };
    assert!(
        addr.contains("/tcp/") && addr.contains("/p2p/12D3KooW"),
        "{addr}"
    );
    let head = seen.join("\n");
    assert!(head.starts_with("ipm-bootstrap "), "{head}");
    assert!(head.contains(" peer id 12D3KooW"), "{head}");
    for service in [
        "name registry",
        "mailbox",
        "relay",
        "room forwarding",
        "room archive",
    ] {
        assert!(head.contains(service), "{service} missing from:\n{head}");
    }

    // A node joins and leaves: nothing of it is logged by default.
    let node_dir = tmp.path().join("alice");
    let mut alice = start_node("alice", &node_dir, &addr);
    ctl_ok(&node_dir, &["hello"]);
    alice.kill9();
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(" INFO ") && !logged.contains(" WARN "),
        "the bootstrap logged by default:\n{logged}"
    );
}
