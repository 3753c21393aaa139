//! Crash safety: `kill -9` in the middle of writes never corrupts history, the outbox, the
//! mailbox, contacts or settings. Append-only logs skip a torn last line and later appends
//! stay intact; whole files are either the old or the new content, never empty or partial.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

#[path = "support/crash_model.rs"]
mod crash_model;

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use ipm_node::{
    services::mailbox_store::Mailbox,
    store::contacts::ContactBook,
    store::data_dir::{write_atomic, DataDir},
    store::history::{Entry, History},
    store::journal,
    store::outbox::Outbox,
    store::settings::Settings,
};
use rand::Rng;

use crash_model::{MAILBOX_LAG, OUTBOX_LAG, ROOM};

/// The crash writer example, built once beside the test binaries.
fn crash_writer() -> PathBuf {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "ipm-node",
        "--example",
        "crash_writer",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    assert!(cmd.status().expect("cargo runs").success());
    support::procs::ipm()
        .with_file_name("examples")
        .join("crash_writer")
}

/// What one run of the writer got done before it was killed.
struct Run {
    first: u64,
    /// The last step it printed, if any.
    last: Option<u64>,
}

impl Run {
    /// Steps whose every write finished before the kill.
    fn done(&self) -> impl Iterator<Item = u64> + '_ {
        self.last.into_iter().flat_map(|last| self.first..=last)
    }

    /// The step that may have been cut short by the kill.
    fn cut(&self) -> u64 {
        self.last.map_or(self.first, |l| l + 1)
    }
}

/// Starts the writer on `dir` from step `first`, kills it with SIGKILL once it has printed
/// `steps` steps, and returns what it had printed by the time it died.
fn run_and_kill(writer: &Path, dir: &Path, first: u64, steps: usize) -> Run {
    let mut child = Command::new(writer)
        .arg(dir)
        .arg(first.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the writer starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    for _ in 0..steps {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => last = Some(line.parse::<u64>().expect("a step number")),
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the writer stopped printing: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    child.kill().expect("SIGKILL is delivered");
    child.wait().unwrap();
    reader.join().unwrap();
    // Steps printed after the one we waited for, up to the kill.
    while let Ok(line) = rx.try_recv() {
        last = Some(line.parse::<u64>().expect("a step number"));
    }
    Run { first, last }
}

/// Checks everything a data dir must hold after the writer's `runs`, each ended by a kill.
fn check_data_dir(dir: &DataDir, runs: &[Run]) {
    let done: BTreeSet<u64> = runs.iter().flat_map(Run::done).collect();
    let cut: BTreeSet<u64> = runs.iter().map(Run::cut).collect();
    let last_done = done.last().copied();

    // History: every printed step is there, intact and in order; nothing else but the steps
    // a kill cut short; damaged lines are at most one per kill.
    let entries = History::read_last(dir.history().as_path(), ROOM, usize::MAX).unwrap();
    let steps: Vec<u64> = entries.iter().map(|e| e.ts).collect();
    assert!(steps.windows(2).all(|w| w[0] < w[1]), "out of order");
    for e in &entries {
        assert_eq!(e, &crash_model::entry(e.ts), "entry {} damaged", e.ts);
        assert!(
            done.contains(&e.ts) || cut.contains(&e.ts),
            "stray {}",
            e.ts
        );
    }
    let have: BTreeSet<u64> = steps.iter().copied().collect();
    let lost: Vec<_> = done.difference(&have).collect();
    assert!(lost.is_empty(), "history lost steps {lost:?}");
    let raw = fs::read(dir.history().join(format!("{ROOM}.jsonl"))).unwrap();
    let damaged = raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && serde_json::from_slice::<Entry>(l).is_err())
        .count();
    assert!(damaged <= runs.len(), "{damaged} damaged lines");

    // Outbox: a message is waiting exactly when it was queued and not yet finished; the
    // step cut short may or may not have done its part.
    let outbox = Outbox::open(&dir.outbox()).expect("the outbox opens");
    let waiting: BTreeSet<u64> = outbox
        .for_peer(&crash_model::peer())
        .iter()
        .map(|p| {
            let step = crash_model::step_of(&p.message.id);
            assert_eq!(p.message, crash_model::direct(step), "outbox damaged");
            step
        })
        .collect();
    check_lagged("outbox", &waiting, runs, OUTBOX_LAG);

    // Mailbox: the same with deposits and acknowledgements.
    let mailbox = Mailbox::open(&dir.mailbox(), 0).expect("the mailbox opens");
    let (stored, _) = mailbox.waiting_for(&crash_model::peer(), usize::MAX);
    let stored: BTreeSet<u64> = stored
        .iter()
        .map(|s| {
            let step = crash_model::step_of(&s.id);
            assert_eq!(s, &crash_model::stored(step).message, "mailbox damaged");
            step
        })
        .collect();
    check_lagged("mailbox", &stored, runs, MAILBOX_LAG);

    // Whole files: the last printed step's content or the next one's, never anything else.
    let book = ContactBook::load(&dir.contacts()).expect("contacts load");
    let settings = Settings::load(&dir.settings()).expect("settings load");
    let last_run = runs.last().unwrap();
    let allowed: Vec<u64> = last_done.into_iter().chain([last_run.cut()]).collect();
    assert!(
        allowed.iter().any(|&i| book == crash_model::book(i)),
        "contacts are neither step {allowed:?}: {book:?}"
    );
    assert!(
        allowed
            .iter()
            .any(|&i| settings == crash_model::settings(i)),
        "settings are neither step {allowed:?}: {settings:?}"
    );
}

/// Checks a store where step `i` adds message `i` and, from `lag` steps into its run,
/// removes message `i - lag`.
fn check_lagged(what: &str, present: &BTreeSet<u64>, runs: &[Run], lag: u64) {
    for run in runs {
        let done: BTreeSet<u64> = run.done().collect();
        let cut = run.cut();
        let removed_by = |i: u64| i + lag;
        for i in run.first..=cut {
            let added = done.contains(&i);
            let remover = removed_by(i);
            let removed = done.contains(&remover);
            let uncertain = i == cut || remover == cut;
            if uncertain {
                continue;
            }
            assert_eq!(
                present.contains(&i),
                added && !removed,
                "{what}: step {i} (run from {}, last printed {:?})",
                run.first,
                run.last
            );
        }
    }
    let known: BTreeSet<u64> = runs.iter().flat_map(|r| r.first..=r.cut()).collect();
    assert!(present.is_subset(&known), "{what} holds unknown messages");
}

#[test]
fn sigkill_during_writes_never_corrupts_the_data_dir() {
    let writer = crash_writer();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let dir = DataDir::open(&root).unwrap();
    let mut rng = rand::thread_rng();
    let mut runs: Vec<Run> = Vec::new();
    let started = Instant::now();
    let mut first = 0;
    // Enough kills to land in every kind of write (appends, compactions, atomic renames),
    // bounded in time so the suite stays quick on a slow disk.
    while runs.len() < 40 && (runs.len() < 8 || started.elapsed() < Duration::from_secs(20)) {
        let steps = rng.gen_range(1..=8);
        let run = run_and_kill(&writer, &root, first, steps);
        first = run.cut() + 1;
        runs.push(run);
        check_data_dir(&dir, &runs);
    }
    let steps: usize = runs.iter().map(|r| r.done().count()).sum();
    eprintln!(
        "{} kills, {steps} steps finished, in {:.1} s",
        runs.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(steps >= runs.len(), "{steps} steps in {} runs", runs.len());
    // Temporary files of an interrupted atomic write are never read: at most one per kill.
    let temps = fs::read_dir(&root)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .count();
    assert!(temps <= runs.len(), "{temps} temporary files");
}

/// `lines` joined as a journal file, with the last one cut after `cut` bytes.
fn torn(lines: &[Vec<u8>], cut: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in &lines[..lines.len() - 1] {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&lines[lines.len() - 1][..cut]);
    bytes
}

#[test]
fn a_history_log_torn_at_any_byte_keeps_every_whole_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let entries: Vec<Entry> = (1..=3).map(crash_model::entry).collect();
    let lines: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap())
        .collect();
    let last_len = lines[2].len();
    for cut in 0..=last_len {
        let dir = tmp.path().join(format!("cut{cut}"));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(format!("{ROOM}.jsonl")), torn(&lines, cut)).unwrap();
        // The whole third line (even without its newline) is an entry; any less is not.
        let whole = if cut == last_len { 3 } else { 2 };
        let read = History::read_last(&dir, ROOM, 10).unwrap();
        assert_eq!(read, entries[..whole], "cut at {cut}");
        assert_eq!(
            History::read_last(&dir, ROOM, 2).unwrap(),
            entries[whole - 2..whole],
            "cut at {cut}: the torn line took a place"
        );
        // The next append starts on a line of its own and reads back intact.
        let mut history = History::open(&dir).unwrap();
        history.append(ROOM, &crash_model::entry(4)).unwrap();
        let mut want = entries[..whole].to_vec();
        want.push(crash_model::entry(4));
        assert_eq!(
            History::read_last(&dir, ROOM, 10).unwrap(),
            want,
            "cut {cut}"
        );
    }
}

#[test]
fn an_outbox_torn_at_any_byte_keeps_every_whole_record() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source.jsonl");
    {
        let mut outbox = Outbox::open(&source).unwrap();
        for i in 1..=3 {
            outbox
                .add(crash_model::peer(), crash_model::direct(i))
                .unwrap();
        }
        outbox.remove(&crash_model::id(2)).unwrap();
    }
    let text = fs::read(&source).unwrap();
    let lines: Vec<Vec<u8>> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(lines.len(), 4, "three adds and one done");
    let last_len = lines[3].len();
    for cut in 0..=last_len {
        let path = tmp.path().join(format!("outbox{cut}.jsonl"));
        fs::write(&path, torn(&lines, cut)).unwrap();
        let waiting = |outbox: &Outbox| -> Vec<u64> {
            outbox
                .for_peer(&crash_model::peer())
                .iter()
                .map(|p| crash_model::step_of(&p.message.id))
                .collect()
        };
        // A torn "done" record leaves the message waiting: sent again, never lost.
        let mut outbox = Outbox::open(&path).unwrap();
        let want: Vec<u64> = if cut == last_len {
            vec![1, 3]
        } else {
            vec![1, 2, 3]
        };
        assert_eq!(waiting(&outbox), want, "cut at {cut}");
        outbox
            .add(crash_model::peer(), crash_model::direct(4))
            .unwrap();
        drop(outbox);
        let mut want = want;
        want.push(4);
        assert_eq!(waiting(&Outbox::open(&path).unwrap()), want, "cut {cut}");
    }
}

#[test]
fn a_mailbox_journal_torn_at_any_byte_keeps_every_whole_record() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source.jsonl");
    {
        let mut mailbox = Mailbox::open(&source, 0).unwrap();
        for i in 1..=3 {
            mailbox.deposit(crash_model::stored(i)).unwrap();
        }
    }
    let text = fs::read(&source).unwrap();
    let lines: Vec<Vec<u8>> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let last_len = lines[2].len();
    let held = |mailbox: &Mailbox| -> Vec<u64> {
        let (messages, _) = mailbox.waiting_for(&crash_model::peer(), 100);
        let mut steps: Vec<u64> = messages
            .iter()
            .map(|m| crash_model::step_of(&m.id))
            .collect();
        steps.sort();
        steps
    };
    for cut in 0..=last_len {
        let path = tmp.path().join(format!("mailbox{cut}.jsonl"));
        fs::write(&path, torn(&lines, cut)).unwrap();
        let mut mailbox = Mailbox::open(&path, 0).unwrap();
        let mut want: Vec<u64> = if cut == last_len {
            vec![1, 2, 3]
        } else {
            vec![1, 2]
        };
        assert_eq!(held(&mailbox), want, "cut at {cut}");
        mailbox.deposit(crash_model::stored(4)).unwrap();
        drop(mailbox);
        want.push(4);
        assert_eq!(held(&Mailbox::open(&path, 0).unwrap()), want, "cut {cut}");
    }
}

#[test]
fn a_journal_with_a_torn_line_is_fenced_before_the_next_append() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("j.jsonl");
    fs::write(&path, b"{\"a\":1}\n{\"a\":").unwrap();
    let mut j = journal::Journal::open(&path).unwrap();
    j.append(&serde_json::json!({"a": 3})).unwrap();
    let records: Vec<serde_json::Value> = journal::read_all(&path).unwrap();
    assert_eq!(
        records,
        vec![serde_json::json!({"a": 1}), serde_json::json!({"a": 3})]
    );
    assert_eq!(fs::read(&path).unwrap(), b"{\"a\":1}\n{\"a\":\n{\"a\":3}\n");
}

#[test]
fn an_interrupted_atomic_write_leaves_the_old_file_whole() {
    // What a kill between writing the temporary file and renaming it leaves behind: the
    // old contacts file, untouched, and a temporary file nobody reads.
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path().join("data")).unwrap();
    crash_model::book(5).save(&dir.contacts()).unwrap();
    let half = serde_json::to_vec_pretty(&crash_model::book(6)).unwrap();
    fs::write(
        dir.root().join(".contacts.json.tmp999999"),
        &half[..half.len() / 2],
    )
    .unwrap();
    assert_eq!(
        ContactBook::load(&dir.contacts()).unwrap(),
        crash_model::book(5)
    );
    write_atomic(&dir.contacts(), &half, true).unwrap();
    assert_eq!(
        ContactBook::load(&dir.contacts()).unwrap(),
        crash_model::book(6)
    );
}
