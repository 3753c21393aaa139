//! Rules for the free text peers send: chat and private message texts, refusal and error
//! reasons.

use crate::error::DecodeError;
use crate::limits::{MAX_REASON_LEN, MAX_TEXT_LEN};

/// Checks a chat text: 1 to [`MAX_TEXT_LEN`] bytes, without NUL characters.
pub fn validate_text(text: &str) -> Result<(), DecodeError> {
    if text.is_empty() {
        return Err(DecodeError::Invalid("text is empty".to_string()));
    }
    if text.len() > MAX_TEXT_LEN {
        return Err(DecodeError::Invalid(format!(
            "text is {} bytes, at most {MAX_TEXT_LEN} are allowed",
            text.len()
        )));
    }
    if text.contains('\0') {
        return Err(DecodeError::Invalid(
            "text contains a NUL character".to_string(),
        ));
    }
    Ok(())
}

/// Checks a refusal or error reason: at most [`MAX_REASON_LEN`] bytes.
pub fn validate_reason(reason: &str) -> Result<(), DecodeError> {
    if reason.len() > MAX_REASON_LEN {
        return Err(DecodeError::Invalid(format!(
            "reason is {} bytes, at most {MAX_REASON_LEN} are allowed",
            reason.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bounds() {
        assert_eq!(validate_text("a"), Ok(()));
        assert_eq!(validate_text(&"x".repeat(MAX_TEXT_LEN)), Ok(()));
        for bad in [String::new(), "x".repeat(MAX_TEXT_LEN + 1), "a\0b".into()] {
            assert!(matches!(validate_text(&bad), Err(DecodeError::Invalid(_))));
        }
    }

    #[test]
    fn reason_bounds() {
        assert_eq!(validate_reason(""), Ok(()));
        assert_eq!(validate_reason(&"x".repeat(MAX_REASON_LEN)), Ok(()));
        assert!(matches!(
            validate_reason(&"x".repeat(MAX_REASON_LEN + 1)),
            Err(DecodeError::Invalid(_))
        ));
    }
}
