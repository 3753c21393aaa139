//! Append-only conversation logs: one JSON line per message, flushed as it is written.
//!
//! A log survives `kill -9`: each entry goes out in a single `write`, and a line torn by a
//! crash is skipped on reading and fenced off with a newline before the next append.
//!
//! At most [`MAX_OPEN`] logs are open at once: the least recently written is closed to
//! open another, so a crowd of peers (each with a fresh key, each its own conversation)
//! cannot use up the process's file descriptors.

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// One message in a conversation log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it was sent or received, ms since the Unix epoch.
    pub ts: u64,
    /// The message id.
    pub id: String,
    /// Display name of the author.
    pub from: String,
    /// Peer id of the author.
    pub peer: String,
    /// The text.
    pub text: String,
    /// Whether this node wrote it.
    #[serde(default)]
    pub outgoing: bool,
    /// A room line as its author signed and published it (base64 of the gossip payload),
    /// so that this node can hand it to a member catching up (`/ipm/history/1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
    /// What this entry does to an earlier entry of the log (reply, reaction, edit,
    /// deletion, receipt); see [`crate::logic::edits`] for how a log folds into lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<EntryChange>,
}

/// [`Entry::re`]: the kind of change, the target's id (hex) and the kind's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryChange {
    /// `reply`, `react`, `edit`, `delete`, `delivered`, `read`.
    pub kind: String,
    /// The id of the entry it is about.
    pub target: String,
    /// The emoji of a reaction (an edit's new text is the entry's `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Most entries one read returns.
pub const MAX_READ: usize = 100_000;

/// Most logs kept open at once.
pub const MAX_OPEN: usize = 64;

/// The open logs of one node.
#[derive(Debug)]
pub struct History {
    dir: PathBuf,
    /// Open logs and when each was last written (a counter of appends).
    open: HashMap<String, (File, u64)>,
    appends: u64,
}

impl History {
    /// Opens (and creates) the history folder.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        crate::store::data_dir::create_private_dir(&dir)?;
        Ok(Self {
            dir,
            open: HashMap::new(),
            appends: 0,
        })
    }

    /// The folder holding the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `entry` to the log of `conversation` (a room or peer slug) and flushes it.
    pub fn append(&mut self, conversation: &str, entry: &Entry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        self.appends += 1;
        if !self.open.contains_key(conversation) && self.open.len() >= MAX_OPEN {
            self.close_least_recent();
        }
        let (file, last) = match self.open.entry(conversation.to_owned()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert((
                crate::store::journal::open_for_append(&log_path(&self.dir, conversation))?,
                0,
            )),
        };
        *last = self.appends;
        let written = file.write_all(&line).and_then(|()| file.flush());
        if written.is_err() {
            // A failed write (a full disk) may leave half a line: reopen on the next append,
            // which fences it off, instead of gluing the next entry onto it.
            self.open.remove(conversation);
        }
        written
    }

    /// How many logs are open now.
    pub fn open_logs(&self) -> usize {
        self.open.len()
    }

    /// Closes the log written least recently (every entry in it is written already).
    fn close_least_recent(&mut self) {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, (_, last))| *last)
            .map(|(name, _)| name.clone());
        if let Some(name) = oldest {
            self.open.remove(&name);
        }
    }

    /// The last `n` entries of `conversation`, oldest first.
    pub fn read_last(dir: &Path, conversation: &str, n: usize) -> io::Result<Vec<Entry>> {
        let path = log_path(dir, conversation);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let n = n.min(MAX_READ);
        // A line torn by a crash does not count: read further back until `n` entries parse
        // or the whole file is read.
        let mut want = n;
        loop {
            let lines = tail_lines(&mut file, want)?;
            let mut entries: Vec<Entry> = lines
                .iter()
                .filter_map(|l| serde_json::from_slice::<Entry>(l).ok())
                .collect();
            if entries.len() >= n || lines.len() < want || want >= MAX_READ {
                let skip = entries.len().saturating_sub(n);
                return Ok(entries.split_off(skip));
            }
            want = want.saturating_mul(2).min(MAX_READ);
        }
    }

    /// Every conversation that has a log.
    pub fn conversations(dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        match fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if let Some(stem) = name.strip_suffix(".jsonl") {
                        names.push(stem.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        names.sort();
        Ok(names)
    }
}

/// How the log of a private conversation is named: this, then the peer id.
const DIRECT_LOG_PREFIX: &str = "dm-";

/// The name of the log of the private conversation with `peer`.
pub fn direct_log(peer: &libp2p::PeerId) -> String {
    format!("{DIRECT_LOG_PREFIX}{peer}")
}

/// The peer of a private conversation's log (`None` for a room's).
pub fn direct_peer(log: &str) -> Option<libp2p::PeerId> {
    log.strip_prefix(DIRECT_LOG_PREFIX)?.parse().ok()
}

/// Whether `log` is a private conversation's.
pub fn is_direct_log(log: &str) -> bool {
    log.starts_with(DIRECT_LOG_PREFIX)
}

pub(super) fn log_path(dir: &Path, conversation: &str) -> PathBuf {
    dir.join(format!("{conversation}.jsonl"))
}

/// Reads the last `n` complete-or-torn lines of `file` without reading the whole file.
fn tail_lines(file: &mut File, n: usize) -> io::Result<Vec<Vec<u8>>> {
    const BLOCK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let newlines = buf.iter().filter(|&&b| b == b'\n').count();
        if start == 0 || newlines > n {
            break;
        }
        let step = BLOCK.min(start);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut block = vec![0u8; step as usize];
        file.read_exact(&mut block)?;
        block.extend_from_slice(&buf);
        buf = block;
    }
    let mut lines: Vec<Vec<u8>> = buf
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if start > 0 && !lines.is_empty() {
        // The first piece may be the tail of a longer line cut by the block boundary.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn entry(i: usize) -> Entry {
        Entry {
            ts: i as u64,
            id: format!("{i:032x}"),
            from: "alice".into(),
            peer: "12D3Koo".into(),
            text: format!("message {i}"),
            outgoing: false,
            signed: None,
            re: None,
        }
    }

    #[test]
    fn appended_entries_read_back_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = History::open(tmp.path()).unwrap();
        for i in 0..5 {
            h.append("lobby", &entry(i)).unwrap();
        }
        let all = History::read_last(tmp.path(), "lobby", 10).unwrap();
        assert_eq!(all, (0..5).map(entry).collect::<Vec<_>>());
        let last = History::read_last(tmp.path(), "lobby", 2).unwrap();
        assert_eq!(last, vec![entry(3), entry(4)]);
        assert!(History::read_last(tmp.path(), "nobody", 3)
            .unwrap()
            .is_empty());
        assert_eq!(History::conversations(tmp.path()).unwrap(), vec!["lobby"]);
    }

    /// Descriptors of this process open on files inside `dir` (Linux `/proc/self/fd`).
    fn descriptors_in(dir: &Path) -> usize {
        let dir = dir.canonicalize().unwrap();
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .filter(|target| target.starts_with(&dir))
            .count()
    }

    #[test]
    fn a_thousand_conversations_keep_a_bounded_set_of_files_open() {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = History::open(tmp.path()).unwrap();
        for i in 0..1000 {
            h.append(&format!("dm-{i}"), &entry(i)).unwrap();
        }
        assert!(h.open_logs() <= MAX_OPEN, "{} logs open", h.open_logs());
        if cfg!(target_os = "linux") {
            let open = descriptors_in(tmp.path());
            assert!(
                open <= MAX_OPEN,
                "{open} descriptors open in the history folder"
            );
        }
        // A closed log takes further entries, after the ones it has.
        h.append("dm-0", &entry(1000)).unwrap();
        assert_eq!(
            History::read_last(tmp.path(), "dm-0", 10).unwrap(),
            vec![entry(0), entry(1000)]
        );
        for i in 1..1000 {
            assert_eq!(
                History::read_last(tmp.path(), &format!("dm-{i}"), 10).unwrap(),
                vec![entry(i)]
            );
        }
        assert_eq!(History::conversations(tmp.path()).unwrap().len(), 1000);
    }

    #[test]
    fn tail_spans_many_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = History::open(tmp.path()).unwrap();
        for i in 0..5000 {
            h.append("lobby", &entry(i)).unwrap();
        }
        let last = History::read_last(tmp.path(), "lobby", 3000).unwrap();
        assert_eq!(last.len(), 3000);
        assert_eq!(last[0], entry(2000));
        assert_eq!(last[2999], entry(4999));
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_fenced_off() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut h = History::open(tmp.path()).unwrap();
            h.append("lobby", &entry(1)).unwrap();
        }
        // A crash in the middle of a write leaves half a line behind.
        let path = tmp.path().join("lobby.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"ts":2,"id":"ab"#).unwrap();
        drop(f);
        assert_eq!(
            History::read_last(tmp.path(), "lobby", 10).unwrap(),
            vec![entry(1)]
        );
        // The torn line does not take the place of a real entry.
        assert_eq!(
            History::read_last(tmp.path(), "lobby", 1).unwrap(),
            vec![entry(1)]
        );
        let mut h = History::open(tmp.path()).unwrap();
        h.append("lobby", &entry(3)).unwrap();
        assert_eq!(
            History::read_last(tmp.path(), "lobby", 10).unwrap(),
            vec![entry(1), entry(3)]
        );
        assert_eq!(
            History::read_last(tmp.path(), "lobby", 2).unwrap(),
            vec![entry(1), entry(3)]
        );
    }
}
