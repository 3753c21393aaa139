//! Writes to every store of a data dir in a loop until it is killed: the process the crash
//! tests (`node/tests/crash.rs`) kill with SIGKILL at random moments.
//!
//! `crash_writer <data dir> <first step>`: each step `i` appends a history entry, queues a
//! private message and finishes the one of step `i - 3` (so the outbox compacts), deposits
//! and acknowledges mailbox messages (so the mailbox compacts), and rewrites the contacts and
//! settings files whole. Only then is `i` printed: every printed step must survive a kill.

use std::io::{self, Write};

use ipm_node::{
    services::mailbox_store::Mailbox, store::data_dir::DataDir, store::history::History,
    store::outbox::Outbox,
};

#[path = "../tests/support/crash_model.rs"]
mod crash_model;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(first)) = (args.next(), args.next()) else {
        eprintln!("usage: crash_writer <data dir> <first step>");
        std::process::exit(2);
    };
    let first: u64 = first
        .parse()
        .map_err(|_| io::Error::other(format!("'{first}' is not a step number")))?;
    let dir = DataDir::open(dir)?;
    let mut history = History::open(dir.history())?;
    let mut outbox = Outbox::open(&dir.outbox())?;
    let mut mailbox = Mailbox::open(&dir.mailbox(), 0)?;
    let mut stdout = io::stdout().lock();
    for i in first.. {
        history.append(crash_model::ROOM, &crash_model::entry(i))?;
        outbox
            .add(crash_model::peer(), crash_model::direct(i))
            .map_err(io::Error::other)?;
        if i >= first + crash_model::OUTBOX_LAG {
            outbox.remove(&crash_model::id(i - crash_model::OUTBOX_LAG))?;
        }
        mailbox
            .deposit(crash_model::stored(i))
            .map_err(io::Error::other)?;
        if i >= first + crash_model::MAILBOX_LAG {
            let done = [crash_model::id(i - crash_model::MAILBOX_LAG)];
            mailbox.acknowledge(&crash_model::peer(), &done)?;
        }
        crash_model::book(i).save(&dir.contacts())?;
        crash_model::settings(i).save(&dir.settings())?;
        writeln!(stdout, "{i}")?;
        stdout.flush()?;
    }
    Ok(())
}
