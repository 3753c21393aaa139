//! `/reply`, `/react`, `/edit`, `/delete` run against the node, and how a conversation's
//! folded lines read in `/history` and `/save`: current text, "(edited)", "(deleted)", what
//! a reply answers, reactions, receipts and each line's short reference.

use ipm_protocol::Op;

use super::{format_time, Session, SessionError};
use crate::{
    client::Conversation,
    logic::edits::ref_len,
    logic::timeline::Line,
    ui::commands::{ChangeAction, ChangeCommand, ParseError},
    ui::emoji,
    ui::render,
};

impl Session {
    /// Runs a change of an earlier line and says what was done.
    pub(super) async fn run_change(&self, command: ChangeCommand) -> Result<String, SessionError> {
        let scope = match &command.target.user {
            Some(user) => (
                Conversation::Direct(self.client.resolve_user(user).await?),
                false,
            ),
            None => (Conversation::Room(self.current_room()?), true),
        };
        let user = command.target.user.clone();
        let (op, text, done) = match command.action {
            ChangeAction::Reply(text) => (Op::Reply, emoji::expand(&text), "replied to".to_owned()),
            ChangeAction::React(e) => {
                let emoji = emoji::expand(&e);
                let done = format!("reacted {emoji} to");
                (Op::React(emoji), String::new(), done)
            }
            ChangeAction::Edit(text) => (
                Op::Edit(emoji::expand(&text)),
                String::new(),
                "edited".into(),
            ),
            ChangeAction::Delete => (Op::Delete, String::new(), "deleted".into()),
        };
        if matches!(&op, Op::React(e) if e.trim().is_empty()) {
            return Err(ParseError::usage("/react").into());
        }
        let reply = (op == Op::Reply).then(|| text.clone());
        let changed = self
            .client
            .change(scope, command.target.line, op, text)
            .await?;
        if let Some(text) = reply {
            // A reply is a line of its own: shown as the others read it, with its reference.
            let from = self.own_name().await?;
            return Ok(match &changed.conversation {
                Conversation::Room(room) => {
                    render::own_reply(room, &changed.id, &from, &text, &changed.target)
                }
                Conversation::Direct(_) => render::own_direct(
                    changed
                        .with
                        .as_deref()
                        .or(user.as_deref())
                        .unwrap_or("them"),
                    &changed.id,
                    &from,
                    &text,
                    Some(&changed.target),
                ),
            });
        }
        let place = match &changed.conversation {
            Conversation::Room(room) => room.to_string(),
            Conversation::Direct(_) => "your private conversation".to_owned(),
        };
        Ok(format!(
            "{done} ({}) in {place}",
            render::line_ref(&changed.target)
        ))
    }
}

/// The lines of a conversation, one per row, each with a reference unique among them.
pub(super) fn format_lines(lines: &[Line]) -> String {
    let len = ref_len(lines.iter().map(|l| l.entry.id.as_str()));
    lines
        .iter()
        .map(|l| format_line(l, Some(len)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(ref) time from (re name "quote"): text (edited)  👍 2 ✓ read`; the reference is left
/// out when `ref_len` is `None`.
pub(super) fn format_line(line: &Line, ref_len: Option<usize>) -> String {
    let mut out = String::new();
    if let Some(len) = ref_len {
        let id = &line.entry.id;
        out.push_str(&format!("({}) ", id.get(..len).unwrap_or(id)));
    }
    out.push_str(&format!(
        "{} {}",
        format_time(line.entry.ts),
        render::clean(&line.entry.from)
    ));
    if let Some(quote) = &line.reply_to {
        out.push_str(&format!(
            " (re {} \"{}\")",
            render::clean(&quote.from),
            render::clean(&quote.text)
        ));
    }
    if line.deleted {
        out.push_str(": (deleted)");
    } else {
        out.push_str(&format!(": {}", render::clean(&line.text)));
        if line.edited {
            out.push_str(" (edited)");
        }
    }
    if !line.reactions.is_empty() {
        out.push_str(&format!("  {}", render::clean(&line.reactions_text())));
    }
    if line.read {
        out.push_str(" ✓ read");
    } else if line.delivered {
        out.push_str(" ✓ delivered");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::logic::timeline::{fold, kind};
    use crate::store::history::{Entry, EntryChange};

    fn entry(id: &str, from: &str, text: &str, re: Option<(&str, &str)>) -> Entry {
        Entry {
            ts: 0,
            id: id.into(),
            from: from.into(),
            peer: from.into(),
            text: text.into(),
            outgoing: from == "me",
            signed: None,
            re: re.map(|(kind, target)| EntryChange {
                kind: kind.into(),
                target: target.into(),
                value: (kind == "react").then(|| text.to_owned()),
            }),
        }
    }

    #[test]
    fn history_rows_show_the_current_state() {
        let log = [
            entry("aaaa1111", "alice", "lunch?", None),
            entry("aaaa2222", "bob", "yes", Some((kind::REPLY, "aaaa1111"))),
            entry("r1", "carol", "👍", Some((kind::REACT, "aaaa1111"))),
            entry("r2", "bob", "👍", Some((kind::REACT, "aaaa1111"))),
            entry("e1", "bob", "yes!", Some((kind::EDIT, "aaaa2222"))),
            entry("bbbb3333", "alice", "oops", None),
            entry("d1", "alice", "", Some((kind::DELETE, "bbbb3333"))),
        ];
        let text = format_lines(&fold(&log));
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 3, "{text}");
        let reads =
            |row: &str, start: &str, end: &str| row.starts_with(start) && row.ends_with(end);
        assert!(
            reads(rows[0], "(aaaa1) ", " alice: lunch?  👍 2"),
            "{}",
            rows[0]
        );
        assert!(
            reads(
                rows[1],
                "(aaaa2) ",
                " bob (re alice \"lunch?\"): yes! (edited)"
            ),
            "{}",
            rows[1]
        );
        assert!(
            reads(rows[2], "(bbbb3) ", " alice: (deleted)"),
            "{}",
            rows[2]
        );
    }
}
