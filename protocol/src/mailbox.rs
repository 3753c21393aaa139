//! The bootstrap's mailbox over `/ipm/mailbox/1`: sealed private messages for offline users,
//! deposited by senders, fetched and acknowledged by their recipient.
//!
//! The mailbox sees who deposits for whom and how much, never the text: the message is sealed
//! to the recipient's key before it is deposited.

use serde::{Deserialize, Serialize};

use crate::envelope::Payload;
use crate::error::DecodeError;
use crate::limits::{MAX_ACK_IDS, MAX_FETCH, MAX_MAILBOX_TTL_MS, MAX_SEALED_LEN};
use crate::stamp::MessageId;
use crate::text::validate_reason;

/// Request-response protocol name of the mailbox.
pub const MAILBOX_PROTOCOL: &str = "/ipm/mailbox/1";

/// Largest encoded peer id accepted (an ed25519 peer id is 38 bytes).
const MAX_PEER_ID_LEN: usize = 64;

/// One stored message as the recipient receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The private message's id (for acknowledgement and to drop duplicates).
    pub id: MessageId,
    /// The sealed message; only the recipient can open it.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// What a peer asks the mailbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxRequest {
    /// Keep this sealed message for `to` until it fetches it, or `ttl_ms` passes.
    Deposit {
        /// The recipient's peer id, as bytes.
        #[serde(with = "serde_bytes")]
        to: Vec<u8>,
        /// The message.
        message: Sealed,
        /// How long to keep it, at most [`MAX_MAILBOX_TTL_MS`].
        ttl_ms: u64,
    },
    /// Hand me up to `max` messages waiting for me.
    Fetch {
        /// At most [`MAX_FETCH`].
        max: u16,
    },
    /// I have these; forget them.
    Ack {
        /// At most [`MAX_ACK_IDS`] ids.
        ids: Vec<MessageId>,
    },
}

/// The mailbox's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxResponse {
    /// The message is stored.
    Stored,
    /// The message is not stored.
    Refused(String),
    /// Messages waiting for the requester, and whether more wait after these.
    Messages {
        /// The messages.
        messages: Vec<Sealed>,
        /// True when another fetch would return more.
        more: bool,
    },
    /// How many acknowledged messages were removed.
    Acked(u32),
}

impl Payload for MailboxRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            MailboxRequest::Deposit {
                to,
                message,
                ttl_ms,
            } => {
                if to.is_empty() || to.len() > MAX_PEER_ID_LEN {
                    return Err(DecodeError::Invalid("recipient is not a peer id".into()));
                }
                validate_sealed(message)?;
                if *ttl_ms == 0 || *ttl_ms > MAX_MAILBOX_TTL_MS {
                    return Err(DecodeError::Invalid(format!(
                        "ttl must be 1..={MAX_MAILBOX_TTL_MS} ms"
                    )));
                }
                Ok(())
            }
            MailboxRequest::Fetch { max } if *max == 0 || usize::from(*max) > MAX_FETCH => Err(
                DecodeError::Invalid(format!("fetch must ask for 1..={MAX_FETCH} messages")),
            ),
            MailboxRequest::Fetch { .. } => Ok(()),
            MailboxRequest::Ack { ids } if ids.is_empty() || ids.len() > MAX_ACK_IDS => Err(
                DecodeError::Invalid(format!("ack must carry 1..={MAX_ACK_IDS} ids")),
            ),
            MailboxRequest::Ack { .. } => Ok(()),
        }
    }
}

impl Payload for MailboxResponse {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            MailboxResponse::Stored | MailboxResponse::Acked(_) => Ok(()),
            MailboxResponse::Refused(reason) => validate_reason(reason),
            MailboxResponse::Messages { messages, .. } => {
                if messages.len() > MAX_FETCH {
                    return Err(DecodeError::Invalid(format!(
                        "at most {MAX_FETCH} messages per fetch"
                    )));
                }
                messages.iter().try_for_each(validate_sealed)
            }
        }
    }
}

fn validate_sealed(message: &Sealed) -> Result<(), DecodeError> {
    if message.sealed.is_empty() || message.sealed.len() > MAX_SEALED_LEN {
        return Err(DecodeError::Invalid(format!(
            "a sealed message must be 1..={MAX_SEALED_LEN} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use crate::limits::{MAX_MAILBOX_REQUEST_LEN, MAX_MAILBOX_RESPONSE_LEN};
    use proptest::prelude::*;

    fn sealed(len: usize) -> Sealed {
        Sealed {
            id: MessageId::random(),
            sealed: vec![7; len],
        }
    }

    #[test]
    fn round_trips_and_the_largest_fit_their_limits() {
        let deposit = MailboxRequest::Deposit {
            to: vec![1; 38],
            message: sealed(MAX_SEALED_LEN),
            ttl_ms: MAX_MAILBOX_TTL_MS,
        };
        let bytes = encode(&deposit);
        assert!(bytes.len() <= MAX_MAILBOX_REQUEST_LEN);
        assert_eq!(
            decode::<MailboxRequest>(&bytes, MAX_MAILBOX_REQUEST_LEN).unwrap(),
            deposit
        );
        let ack = MailboxRequest::Ack {
            ids: (0..MAX_ACK_IDS).map(|_| MessageId::random()).collect(),
        };
        assert!(encode(&ack).len() <= MAX_MAILBOX_REQUEST_LEN);
        let full = MailboxResponse::Messages {
            messages: (0..MAX_FETCH).map(|_| sealed(MAX_SEALED_LEN)).collect(),
            more: true,
        };
        let bytes = encode(&full);
        assert!(bytes.len() <= MAX_MAILBOX_RESPONSE_LEN);
        assert_eq!(
            decode::<MailboxResponse>(&bytes, MAX_MAILBOX_RESPONSE_LEN).unwrap(),
            full
        );
    }

    #[test]
    fn out_of_bounds_requests_are_refused() {
        let bad = [
            MailboxRequest::Deposit {
                to: vec![],
                message: sealed(10),
                ttl_ms: 1,
            },
            MailboxRequest::Deposit {
                to: vec![1; 38],
                message: sealed(MAX_SEALED_LEN + 1),
                ttl_ms: 1,
            },
            MailboxRequest::Deposit {
                to: vec![1; 38],
                message: sealed(0),
                ttl_ms: 1,
            },
            MailboxRequest::Deposit {
                to: vec![1; 38],
                message: sealed(10),
                ttl_ms: 0,
            },
            MailboxRequest::Deposit {
                to: vec![1; 38],
                message: sealed(10),
                ttl_ms: MAX_MAILBOX_TTL_MS + 1,
            },
            MailboxRequest::Fetch { max: 0 },
            MailboxRequest::Fetch {
                max: MAX_FETCH as u16 + 1,
            },
            MailboxRequest::Ack { ids: vec![] },
        ];
        for request in bad {
            assert!(
                decode::<MailboxRequest>(&encode(&request), usize::MAX).is_err(),
                "{request:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<MailboxRequest>(&bytes, MAX_MAILBOX_REQUEST_LEN);
            let _ = decode::<MailboxResponse>(&bytes, MAX_MAILBOX_RESPONSE_LEN);
        }
    }
}
