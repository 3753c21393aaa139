//! Searching the conversation logs: the newest lines holding every word asked for, in one
//! conversation or in all, each log read through the conversation model the caller passes,
//! so that a line is found by what it says now (never by a deleted or replaced text).

use std::{
    cmp::Reverse,
    fs::File,
    io::{self, BufRead, BufReader},
    path::Path,
};

use super::history::{is_direct_log, log_path, Entry, History};

/// Most hits one search returns.
pub const MAX_HITS: usize = 50;

/// Longest line of a log read (longer ones are skipped): a message is far shorter.
const MAX_LINE: usize = 1 << 20;

/// One line found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The log it is in (a room's slug or `dm-<peer>`).
    pub conversation: String,
    /// For a private conversation, the other side's display name in its latest line to
    /// this node (`None` when it never wrote).
    pub with: Option<String>,
    /// The line as it stands now (its current text).
    pub entry: Entry,
    /// Its author edited it.
    pub edited: bool,
}

/// What to look for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    words: Vec<String>,
}

impl Query {
    /// Lines holding every one of `words`, case folded; `None` when no word is given.
    pub fn new<S: AsRef<str>>(words: &[S]) -> Option<Self> {
        let words: Vec<String> = words
            .iter()
            .map(|w| w.as_ref().trim().to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        (!words.is_empty()).then_some(Self { words })
    }

    /// Whether `text` holds every word.
    pub fn matches(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.words.iter().all(|w| text.contains(w.as_str()))
    }
}

/// A line as it reads now: its entry with the current text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Current {
    /// The line's entry, with its current text.
    pub entry: Entry,
    /// Its author edited it.
    pub edited: bool,
}

/// The newest `max` lines (newest first) that `matching` finds in the log `only`, or in every
/// log of `dir` when `None`. Each log is read whole and handed to `matching` (the
/// conversation model's `timeline::matching`, so that a line is found by what it says now);
/// memory stays bounded by one log and the hits kept.
pub fn search(
    dir: &Path,
    only: Option<&str>,
    max: usize,
    matching: impl Fn(Vec<Entry>) -> Vec<Current>,
) -> io::Result<Vec<Hit>> {
    let logs = match only {
        Some(log) => vec![log.to_owned()],
        None => History::conversations(dir)?,
    };
    let mut found: Vec<Hit> = Vec::new();
    for log in logs {
        let file = match File::open(log_path(dir, &log)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let direct = is_direct_log(&log);
        let mut with = None;
        let mut entries = Vec::new();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.len() > MAX_LINE {
                continue;
            }
            let Ok(entry) = serde_json::from_slice::<Entry>(&line) else {
                continue;
            };
            if direct && !entry.outgoing && entry.re.is_none() {
                with = Some(entry.from.clone());
            }
            entries.push(entry);
        }
        found.extend(matching(entries).into_iter().map(|c| Hit {
            conversation: log.clone(),
            with: with.clone(),
            edited: c.edited,
            entry: c.entry,
        }));
        if found.len() > max {
            found.sort_by_key(|h| Reverse(h.entry.ts));
            found.truncate(max);
        }
    }
    found.sort_by_key(|h| Reverse(h.entry.ts));
    found.truncate(max);
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(ts: u64, from: &str, text: &str, outgoing: bool) -> Entry {
        Entry {
            ts,
            id: format!("id{ts}"),
            from: from.into(),
            peer: "p".into(),
            text: text.into(),
            outgoing,
            signed: None,
            re: None,
        }
    }

    /// The matching lines of a log, entry by entry, as a log without changes reads.
    fn plain(query: &Query) -> impl Fn(Vec<Entry>) -> Vec<Current> + '_ {
        move |entries| {
            entries
                .into_iter()
                .filter(|e| query.matches(&e.text))
                .map(|entry| Current {
                    entry,
                    edited: false,
                })
                .collect()
        }
    }

    fn logs() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let history = History::open(dir.path().join("history")).expect("a history folder");
        (dir, history)
    }

    #[test]
    fn every_word_must_be_in_the_line_whatever_its_case() {
        let q = Query::new(&["Meet", "café"]).expect("words");
        assert!(q.matches("let's meet at the CAFÉ"));
        assert!(!q.matches("let's meet"));
        assert!(Query::new(&["  ", ""]).is_none());
    }

    #[test]
    fn hits_come_newest_first_across_conversations_with_the_other_side_named() {
        let (_tmp, mut history) = logs();
        history
            .append("lobby", &entry(10, "carol", "lunch at noon?", false))
            .unwrap();
        history
            .append("dm-peer", &entry(20, "bob", "Lunch tomorrow", false))
            .unwrap();
        history
            .append("dm-peer", &entry(30, "alice", "lunch is fine", true))
            .unwrap();
        history
            .append("lobby", &entry(40, "dave", "no match here", false))
            .unwrap();
        let q = Query::new(&["lunch"]).unwrap();
        let hits = search(history.dir(), None, MAX_HITS, plain(&q)).unwrap();
        let seen: Vec<(u64, &str, Option<&str>)> = hits
            .iter()
            .map(|h| (h.entry.ts, h.conversation.as_str(), h.with.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (30, "dm-peer", Some("bob")),
                (20, "dm-peer", Some("bob")),
                (10, "lobby", None)
            ]
        );
        let only = search(history.dir(), Some("lobby"), MAX_HITS, plain(&q)).unwrap();
        assert_eq!(only.len(), 1);
        assert!(
            search(history.dir(), Some("interest-none"), MAX_HITS, plain(&q))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn only_the_newest_hits_are_kept_and_torn_lines_are_skipped() {
        let (_tmp, mut history) = logs();
        for ts in 0..1000 {
            history
                .append("lobby", &entry(ts, "a", &format!("line {ts}"), false))
                .unwrap();
        }
        let path = log_path(history.dir(), "lobby");
        let mut raw = std::fs::read(&path).unwrap();
        raw.extend_from_slice(b"{\"ts\":5000,\"id\":\"torn\",\"from\":\"a\",\"text\":\"line");
        std::fs::write(&path, raw).unwrap();
        let q = Query::new(&["line"]).unwrap();
        let hits = search(history.dir(), None, 3, plain(&q)).unwrap();
        let ts: Vec<u64> = hits.iter().map(|h| h.entry.ts).collect();
        assert_eq!(ts, vec![999, 998, 997]);
    }

    #[test]
    fn a_hundred_thousand_lines_are_searched_in_one_pass() {
        let (_tmp, mut history) = logs();
        for ts in 0..100_000u64 {
            let log = if ts % 10 == 0 { "dm-peer" } else { "lobby" };
            let text = if ts % 1000 == 7 {
                "the release is out"
            } else {
                "chatter"
            };
            history.append(log, &entry(ts, "a", text, false)).unwrap();
        }
        let q = Query::new(&["release"]).unwrap();
        let started = std::time::Instant::now();
        let hits = search(history.dir(), None, MAX_HITS, plain(&q)).unwrap();
        println!("100 000 lines searched in {:?}", started.elapsed());
        assert_eq!(hits.len(), 50);
        assert_eq!(hits[0].entry.ts, 99_007);
        assert_eq!(hits[49].entry.ts, 50_007);
    }

    #[test]
    fn a_word_with_a_quote_is_found_though_the_log_escapes_it() {
        let (_tmp, mut history) = logs();
        history
            .append("lobby", &entry(1, "a", "she said \"hi\"", false))
            .unwrap();
        let q = Query::new(&["\"hi\""]).unwrap();
        assert_eq!(
            search(history.dir(), None, MAX_HITS, plain(&q))
                .unwrap()
                .len(),
            1
        );
    }
}
