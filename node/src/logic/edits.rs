//! Replies, reactions, edits, deletions and receipts as log entries ([`entry_change`],
//! [`receipt`]), and the recent lines of a conversation a node keeps to resolve a short
//! reference and to check that a change may be made ([`Recent`]): an edit or a deletion
//! only by the line's author, and nothing on a deleted line. How a log folds into the
//! lines a person sees is [`crate::logic::timeline`].

use std::collections::VecDeque;

use ipm_protocol::{MessageId, Op};

use crate::store::history::{Entry, EntryChange};

pub use super::timeline::kind;

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
    /// A change of a deleted line.
    #[error("line {0} was deleted: nothing can change it any more")]
    Deleted(String),
    /// `last` in a conversation without (own) lines.
    #[error("no line of yours here yet")]
    NoOwnLine,
    /// `last` in an empty conversation.
    #[error("no line here yet")]
    Empty,
}

/// One recent line: its id, its author, whether this node wrote it, whether it is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    id: MessageId,
    author: String,
    own: bool,
    deleted: bool,
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
        for line in crate::logic::timeline::fold(entries) {
            if let Ok(id) = line.entry.id.parse::<MessageId>() {
                recent.push(id, &line.entry.peer, line.entry.outgoing);
                if line.deleted {
                    recent.deleted(&id);
                }
            }
        }
        recent
    }

    /// The line `id` was deleted by its author: nothing may change it any more.
    pub fn deleted(&mut self, id: &MessageId) {
        if let Some(k) = self.lines.iter_mut().find(|k| k.id == *id) {
            k.deleted = true;
        }
    }

    /// Whether the recent line `id` was deleted.
    pub fn is_deleted(&self, id: &MessageId) -> bool {
        self.lines.iter().any(|k| k.id == *id && k.deleted)
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
            deleted: false,
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

    /// Whether `changer` may edit or delete `id`: it is a recent line and `changer` wrote it
    /// (a deletion of a deleted line changes nothing, and is allowed as such).
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
                .find(|k| k.own && !k.deleted)
                .ok_or(RefError::NoOwnLine)?,
            Ref::Last => self
                .lines
                .iter()
                .rev()
                .find(|k| !k.deleted)
                .ok_or(RefError::Empty)?,
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
        if found.deleted {
            return Err(RefError::Deleted(r.to_string()));
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

    #[test]
    fn a_deleted_line_cannot_be_named_and_last_skips_it() {
        let a = id("aa");
        let b = id("bb");
        let log = [
            Entry {
                id: a.to_string(),
                ..line("", "me", "first")
            },
            Entry {
                id: b.to_string(),
                ..line("", "me", "oops")
            },
            change(
                &id("cc").to_string(),
                "me",
                kind::DELETE,
                &b.to_string(),
                "",
            ),
        ];
        let recent = Recent::from_entries(&log, 10);
        assert!(recent.is_deleted(&b));
        assert_eq!(
            recent.resolve(&Ref::parse("bb").unwrap(), false),
            Err(RefError::Deleted("bb".into()))
        );
        assert_eq!(recent.resolve(&Ref::Last, false), Ok(a));
        assert_eq!(recent.resolve(&Ref::Last, true), Ok(a));
    }
}
