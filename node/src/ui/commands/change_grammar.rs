//! The part of the command grammar about earlier lines: `/reply`, `/react`, `/edit` and
//! `/delete`, each naming a line by its short reference.

use crate::{logic::edits::Ref, ui::emoji};

use super::{usage_error, ParseError};

/// A line as the user names it: its reference, in the current room (or, for a reference
/// found in no room line, a private conversation), or in the conversation with `user`
/// when written `user/ref`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRef {
    /// The private conversation named before a `/`.
    pub user: Option<String>,
    /// The reference.
    pub line: Ref,
}

/// What to do to the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeAction {
    /// Answer it with this text.
    Reply(String),
    /// React with this emoji (one emoji, a `:shortcode:` already turned into it).
    React(String),
    /// Give it this text (own lines only).
    Edit(String),
    /// Withdraw it (own lines only).
    Delete,
}

/// A command about an earlier line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeCommand {
    /// Which line.
    pub target: LineRef,
    /// What to do.
    pub action: ChangeAction,
}

/// Whether `name` (with its slash) is one of these commands.
pub(super) fn handles(name: &str) -> bool {
    matches!(name, "/reply" | "/react" | "/edit" | "/delete")
}

/// Parses the arguments of `name`; `rest` is the line after the reference.
pub(super) fn parse(name: &str, args: &[&str], rest: &str) -> Result<ChangeCommand, ParseError> {
    let Some(first) = args.first() else {
        return Err(usage_error(name));
    };
    let target = line_ref(first)?;
    let action = match (name, args.len()) {
        ("/reply", 2..) => ChangeAction::Reply(rest.to_owned()),
        ("/react", 2) => {
            ChangeAction::React(emoji::reaction(rest).map_err(|e| ParseError(e.to_string()))?)
        }
        ("/edit", 2..) => ChangeAction::Edit(rest.to_owned()),
        ("/delete", 1) => ChangeAction::Delete,
        _ => return Err(usage_error(name)),
    };
    Ok(ChangeCommand { target, action })
}

/// `ref`, `last`, `user/ref` or `user/last`.
fn line_ref(word: &str) -> Result<LineRef, ParseError> {
    let (user, line) = match word.rsplit_once('/') {
        Some((user, line)) if !user.is_empty() => (Some(user.to_owned()), line),
        _ => (None, word),
    };
    let line = Ref::parse(line).map_err(|e| ParseError(e.to_string()))?;
    Ok(LineRef { user, line })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{parse as parse_line, Command};
    use super::*;

    fn change(line: &str) -> ChangeCommand {
        match parse_line(line).unwrap() {
            Command::Change(c) => c,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn each_change_parses() {
        let here = |r: &str| LineRef {
            user: None,
            line: Ref::parse(r).unwrap(),
        };
        assert_eq!(
            change("/reply ab12  sure,  at noon "),
            ChangeCommand {
                target: here("ab12"),
                action: ChangeAction::Reply("sure,  at noon".into())
            }
        );
        assert_eq!(
            change("/react last :thumbsup:").action,
            ChangeAction::React("👍".into())
        );
        assert_eq!(
            change("/react ab12 🎉").action,
            ChangeAction::React("🎉".into())
        );
        assert_eq!(change("/react last :thumbsup:").target, here("last"));
        assert_eq!(
            change("/edit LAST hello").action,
            ChangeAction::Edit("hello".into())
        );
        assert_eq!(
            change("/delete bob/0f3c"),
            ChangeCommand {
                target: LineRef {
                    user: Some("bob".into()),
                    line: Ref::Prefix("0f3c".into())
                },
                action: ChangeAction::Delete
            }
        );
    }

    #[test]
    fn a_reaction_that_is_not_one_emoji_is_refused_naming_the_list() {
        let err = parse_line("/react last hello").unwrap_err().to_string();
        assert!(err.contains("one emoji") && err.contains("/emoji"), "{err}");
    }

    #[test]
    fn bad_changes_give_one_line_errors() {
        for line in [
            "/reply",
            "/reply ab12",
            "/react ab12",
            "/react ab12 a b",
            "/edit ab12",
            "/delete",
            "/delete ab12 now",
            "/reply xyz! hi",
            "/edit bob/ hi",
            "/react last hello",
            "/react last :nope:",
            "/react last 👍👍",
        ] {
            let err = parse_line(line).unwrap_err().to_string();
            assert!(!err.is_empty() && !err.contains('\n'), "{line}: {err}");
        }
    }
}
