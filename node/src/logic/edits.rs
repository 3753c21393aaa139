//! Replies, reactions, edits, deletions and receipts over a conversation log: how an
//! append-only log folds into the current state of each line ([`fold`]), and the recent
//! lines of a conversation a node keeps to resolve a short reference and to check that
//! an edit or a deletion comes from the line's author ([`Recent`]).
//!
//! Every change is its own entry in the log, after the line it is about. An edit or a
//! deletion counts only when its entry's peer is the author of the line (checked again
//! here, whatever wrote the log); a reaction counts once per peer and emoji.

use std::collections::{HashMap, HashSet, VecDeque};

use ipm_protocol::{MessageId, Op};

use crate::store::history::{Entry, EntryChange};

/// Kinds of [`EntryChange`] this node writes.
pub mod kind {
    /// An answer to the target.
    pub const REPLY: &str = "reply";
    /// A reaction to the target.
    pub const REACT: &str = "react";
    /// A new text for the target.
    pub const EDIT: &str = "edit";
    /// The target is withdrawn.
    pub const DELETE: &str = "delete";
    /// The recipient acknowledged the target (an own private message).
    pub const DELIVERED: &str = "delivered";
    /// The recipient's user saw the target (an own private message).
    pub const READ: &str = "read";
}

/// Most characters of the answered line quoted in a reply.
pub const QUOTE_CHARS: usize = 40;

/// Shortest reference shown for a line.
pub const MIN_REF: usize = 4;

/// The [`EntryChange`] recording `op` on `target`.
pub fn entry_change(target: MessageId, op: &Op) -> EntryChange {
    let (kind, value) = match op {
        Op::Reply => (kind::REPLY, None),
        Op::React(emoji) => (kind::REACT, Some(emoji.clone())),
        Op::Edit(_) => (kind::EDIT, None),
        Op::Delete => (kind::DELETE, None),
    };
    EntryChange {
        kind: kind.to_owned(),
        target: target.to_string(),
        value,
    }
}

/// The text an entry of `op` keeps: a reply's answer, an edit's new text, the emoji.
pub fn entry_text(op: &Op, text: &str) -> String {
    match op {
        Op::Reply => text.to_owned(),
        Op::Edit(new) => new.clone(),
        Op::React(emoji) => emoji.clone(),
        Op::Delete => "(deleted)".to_owned(),
    }
}

/// A receipt entry: `kind` ([`kind::DELIVERED`] or [`kind::READ`]) of the own `target`.
pub fn receipt(ts: u64, target: &MessageId, kind: &str, by: &str) -> Entry {
    Entry {
        ts,
        id: format!("{kind}-{target}"),
        from: by.to_owned(),
        peer: String::new(),
        text: kind.to_owned(),
        outgoing: false,
        signed: None,
        re: Some(EntryChange {
            kind: kind.to_owned(),
            target: target.to_string(),
            value: None,
        }),
    }
}

/// What a reply answers: the line's author and the start of its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The answered line's id.
    pub id: String,
    /// Its author's name.
    pub from: String,
    /// The first [`QUOTE_CHARS`] characters of its current text.
    pub text: String,
}

/// A line as it stands now, after every change the log holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The line's own entry (its first text, author and time).
    pub entry: Entry,
    /// The current text.
    pub text: String,
    /// Its author changed it.
    pub edited: bool,
    /// Its author withdrew it.
    pub deleted: bool,
    /// What it answers, when the answered line is in the log.
    pub reply_to: Option<Quote>,
    /// Reactions and how many peers gave each, in the order first given.
    pub reactions: Vec<(String, usize)>,
    /// An own private message the recipient acknowledged.
    pub delivered: bool,
    /// An own private message the recipient's user saw.
    pub read: bool,
}

impl Line {
    /// The reactions as shown: `👍 2  ❤ 1`.
    pub fn reactions_text(&self) -> String {
        self.reactions
            .iter()
            .map(|(emoji, n)| format!("{emoji} {n}"))
            .collect::<Vec<_>>()
            .join("  ")
    }
}

/// Folds `entries` (a log, oldest first) into its lines, oldest first. Changes whose
/// target is not among the entries, and edits or deletions by another peer than the
/// author, change nothing.
pub fn fold(entries: &[Entry]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut reacted: HashSet<(usize, &str, &str)> = HashSet::new();
    // The line each line answers; quoted once every change is applied.
    let mut answers: Vec<Option<usize>> = Vec::new();
    for entry in entries {
        let change = entry.re.as_ref();
        let target = change.and_then(|c| at.get(c.target.as_str()).copied());
        match (change.map(|c| c.kind.as_str()), target) {
            // An edit after a deletion does not bring the line back.
            (Some(kind::EDIT), Some(i))
                if lines[i].entry.peer == entry.peer && !lines[i].deleted =>
            {
                lines[i].text = entry.text.clone();
                lines[i].edited = true;
            }
            (Some(kind::DELETE), Some(i)) if lines[i].entry.peer == entry.peer => {
                lines[i].deleted = true;
                lines[i].text.clear();
            }
            (Some(kind::REACT), Some(i)) => {
                let emoji = change.and_then(|c| c.value.as_deref()).unwrap_or("");
                if emoji.is_empty() || !reacted.insert((i, entry.peer.as_str(), emoji)) {
                    continue;
                }
                let reactions = &mut lines[i].reactions;
                match reactions.iter_mut().find(|(e, _)| e == emoji) {
                    Some((_, n)) => *n += 1,
                    None => reactions.push((emoji.to_owned(), 1)),
                }
            }
            (Some(kind::DELIVERED), Some(i)) if lines[i].entry.outgoing => {
                lines[i].delivered = true;
            }
            (Some(kind::READ), Some(i)) if lines[i].entry.outgoing => {
                lines[i].delivered = true;
                lines[i].read = true;
            }
            (Some(kind::REPLY) | None, _) => {
                if at.contains_key(entry.id.as_str()) {
                    continue;
                }
                at.insert(entry.id.as_str(), lines.len());
                answers.push(target);
                lines.push(Line {
                    entry: entry.clone(),
                    text: entry.text.clone(),
                    edited: false,
                    deleted: false,
                    reply_to: None,
                    reactions: Vec::new(),
                    delivered: false,
                    read: false,
                });
            }
            // Refused or about an unknown line: nothing to show.
            _ => {}
        }
    }
    let quotes: Vec<Option<Quote>> = answers
        .iter()
        .map(|a| a.map(|i| quote(&lines[i])))
        .collect();
    for (line, quote) in lines.iter_mut().zip(quotes) {
        line.reply_to = quote;
    }
    lines
}

fn quote(line: &Line) -> Quote {
    let text = if line.deleted {
        "(deleted)".to_owned()
    } else {
        let mut t: String = line.text.chars().take(QUOTE_CHARS).collect();
        if line.text.chars().nth(QUOTE_CHARS).is_some() {
            t.push('…');
        }
        t
    };
    Quote {
        id: line.entry.id.clone(),
        from: line.entry.from.clone(),
        text,
    }
}

/// The shortest length, at least [`MIN_REF`], at which the ids in `ids` all differ.
pub fn ref_len<'a>(ids: impl IntoIterator<Item = &'a str>) -> usize {
    let mut sorted: Vec<&str> = ids.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let common = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    sorted
        .windows(2)
        .map(|w| common(w[0], w[1]) + 1)
        .max()
        .unwrap_or(0)
        .max(MIN_REF)
}

/// How a user refers to a line: `last`, or the start of its id in hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    /// The last line (for edits and deletions, the last own line).
    Last,
    /// A prefix of the id, lowercase hex.
    Prefix(String),
}

impl Ref {
    /// Reads what the user typed: `last` or 1 to 32 hex digits.
    pub fn parse(word: &str) -> Result<Ref, RefError> {
        if word.eq_ignore_ascii_case("last") {
            return Ok(Ref::Last);
        }
        if word.is_empty() || word.len() > 32 || !word.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RefError::NotARef(word.to_owned()));
        }
        Ok(Ref::Prefix(word.to_ascii_lowercase()))
    }
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Last => f.write_str("last"),
            Ref::Prefix(p) => f.write_str(p),
        }
    }
}

/// Why a reference names no single line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Neither `last` nor hex.
    #[error("'{0}' is not a line reference: use the characters shown next to a line, or last")]
    NotARef(String),
    /// No recent line starts so.
    #[error("no recent line {0} here: /history shows the references")]
    NotFound(String),
    /// Several do.
    #[error(
        "{prefix} names {count} lines here: type more of it (/history shows longer references)"
    )]
    Ambiguous {
        /// What was typed.
        prefix: String,
        /// How many lines start so.
        count: usize,
    },
    /// An edit or deletion of someone else's line.
    #[error("only its author may edit or delete line {0}")]
    NotYours(String),
    /// `last` in a conversation without (own) lines.
    #[error("no line of yours here yet")]
    NoOwnLine,
    /// `last` in an empty conversation.
    #[error("no line here yet")]
    Empty,
}

/// One recent line: its id, its author, whether this node wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    id: MessageId,
    author: String,
    own: bool,
}

/// The last lines of one conversation (not its changes), bounded: enough to resolve a
/// reference and to know the author of a line an edit is about.
#[derive(Clone, Debug)]
pub struct Recent {
    lines: VecDeque<Known>,
    capacity: usize,
}

impl Recent {
    /// Keeps at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            capacity,
        }
    }

    /// The recent lines of `entries` (a log's tail, oldest first).
    pub fn from_entries(entries: &[Entry], capacity: usize) -> Self {
        let mut recent = Self::new(capacity);
        for e in entries {
            let is_line = e.re.as_ref().is_none_or(|c| c.kind == kind::REPLY);
            if let (true, Ok(id)) = (is_line, e.id.parse::<MessageId>()) {
                recent.push(id, &e.peer, e.outgoing);
            }
        }
        recent
    }

    /// A new line `id` by `author` (own when this node wrote it); a line known already is
    /// not added again.
    pub fn push(&mut self, id: MessageId, author: &str, own: bool) {
        if self.lines.iter().any(|k| k.id == id) {
            return;
        }
        if self.lines.len() >= self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(Known {
            id,
            author: author.to_owned(),
            own,
        });
    }

    /// The author (peer id) of the recent line `id`.
    pub fn author(&self, id: &MessageId) -> Option<&str> {
        self.lines
            .iter()
            .rev()
            .find(|k| k.id == *id)
            .map(|k| k.author.as_str())
    }

    /// Whether `changer` may edit or delete `id`: it is a recent line and `changer` wrote it.
    pub fn may_change(&self, id: &MessageId, changer: &str) -> bool {
        self.author(id) == Some(changer)
    }

    /// The line `r` names, for `op` (an edit or a deletion needs an own line).
    pub fn resolve(&self, r: &Ref, own_only: bool) -> Result<MessageId, RefError> {
        let found = match r {
            Ref::Last if own_only => self
                .lines
                .iter()
                .rev()
                .find(|k| k.own)
                .ok_or(RefError::NoOwnLine)?,
            Ref::Last => self.lines.back().ok_or(RefError::Empty)?,
            Ref::Prefix(prefix) => {
                let mut matches = self
                    .lines
                    .iter()
                    .filter(|k| k.id.to_string().starts_with(prefix.as_str()));
                let first = matches
                    .next()
                    .ok_or_else(|| RefError::NotFound(prefix.clone()))?;
                let others = matches.filter(|k| k.id != first.id).count();
                if others > 0 {
                    return Err(RefError::Ambiguous {
                        prefix: prefix.clone(),
                        count: others + 1,
                    });
                }
                first
            }
        };
        if own_only && !found.own {
            return Err(RefError::NotYours(r.to_string()));
        }
        Ok(found.id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(id: &str, peer: &str, text: &str) -> Entry {
        Entry {
            ts: 1,
            id: id.into(),
            from: peer.to_uppercase(),
            peer: peer.into(),
            text: text.into(),
            outgoing: peer == "me",
            signed: None,
            re: None,
        }
    }

    fn change(id: &str, peer: &str, kind: &str, target: &str, text: &str) -> Entry {
        let value = (kind == kind::REACT).then(|| text.to_owned());
        Entry {
            re: Some(EntryChange {
                kind: kind.into(),
                target: target.into(),
                value,
            }),
            ..line(id, peer, text)
        }
    }

    #[test]
    fn edits_and_deletions_by_the_author_count() {
        let log = [
            line("a1", "alice", "helo"),
            line("b1", "bob", "hi"),
            change("a2", "alice", kind::EDIT, "a1", "hello"),
            change("b2", "bob", kind::DELETE, "b1", ""),
        ];
        let lines = fold(&log);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].text.as_str(), lines[0].edited), ("hello", true));
        assert!(lines[1].deleted && lines[1].text.is_empty());
    }

    #[test]
    fn a_forgers_edit_or_deletion_changes_nothing() {
        let log = [
            line("a1", "alice", "pay bob"),
            change("m1", "mallory", kind::EDIT, "a1", "pay mallory"),
            change("m2", "mallory", kind::DELETE, "a1", ""),
        ];
        let lines = fold(&log);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "pay bob");
        assert!(!lines[0].edited && !lines[0].deleted);
    }

    #[test]
    fn reactions_aggregate_once_per_peer_and_emoji() {
        let log = [
            line("a1", "alice", "lunch?"),
            change("r1", "bob", kind::REACT, "a1", "👍"),
            change("r2", "carol", kind::REACT, "a1", "👍"),
            change("r3", "carol", kind::REACT, "a1", "👍"),
            change("r4", "bob", kind::REACT, "a1", "❤"),
            change("r5", "bob", kind::REACT, "zz", "❤"),
        ];
        let lines = fold(&log);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].reactions_text(), "👍 2  ❤ 1");
    }

    #[test]
    fn replies_quote_what_they_answer_and_are_lines() {
        let long = "x".repeat(QUOTE_CHARS + 5);
        let log = [
            line("a1", "alice", &long),
            change("b1", "bob", kind::REPLY, "a1", "agreed"),
            change("b2", "bob", kind::REPLY, "gone", "to what?"),
        ];
        let lines = fold(&log);
        assert_eq!(lines.len(), 3);
        let quote = lines[1].reply_to.as_ref().unwrap();
        assert_eq!(quote.from, "ALICE");
        assert_eq!(quote.text.chars().count(), QUOTE_CHARS + 1);
        assert!(lines[2].reply_to.is_none());
        assert_eq!(lines[2].text, "to what?");
    }

    #[test]
    fn receipts_mark_own_lines_only() {
        let mine = line("m1", "me", "hi bob");
        let theirs = line("b1", "bob", "hi");
        let id = |s: &str| s.to_owned();
        let mut delivered = receipt(2, &MessageId::random(), kind::DELIVERED, "bob");
        delivered.re.as_mut().unwrap().target = id("m1");
        let mut read = receipt(3, &MessageId::random(), kind::READ, "bob");
        read.re.as_mut().unwrap().target = id("b1");
        let lines = fold(&[mine.clone(), theirs, delivered.clone()]);
        assert!(lines[0].delivered && !lines[0].read);
        let mut read_mine = read.clone();
        read_mine.re.as_mut().unwrap().target = id("m1");
        let lines = fold(&[mine, line("b1", "bob", "hi"), delivered, read, read_mine]);
        assert!(lines[0].read);
        assert!(!lines[1].read);
    }

    #[test]
    fn an_edit_after_a_deletion_does_not_bring_it_back() {
        let log = [
            line("a1", "alice", "oops"),
            change("a2", "alice", kind::DELETE, "a1", ""),
            change("a3", "alice", kind::EDIT, "a1", "back"),
        ];
        let lines = fold(&log);
        assert!(lines[0].deleted && lines[0].text.is_empty());
    }

    #[test]
    fn references_are_long_enough_to_differ() {
        assert_eq!(ref_len(["abcdef00", "12345678"]), MIN_REF);
        assert_eq!(ref_len(["abcdef00", "abcdef11"]), 7);
        assert_eq!(ref_len(Vec::<&str>::new()), MIN_REF);
    }

    fn id(hex_start: &str) -> MessageId {
        format!("{hex_start:0<32}").parse().unwrap()
    }

    #[test]
    fn references_resolve_or_say_why_not() {
        let mut recent = Recent::new(3);
        recent.push(id("aa11"), "bob", false);
        recent.push(id("aa22"), "me", true);
        recent.push(id("bb33"), "bob", false);
        let p = |s: &str| Ref::parse(s).unwrap();
        assert_eq!(recent.resolve(&p("bb"), false), Ok(id("bb33")));
        assert_eq!(recent.resolve(&p("AA2"), true), Ok(id("aa22")));
        assert_eq!(recent.resolve(&p("last"), false), Ok(id("bb33")));
        assert_eq!(recent.resolve(&p("last"), true), Ok(id("aa22")));
        assert_eq!(
            recent.resolve(&p("aa"), false),
            Err(RefError::Ambiguous {
                prefix: "aa".into(),
                count: 2
            })
        );
        assert_eq!(
            recent.resolve(&p("cc"), false),
            Err(RefError::NotFound("cc".into()))
        );
        assert_eq!(
            recent.resolve(&p("bb"), true),
            Err(RefError::NotYours("bb".into()))
        );
        assert!(Ref::parse("xyz").is_err());
        assert!(Ref::parse("").is_err());
        // The oldest line goes first when the list is full.
        recent.push(id("cc44"), "bob", false);
        assert_eq!(recent.author(&id("aa11")), None);
        assert!(recent.may_change(&id("aa22"), "me"));
        assert!(!recent.may_change(&id("aa22"), "bob"));
        assert_eq!(
            Recent::new(2).resolve(&p("last"), true),
            Err(RefError::NoOwnLine)
        );
        assert_eq!(
            Recent::new(2).resolve(&p("last"), false),
            Err(RefError::Empty)
        );
        for e in [
            RefError::NotARef("x".into()),
            RefError::Ambiguous {
                prefix: "a".into(),
                count: 2,
            },
        ] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn recent_lines_come_from_a_log_without_its_changes() {
        let a = id("aa");
        let log = [
            Entry {
                id: a.to_string(),
                ..line("", "alice", "hi")
            },
            change(
                &id("bb").to_string(),
                "bob",
                kind::REACT,
                &a.to_string(),
                "👍",
            ),
        ];
        let recent = Recent::from_entries(&log, 10);
        assert_eq!(recent.resolve(&Ref::Last, false), Ok(a));
        assert_eq!(recent.author(&a), Some("alice"));
    }
}
