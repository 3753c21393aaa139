//! [`Change`]: what a room line or a private message does to an earlier one of its
//! conversation (answer it, react to it, edit it, delete it), carried as an optional field
//! beside a readable `text` so that a node that does not know the field still shows a line.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::limits::MAX_TEXT_LEN;
use crate::stamp::MessageId;
use crate::text::validate_text;

/// Longest kind name accepted ([`Change::kind`]).
pub const MAX_KIND_LEN: usize = 16;

/// Longest reaction accepted, in bytes (an emoji, possibly with modifiers).
pub const MAX_REACTION_LEN: usize = 64;

/// What a message does to the earlier message `target` of the same conversation.
///
/// `kind` is a word rather than an enum so that a kind added by a later release decodes
/// here too: a node shows the message's plain `text` for a kind it does not know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The message changed or answered.
    pub target: MessageId,
    /// `reply`, `react`, `edit`, `delete`, or a later kind.
    pub kind: String,
    /// The new text of an `edit`, the emoji of a `react`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A [`Change`] this release understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The message answers `target`; its text is the answer.
    Reply,
    /// A reaction to `target`.
    React(String),
    /// `target` now reads this text.
    Edit(String),
    /// `target` is withdrawn.
    Delete,
}

impl Change {
    /// The change carrying `op` on `target`.
    pub fn new(target: MessageId, op: &Op) -> Change {
        let (kind, value) = match op {
            Op::Reply => ("reply", None),
            Op::React(emoji) => ("react", Some(emoji.clone())),
            Op::Edit(text) => ("edit", Some(text.clone())),
            Op::Delete => ("delete", None),
        };
        Change {
            target,
            kind: kind.to_owned(),
            value,
        }
    }

    /// What the change does, or `None` for a kind of a later release (or a known kind
    /// without its value): the message then reads as its plain text.
    pub fn op(&self) -> Option<Op> {
        match (self.kind.as_str(), &self.value) {
            ("reply", _) => Some(Op::Reply),
            ("react", Some(emoji)) => Some(Op::React(emoji.clone())),
            ("edit", Some(text)) => Some(Op::Edit(text.clone())),
            ("delete", _) => Some(Op::Delete),
            _ => None,
        }
    }

    /// Checks the sizes: a kind of at most [`MAX_KIND_LEN`] bytes, a value that is a valid
    /// text (a reaction of at most [`MAX_REACTION_LEN`] bytes).
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.kind.is_empty() || self.kind.len() > MAX_KIND_LEN {
            return Err(DecodeError::Invalid(format!(
                "change kind is {} bytes, 1 to {MAX_KIND_LEN} are allowed",
                self.kind.len()
            )));
        }
        if let Some(value) = &self.value {
            validate_text(value)?;
            if self.kind == "react" && value.len() > MAX_REACTION_LEN {
                return Err(DecodeError::Invalid(format!(
                    "reaction is {} bytes, at most {MAX_REACTION_LEN} are allowed",
                    value.len()
                )));
            }
        }
        Ok(())
    }
}

/// The text a node that does not know [`Change`] shows for `op` with `text` typed by the
/// user: the answer of a reply, `(edited) new text`, `(deleted a message)`, `(reacted 👍)`.
pub fn fallback_text(op: &Op, text: &str) -> String {
    let full = match op {
        Op::Reply => text.to_owned(),
        Op::Edit(new) => format!("(edited) {new}"),
        Op::Delete => "(deleted a message)".to_owned(),
        Op::React(emoji) => format!("(reacted {emoji})"),
    };
    cut(full, MAX_TEXT_LEN)
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_through_changes() {
        let target = MessageId::random();
        for op in [
            Op::Reply,
            Op::React("👍".into()),
            Op::Edit("better".into()),
            Op::Delete,
        ] {
            let change = Change::new(target, &op);
            change.validate().unwrap();
            assert_eq!(change.op(), Some(op));
        }
    }

    #[test]
    fn later_kinds_decode_but_have_no_op() {
        let change = Change {
            target: MessageId::random(),
            kind: "pin".into(),
            value: None,
        };
        change.validate().unwrap();
        assert_eq!(change.op(), None);
        let edit_without_text = Change {
            kind: "edit".into(),
            ..change
        };
        assert_eq!(edit_without_text.op(), None);
    }

    #[test]
    fn sizes_are_checked() {
        let target = MessageId::random();
        let long_kind = Change {
            target,
            kind: "k".repeat(MAX_KIND_LEN + 1),
            value: None,
        };
        assert!(long_kind.validate().is_err());
        let long_react = Change::new(target, &Op::React("x".repeat(MAX_REACTION_LEN + 1)));
        assert!(long_react.validate().is_err());
        let long_edit = Change::new(target, &Op::Edit("x".repeat(MAX_TEXT_LEN + 1)));
        assert!(long_edit.validate().is_err());
        let nul = Change::new(target, &Op::Edit("a\0".into()));
        assert!(nul.validate().is_err());
    }

    #[test]
    fn fallbacks_read_as_lines_and_fit() {
        assert_eq!(fallback_text(&Op::Reply, "yes"), "yes");
        assert_eq!(fallback_text(&Op::Edit("new".into()), ""), "(edited) new");
        assert_eq!(fallback_text(&Op::Delete, ""), "(deleted a message)");
        assert_eq!(fallback_text(&Op::React("👍".into()), ""), "(reacted 👍)");
        let long = fallback_text(&Op::Edit("é".repeat(MAX_TEXT_LEN / 2)), "");
        assert!(long.len() <= MAX_TEXT_LEN);
        validate_text(&long).unwrap();
    }
}
