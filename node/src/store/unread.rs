//! When the user last looked at each conversation (`unread.json` in the data dir), and how
//! many lines of others a log holds since then, read from its tail.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use crate::store::data_dir::{read_json, write_atomic};
use crate::store::history::{Entry, History, MAX_READ};

/// Largest marks file accepted.
const MAX_MARKS_FILE: u64 = 4 * 1024 * 1024;

/// Entries read at first from a log's tail to count its unread lines.
const FIRST_WINDOW: usize = 256;

/// When each conversation (by log name) was last shown, ms since the Unix epoch.
#[derive(Debug, Default)]
pub struct SeenMarks {
    path: Option<PathBuf>,
    seen: BTreeMap<String, u64>,
}

impl SeenMarks {
    /// Reads the marks at `path` (none yet: every line is unread); `None` keeps them in
    /// memory only.
    pub fn load(path: Option<PathBuf>) -> io::Result<Self> {
        let seen = match &path {
            Some(p) => read_json(p, MAX_MARKS_FILE, "unread marks")?.unwrap_or_default(),
            None => BTreeMap::new(),
        };
        Ok(Self { path, seen })
    }

    /// When `log` was last shown (0: never).
    pub fn seen(&self, log: &str) -> u64 {
        self.seen.get(log).copied().unwrap_or(0)
    }

    /// `log` was shown at `now_ms`; written at once.
    pub fn mark(&mut self, log: &str, now_ms: u64) -> io::Result<()> {
        self.seen.insert(log.to_owned(), now_ms);
        match &self.path {
            Some(p) => {
                let json = serde_json::to_vec(&self.seen).map_err(io::Error::other)?;
                write_atomic(p, &json, true)
            }
            None => Ok(()),
        }
    }
}

/// Whether `entry` is a line of another user (not an own line, a reaction, edit or receipt).
pub fn is_line_of_others(entry: &Entry) -> bool {
    !entry.outgoing
        && entry
            .re
            .as_ref()
            // A reply is a line of its own (`logic::edits::kind::REPLY`).
            .is_none_or(|c| c.kind == "reply")
}

/// The lines of others in `log` after `seen_ms`, reading only as much of its tail as needed;
/// `count` reads the entries (the conversation model's `timeline::unread_since`).
pub fn unread_in(
    dir: &Path,
    log: &str,
    seen_ms: u64,
    count: impl Fn(&[Entry], u64) -> usize,
) -> io::Result<usize> {
    let mut want = FIRST_WINDOW;
    loop {
        let entries = History::read_last(dir, log, want)?;
        let reached_seen = entries.first().is_some_and(|e| e.ts <= seen_ms);
        if reached_seen || entries.len() < want || want >= MAX_READ {
            return Ok(count(&entries, seen_ms));
        }
        want = want.saturating_mul(4).min(MAX_READ);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Lines of others after the mark, entry by entry (the model folds them in the node).
    fn count_since(entries: &[Entry], seen_ms: u64) -> usize {
        entries
            .iter()
            .filter(|e| e.ts > seen_ms && is_line_of_others(e))
            .count()
    }

    fn entry(ts: u64, outgoing: bool) -> Entry {
        Entry {
            ts,
            id: format!("{ts}"),
            from: "bob".into(),
            peer: "p".into(),
            text: "hi".into(),
            outgoing,
            signed: None,
            re: None,
        }
    }

    #[test]
    fn only_lines_of_others_after_the_mark_count() {
        let mut react = entry(5, false);
        react.re = Some(crate::store::history::EntryChange {
            kind: "react".into(),
            target: "1".into(),
            value: Some("👍".into()),
        });
        let log = [entry(1, false), entry(2, true), entry(3, false), react];
        assert_eq!(count_since(&log, 0), 2);
        assert_eq!(count_since(&log, 1), 1);
        assert_eq!(count_since(&log, 3), 0);
    }

    #[test]
    fn counts_read_from_the_tail_and_marks_survive() {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = History::open(tmp.path().join("history")).unwrap();
        for ts in 1..=1000 {
            h.append("lobby", &entry(ts, false)).unwrap();
        }
        let dir = tmp.path().join("history");
        assert_eq!(unread_in(&dir, "lobby", 990, count_since).unwrap(), 10);
        assert_eq!(unread_in(&dir, "lobby", 0, count_since).unwrap(), 1000);
        assert_eq!(unread_in(&dir, "nothing", 0, count_since).unwrap(), 0);
        let path = tmp.path().join("unread.json");
        let mut marks = SeenMarks::load(Some(path.clone())).unwrap();
        marks.mark("lobby", 990).unwrap();
        assert_eq!(SeenMarks::load(Some(path)).unwrap().seen("lobby"), 990);
    }
}
