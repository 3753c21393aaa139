//! The interactive prompt as a user sees it: the real `ipm` runs at a pseudo-terminal, keys are
//! typed into it, and the rows it leaves on the screen are read back.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;
#[path = "support/terminal.rs"]
mod terminal;

use std::{
    cell::Cell,
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use support::procs::*;
use terminal::{Screen, Terminal};

/// The flags of a node at the prompt, on loopback only.
fn node_args(name: &str, dir: &Path, bootstrap: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["--no-mdns", "--name", name, "--listen"]
        .into_iter()
        .map(String::from)
        .collect();
    args.push("/ip4/127.0.0.1/tcp/0".into());
    args.push("--data-dir".into());
    args.push(dir.display().to_string());
    if let Some(addr) = bootstrap {
        args.push("--bootstrap".into());
        args.push(addr.into());
    }
    args
}

/// Alice at the prompt, with bob (a headless node) online next to her.
fn alice_and_bob(tmp: &Path) -> (Terminal, Proc, Proc) {
    let (bootstrap, addr) = start_bootstrap(&tmp.join("bootstrap"));
    let bob_dir = tmp.join("bob");
    let bob = start_node("bob", &bob_dir, &addr);
    let alice_dir = tmp.join("alice");
    let alice = Terminal::start(node_args("alice", &alice_dir, Some(&addr)));
    alice.wait_for_prompt();
    for dir in [&alice_dir, &bob_dir] {
        wait_for_lobby_peers(dir, 2);
    }
    // Each shows the other by the plain name once the name record is checked.
    wait_for_users(&alice_dir, &["bob"]);
    wait_for_users(&bob_dir, &["alice"]);
    (alice, bob, bootstrap)
}

#[test]
fn every_event_line_stands_on_a_row_of_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("alice");
    let mut alice = Terminal::start(node_args("alice", &dir, None));
    // The lines of the first moments come before rustyline has set the terminal up.
    alice.wait_for("the start-up lines, each on its row, and the prompt", |s| {
        s.count("* joined lobby") == 1
            && s.row_starting("listening on /ip4/127.0.0.1/tcp/").is_some()
            && s.cursor_row_text().starts_with("[lobby]>")
    });

    // A peer that takes the connection and never answers keeps /connect, and so the prompt,
    // waiting: lines printed meanwhile reach a terminal rustyline has handed back.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let typed = format!("[lobby]> /connect /ip4/127.0.0.1/tcp/{port}");
    alice.type_line(&format!("/connect /ip4/127.0.0.1/tcp/{port}"));
    alice.wait_for("the /connect line taken", |s| {
        s.cursor > 0 && s.rows[s.cursor - 1] == typed && s.cursor_row_text().is_empty()
    });
    ctl_ok(&dir, &["/join", "interest:alpha"]);
    ctl_ok(&dir, &["/join", "interest:beta"]);
    let screen = alice.wait_for("both joins, each on its row", |s| {
        s.count("* joined interest:alpha") == 1 && s.count("* joined interest:beta") == 1
    });
    assert_eq!(screen.count_containing("* joined"), 3, "{:#?}", screen.rows);
}

#[test]
fn the_own_line_and_a_private_message_read_as_a_conversation() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut alice, bob, _bootstrap) = alice_and_bob(tmp.path());

    alice.type_line("hello :smile:");
    alice.wait_for("alice's own line", |s| {
        s.row_starting("[lobby] alice: hello 😄  (").is_some()
    });
    bob.wait_event("alice's line", |v| {
        v["event"] == "message" && v["from"] == "alice" && v["text"] == "hello 😄"
    });

    alice.wait_for_prompt();
    alice.type_line("/msg bob psst :wave:");
    // The sender sees its own line with its reference, marked delivered, and only once.
    alice.wait_for("alice's own private line", |s| {
        s.row_starting("[private → bob] alice: psst 👋  (")
            .is_some_and(|r| r.contains("✓ delivered"))
    });
    bob.wait_event("alice's private message", |v| {
        v["event"] == "direct" && v["text"] == "psst 👋"
    });

    // Whatever the two lines above were to print is out once the next answer is.
    alice.wait_for_prompt();
    alice.type_line("/rooms");
    let screen = alice.wait_for("the answer to /rooms", |s| {
        s.row_starting("* lobby (").is_some()
    });
    assert_eq!(
        screen.count_containing("[lobby] alice: hello 😄"),
        1,
        "{:#?}",
        screen.rows
    );
    assert_eq!(
        screen.count_containing("delivered"),
        1,
        "{:#?}",
        screen.rows
    );
}

#[test]
fn a_line_naming_the_user_is_highlighted_and_rings_the_bell() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, _bob, _bootstrap) = alice_and_bob(tmp.path());
    let bob_dir = tmp.path().join("bob");
    ctl_ok(&bob_dir, &["is", "anyone", "hungry?"]);
    ctl_ok(&bob_dir, &["lunch,", "@Alice?"]);
    ctl_ok(&bob_dir, &["/msg", "alice", "@alice", "one", "o'clock"]);
    let screen = alice.wait_for("bob's three lines", |s| {
        s.row_starting("[lobby] bob: is anyone hungry?").is_some()
            && s.row_starting("[lobby] bob: lunch, @Alice?").is_some()
            && s.row_starting("[private] bob: @alice one o'clock")
                .is_some()
    });
    assert!(
        screen.highlighted("[lobby] bob: lunch, @Alice?"),
        "{:#?}",
        screen.rows
    );
    assert!(screen.highlighted("[private] bob: @alice one o'clock"));
    assert!(!screen.highlighted("[lobby] bob: is anyone hungry?"));
    assert_eq!(screen.bells, 2, "{:#?}", screen.rows);
}

#[test]
fn a_download_shows_one_bar_redrawn_in_place_then_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut alice, _bob, _bootstrap) = alice_and_bob(tmp.path());
    let file = tmp.path().join("big.bin");
    let data: Vec<u8> = (0..24_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();

    ctl_ok(
        &tmp.path().join("bob"),
        &["/send-file", "alice", file.to_str().unwrap()],
    );
    let screen = alice.wait_for("bob's offer", |s| {
        s.row_starting("* bob offers big.bin").is_some()
    });
    let offer = screen.row_starting("* bob offers big.bin").unwrap();
    let id = offer.rsplit(' ').next().unwrap().to_owned();
    let accept = format!("/accept {id}");
    alice.wait_for_prompt();
    alice.type_line(&accept);

    let bars = |s: &Screen| s.count_containing(&format!("{id} ["));
    let most = Cell::new(0);
    let started = Instant::now();
    let screen = alice.wait_for("the received line", |s| {
        most.set(most.get().max(bars(s)));
        s.row_starting("* received ").is_some()
    });
    let took = started.elapsed();
    assert_eq!(bars(&screen), 0, "the bar stays behind: {:#?}", screen.rows);
    assert!(
        most.get() <= 1,
        "bars piled up ({} at once): {:#?}",
        most.get(),
        screen.rows
    );
    let received: Vec<&String> = screen
        .rows
        .iter()
        .filter(|r| r.starts_with("* received "))
        .collect();
    assert_eq!(received.len(), 1, "{:#?}", screen.rows);
    assert!(
        received[0].contains("big.bin"),
        "{received:?} after {took:?}"
    );
    assert_eq!(
        screen.count_containing("downloading big.bin"),
        1,
        "{:#?}",
        screen.rows
    );
}

#[test]
fn with_stdout_in_a_pipe_lines_are_plain_and_commands_still_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("alice");
    let (mut keys, far_end) = terminal::pty();
    let mut cmd = Command::new(ipm());
    cmd.args(node_args("alice", &dir, None))
        .env("TERM", "xterm-256color");
    let mut alice = Proc::spawn_with_stdin(cmd, Stdio::from(far_end));
    let mut seen = Vec::new();
    let mut keep_until = |what: &str, done: &dyn Fn(&str) -> bool| {
        alice.wait_line(what, |l| {
            seen.push(l.to_owned());
            done(l).then_some(())
        })
    };
    keep_until("the joined line", &|l| l == "* joined lobby");
    std::io::Write::write_all(&mut keys, b"hello :smile:\n").unwrap();
    keep_until("the answer", &|l| l.starts_with("sent "));
    alice.kill9();
    assert!(
        seen.iter()
            .all(|l| !l.contains('\u{1b}') && !l.contains("]> ")),
        "no prompt or terminal codes in a pipe: {seen:#?}"
    );
}
