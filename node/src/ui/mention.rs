//! Mentions: a line that names the user as `@name` is shown highlighted, with the terminal
//! bell, so that it stands out of a busy room.

/// Whether `text` names `name` as `@name`: case folded, not inside a longer word (`@alice`
/// in `hi @Alice!`, not in `@alicebob` nor in `bob@alice.example`).
pub fn mentions(text: &str, name: &str) -> bool {
    let name = name.to_lowercase();
    if name.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let mut from = 0;
    while let Some(found) = text[from..].find('@') {
        let at = from + found;
        let before = text[..at].chars().next_back();
        let rest = &text[at + 1..];
        if !before.is_some_and(is_name_char) && rest.starts_with(&name) {
            let after = rest[name.len()..].chars().next();
            if !after.is_some_and(is_name_char) {
                return true;
            }
        }
        from = at + 1;
    }
    false
}

/// Characters a name may be made of (letters, digits, `-`, `_`).
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '_'
}

/// `line` in reverse video followed by the terminal bell, for a terminal.
pub fn highlight(line: &str) -> String {
    format!("\u{1b}[7m{line}\u{1b}[0m\u{7}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mention_is_the_name_after_an_at_sign_standing_alone() {
        assert!(mentions("hi @alice", "alice"));
        assert!(mentions("@Alice: lunch?", "alice"));
        assert!(mentions("ping @bob and @ALICE!", "Alice"));
        assert!(!mentions("hi alice", "alice"));
        assert!(!mentions("hi @alicebob", "alice"));
        assert!(!mentions("write to bob@alice.example", "alice"));
        assert!(!mentions("@", "alice"));
        assert!(!mentions("hi @alice", ""));
        assert!(mentions("ça va @zoë?", "Zoë"));
    }

    #[test]
    fn a_highlighted_line_rings_the_bell_after_it() {
        let line = highlight("[lobby] bob: @alice hi");
        assert!(line.starts_with("\u{1b}[7m[lobby] bob: @alice hi\u{1b}[0m"));
        assert!(line.ends_with('\u{7}'));
    }
}
