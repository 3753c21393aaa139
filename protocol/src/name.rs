//! User names: what a display name may contain.

use crate::limits::MAX_NAME_LEN;

/// Why a user name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("a name may not be empty: use 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.'")]
    Empty,
    /// The name is longer than allowed.
    #[error("a name may be at most {max} bytes long, this one has {len}")]
    TooLong {
        /// Length of the rejected name, in bytes.
        len: usize,
        /// Maximum length, in bytes.
        max: usize,
    },
    /// The name contains a character that is not allowed.
    #[error("a name may use letters, digits, '_', '-' and '.', not {0:?}")]
    BadChar(char),
}

/// Returns whether `c` may appear in a user name.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Checks that `name` is an acceptable user name: 1 to [`MAX_NAME_LEN`]
/// bytes, made only of Unicode letters and digits, `_`, `-` and `.`.
///
/// This excludes `#`, whitespace, control characters, `/` and `:`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    match name.chars().find(|&c| !is_name_char(c)) {
        Some(c) => Err(NameError::BadChar(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_and_unicode_names() {
        for n in ["alice", "Bob_2", "a-b.c", "Zoë", "日本語", "x", "ABC123"] {
            assert_eq!(validate_name(n), Ok(()), "{n}");
        }
        assert_eq!(validate_name(&"a".repeat(MAX_NAME_LEN)), Ok(()));
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
    }

    #[test]
    fn rejects_too_long() {
        assert_eq!(
            validate_name(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong {
                len: MAX_NAME_LEN + 1,
                max: MAX_NAME_LEN
            })
        );
        // Length is counted in bytes: 11 three-byte characters are 33 bytes.
        assert!(matches!(
            validate_name(&"日".repeat(11)),
            Err(NameError::TooLong { len: 33, .. })
        ));
    }

    #[test]
    fn rejects_bad_chars() {
        for (n, c) in [
            ("a#b", '#'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\nb", '\n'),
            ("a\u{0}b", '\u{0}'),
            ("a/b", '/'),
            ("a:b", ':'),
            ("a\u{202e}b", '\u{202e}'),
        ] {
            assert_eq!(validate_name(n), Err(NameError::BadChar(c)), "{n:?}");
        }
    }

    #[test]
    fn messages_are_one_line() {
        let msg = NameError::BadChar('#').to_string();
        assert_eq!(
            msg,
            "a name may use letters, digits, '_', '-' and '.', not '#'"
        );
        let msg = NameError::BadChar('\n').to_string();
        assert!(!msg.contains('\n'), "{msg}");
        for e in [NameError::Empty, NameError::TooLong { len: 40, max: 32 }] {
            assert!(!e.to_string().contains('\n'));
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_accepts_only_allowed(s in any::<String>()) {
            if validate_name(&s).is_ok() {
                prop_assert!(!s.is_empty() && s.len() <= MAX_NAME_LEN);
                prop_assert!(s.chars().all(is_name_char));
            }
        }

        #[test]
        fn valid_pattern_is_accepted(s in "[a-zA-Z0-9_.-]{1,32}") {
            prop_assert_eq!(validate_name(&s), Ok(()));
        }
    }
}
