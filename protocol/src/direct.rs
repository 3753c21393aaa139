//! Private messages over `/ipm/direct/1`: one request per message, answered by an ack.

use serde::{Deserialize, Serialize};

use crate::change::Change;
use crate::envelope::Payload;
use crate::error::DecodeError;
use crate::limits::MAX_ACK_IDS;
use crate::name::validate_name;
use crate::stamp::{MessageId, Stamp};
use crate::text::{validate_reason, validate_text};

/// Request-response protocol name for private messages.
pub const DIRECT_PROTOCOL: &str = "/ipm/direct/1";

/// A private message to one peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectMessage {
    /// Unique id; the recipient drops a second copy with the same id.
    pub id: MessageId,
    /// The sender's claimed display name.
    pub name: String,
    /// The text, with the same rules as a room message.
    pub text: String,
    /// When the sender wrote it, ms since the Unix epoch.
    pub sent_ms: u64,
    /// Whether this is an automatic away reply (never answered by another one).
    #[serde(default)]
    pub auto_reply: bool,
    /// What this message does to an earlier one of the conversation (see
    /// [`ChatMessage::re`](crate::ChatMessage::re)); `text` is the fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<Change>,
    /// The sender understands [`DirectRequest::Notice`] and wants read receipts: only
    /// then does the recipient send them (a node of an earlier release never asks).
    #[serde(default, skip_serializing_if = "is_false")]
    pub receipts: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl DirectMessage {
    /// A message with a fresh id, written now.
    pub fn new(name: &str, text: &str) -> DirectMessage {
        DirectMessage::with_stamp(name, text, Stamp::fresh())
    }

    /// A message with the id and send time of `stamp`; the same arguments
    /// always give the same message.
    pub fn with_stamp(name: &str, text: &str, stamp: Stamp) -> DirectMessage {
        DirectMessage {
            id: stamp.id,
            name: name.to_owned(),
            text: text.to_owned(),
            sent_ms: stamp.sent_ms,
            auto_reply: false,
            re: None,
            receipts: false,
        }
    }
}

/// What a sender asks on `/ipm/direct/1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DirectRequest {
    /// Deliver this message.
    Message(DirectMessage),
    /// Read receipts and a typing notice: sent only to a peer whose messages carry
    /// [`DirectMessage::receipts`], so a node of an earlier release never gets one.
    Notice(Notice),
}

/// Read receipts and typing, for a peer that asked for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Unique id of this notice, for its acknowledgement.
    pub id: MessageId,
    /// Messages of the recipient that the sender's user has now seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read: Vec<MessageId>,
    /// The sender's user is typing a message to the recipient.
    #[serde(default, skip_serializing_if = "is_false")]
    pub typing: bool,
}

/// The recipient's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectResponse {
    /// The message is stored (or was already): the sender may forget it.
    Delivered {
        /// The message acknowledged.
        id: MessageId,
    },
    /// The recipient will not take the message; retrying will not help.
    Refused {
        /// The message refused.
        id: MessageId,
        /// Why, in a few words.
        reason: String,
    },
}

impl Payload for DirectRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            DirectRequest::Message(m) => {
                validate_name(&m.name).map_err(|e| DecodeError::Invalid(format!("name: {e}")))?;
                validate_text(&m.text)?;
                match &m.re {
                    Some(change) => change.validate(),
                    None => Ok(()),
                }
            }
            DirectRequest::Notice(n) if n.read.len() > MAX_ACK_IDS => {
                Err(DecodeError::Invalid(format!(
                    "{} receipts, at most {MAX_ACK_IDS} are allowed",
                    n.read.len()
                )))
            }
            DirectRequest::Notice(_) => Ok(()),
        }
    }
}

impl Payload for DirectResponse {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            DirectResponse::Delivered { .. } => Ok(()),
            DirectResponse::Refused { reason, .. } => validate_reason(reason),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use crate::limits::{
        MAX_DIRECT_REQUEST_LEN, MAX_DIRECT_RESPONSE_LEN, MAX_REASON_LEN, MAX_TEXT_LEN,
    };
    use proptest::prelude::*;

    #[test]
    fn requests_and_responses_round_trip() {
        let m = DirectRequest::Message(DirectMessage::new("alice", "hi bob"));
        let bytes = encode(&m);
        assert_eq!(
            decode::<DirectRequest>(&bytes, MAX_DIRECT_REQUEST_LEN).unwrap(),
            m
        );
        let r = DirectResponse::Refused {
            id: MessageId::random(),
            reason: "blocked".into(),
        };
        let bytes = encode(&r);
        assert_eq!(
            decode::<DirectResponse>(&bytes, MAX_DIRECT_RESPONSE_LEN).unwrap(),
            r
        );
    }

    #[test]
    fn a_message_with_the_largest_text_fits_the_request_limit() {
        let text = "é".repeat(MAX_TEXT_LEN / 2);
        let m = DirectRequest::Message(DirectMessage::new(&"n".repeat(32), &text));
        assert!(encode(&m).len() <= MAX_DIRECT_REQUEST_LEN);
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut m = DirectMessage::new("alice", "hi");
        m.name = "al#ice".into();
        let bytes = encode(&DirectRequest::Message(m));
        assert!(matches!(
            decode::<DirectRequest>(&bytes, MAX_DIRECT_REQUEST_LEN),
            Err(DecodeError::Invalid(_))
        ));
        let big = vec![0u8; MAX_DIRECT_REQUEST_LEN + 1];
        assert!(matches!(
            decode::<DirectRequest>(&big, MAX_DIRECT_REQUEST_LEN),
            Err(DecodeError::TooLarge { .. })
        ));
        let long = DirectResponse::Refused {
            id: MessageId::random(),
            reason: "x".repeat(MAX_REASON_LEN + 1),
        };
        assert!(decode::<DirectResponse>(&encode(&long), MAX_DIRECT_RESPONSE_LEN).is_err());
    }

    #[test]
    fn stamped_messages_are_deterministic() {
        let stamp = Stamp::new(MessageId::from_bytes([5; 16]), 1_700_000_000_000);
        let a = DirectRequest::Message(DirectMessage::with_stamp("alice", "hi bob", stamp));
        let b = DirectRequest::Message(DirectMessage::with_stamp("alice", "hi bob", stamp));
        assert_eq!(encode(&a), encode(&b));
        let DirectRequest::Message(m) = &a else {
            panic!("not a message")
        };
        assert_eq!(
            (m.id, m.sent_ms, m.auto_reply),
            (stamp.id, stamp.sent_ms, false)
        );
        let other = Stamp::new(MessageId::from_bytes([6; 16]), stamp.sent_ms);
        let c = DirectRequest::Message(DirectMessage::with_stamp("alice", "hi bob", other));
        assert_ne!(encode(&a), encode(&c));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<DirectRequest>(&bytes, MAX_DIRECT_REQUEST_LEN);
            let _ = decode::<DirectResponse>(&bytes, MAX_DIRECT_RESPONSE_LEN);
        }
    }
}
