//! [`DecodeError`], the error every payload check returns, and how error messages quote
//! untrusted input.

use crate::limits::PROTOCOL_VERSION;

/// Why a payload (or a message id) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is larger than the limit of its protocol (for gossip,
    /// [`MAX_GOSSIP_LEN`](crate::limits::MAX_GOSSIP_LEN)).
    #[error("payload is {len} bytes, at most {max} are allowed")]
    TooLarge {
        /// Length of the rejected payload, in bytes.
        len: usize,
        /// Maximum length, in bytes.
        max: usize,
    },
    /// The payload is not a well-formed ipm envelope.
    #[error("malformed payload: {}", shown(.0))]
    Malformed(String),
    /// The payload was written for another protocol version.
    #[error("unsupported protocol version {0}, this ipm speaks version {PROTOCOL_VERSION}")]
    UnsupportedVersion(u16),
    /// The payload is well-formed but a field breaks a protocol rule.
    #[error("invalid message: {}", shown(.0))]
    Invalid(String),
    /// A well-formed envelope of a kind this release does not know (a later release's):
    /// to be ignored, not held against the sender.
    #[error("unknown payload kind {}", shown(.0))]
    UnknownKind(String),
}

/// Most characters of an offending input echoed in an error message.
const SHOWN_CHARS: usize = 64;

/// Renders untrusted input for an error message: control characters are
/// escaped (so the message stays on one line) and long input is cut short.
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(SHOWN_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if s.chars().nth(SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        assert_eq!(
            DecodeError::UnsupportedVersion(2).to_string(),
            "unsupported protocol version 2, this ipm speaks version 1"
        );
        for e in [
            DecodeError::TooLarge { len: 1, max: 0 },
            DecodeError::Malformed("a\nb".into()),
            DecodeError::Invalid("x".repeat(10_000)),
        ] {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && msg.len() < 400, "{msg}");
        }
    }

    #[test]
    fn shown_input_is_one_short_line() {
        assert_eq!(shown("a\nb\0"), "a\\nb\\0");
        assert_eq!(shown(&"x".repeat(SHOWN_CHARS)), "x".repeat(SHOWN_CHARS));
        assert_eq!(
            shown(&"é".repeat(SHOWN_CHARS + 1)),
            format!("{}…", "é".repeat(SHOWN_CHARS))
        );
    }
}
