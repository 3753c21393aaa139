//! What makes each outgoing message unique and dated: its random [`MessageId`], the local
//! clock ([`now_ms`]), and the [`Stamp`] that carries both into a constructor.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;

/// Unique id of a message: 16 random bytes, written as 32 lowercase hex
/// characters and sent as a CBOR byte string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(#[serde(with = "serde_bytes")] [u8; 16]);

impl MessageId {
    /// A fresh random id.
    pub fn random() -> MessageId {
        MessageId(rand::random())
    }

    /// The id made of these bytes.
    pub fn from_bytes(b: [u8; 16]) -> MessageId {
        MessageId(b)
    }

    /// The bytes of this id.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for MessageId {
    /// 32 lowercase hex characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for MessageId {
    /// The same as [`Display`](fmt::Display): 32 lowercase hex characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MessageId {
    type Err = DecodeError;

    /// Parses 32 hex characters (either case).
    fn from_str(s: &str) -> Result<MessageId, DecodeError> {
        let bad = || DecodeError::Invalid(format!("message id '{s}' is not 32 hex characters"));
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or_else(bad)?;
            let lo = hex_value(pair[1]).ok_or_else(bad)?;
            *o = (hi << 4) | lo;
        }
        Ok(MessageId(out))
    }
}

/// Value of one ASCII hex digit.
fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Milliseconds since the Unix epoch by the local clock (0 if the clock is
/// before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The id and send time of a new message: the two values its convenience
/// constructor (`new`) would otherwise draw from the random generator and the
/// clock. Every message type also has a `with_stamp` constructor that takes
/// them from here, so that the same inputs always build the same message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// The message's unique id.
    pub id: MessageId,
    /// When it is sent, in milliseconds since the Unix epoch.
    pub sent_ms: u64,
}

impl Stamp {
    /// The stamp of a message with this id, sent at `sent_ms`.
    pub fn new(id: MessageId, sent_ms: u64) -> Stamp {
        Stamp { id, sent_ms }
    }

    /// A fresh random id, sent now by the local clock.
    pub fn fresh() -> Stamp {
        Stamp::new(MessageId::random(), now_ms())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn message_id_text_form() {
        let id = MessageId::from_bytes([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ]);
        assert_eq!(id.to_string(), "00112233445566778899aabbccddeeff");
        assert_eq!(format!("{id:?}"), "00112233445566778899aabbccddeeff");
        assert_eq!(
            "00112233445566778899AABBCCDDEEFF"
                .parse::<MessageId>()
                .unwrap(),
            id
        );
        assert_eq!(id.as_bytes()[15], 0xff);
        for bad in [
            "",
            "0011",
            "00112233445566778899aabbccddeeffaa",
            "g0112233445566778899aabbccddeeff",
            "é0112233445566778899aabbccddeef",
        ] {
            assert!(
                matches!(bad.parse::<MessageId>(), Err(DecodeError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn fresh_stamps_differ_and_are_recent() {
        let a = Stamp::fresh();
        let b = Stamp::fresh();
        assert_ne!(a.id, b.id);
        assert!(a.sent_ms > 1_600_000_000_000);
        let fixed = Stamp::new(MessageId::from_bytes([1; 16]), 42);
        assert_eq!(fixed.id, MessageId::from_bytes([1; 16]));
        assert_eq!(fixed.sent_ms, 42);
    }

    proptest! {
        #[test]
        fn message_id_round_trip(bytes in any::<[u8; 16]>()) {
            let id = MessageId::from_bytes(bytes);
            let s = id.to_string();
            prop_assert_eq!(s.len(), 32);
            prop_assert_eq!(s.parse::<MessageId>().unwrap(), id);
        }

        #[test]
        fn message_id_parse_never_panics(s in any::<String>()) {
            let _ = s.parse::<MessageId>();
        }
    }
}
