//! Rooms and people with the real binaries, the way a user tries them: alice in Paris, bob
//! 3 km away, carol in Lyon, and a second "bob".
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::{path::Path, process::Command};

use support::procs::*;

const PARIS: &str = "48.8566,2.3522";
const PARIS_EAST: &str = "48.8566,2.3931";
const LYON: &str = "45.7640,4.8357";

/// Waits for the message `text` and returns its JSON event; fails if a line of `never`
/// arrives first.
fn message(node: &Proc, text: &str, never: &[&str]) -> serde_json::Value {
    node.wait_line(&format!("the line {text:?}"), |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v["event"] != "message" {
            return None;
        }
        let got = v["text"].as_str().unwrap_or_default();
        assert!(!never.contains(&got), "{got:?} reached this node: {line}");
        (got == text).then_some(v)
    })
}

/// The `/users` row of `name` (exact, not `name#xxxx`).
fn row<'a>(users: &'a str, name: &str) -> &'a str {
    users
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row for {name}:\n{users}"))
}

/// The distance in a `/users` row, in km.
fn km(row: &str) -> f64 {
    let words: Vec<&str> = row.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "km").expect("a distance");
    words[at - 1].parse().unwrap()
}

/// Waits until `dir`'s location group has a listener and `name` is among its members.
fn wait_for_group(dir: &Path, name: &str) {
    wait_for_output(
        dir,
        &["/rooms"],
        "a listener in the location group",
        |rooms| {
            rooms
                .lines()
                .any(|l| l.contains("location group") && !l.ends_with("(0 others)"))
        },
    );
    wait_for_output(
        dir,
        &["/status"],
        &format!("{name} in the group"),
        |status| {
            status
                .lines()
                .any(|l| l.starts_with("members of geo:") && l.contains(&format!("{name} (")))
        },
    );
}

#[test]
fn paris_hears_paris_not_lyon_and_a_second_bob_gets_a_suffix() {
    let tmp = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = start_bootstrap(&tmp.path().join("bootstrap"));
    let [a, b, c, f] = ["alice", "bob", "carol", "fake"].map(|n| tmp.path().join(n));
    let alice = start_node_with("alice", &a, &addr, &["--geo", PARIS, "--interest", "rust"]);
    let bob = start_node_with(
        "bob",
        &b,
        &addr,
        &["--geo", PARIS_EAST, "--interest", "Rust"],
    );
    let mut carol_cmd = Command::new(ipm());
    carol_cmd
        .args(["--headless", "--json", "--no-mdns", "--name", "carol"])
        .arg("--data-dir")
        .arg(&c)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", &addr])
        .env("IPM_GEO", LYON)
        .env("IPM_INTEREST", "chess,board games");
    let carol = Proc::spawn(carol_cmd);
    carol.wait_event("connection to the bootstrap", |v| v["event"] == "connected");

    // Rows with a distance: the users' presence arrived (not only the bootstrap's directory).
    let users = wait_for_output(&a, &["/users"], "bob and carol with distances", |users| {
        ["bob", "carol"].iter().all(|name| {
            users
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} ")) && l.contains(" km "))
        })
    });
    assert!((km(row(&users, "bob")) - 3.0).abs() < 1.0, "{users}");
    assert!((km(row(&users, "carol")) - 392.0).abs() < 5.0, "{users}");
    assert!(row(&users, "bob").contains(&peer_id(&b)), "{users}");
    wait_for_users(&b, &["alice"]);
    wait_for_users(&c, &["alice"]);
    let geo = ctl_ok(&c, &["/list-geo"]);
    assert!(geo.contains("latitude:  45.76400"), "{geo}");

    // Location groups: alice's line reaches bob, 3 km away, not carol in Lyon.
    for dir in [&a, &b, &c] {
        let out = ctl_ok(dir, &["/join-geo", "10"]);
        assert!(out.contains("joined the location group: 10.0 km"), "{out}");
    }
    wait_for_group(&a, "bob");
    wait_for_group(&b, "alice");
    let sent = ctl_ok(&a, &["bonjour", "de", "Paris"]);
    assert!(sent.contains("to geo:u09t"), "{sent}");
    let v = message(&bob, "bonjour de Paris", &[]);
    assert_eq!(v["from"], "alice");
    assert!(v["room"].as_str().unwrap().starts_with("geo:u09"), "{v}");
    let d = v["distance_km"].as_f64().unwrap();
    assert!((d - 3.0).abs() < 1.0, "{v}");

    // Interest groups: a line from alice reaches bob only.
    for dir in [&a, &b, &c] {
        ctl_ok(dir, &["/join-interest"]);
    }
    wait_for_output(&a, &["/status"], "bob in interest:rust", |s| {
        s.contains("members of interest:rust: bob")
    });
    ctl_ok(&a, &["borrowck"]);
    let v = message(&bob, "borrowck", &[]);
    assert_eq!(v["room"], "interest:rust");
    let status = ctl_ok(&c, &["/status"]);
    assert!(status.contains("current room: interest:chess"), "{status}");
    assert!(status.contains("interests: chess, board-games"), "{status}");

    ctl_ok(&a, &["/join", "lobby"]);
    ctl_ok(&a, &["after", "all"]);
    message(&carol, "after all", &["bonjour de Paris", "borrowck"]);

    // A second "bob" never passes for the first. The bootstrap's registry would stop it at
    // start, so it joins through alice, who keeps no registry: the DHT record decides.
    let alice_addr = ctl_ok(&a, &["/status"])
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("/ip4/127.0.0.1/tcp/") && l.contains("/p2p/"))
        .expect("alice's address")
        .to_owned();
    let fake = start_node_with("bob", &f, &alice_addr, &[]);
    fake.wait_event("the name is taken", |v| {
        v["event"] == "error"
            && v["message"]
                .as_str()
                .unwrap_or_default()
                .contains("registered to another peer")
    });
    let fake_id = peer_id(&f);
    let suffixed = format!("bob#{}", &fake_id[fake_id.len() - 4..]);
    let users = wait_for_users(&a, &["bob", &suffixed]);
    assert!(row(&users, "bob").contains(&peer_id(&b)), "{users}");
    assert!(row(&users, &suffixed).contains(&fake_id), "{users}");
    let blocked = ctl_ok(&a, &["/block", &suffixed]);
    assert!(blocked.contains(&fake_id), "{blocked}");
    let out = ctl(&a, &["/block", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown user 'nobody'"));
    drop((alice, carol, fake));
}

#[test]
fn bad_location_and_interest_flags_give_one_line_errors() {
    for flags in [
        &["--geo", "91,0"][..],
        &["--geo", "nowhere"],
        &["--interest", "#"],
    ] {
        let out = Command::new(ipm()).args(flags).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{flags:?}: {err}");
        assert!(err.starts_with("ipm: "), "{err}");
    }
}

/// The JSON event of `line`, when it is one named `event`.
fn event(line: &str, event: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["event"] == event).then_some(v)
}

#[test]
fn a_second_bob_at_the_bootstrap_runs_as_bob_xxxx_and_once_killed_goes_offline_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = start_bootstrap(&tmp.path().join("bootstrap"));
    let [a, b, f] = ["alice", "bob", "fake"].map(|n| tmp.path().join(n));
    let alice = start_node("alice", &a, &addr);
    let _bob = start_node("bob", &b, &addr);
    wait_for_users(&a, &["bob"]);

    // The bootstrap's registry has "bob" for another key: the node runs all the same, told
    // so in one line, and others see it as bob#xxxx.
    let mut fake = start_node("bob", &f, &addr);
    let told = fake.wait_line("the name is taken", |line| event(line, "error"));
    let told = told["message"].as_str().unwrap().to_owned();
    let fake_id = peer_id(&f);
    let suffixed = format!("bob#{}", &fake_id[fake_id.len() - 4..]);
    assert!(
        told.contains("the name bob is taken") && told.contains(&suffixed),
        "{told}"
    );
    let users = wait_for_users(&a, &["bob", &suffixed]);
    assert!(row(&users, &suffixed).contains(&fake_id), "{users}");
    // The refused name is not kept for the next start.
    let settings = std::fs::read_to_string(f.join("settings.json")).unwrap_or_default();
    assert!(!settings.contains("\"bob\""), "{settings}");

    // Killed while alice holds a direct connection to it: offline in seconds, everywhere,
    // and told once.
    wait_for_output(&a, &["/status"], "a connection to the fake bob", |s| {
        s.contains(&fake_id)
    });
    let killed = std::time::Instant::now();
    fake.kill9();
    let mut online = 0;
    alice.wait_line("the fake bob offline", |line| {
        if event(line, "user_online").is_some_and(|v| v["name"] == suffixed.as_str()) {
            online += 1;
        }
        event(line, "user_offline")
            .filter(|v| v["name"] == suffixed.as_str())
            .map(|_| ())
    });
    assert!(
        killed.elapsed() < std::time::Duration::from_secs(10),
        "offline {:?} after the kill",
        killed.elapsed()
    );
    assert_eq!(online, 1, "one online notice for the fake bob");
    let users = ctl_ok(&a, &["/users"]);
    assert!(!users.contains(&suffixed), "{users}");
    let sent = ctl(&a, &["/msg", &suffixed, "still there?"]);
    let said = String::from_utf8_lossy(&sent.stdout) + String::from_utf8_lossy(&sent.stderr);
    assert!(said.contains("is not reachable now"), "{said}");

    // Started again without --name, it takes the default name, not the refused one.
    let mut cmd = Command::new(ipm());
    cmd.args(["--headless", "--json", "--no-mdns"])
        .arg("--data-dir")
        .arg(&f)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", &addr])
        .env("USER", "frank");
    let again = Proc::spawn(cmd);
    again.wait_event("connection to the bootstrap", |v| v["event"] == "connected");
    let status = ctl_ok(&f, &["/status"]);
    assert!(status.contains("name:     frank"), "{status}");
    drop(again);
}
