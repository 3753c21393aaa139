//! Gossip payloads: chat messages, and the [`Gossip`] enum of everything a room or the
//! presence topic carries, in the versioned CBOR envelope of [`crate::envelope`].
//!
//! Everything received from a peer goes through [`decode_gossip`], which
//! checks the size first, then the protocol version, then the body's shape,
//! then every semantic field, and never panics.

use serde::{Deserialize, Serialize};

use crate::change::Change;
use crate::envelope::{self, Payload};
use crate::error::DecodeError;
use crate::file::FileOffer;
use crate::geo::is_geohash;
use crate::limits::{MAX_GOSSIP_LEN, MAX_SIGNATURE_LEN, WIRE_GEOHASH_PRECISION};
use crate::name::validate_name;
use crate::presence::Presence;
use crate::stamp::{MessageId, Stamp};
use crate::text::validate_text;

/// A chat message posted to a room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique id, used to drop duplicates.
    pub id: MessageId,
    /// The sender's claimed display name (see [`validate_name`]); not
    /// authenticated by itself.
    pub name: String,
    /// The text: 1 to [`MAX_TEXT_LEN`](crate::limits::MAX_TEXT_LEN) bytes,
    /// without NUL characters.
    pub text: String,
    /// When the sender says it sent the message: its clock, in milliseconds
    /// since the Unix epoch.
    pub sent_ms: u64,
    /// The sender's coarse position as a lowercase geohash of at most
    /// [`WIRE_GEOHASH_PRECISION`] characters; only set in geographic rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<String>,
    /// The author's signature over the whole payload without this field (see
    /// [`crate::signed_line`]), so that a copy kept by a store or another member can be
    /// checked long after gossip forgot it. Absent in lines of older nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<serde_bytes::ByteBuf>,
    /// What this line does to an earlier line of the room (a reply, a reaction, an edit,
    /// a deletion); `text` then holds what a node without this field shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub re: Option<Change>,
}

impl ChatMessage {
    /// A message with a fresh random id, sent now. Nothing is checked here:
    /// validate the name and text first, or call [`ChatMessage::validate`].
    pub fn new(name: &str, text: &str, geo: Option<String>) -> ChatMessage {
        ChatMessage::with_stamp(name, text, geo, Stamp::fresh())
    }

    /// A message with the id and send time of `stamp`. Nothing is checked
    /// here either; the same arguments always give the same message.
    pub fn with_stamp(name: &str, text: &str, geo: Option<String>, stamp: Stamp) -> ChatMessage {
        ChatMessage {
            id: stamp.id,
            name: name.to_string(),
            text: text.to_string(),
            sent_ms: stamp.sent_ms,
            geo,
            sig: None,
            re: None,
        }
    }

    /// Checks every protocol rule a receiver enforces: a valid name, a text
    /// of 1 to [`MAX_TEXT_LEN`](crate::limits::MAX_TEXT_LEN) bytes without
    /// NUL, and a `geo` (if any) of 1 to [`WIRE_GEOHASH_PRECISION`] lowercase
    /// geohash characters.
    pub fn validate(&self) -> Result<(), DecodeError> {
        validate_name(&self.name).map_err(|e| DecodeError::Invalid(format!("name: {e}")))?;
        validate_text(&self.text)?;
        if let Some(change) = &self.re {
            change.validate()?;
        }
        if let Some(geo) = &self.geo {
            if geo.len() > WIRE_GEOHASH_PRECISION || !is_geohash(geo) {
                return Err(DecodeError::Invalid(format!(
                    "geo '{geo}' is not a lowercase geohash of 1 to {WIRE_GEOHASH_PRECISION} characters"
                )));
            }
        }
        if self
            .sig
            .as_ref()
            .is_some_and(|sig| sig.len() > MAX_SIGNATURE_LEN)
        {
            return Err(DecodeError::Invalid(format!(
                "signature longer than {MAX_SIGNATURE_LEN} bytes"
            )));
        }
        Ok(())
    }
}

/// Everything peers gossip in a room topic or the presence topic. Further
/// kinds (file offers) will be added as new variants; an unknown kind fails
/// to decode as [`DecodeError::Malformed`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Gossip {
    /// A chat message.
    Chat(ChatMessage),
    /// A file offered to everyone in the room (`/share`).
    FileOffer(FileOffer),
    /// A presence announcement (only on the presence topic).
    Presence(Presence),
}

impl Gossip {
    /// Checks the semantic rules of the payload (see [`ChatMessage::validate`]
    /// and [`Presence::validate`]).
    pub fn validate(&self) -> Result<(), DecodeError> {
        match self {
            Gossip::Chat(msg) => msg.validate(),
            Gossip::FileOffer(offer) => offer.validate(),
            Gossip::Presence(presence) => presence.validate(),
        }
    }
}

impl Payload for Gossip {
    fn validate(&self) -> Result<(), DecodeError> {
        Gossip::validate(self)
    }
}

/// Encodes `g` as CBOR in a versioned envelope `{ v: PROTOCOL_VERSION, body }`.
///
/// A payload that passes [`Gossip::validate`] always encodes to at most
/// [`MAX_GOSSIP_LEN`] bytes and decodes back to itself.
pub fn encode_gossip(g: &Gossip) -> Vec<u8> {
    envelope::encode(g)
}

/// Decodes and validates a payload received from a peer.
///
/// In order: the length is checked against [`MAX_GOSSIP_LEN`] before
/// anything is parsed, then the envelope version must be
/// [`PROTOCOL_VERSION`](crate::limits::PROTOCOL_VERSION), then the body must
/// decode, then it must pass [`Gossip::validate`]. Unknown envelope and
/// message fields are ignored.
///
/// A body naming one kind this release does not know is [`DecodeError::UnknownKind`]
/// rather than malformed: a later release's payload, to be ignored without penalty.
pub fn decode_gossip(bytes: &[u8]) -> Result<Gossip, DecodeError> {
    match envelope::decode(bytes, MAX_GOSSIP_LEN) {
        Err(DecodeError::Malformed(why)) => {
            Err(unknown_kind(bytes, KNOWN_GOSSIP).unwrap_or(DecodeError::Malformed(why)))
        }
        other => other,
    }
}

/// The kinds of [`Gossip`] this release knows.
const KNOWN_GOSSIP: &[&str] = &["Chat", "FileOffer", "Presence"];

/// The kind of a version-1 envelope whose body is a map of exactly one kind not in
/// `known` (bytes already checked against their size limit).
pub(crate) fn unknown_kind(bytes: &[u8], known: &[&str]) -> Option<DecodeError> {
    #[derive(Deserialize)]
    struct Body {
        v: u16,
        body: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
    }
    let Body { v, body } = serde_cbor::from_slice(bytes).ok()?;
    let mut kinds = body.keys();
    match (kinds.next(), kinds.next()) {
        (Some(kind), None)
            if v == crate::limits::PROTOCOL_VERSION && !known.contains(&kind.as_str()) =>
        {
            Some(DecodeError::UnknownKind(kind.clone()))
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::limits::{MAX_NAME_LEN, MAX_TEXT_LEN};
    use proptest::prelude::*;
    use serde_cbor::Value;
    use std::collections::BTreeMap;
    use std::time::Instant;

    /// `sample()` in its envelope, as protocol version 1 writes it.
    const GOLDEN_CHAT: &str = concat!(
        "a2617601",                             // { "v": 1,
        "64626f6479a16443686174a5",             // "body": { "Chat": { (5 fields)
        "62696450",                             // "id": 16 bytes,
        "07070707070707070707070707070707",     // all 7
        "646e616d6565616c696365",               // "name": "alice"
        "64746578746c68656c6c6f2c20776f726c64", // "text": "hello, world"
        "6773656e745f6d731b0000018bcfe56800",   // "sent_ms": 1_700_000_000_000
        "6367656f66753039747677",               // "geo": "u09tvw" } } }
    );

    fn sample() -> ChatMessage {
        ChatMessage {
            id: MessageId::from_bytes([7; 16]),
            name: "alice".into(),
            text: "hello, world".into(),
            sent_ms: 1_700_000_000_000,
            geo: Some("u09tvw".into()),
            sig: None,
            re: None,
        }
    }

    /// Encodes an arbitrary CBOR value.
    fn cbor(v: &Value) -> Vec<u8> {
        serde_cbor::to_vec(v).unwrap()
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// The envelope of `sample()` as a generic CBOR value, to tamper with.
    fn sample_value() -> BTreeMap<Value, Value> {
        let bytes = encode_gossip(&Gossip::Chat(sample()));
        match serde_cbor::from_slice(&bytes).unwrap() {
            Value::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    fn with_chat_field(field: &str, value: Value) -> Vec<u8> {
        let mut env = sample_value();
        let Some(Value::Map(body)) = env.get_mut(&text("body")) else {
            panic!("no body")
        };
        let Some(Value::Map(chat)) = body.get_mut(&text("Chat")) else {
            panic!("no chat")
        };
        chat.insert(text(field), value);
        cbor(&Value::Map(env))
    }

    #[test]
    fn round_trip() {
        let g = Gossip::Chat(sample());
        let bytes = encode_gossip(&g);
        assert_eq!(decode_gossip(&bytes).unwrap(), g);
        let mut no_geo = sample();
        no_geo.geo = None;
        let g = Gossip::Chat(no_geo);
        assert_eq!(decode_gossip(&encode_gossip(&g)).unwrap(), g);
    }

    #[test]
    fn id_is_a_byte_string() {
        let env = sample_value();
        let Some(Value::Map(body)) = env.get(&text("body")) else {
            panic!()
        };
        let Some(Value::Map(chat)) = body.get(&text("Chat")) else {
            panic!()
        };
        assert_eq!(chat.get(&text("id")), Some(&Value::Bytes(vec![7; 16])));
        assert_eq!(env.get(&text("v")), Some(&Value::Integer(1)));
    }

    #[test]
    fn largest_valid_message_fits() {
        let msg = ChatMessage {
            id: MessageId::random(),
            name: "名".repeat(MAX_NAME_LEN / 3),
            text: "é".repeat(MAX_TEXT_LEN / 2),
            sent_ms: u64::MAX,
            geo: Some("zzzzzz".into()),
            sig: None,
            re: None,
        };
        msg.validate().unwrap();
        let bytes = encode_gossip(&Gossip::Chat(msg.clone()));
        assert!(bytes.len() <= MAX_GOSSIP_LEN);
        assert_eq!(decode_gossip(&bytes).unwrap(), Gossip::Chat(msg));
    }

    #[test]
    fn too_large_is_rejected_first() {
        let bytes = vec![0u8; MAX_GOSSIP_LEN + 1];
        assert_eq!(
            decode_gossip(&bytes),
            Err(DecodeError::TooLarge {
                len: MAX_GOSSIP_LEN + 1,
                max: MAX_GOSSIP_LEN
            })
        );
        // Even a payload that is otherwise valid.
        let mut msg = sample();
        msg.text = "x".repeat(MAX_GOSSIP_LEN);
        let bytes = encode_gossip(&Gossip::Chat(msg));
        assert!(matches!(
            decode_gossip(&bytes),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_version_is_rejected() {
        let mut env = sample_value();
        env.insert(text("v"), Value::Integer(2));
        assert_eq!(
            decode_gossip(&cbor(&Value::Map(env.clone()))),
            Err(DecodeError::UnsupportedVersion(2))
        );
        // A future version with a body this version cannot read.
        env.insert(text("body"), text("something new"));
        env.insert(text("v"), Value::Integer(7));
        assert_eq!(
            decode_gossip(&cbor(&Value::Map(env.clone()))),
            Err(DecodeError::UnsupportedVersion(7))
        );
        env.insert(text("v"), Value::Integer(70_000));
        assert!(matches!(
            decode_gossip(&cbor(&Value::Map(env.clone()))),
            Err(DecodeError::Malformed(_))
        ));
        env.remove(&text("v"));
        assert!(matches!(
            decode_gossip(&cbor(&Value::Map(env))),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut env = sample_value();
        env.insert(text("future"), Value::Bool(true));
        assert_eq!(
            decode_gossip(&cbor(&Value::Map(env))).unwrap(),
            Gossip::Chat(sample())
        );
        let bytes = with_chat_field("reply_to", Value::Bytes(vec![1; 16]));
        assert_eq!(decode_gossip(&bytes).unwrap(), Gossip::Chat(sample()));
    }

    #[test]
    fn malformed_payloads() {
        for bytes in [
            &b""[..],
            &[0xff][..],
            &[0xa0][..],  // empty map
            &[0x01][..],  // integer
            &b"\x80"[..], // empty array
            &[0x7a, 0, 0, 0, 1][..],
        ] {
            assert!(
                matches!(decode_gossip(bytes), Err(DecodeError::Malformed(_))),
                "{bytes:?}"
            );
        }
        let good = encode_gossip(&Gossip::Chat(sample()));
        for cut in 0..good.len() {
            assert!(decode_gossip(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            decode_gossip(&trailing),
            Err(DecodeError::Malformed(_))
        ));
        // A known kind without its fields is malformed; an unknown kind (a later
        // release's) is told apart, to be ignored.
        let with_body = |kind: &str| {
            let mut env = sample_value();
            env.insert(
                text("body"),
                Value::Map([(text(kind), Value::Map(BTreeMap::new()))].into()),
            );
            cbor(&Value::Map(env))
        };
        assert!(matches!(
            decode_gossip(&with_body("Presence")),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            decode_gossip(&with_body("Poll")),
            Err(DecodeError::UnknownKind("Poll".into()))
        );
        // Wrong types and a short id.
        for (field, value) in [
            ("id", Value::Bytes(vec![1; 15])),
            ("id", Value::Bytes(vec![1; 17])),
            ("id", text("00000000000000000000000000000000")),
            ("name", Value::Integer(3)),
            ("sent_ms", Value::Integer(-1)),
            ("geo", Value::Integer(1)),
        ] {
            assert!(
                matches!(
                    decode_gossip(&with_chat_field(field, value)),
                    Err(DecodeError::Malformed(_))
                ),
                "{field}"
            );
        }
    }

    #[test]
    fn invalid_fields() {
        let cases = [
            ("name", text("")),
            ("name", text("a b")),
            ("name", text(&"a".repeat(MAX_NAME_LEN + 1))),
            ("text", text("")),
            ("text", text(&"x".repeat(MAX_TEXT_LEN + 1))),
            ("text", text("a\0b")),
            ("geo", text("")),
            ("geo", text("u09tvwx")),
            ("geo", text("U09TV")),
            ("geo", text("abc")),
        ];
        for (field, value) in cases {
            let bytes = with_chat_field(field, value.clone());
            assert!(
                matches!(decode_gossip(&bytes), Err(DecodeError::Invalid(_))),
                "{field} {value:?}"
            );
        }
        // Null geo is the same as no geo.
        let bytes = with_chat_field("geo", Value::Null);
        let Ok(Gossip::Chat(msg)) = decode_gossip(&bytes) else {
            panic!("not a chat message")
        };
        assert_eq!(msg.geo, None);
    }

    #[test]
    fn huge_declared_lengths_fail_fast() {
        let start = Instant::now();
        // A text string header declaring 4 GiB - 1 bytes, alone and as a name.
        let header = [0x7a, 0xff, 0xff, 0xff, 0xff];
        let mut alone = header.to_vec();
        alone.extend_from_slice(b"abc");
        assert!(matches!(
            decode_gossip(&alone),
            Err(DecodeError::Malformed(_))
        ));

        let good = encode_gossip(&Gossip::Chat(sample()));
        let pos = good
            .windows(6)
            .position(|w| w == [0x65, b'a', b'l', b'i', b'c', b'e'])
            .unwrap();
        let mut in_name = good[..pos].to_vec();
        in_name.extend_from_slice(&header);
        in_name.extend_from_slice(&good[pos + 6..]);
        assert!(matches!(
            decode_gossip(&in_name),
            Err(DecodeError::Malformed(_))
        ));

        // 64-bit lengths for a byte string, an array and a map.
        for head in [0x5b, 0x7b, 0x9b, 0xbb] {
            let mut bytes = vec![0xa2, 0x61, b'v', 0x01, 0x64, b'b', b'o', b'd', b'y', head];
            bytes.extend_from_slice(&[0xff; 8]);
            assert!(decode_gossip(&bytes).is_err(), "{head:#x}");
        }
        // Deeply nested arrays.
        let deep = vec![0x81; MAX_GOSSIP_LEN];
        assert!(decode_gossip(&deep).is_err());
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn new_messages_get_fresh_ids() {
        let a = ChatMessage::new("alice", "same text", None);
        let b = ChatMessage::new("alice", "same text", None);
        assert_ne!(a.id, b.id);
        assert!(a.sent_ms > 1_600_000_000_000);
        a.validate().unwrap();
    }

    #[test]
    fn stamped_messages_are_deterministic() {
        let stamp = Stamp::new(MessageId::from_bytes([7; 16]), 1_700_000_000_000);
        let geo = || Some("u09tvw".to_string());
        let a = ChatMessage::with_stamp("alice", "hello, world", geo(), stamp);
        let b = ChatMessage::with_stamp("alice", "hello, world", geo(), stamp);
        assert_eq!(a, sample());
        assert_eq!(
            encode_gossip(&Gossip::Chat(a.clone())),
            encode_gossip(&Gossip::Chat(b))
        );
        let later = Stamp::new(stamp.id, stamp.sent_ms + 1);
        let c = ChatMessage::with_stamp("alice", "hello, world", geo(), later);
        assert_ne!(
            encode_gossip(&Gossip::Chat(a)),
            encode_gossip(&Gossip::Chat(c))
        );
    }

    #[test]
    fn chat_wire_bytes_are_stable() {
        let hex: String = encode_gossip(&Gossip::Chat(sample()))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, GOLDEN_CHAT);
    }

    fn arb_message() -> impl Strategy<Value = ChatMessage> {
        (
            any::<[u8; 16]>(),
            "[a-zA-Z0-9_.-]{1,32}",
            "[^\u{0}]{1,200}",
            any::<u64>(),
            proptest::option::of("[0-9bcdefghjkmnpqrstuvwxyz]{1,6}"),
        )
            .prop_map(|(id, name, text, sent_ms, geo)| ChatMessage {
                id: MessageId::from_bytes(id),
                name,
                text,
                sent_ms,
                geo,
                sig: None,
                re: None,
            })
    }

    proptest! {
        #[test]
        fn gossip_round_trip(msg in arb_message()) {
            let g = Gossip::Chat(msg);
            let bytes = encode_gossip(&g);
            prop_assert!(bytes.len() <= MAX_GOSSIP_LEN);
            prop_assert_eq!(decode_gossip(&bytes).unwrap(), g);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_gossip(&bytes);
        }

        #[test]
        fn damaged_payloads_never_panic(
            msg in arb_message(),
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let whole = encode_gossip(&Gossip::Chat(msg));
            // A strict prefix of a valid payload is always incomplete.
            let end = cut.index(whole.len());
            prop_assert!(decode_gossip(&whole[..end]).is_err());
            // Damaged bytes may happen to decode; they must simply never panic.
            let mut bytes = whole;
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            let _ = decode_gossip(&bytes);
            let _ = decode_gossip(&bytes[..end]);
        }
    }
}
