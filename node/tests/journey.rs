//! A day of use in one test, with real processes: a bootstrap; alice at a real prompt in a
//! pseudo-terminal; bob headless, driven by `ipm ctl`; carol in the web page, in headless
//! Chromium; dave, who arrives late. Bob is killed with SIGKILL and restarted at noon, carol's
//! node in the afternoon. At each step the prompt's screen, `/history`, `/search` and the page
//! must agree: lobby lines, an interest room, private messages and a reply, a reaction, an edit,
//! a deletion (gone from every search, page and catch-up), receipts, a shared file fetched,
//! who is online, names shown as names, the rooms' counts and a closed stdout.
//!
//! The checks of the day are gathered and reported together at the end, so one run tells
//! every place where the surfaces disagree; the waits that only set the day up fail at once.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/browser.rs"]
mod browser;
mod support;
#[allow(dead_code)]
#[path = "support/terminal.rs"]
mod terminal;

use std::{
    fmt::Display,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use browser::{open_chat, start_web_node, Browser, Driver};
use support::procs::{self, ctl, ctl_ok, Proc, PROC_WAIT};
use terminal::{Screen, Terminal};

/// How long a check of the day waits for what it looks for before it counts as failed.
const CHECK_WAIT: Duration = Duration::from_secs(10);

/// How soon after a SIGKILL the others must see the user go offline.
const OFFLINE_WITHIN: Duration = Duration::from_secs(15);

/// The checks of the day that failed, each with what was seen instead.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    /// Records `what` as failed, with what was `seen`, unless `ok`; returns `ok`.
    fn check(&mut self, ok: bool, what: &str, seen: impl Display) -> bool {
        if !ok {
            eprintln!("FAILED: {what}\n  seen: {seen}");
            self.failed.push(format!("{what}\n  seen: {seen}"));
        }
        ok
    }

    /// Polls `ipm ctl <words>` on `dir` until its answer satisfies `ok`, within
    /// [`CHECK_WAIT`]; records a failure with the last answer otherwise.
    fn ctl_until(
        &mut self,
        dir: &Path,
        words: &[&str],
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + CHECK_WAIT;
        loop {
            let out = answer(dir, words);
            if ok(&out) {
                return out;
            }
            if Instant::now() > deadline {
                self.check(false, what, format!("ipm ctl {}:\n{out}", words.join(" ")));
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until alice's terminal shows what `ok` looks for, within `within`.
    fn screen_until(
        &mut self,
        term: &Terminal,
        within: Duration,
        what: &str,
        ok: impl Fn(&Screen) -> bool,
    ) -> Option<Screen> {
        match term.try_wait_for(within, ok) {
            Ok(screen) => Some(screen),
            Err(screen) => {
                self.check(false, what, last_rows(&screen, 25));
                None
            }
        }
    }

    /// Waits until `script` returns something truthy in the page, within [`CHECK_WAIT`].
    fn page_until(&mut self, page: &Browser, what: &str, script: &str, args: Value) -> bool {
        let ok = page.try_wait_js(CHECK_WAIT, script, args).is_some();
        self.check(ok, what, format!("the page reads:\n{}", page.text()))
    }
}

/// The last `n` rows of a screen, for a report.
fn last_rows(screen: &Screen, n: usize) -> String {
    let rows = &screen.rows;
    rows[rows.len().saturating_sub(n)..].join("\n")
}

/// What `ipm ctl <words>` printed, its error output included.
fn answer(dir: &Path, words: &[&str]) -> String {
    let out = ctl(dir, words);
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

/// The flags of alice's node at the prompt.
fn alice_args(dir: &Path, bootstrap: &str) -> Vec<String> {
    [
        "--no-mdns",
        "--name",
        "alice",
        "--interest",
        "rust",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--bootstrap",
        bootstrap,
        "--data-dir",
    ]
    .into_iter()
    .map(String::from)
    .chain([dir.display().to_string()])
    .collect()
}

/// The last line reference a row or an answer shows: `... (3fa2)`.
fn line_ref(text: &str) -> Option<String> {
    text.split('(')
        .skip(1)
        .filter_map(|part| part.split_once(')').map(|(r, _)| r))
        .filter(|r| (4..=8).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit()))
        .last()
        .map(str::to_owned)
}

/// The reference an `ipm ctl` answer such as `sent (f764) to lobby (2 peers)` names.
fn sent_ref(out: &str) -> String {
    out.split('(')
        .filter_map(|part| part.split(')').next())
        .find(|r| r.len() >= 4 && r.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no reference in {out:?}"))
        .to_owned()
}

/// The (author, text) of each line of a `/history` answer:
/// `(ref) date time from (re name "quote"): text (edited)  🎉 1 ✓ read`.
fn history_lines(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| l.starts_with('('))
        .filter_map(|l| {
            let rest = l.split_once(") ")?.1;
            let mut words = rest.splitn(3, ' ');
            let (_date, _time, rest) = (words.next()?, words.next()?, words.next()?);
            let (who, text) = rest.split_once(": ")?;
            let from = who.split(" (re ").next()?.to_owned();
            let text = text.split("  ").next()?;
            let text = text
                .trim_end_matches(" ✓ read")
                .trim_end_matches(" ✓ delivered")
                .trim_end_matches(" (edited)");
            Some((from, text.to_owned()))
        })
        .collect()
}

/// The (author, text) of each line on the page's timeline, system lines left out.
fn page_lines(page: &Browser) -> Vec<(String, String)> {
    let lines = page.js(
        "return [...document.querySelectorAll('#timeline .line:not(.system)')].map((l) => \
           [l.querySelector('.from')?.textContent ?? '', l.querySelector('.text')?.textContent ?? ''])",
        json!([]),
    );
    serde_json::from_value(lines).unwrap_or_default()
}

/// Whether `text` shows a user of the day as `name#xxxx`.
fn shows_a_tagged_name(text: &str) -> bool {
    ["alice#", "bob#", "carol#", "dave#"]
        .iter()
        .any(|t| text.contains(t))
}

/// Waits (within [`PROC_WAIT`]) until alice's terminal has a row starting with `start`.
fn wait_row_starting(term: &Terminal, start: &str) -> Screen {
    term.wait_for(&format!("a row starting {start:?}"), |s| {
        s.row_starting(start).is_some()
    })
}

/// Types `line` at alice's prompt and waits until it is taken and done: its row stands
/// above a new, empty prompt (keys typed while a command runs would be lost).
fn at_prompt(term: &mut Terminal, line: &str) -> Screen {
    let echo = format!("> {line}");
    let taken = |s: &Screen| s.rows.iter().filter(|r| r.ends_with(&echo)).count();
    let before = taken(&term.screen());
    term.type_line(line);
    term.wait_for(&format!("{line:?} taken, and the prompt back"), |s| {
        taken(s) > before
            && s.cursor_row_text().ends_with("]>")
            && s.rows
                .iter()
                .rposition(|r| r.ends_with(&echo))
                .is_some_and(|i| i < s.cursor)
    })
}

/// Starts bob headless with the flags of every start of his day.
fn start_bob(dir: &Path, bootstrap: &str) -> Proc {
    procs::start_node_with("bob", dir, bootstrap, &["--interest", "rust"])
}

/// Types `text` in the page's composer and sends it.
fn say_in_page(page: &Browser, text: &str) {
    page.type_into("#line", text);
    page.click("#send");
}

/// Runs `ipm ctl <words>` on `dir` with its stdout closed before it writes: the answer
/// written to a closed pipe. Its exit code and error output.
fn ctl_into_closed_pipe(dir: &Path, words: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(procs::ipm())
        .arg("ctl")
        .arg("--data-dir")
        .arg(dir)
        .args(words)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ipm ctl runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The day's shared state: where everyone keeps their data, the bootstrap to join through,
/// and the checks so far.
struct Day {
    root: tempfile::TempDir,
    bootstrap: String,
    checks: Checks,
}

impl Day {
    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }
}

#[test]
fn a_day_of_four_users_on_the_prompt_ctl_and_the_page_with_crashes_in_between() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = procs::start_bootstrap(&root.path().join("bootstrap"));
    eprintln!("{:>6.1?} the bootstrap is up", started.elapsed());
    let mut day = Day {
        root,
        bootstrap: addr,
        checks: Checks::default(),
    };
    let (alice_dir, bob_dir, carol_dir, dave_dir) = (
        day.dir("alice"),
        day.dir("bob"),
        day.dir("carol"),
        day.dir("dave"),
    );

    // --- Morning: alice at her prompt, bob headless, carol in the page.
    eprintln!("{:>6.1?} Morning", started.elapsed());
    let mut bob = start_bob(&bob_dir, &day.bootstrap);
    let mut alice = Terminal::start(alice_args(&alice_dir, &day.bootstrap));
    alice.wait_for_prompt();
    let (mut carol, carol_url) = start_web_node(Some("carol"), &carol_dir, &day.bootstrap, &[]);
    procs::wait_for_users(&alice_dir, &["bob", "carol"]);
    procs::wait_for_users(&bob_dir, &["alice", "carol"]);
    procs::wait_for_users(&carol_dir, &["alice", "bob"]);
    for dir in [&alice_dir, &bob_dir, &carol_dir] {
        procs::wait_for_lobby_peers(dir, 2);
    }
    let (alice_peer, bob_peer) = (procs::peer_id(&alice_dir), procs::peer_id(&bob_dir));
    eprintln!(
        "{:>6.1?} alice, bob and carol see each other",
        started.elapsed()
    );
    let driver = Driver::start();
    let mut page = driver.browser();
    open_chat(&page, &carol_url);
    for peer in [&alice_peer, &bob_peer] {
        page.wait_js(
            "alice and bob in carol's people pane",
            "return document.querySelector(`#people .user[data-peer='${arguments[0]}']`) !== null",
            json!([peer]),
        );
    }

    // Who is here: the members of the lobby are the users, not the bootstrap.
    let users = answer(&alice_dir, &["/users"]);
    day.checks.check(
        users.starts_with("2 users online besides you"),
        "alice's /users lists bob and carol",
        &users,
    );
    day.checks.ctl_until(
        &alice_dir,
        &["/rooms"],
        "alice's /rooms counts the two other users in the lobby: `lobby (2 others)`",
        |out| out.contains("lobby (2 others)"),
    );
    day.checks.page_until(
        &page,
        "carol's page says `2 others here` in the lobby",
        "return document.getElementById('conversation-info').textContent === '2 others here'",
        json!([]),
    );

    // --- Lobby talk, from each surface.
    eprintln!("{:>6.1?} Lobby talk, from each surface.", started.elapsed());
    at_prompt(&mut alice, "good morning, all");
    wait_row_starting(&alice, "[lobby] alice: good morning, all  (");
    bob.wait_event("alice's first line at bob", |v| {
        v["event"] == "message" && v["from"] == "alice" && v["text"] == "good morning, all"
    });
    let sent = ctl_ok(&bob_dir, &["morning", "alice"]);
    let morning = sent_ref(&sent);
    day.checks.check(
        line_ref(&sent).is_some_and(|r| r.len() <= 8)
            && !sent
                .split(|c: char| !c.is_ascii_hexdigit())
                .any(|w| w.len() >= 16),
        "`ipm ctl <text>` answers with the line's short reference, like every other surface",
        &sent,
    );
    day.checks
        .screen_until(&alice, CHECK_WAIT, "bob's line at alice's prompt", |s| {
            s.row_starting("[lobby] bob: morning alice  (").is_some()
        });
    say_in_page(&page, "hi from the page");
    day.checks.screen_until(
        &alice,
        CHECK_WAIT,
        "carol's line from the page at alice's prompt",
        |s| {
            s.row_starting("[lobby] carol: hi from the page  (")
                .is_some()
        },
    );
    for text in ["good morning, all", "morning alice", "hi from the page"] {
        day.checks.page_until(
            &page,
            &format!("the line {text:?} on carol's page"),
            "return [...document.querySelectorAll('#timeline .line .text')].some((t) => t.textContent === arguments[0])",
            json!([text]),
        );
    }

    // A reaction: counted on the line, everywhere, never a line of its own.
    at_prompt(&mut alice, &format!("/react {morning} :party:"));
    let word = ctl(&alice_dir, &["/react", "last", "hello"]);
    day.checks.check(
        !word.status.success(),
        "`/react last hello` is refused: a reaction is an emoji or a shortcode, not a word",
        String::from_utf8_lossy(&word.stdout),
    );
    day.checks.ctl_until(
        &bob_dir,
        &["/history", "lobby"],
        "bob's /history shows alice's :party: reaction as 🎉 1 on his line",
        |out| {
            out.lines()
                .any(|l| l.contains("bob: morning alice") && l.contains("🎉 1"))
        },
    );
    day.checks.page_until(
        &page,
        "carol's page shows 🎉 1 on bob's line",
        "return [...document.querySelectorAll('#timeline .line')].some((l) => \
           l.querySelector('.text')?.textContent === 'morning alice' \
           && (l.querySelector('.reactions')?.textContent ?? '').includes('🎉 1'))",
        json!([]),
    );

    // An edit: the new text everywhere, the old one found nowhere.
    at_prompt(&mut alice, "the meetup is on Tusday");
    let screen = wait_row_starting(&alice, "[lobby] alice: the meetup is on Tusday  (");
    let meetup = line_ref(
        screen
            .row_starting("[lobby] alice: the meetup is on Tusday")
            .unwrap(),
    )
    .expect("alice's line shows its reference");
    bob.wait_event("alice's meetup line at bob", |v| {
        v["event"] == "message" && v["text"] == "the meetup is on Tusday"
    });
    at_prompt(
        &mut alice,
        &format!("/edit {meetup} the meetup is on Tuesday"),
    );
    day.checks.ctl_until(
        &bob_dir,
        &["/history", "lobby"],
        "bob's /history shows the edited line with its new text only",
        |out| out.contains("alice: the meetup is on Tuesday (edited)") && !out.contains("Tusday"),
    );
    for dir in [&alice_dir, &bob_dir, &carol_dir] {
        let out = answer(dir, &["/search", "Tusday"]);
        day.checks.check(
            out.contains("no line holds"),
            &format!("/search of the edited-away word at {}", dir.display()),
            &out,
        );
    }
    day.checks.page_until(
        &page,
        "carol's page shows the new text of the edited line, and not the old one",
        "const t = document.getElementById('timeline').innerText; \
         return t.includes('the meetup is on Tuesday') && !t.includes('Tusday')",
        json!([]),
    );

    // A deletion: the text gone from every screen, search and page.
    let locker = sent_ref(&ctl_ok(&bob_dir, &["my", "locker", "code", "is", "4711"]));
    wait_row_starting(&alice, "[lobby] bob: my locker code is 4711  (");
    page.wait_js(
        "bob's locker line on carol's page",
        "return document.getElementById('timeline').innerText.includes('4711')",
        json!([]),
    );
    ctl_ok(&bob_dir, &["/delete", &locker]);
    day.checks.screen_until(
        &alice,
        CHECK_WAIT,
        "alice's prompt says bob deleted his line",
        |s| {
            s.row_starting(&format!("[lobby] bob deleted ({locker}"))
                .is_some()
        },
    );
    day.checks.ctl_until(
        &alice_dir,
        &["/history", "lobby"],
        "alice's /history shows bob's line as (deleted), without its text",
        |out| out.contains("bob: (deleted)") && !out.contains("4711"),
    );
    for dir in [&alice_dir, &bob_dir, &carol_dir] {
        day.checks.ctl_until(
            dir,
            &["/search", "4711"],
            &format!("/search of the deleted text at {}", dir.display()),
            |out| out.contains("no line holds"),
        );
    }
    day.checks.page_until(
        &page,
        "carol's page no longer shows the deleted text",
        "return !document.body.innerText.includes('4711')",
        json!([]),
    );
    let react_deleted = ctl(&alice_dir, &["/react", &locker, ":heart:"]);
    day.checks.check(
        !react_deleted.status.success(),
        "a reaction to a deleted line is refused",
        String::from_utf8_lossy(&react_deleted.stdout),
    );

    // The three surfaces agree on the lobby.
    let alice_lobby = history_lines(&answer(&alice_dir, &["/history", "lobby", "50"]));
    let bob_lobby = history_lines(&answer(&bob_dir, &["/history", "lobby", "50"]));
    day.checks.check(
        alice_lobby == bob_lobby,
        "alice's and bob's /history of the lobby agree",
        format!("alice: {alice_lobby:?}\n  bob:   {bob_lobby:?}"),
    );
    let ok = page
        .try_wait_js(
            CHECK_WAIT,
            "return JSON.stringify([...document.querySelectorAll('#timeline .line:not(.system)')].map((l) => \
               [l.querySelector('.from')?.textContent ?? '', l.querySelector('.text')?.textContent ?? ''])) \
               === arguments[0]",
            json!([serde_json::to_string(&alice_lobby).unwrap()]),
        )
        .is_some();
    day.checks.check(
        ok,
        "carol's page shows the lobby as alice's /history does",
        format!(
            "history: {alice_lobby:?}\n  page:    {:?}",
            page_lines(&page)
        ),
    );

    // --- Private messages, a reply and receipts.
    eprintln!(
        "{:>6.1?} Private messages, a reply and receipts.",
        started.elapsed()
    );
    at_prompt(&mut alice, "/msg bob lunch at noon?");
    day.checks.screen_until(
        &alice,
        CHECK_WAIT,
        "alice's prompt says the private message was delivered",
        |s| {
            s.count("* delivered to bob") > 0
                || s.rows
                    .iter()
                    .any(|r| r.contains("lunch at noon?") && r.contains("delivered"))
        },
    );
    day.checks.screen_until(
        &alice,
        CHECK_WAIT,
        "alice sees her own private line with its reference",
        |s| {
            s.rows.iter().any(|r| {
                r.contains("lunch at noon?") && !r.contains("/msg") && line_ref(r).is_some()
            })
        },
    );
    let lunch = bob.wait_line("alice's private message at bob", |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["event"] == "direct" && v["text"] == "lunch at noon?")
            .then(|| v["id"].as_str().map(|id| id[..4].to_owned()))?
    });
    let reply = answer(
        &bob_dir,
        &["/reply", &format!("alice/{lunch}"), "noon works"],
    );
    day.checks.check(
        reply.contains("noon works") && line_ref(&reply).is_some(),
        "bob's /reply answers with his line and its reference",
        &reply,
    );
    day.checks.screen_until(
        &alice,
        CHECK_WAIT,
        "bob's reply at alice's prompt, marked as an answer",
        |s| {
            s.rows
                .iter()
                .any(|r| r.starts_with("[private] bob (re ") && r.contains("noon works"))
        },
    );
    day.checks.ctl_until(
        &bob_dir,
        &["/history", "alice"],
        "bob's /history with alice: his reply read by alice, answering her question",
        |out| {
            out.lines().any(|l| {
                l.contains("bob (re alice \"lunch at noon?\"): noon works") && l.ends_with("✓ read")
            })
        },
    );
    day.checks.ctl_until(
        &alice_dir,
        &["/history", "bob"],
        "alice's /history with bob: her question read by bob",
        |out| {
            out.lines()
                .any(|l| l.contains("alice: lunch at noon?") && l.ends_with("✓ read"))
        },
    );

    // From the page: a private message to alice, delivered then read.
    page.click(&format!(
        "#people .user[data-peer='{alice_peer}'] button.message"
    ));
    page.wait_js(
        "the private conversation with alice",
        "return document.getElementById('conversation-title').textContent === 'alice'",
        json!([]),
    );
    say_in_page(&page, "are you coming tonight?");
    day.checks.screen_until(
        &alice,
        CHECK_WAIT,
        "carol's private message from the page at alice's prompt",
        |s| {
            s.row_starting("[private] carol: are you coming tonight?")
                .is_some()
        },
    );
    day.checks.page_until(
        &page,
        "carol's page marks her private message read",
        "const l = [...document.querySelectorAll('#timeline .line.own')].pop(); \
         return l && l.querySelector('.text').textContent === 'are you coming tonight?' \
           && l.querySelector('.state-read') !== null",
        json!([]),
    );

    // --- A file shared in the lobby, fetched from the page.
    eprintln!(
        "{:>6.1?} A file shared in the lobby, fetched from",
        started.elapsed()
    );
    let agenda = day.dir("agenda.txt");
    std::fs::write(&agenda, "10:00 standup\n12:00 lunch\n").unwrap();
    at_prompt(&mut alice, "/join lobby");
    at_prompt(&mut alice, &format!("/share {}", agenda.display()));
    let screen = alice.wait_for("the share's /get id", |s| {
        s.rows
            .iter()
            .any(|r| r.contains("/get ") && r.starts_with("shared "))
    });
    let share = screen
        .rows
        .iter()
        .find(|r| r.starts_with("shared "))
        .and_then(|r| r.rsplit("/get ").next())
        .unwrap()
        .trim()
        .to_owned();
    say_in_page(&page, &format!("/get {share}"));
    let fetched = carol_dir.join("downloads").join("agenda.txt");
    let deadline = Instant::now() + PROC_WAIT;
    while std::fs::read(&fetched).ok().as_deref()
        != Some(b"10:00 standup\n12:00 lunch\n".as_slice())
    {
        assert!(
            Instant::now() < deadline,
            "carol's /get of alice's agenda did not arrive"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    day.checks.screen_until(
        &alice,
        CHECK_WAIT,
        "alice's prompt says carol is getting the agenda, then sent it whole",
        |s| {
            s.count("* carol is getting agenda.txt") == 1
                && s.rows
                    .iter()
                    .any(|r| r.starts_with("* agenda.txt sent whole to carol"))
        },
    );
    day.checks.ctl_until(
        &alice_dir,
        &["/transfers"],
        "alice's /transfers says the agenda was sent",
        |out| {
            out.lines()
                .any(|l| l.contains("agenda.txt") && l.contains("sent") && !l.contains("offered"))
        },
    );

    let again = answer(&carol_dir, &["/get", &share]);
    day.checks.ctl_until(
        &carol_dir,
        &["/transfers"],
        "carol's second /get of the agenda settles",
        |out| !out.contains("downloading"),
    );
    let mut downloads: Vec<String> = std::fs::read_dir(carol_dir.join("downloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    downloads.sort();
    day.checks.check(
        downloads == ["agenda.txt"],
        "a second /get of a file already fetched writes no second copy",
        format!("answer: {again}\n  downloads: {downloads:?}"),
    );

    // --- Noon: bob and alice in the interest room; bob's node is killed.
    eprintln!("{:>6.1?} Noon", started.elapsed());
    at_prompt(&mut alice, "/join-interest");
    wait_row_starting(&alice, "joined interest:rust");
    ctl_ok(&bob_dir, &["/join-interest"]);
    procs::wait_for_output(&alice_dir, &["/users"], "bob in interest:rust", |out| {
        out.lines()
            .any(|l| l.starts_with("  bob ") && l.contains("interest:rust"))
    });
    ctl_ok(&bob_dir, &["anyone", "tried", "the", "new", "edition?"]);
    day.checks.screen_until(
        &alice,
        CHECK_WAIT,
        "bob's line in interest:rust at alice's prompt",
        |s| {
            s.row_starting("[interest:rust] bob: anyone tried the new edition?")
                .is_some()
        },
    );

    let killed = Instant::now();
    bob.kill9();
    let offline = day.checks.screen_until(
        &alice,
        OFFLINE_WITHIN,
        &format!("alice's prompt says bob went offline within {OFFLINE_WITHIN:?} of his kill -9"),
        |s| s.count("* bob went offline") > 0,
    );
    if offline.is_some() {
        eprintln!("bob shown offline {:?} after his kill -9", killed.elapsed());
    }
    day.checks.ctl_until(
        &alice_dir,
        &["/users"],
        "alice's /users no longer lists bob once he is offline",
        |out| !out.lines().any(|l| l.trim_start().starts_with("bob ")),
    );
    day.checks.ctl_until(
        &alice_dir,
        &["/rooms"],
        "alice's /rooms counts carol alone in the lobby once bob is gone: `lobby (1 other)`",
        |out| out.contains("lobby (1 other)"),
    );
    day.checks.ctl_until(
        &carol_dir,
        &["/users"],
        "carol's /users no longer lists bob once he is offline",
        |out| !out.lines().any(|l| l.trim_start().starts_with("bob ")),
    );
    day.checks.page_until(
        &page,
        "carol's people pane no longer lists bob",
        "return document.querySelector(`#people .user[data-peer='${arguments[0]}']`) === null",
        json!([bob_peer]),
    );
    at_prompt(&mut alice, "ping while bob is away");
    wait_row_starting(&alice, "[interest:rust] alice: ping while bob is away  (");

    // Bob comes back with the same flags: his rooms, his current room and what he missed.
    let bob = start_bob(&bob_dir, &day.bootstrap);
    let caught = bob.try_wait_line_within(PROC_WAIT, |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["event"] == "caught_up" && v["room"] == "interest:rust").then_some(v)
    });
    day.checks.check(
        caught
            .as_ref()
            .is_some_and(|v| v["count"].as_u64() >= Some(1) && v["first_visit"] == false),
        "bob, back, is told of the line he missed in interest:rust",
        format!("{caught:?}"),
    );
    day.checks.ctl_until(
        &bob_dir,
        &["/status"],
        "bob is back in interest:rust, still his current room",
        |out| out.contains("current room: interest:rust"),
    );
    day.checks.ctl_until(
        &bob_dir,
        &["/rooms"],
        "bob's /rooms lists interest:rust after the restart",
        |out| out.contains("interest:rust"),
    );
    day.checks.ctl_until(
        &bob_dir,
        &["/history", "interest:rust"],
        "bob caught up on alice's line sent while he was down",
        |out| out.contains("alice: ping while bob is away"),
    );
    procs::wait_for_users(&alice_dir, &["bob"]);
    at_prompt(&mut alice, "welcome back bob");
    let back = bob.try_wait_line_within(CHECK_WAIT, |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["event"] == "message" && v["room"] == "interest:rust" && v["text"] == "welcome back bob")
            .then_some(())
    });
    day.checks.check(
        back.is_some(),
        "bob, restarted, gets alice's next line in interest:rust",
        answer(&bob_dir, &["/rooms"]),
    );
    let bob_lobby = answer(&bob_dir, &["/history", "lobby"]);
    day.checks.check(
        !shows_a_tagged_name(&bob_lobby) && bob_lobby.contains("alice: good morning, all"),
        "bob's /history after the restart shows alice and carol by name",
        &bob_lobby,
    );

    // --- Afternoon: carol's node is killed; the page, opened again, shows the day.
    eprintln!("{:>6.1?} Afternoon", started.elapsed());
    carol.kill9();
    drop(page);
    let (carol_again, carol_url) = start_web_node(Some("carol"), &carol_dir, &day.bootstrap, &[]);
    carol = carol_again;
    page = driver.browser();
    open_chat(&page, &carol_url);
    day.checks.page_until(
        &page,
        "carol's page lists the private conversation with alice after the restart",
        "return document.querySelector(`#conversation-list .conversation[data-key='@${arguments[0]}']`) !== null",
        json!([alice_peer]),
    );
    page.click("#conversation-list .conversation[data-key='lobby']");
    let alice_lobby = history_lines(&answer(&alice_dir, &["/history", "lobby", "50"]));
    let ok = page
        .try_wait_js(
            CHECK_WAIT,
            "return JSON.stringify([...document.querySelectorAll('#timeline .line:not(.system)')].map((l) => \
               [l.querySelector('.from')?.textContent ?? '', l.querySelector('.text')?.textContent ?? ''])) \
               === arguments[0]",
            json!([serde_json::to_string(&alice_lobby).unwrap()]),
        )
        .is_some();
    day.checks.check(
        ok,
        "carol's page, after the restart, shows the lobby's history as alice's /history does",
        format!(
            "history: {alice_lobby:?}\n  page:    {:?}",
            page_lines(&page)
        ),
    );
    page.click(&format!(
        "#conversation-list .conversation[data-key='@{alice_peer}']"
    ));
    // Typed right after the restart, before alice speaks again: carol's node still knows
    // who alice is.
    let with_alice_answer = answer(&carol_dir, &["/history", "alice", "50"]);
    let with_alice = history_lines(&with_alice_answer);
    let ok = page
        .try_wait_js(
            CHECK_WAIT,
            "return JSON.stringify([...document.querySelectorAll('#timeline .line:not(.system)')].map((l) => \
               [l.querySelector('.from')?.textContent ?? '', l.querySelector('.text')?.textContent ?? ''])) \
               === arguments[0]",
            json!([serde_json::to_string(&with_alice).unwrap()]),
        )
        .is_some();
    day.checks.check(
        ok && !with_alice.is_empty(),
        "carol's page, after the restart, shows her private conversation with alice as her /history does",
        format!(
            "history: {with_alice:?} from {with_alice_answer:?}\n  page:    {:?}",
            page_lines(&page)
        ),
    );
    let layout = page.js(
        "const t = document.getElementById('timeline'); const send = document.getElementById('send'); \
         return { raw: document.body.innerText.includes('signed:'), \
                  wide: t.scrollWidth > t.clientWidth + 1, \
                  send_off: send.getBoundingClientRect().right > window.innerWidth }",
        json!([]),
    );
    day.checks.check(
        layout == json!({"raw": false, "wide": false, "send_off": false}),
        "the page shows history as lines: no raw records, no wide timeline, the send button on screen",
        &layout,
    );

    // --- Dave arrives late and catches up: names as names, and nothing deleted.
    eprintln!(
        "{:>6.1?} Dave arrives late and catches up",
        started.elapsed()
    );
    let dave = procs::start_node("dave", &dave_dir, &day.bootstrap);
    let caught = dave.try_wait_line_within(PROC_WAIT, |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["event"] == "caught_up" && v["room"] == "lobby").then_some(v)
    });
    day.checks.check(
        caught
            .as_ref()
            .is_some_and(|v| v["count"].as_u64() >= Some(4) && v["first_visit"] == true),
        "dave, new, is told of the lobby's earlier lines (not `nothing new while you were away`)",
        format!("{caught:?}"),
    );
    let dave_lobby = day.checks.ctl_until(
        &dave_dir,
        &["/history", "lobby"],
        "dave's catch-up holds the day's lobby lines, the deleted one without its text",
        |out| out.contains("the meetup is on Tuesday") && !out.contains("4711"),
    );
    day.checks.check(
        !shows_a_tagged_name(&dave_lobby),
        "dave sees the registered users by name in what he caught up",
        &dave_lobby,
    );
    for word in ["4711", "Tusday"] {
        let out = answer(&dave_dir, &["/search", word]);
        day.checks.check(
            out.contains("no line holds"),
            &format!("dave's /search finds no {word} in what he caught up"),
            &out,
        );
    }
    day.checks.ctl_until(
        &dave_dir,
        &["/users"],
        "dave's /users lists alice, bob and carol by name",
        |out| {
            ["alice", "bob", "carol"].iter().all(|n| {
                out.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{n} ")))
            })
        },
    );

    // --- Evening: a closed stdout, and what alice's screen said all day.
    eprintln!("{:>6.1?} Evening", started.elapsed());
    for words in [&["/users"][..], &["/history", "lobby"][..]] {
        let (code, stderr) = ctl_into_closed_pipe(&alice_dir, words);
        day.checks.check(
            code != Some(101) && !stderr.contains("panicked"),
            &format!("`ipm ctl {} | head -c1` ends quietly", words.join(" ")),
            format!("exit {code:?}, stderr: {stderr}"),
        );
    }
    let screen = alice.screen();
    day.checks.check(
        screen.count_containing("nothing new while you were away") == 0,
        "alice's first start does not say `nothing new while you were away`",
        last_rows(&screen, usize::MAX),
    );
    day.checks.check(
        screen.count("* bob went offline") == 1 && screen.count("* joined interest:rust") <= 1,
        "alice's screen tells each going offline and each join once",
        format!(
            "`* bob went offline` {} times, `* joined interest:rust` {} times",
            screen.count("* bob went offline"),
            screen.count("* joined interest:rust")
        ),
    );
    day.checks.check(
        !screen.rows.iter().any(|r| shows_a_tagged_name(r)),
        "alice's screen shows every registered user by name",
        screen
            .rows
            .iter()
            .filter(|r| shows_a_tagged_name(r))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
    );

    let left = answer(&dave_dir, &["/leave", "lobby"]);
    day.checks.check(
        !left.contains("current room is now lobby"),
        "`/leave lobby` does not answer that the lobby is still the current room",
        &left,
    );
    answer(&dave_dir, &["/join", "lobby"]);

    // A second user taking the name bob shows up as bob#xxxx, once, and stays up.
    let mut cmd = Command::new(procs::ipm());
    cmd.args(["--headless", "--json", "--no-mdns", "--name", "bob"])
        .arg("--data-dir")
        .arg(day.dir("bob-too"))
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--bootstrap",
            &day.bootstrap,
        ]);
    let impostor = Proc::spawn(cmd);
    let connected = impostor.try_wait_line_within(PROC_WAIT, |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["event"] == "connected").then_some(())
    });
    day.checks.check(
        connected.is_some(),
        "a second bob starts and connects (shown to others as bob#xxxx)",
        "no `connected` event: it exited or never connected",
    );
    if connected.is_some() {
        let shown = day.checks.screen_until(
            &alice,
            CHECK_WAIT,
            "alice's prompt tells the second bob online as bob#xxxx",
            |s| {
                s.rows
                    .iter()
                    .any(|r| r.starts_with("* bob#") && r.ends_with(" is online"))
            },
        );
        if let Some(screen) = shown {
            let times = screen
                .rows
                .iter()
                .filter(|r| r.starts_with("* bob#") && r.ends_with(" is online"))
                .count();
            day.checks
                .check(times == 1, "the second bob is told online once", times);
        }
    }

    drop((dave, bob, carol, page, impostor));
    eprintln!("the day took {:?}", started.elapsed());
    let failed = &day.checks.failed;
    assert!(
        failed.is_empty(),
        "{} of the day's checks failed:\n\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}
