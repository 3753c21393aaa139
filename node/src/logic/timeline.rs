//! The conversation model: one fold of a conversation's log (lines, replies, edits,
//! deletions, reactions and receipts) into the lines a person sees. Every surface reads a
//! conversation through it: the prompt's `/history` and `/save`, `/search`, the web page,
//! unread counts, and what a node hands to a member catching up.
//!
//! Entries are applied one at a time ([`Timeline::apply`]), oldest first. A change whose
//! target has not arrived yet is stashed (bounded) and applied when it does, so a log or a
//! catch-up answer in another order folds the same. An edit or a deletion counts only when
//! its entry's peer is the author of the line; a deletion voids the line's text, its edits
//! and its reactions, and nothing changes a deleted line afterwards. Receipts count only on
//! own lines, and only move forward (sent, delivered, read).

use std::collections::{HashMap, HashSet};

use crate::{
    logic::directory::Labels,
    store::history::Entry,
    store::search::{Current, Query},
    store::unread::is_line_of_others,
};

/// Kinds of [`crate::store::history::EntryChange`] this node writes.
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

/// Most changes stashed while their target has not arrived.
pub const MAX_STASHED: usize = 1024;

/// What a reply answers: the line's author and the start of its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The answered line's id.
    pub id: String,
    /// Its author's name, as logged.
    pub from: String,
    /// Its author's peer id.
    pub peer: String,
    /// The first [`QUOTE_CHARS`] characters of its current text, `(deleted)` once withdrawn.
    pub text: String,
}

/// How far an own private message got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Receipt {
    /// Sent, no acknowledgement yet.
    #[default]
    Sent,
    /// The recipient's node acknowledged it.
    Delivered,
    /// The recipient's user saw it.
    Read,
}

/// A line as it stands now, after every change the log holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The line's own entry (its first text, author and time).
    pub entry: Entry,
    /// The current text (empty once deleted).
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

    /// Shows the line's author and the author it quotes under their names now.
    pub fn relabel(&mut self, labels: &Labels) {
        let from = labels.label(&self.entry.peer, &self.entry.from).to_owned();
        self.entry.from = from;
        if let Some(q) = &mut self.reply_to {
            q.from = labels.label(&q.peer, &q.from).to_owned();
        }
    }

    /// How far an own line got.
    pub fn receipt(&self) -> Receipt {
        match (self.delivered, self.read) {
            (_, true) => Receipt::Read,
            (true, false) => Receipt::Delivered,
            _ => Receipt::Sent,
        }
    }
}

/// What applying one entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A new line, at this index.
    New(usize),
    /// The line at this index changed.
    Changed(usize),
    /// A change about a line not seen yet: kept until it arrives.
    Stashed,
    /// Nothing to show: a duplicate, a forged edit or deletion, a change of a deleted
    /// line, a receipt that does not move a line forward, or a full stash.
    Ignored,
}

/// One line's state inside the fold.
#[derive(Clone, Debug)]
struct Item {
    line: Line,
    /// The index of the line it answers.
    answers: Option<usize>,
    /// Reactions given, by (peer, emoji), so each counts once.
    reacted: HashSet<(String, String)>,
}

/// A conversation folded so far.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    items: Vec<Item>,
    at: HashMap<String, usize>,
    /// Changes waiting for their target, by target id.
    stash: HashMap<String, Vec<Entry>>,
    stashed: usize,
    /// Replies whose answered line has not arrived: by the answered id.
    waiting_replies: HashMap<String, Vec<usize>>,
}

impl Timeline {
    /// An empty conversation.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fold of `entries`, oldest first.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        let mut timeline = Self::new();
        for entry in entries {
            timeline.apply(entry.clone());
        }
        timeline
    }

    /// How many lines it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds no line.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The line `id`, as it stands now.
    pub fn get(&self, id: &str) -> Option<Line> {
        self.at.get(id).map(|&i| self.line(i))
    }

    /// The line at `index`, as it stands now (its quote taken now).
    pub fn line(&self, index: usize) -> Line {
        let item = &self.items[index];
        let mut line = item.line.clone();
        line.reply_to = item.answers.map(|i| quote(&self.items[i].line));
        line
    }

    /// Every line, oldest first.
    pub fn lines(&self) -> Vec<Line> {
        (0..self.items.len()).map(|i| self.line(i)).collect()
    }

    /// Applies one entry of the log.
    pub fn apply(&mut self, entry: Entry) -> Applied {
        let Some(change) = entry.re.clone() else {
            return self.add_line(entry, None);
        };
        if change.kind == kind::REPLY {
            return self.add_line(entry, Some(change.target));
        }
        let Some(&i) = self.at.get(&change.target) else {
            if self.stashed >= MAX_STASHED {
                return Applied::Ignored;
            }
            self.stashed += 1;
            self.stash
                .entry(change.target.clone())
                .or_default()
                .push(entry);
            return Applied::Stashed;
        };
        self.change(i, &entry, &change.kind, change.value.as_deref())
    }

    fn add_line(&mut self, entry: Entry, answers: Option<String>) -> Applied {
        if self.at.contains_key(&entry.id) {
            return Applied::Ignored;
        }
        let index = self.items.len();
        let id = entry.id.clone();
        let answers = match answers {
            Some(target) => match self.at.get(&target) {
                Some(&i) => Some(i),
                None => {
                    self.waiting_replies.entry(target).or_default().push(index);
                    None
                }
            },
            None => None,
        };
        self.items.push(Item {
            line: Line {
                text: entry.text.clone(),
                entry,
                edited: false,
                deleted: false,
                reply_to: None,
                reactions: Vec::new(),
                delivered: false,
                read: false,
            },
            answers,
            reacted: HashSet::new(),
        });
        self.at.insert(id.clone(), index);
        for reply in self.waiting_replies.remove(&id).unwrap_or_default() {
            self.items[reply].answers = Some(index);
        }
        for change in self.stash.remove(&id).unwrap_or_default() {
            self.stashed -= 1;
            if let Some(c) = change.re.clone() {
                self.change(index, &change, &c.kind, c.value.as_deref());
            }
        }
        Applied::New(index)
    }

    fn change(&mut self, i: usize, entry: &Entry, kind: &str, value: Option<&str>) -> Applied {
        let item = &mut self.items[i];
        let line = &mut item.line;
        let by_author = line.entry.peer == entry.peer;
        match kind {
            kind::DELETE if by_author && !line.deleted => {
                line.deleted = true;
                line.edited = false;
                line.text.clear();
                line.reactions.clear();
                item.reacted.clear();
            }
            kind::EDIT if by_author && !line.deleted && line.text != entry.text => {
                line.text.clone_from(&entry.text);
                line.edited = true;
            }
            kind::REACT if !line.deleted => {
                let emoji = value.unwrap_or("");
                if emoji.is_empty() || !item.reacted.insert((entry.peer.clone(), emoji.into())) {
                    return Applied::Ignored;
                }
                match line.reactions.iter_mut().find(|(e, _)| e == emoji) {
                    Some((_, n)) => *n += 1,
                    None => line.reactions.push((emoji.to_owned(), 1)),
                }
            }
            kind::DELIVERED if line.entry.outgoing && !line.delivered => {
                line.delivered = true;
            }
            kind::READ if line.entry.outgoing && !line.read => {
                line.delivered = true;
                line.read = true;
            }
            _ => return Applied::Ignored,
        }
        Applied::Changed(i)
    }

    /// The entries of `entries` a member may hand on to another (catch-up): every entry
    /// but a deleted line and the edits and reactions of a deleted line. The deletion
    /// itself is kept, so that whoever holds the line from elsewhere withdraws it too.
    pub fn shareable(entries: &[Entry]) -> Vec<&Entry> {
        let timeline = Timeline::from_entries(entries);
        let deleted: HashSet<&str> = timeline
            .items
            .iter()
            .filter(|i| i.line.deleted)
            .map(|i| i.line.entry.id.as_str())
            .collect();
        entries
            .iter()
            .filter(|e| match &e.re {
                None => !deleted.contains(e.id.as_str()),
                Some(c) if c.kind == kind::DELETE => true,
                Some(c) if c.kind == kind::REPLY => !deleted.contains(e.id.as_str()),
                Some(c) => !deleted.contains(c.target.as_str()),
            })
            .collect()
    }
}

/// How many lines of others in `entries` (oldest first) came after `seen_ms` and wait to be
/// read: a line its author deleted does not.
pub fn unread_since(entries: &[Entry], seen_ms: u64) -> usize {
    fold(entries)
        .iter()
        .filter(|l| l.entry.ts > seen_ms && !l.deleted && is_line_of_others(&l.entry))
        .count()
}

/// The lines of `entries` (one log, oldest first) as they read now that `query` matches:
/// never a deleted line, an edited one by its new text only.
pub fn matching(entries: Vec<Entry>, query: &Query) -> Vec<Current> {
    Timeline::from_entries(&entries)
        .lines()
        .into_iter()
        .filter(|l| !l.deleted && query.matches(&l.text))
        .map(|l| Current {
            edited: l.edited,
            entry: Entry {
                text: l.text,
                ..l.entry
            },
        })
        .collect()
}

/// Folds `entries` (a log, oldest first) into its lines, oldest first.
pub fn fold(entries: &[Entry]) -> Vec<Line> {
    Timeline::from_entries(entries).lines()
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
        peer: line.entry.peer.clone(),
        text,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::history::EntryChange;

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
        ];
        let lines = fold(&log);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].reactions_text(), "👍 2  ❤ 1");
    }

    #[test]
    fn a_deletion_voids_reactions_and_nothing_changes_the_line_after_it() {
        let log = [
            line("a1", "alice", "secret plan"),
            change("r1", "bob", kind::REACT, "a1", "👍"),
            change("a2", "alice", kind::EDIT, "a1", "secret plan v2"),
            change("a3", "alice", kind::DELETE, "a1", ""),
            change("r2", "carol", kind::REACT, "a1", "❤"),
            change("a4", "alice", kind::EDIT, "a1", "back"),
            change("b1", "bob", kind::REPLY, "a1", "what plan?"),
        ];
        let lines = fold(&log);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].deleted && lines[0].text.is_empty() && !lines[0].edited);
        assert!(lines[0].reactions.is_empty());
        let quote = lines[1].reply_to.as_ref().unwrap();
        assert_eq!(quote.text, "(deleted)");
    }

    #[test]
    fn changes_before_their_line_wait_for_it() {
        // A catch-up answer or a log can hold a change before the line it is about.
        let log = [
            change("b1", "bob", kind::REPLY, "a1", "sure"),
            change("r1", "bob", kind::REACT, "a1", "👍"),
            change("a2", "alice", kind::EDIT, "a1", "lunch at 1?"),
            line("a1", "alice", "lunch at noon?"),
        ];
        let lines = fold(&log);
        assert_eq!(lines.len(), 2);
        let a1 = lines.iter().find(|l| l.entry.id == "a1").unwrap();
        assert_eq!((a1.text.as_str(), a1.edited), ("lunch at 1?", true));
        assert_eq!(a1.reactions_text(), "👍 1");
        let b1 = lines.iter().find(|l| l.entry.id == "b1").unwrap();
        assert_eq!(b1.reply_to.as_ref().unwrap().text, "lunch at 1?");
    }

    #[test]
    fn the_stash_is_bounded() {
        let mut t = Timeline::new();
        for n in 0..MAX_STASHED {
            let e = change(&format!("r{n}"), "bob", kind::REACT, &format!("t{n}"), "👍");
            assert_eq!(t.apply(e), Applied::Stashed);
        }
        let over = change("over", "bob", kind::REACT, "t", "👍");
        assert_eq!(t.apply(over), Applied::Ignored);
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
    fn receipts_mark_own_lines_only_and_only_move_forward() {
        let mut t = Timeline::new();
        t.apply(line("m1", "me", "hi bob"));
        t.apply(line("b1", "bob", "hi"));
        assert_eq!(
            t.apply(change("x1", "bob", kind::READ, "b1", "read")),
            Applied::Ignored
        );
        assert_eq!(
            t.apply(change("x2", "bob", kind::READ, "m1", "read")),
            Applied::Changed(0)
        );
        // A late acknowledgement after the read shows nothing new.
        assert_eq!(
            t.apply(change("x3", "bob", kind::DELIVERED, "m1", "delivered")),
            Applied::Ignored
        );
        assert_eq!(t.line(0).receipt(), Receipt::Read);
        assert_eq!(t.line(1).receipt(), Receipt::Sent);
    }

    #[test]
    fn a_line_logged_twice_shows_once() {
        let mut t = Timeline::new();
        assert_eq!(t.apply(line("a1", "alice", "hi")), Applied::New(0));
        assert_eq!(t.apply(line("a1", "alice", "hi")), Applied::Ignored);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_deleted_line_and_its_edits_and_reactions_are_not_handed_on() {
        let log = [
            line("a1", "alice", "my address is 12 rue X"),
            change("a2", "alice", kind::EDIT, "a1", "my address is 14 rue X"),
            change("r1", "bob", kind::REACT, "a1", "👍"),
            line("b1", "bob", "kept"),
            change("r2", "alice", kind::REACT, "b1", "❤"),
            change("a3", "alice", kind::DELETE, "a1", ""),
            change("m1", "mallory", kind::DELETE, "b1", ""),
        ];
        let ids: Vec<&str> = Timeline::shareable(&log)
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(ids, vec!["b1", "r2", "a3", "m1"]);
    }

    #[test]
    fn search_finds_a_line_by_what_it_says_now() {
        let log = vec![
            line("a1", "alice", "my pin is 1234"),
            line("a2", "alice", "see you at the cafe"),
            change("a3", "alice", kind::DELETE, "a1", "(deleted)"),
            change("a4", "alice", kind::EDIT, "a2", "see you at the park"),
            change("b1", "bob", kind::EDIT, "a2", "see you at the cafe"),
        ];
        let find = |w: &str| matching(log.clone(), &Query::new(&[w]).unwrap());
        assert!(find("1234").is_empty());
        assert!(find("deleted").is_empty());
        assert!(
            find("cafe").is_empty(),
            "the old text and a forger's are not found"
        );
        let park = find("park");
        assert_eq!(park.len(), 1);
        assert_eq!(park[0].entry.id, "a2");
        assert!(park[0].edited);
    }

    #[test]
    fn a_deleted_line_waits_to_be_read_no_more() {
        let log = [
            line("b1", "bob", "hi"),
            line("b2", "bob", "oops"),
            change("b3", "bob", kind::DELETE, "b2", ""),
            line("m1", "me", "mine"),
        ];
        assert_eq!(unread_since(&log, 0), 1);
    }
}
