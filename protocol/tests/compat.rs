//! Wire compatibility with the previous release (0.1, commit d17fc7d): its exact encodings
//! still decode here, and what this release sends decodes under its types, reading as a
//! plain line. `previous` holds that release's payload types, copied as they were.

#![allow(clippy::unwrap_used)]

use ipm_protocol::limits::{MAX_DIRECT_REQUEST_LEN, MAX_GOSSIP_LEN};
use ipm_protocol::{
    change::fallback_text, decode, decode_gossip, encode, encode_gossip, Change, ChatMessage,
    DecodeError, DirectMessage, DirectRequest, Gossip, MessageId, Op,
};

/// The payload types of the previous release, as they were.
mod previous {
    use ipm_protocol::{DecodeError, FileOffer, MessageId, Payload, Presence};
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ChatMessage {
        pub id: MessageId,
        pub name: String,
        pub text: String,
        pub sent_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub geo: Option<String>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub enum Gossip {
        Chat(ChatMessage),
        FileOffer(FileOffer),
        Presence(Presence),
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct DirectMessage {
        pub id: MessageId,
        pub name: String,
        pub text: String,
        pub sent_ms: u64,
        #[serde(default)]
        pub auto_reply: bool,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub enum DirectRequest {
        Message(DirectMessage),
    }

    impl Payload for Gossip {
        fn validate(&self) -> Result<(), DecodeError> {
            Ok(())
        }
    }

    impl Payload for DirectRequest {
        fn validate(&self) -> Result<(), DecodeError> {
            Ok(())
        }
    }
}

/// A private message as the previous release wrote it.
const GOLDEN_DIRECT: &str = concat!(
    "a2617601",                           // { "v": 1,
    "64626f6479a1674d657373616765a5",     // "body": { "Message": { (5 fields)
    "62696450",                           // "id": 16 bytes,
    "05050505050505050505050505050505",   // all 5
    "646e616d6565616c696365",             // "name": "alice"
    "647465787466686920626f62",           // "text": "hi bob"
    "6773656e745f6d731b0000018bcfe56800", // "sent_ms": 1_700_000_000_000
    "6a6175746f5f7265706c79f4",           // "auto_reply": false } } }
);

/// A room line as the previous release wrote it (the GOLDEN_CHAT of `message.rs`).
const GOLDEN_CHAT: &str = concat!(
    "a2617601",
    "64626f6479a16443686174a5",
    "62696450",
    "07070707070707070707070707070707",
    "646e616d6565616c696365",
    "64746578746c68656c6c6f2c20776f726c64",
    "6773656e745f6d731b0000018bcfe56800",
    "6367656f66753039747677",
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_previous_releases_encodings_decode_and_are_written_the_same() {
    let Gossip::Chat(chat) = decode_gossip(&unhex(GOLDEN_CHAT)).unwrap() else {
        panic!("not a chat line")
    };
    assert_eq!(
        (chat.text.as_str(), chat.re.as_ref()),
        ("hello, world", None)
    );
    assert_eq!(hex(&encode_gossip(&Gossip::Chat(chat))), GOLDEN_CHAT);

    let bytes = unhex(GOLDEN_DIRECT);
    let request: DirectRequest = decode(&bytes, MAX_DIRECT_REQUEST_LEN).unwrap();
    let DirectRequest::Message(m) = &request else {
        panic!("not a message")
    };
    assert_eq!(
        (m.text.as_str(), m.receipts, m.re.as_ref()),
        ("hi bob", false, None)
    );
    assert_eq!(hex(&encode(&request)), GOLDEN_DIRECT);
    // The previous release's own types write exactly these bytes.
    let old = previous::DirectRequest::Message(previous::DirectMessage {
        id: MessageId::from_bytes([5; 16]),
        name: "alice".into(),
        text: "hi bob".into(),
        sent_ms: 1_700_000_000_000,
        auto_reply: false,
    });
    assert_eq!(hex(&encode(&old)), GOLDEN_DIRECT);
}

fn ops() -> Vec<(Op, &'static str)> {
    vec![
        (Op::Reply, "sure"),
        (Op::React("👍".into()), ""),
        (Op::Edit("lunch at one".into()), ""),
        (Op::Delete, ""),
    ]
}

#[test]
fn every_change_reads_as_a_plain_line_to_the_previous_release() {
    let target = MessageId::random();
    for (op, typed) in ops() {
        let text = fallback_text(&op, typed);
        let mut chat = ChatMessage::new("bob", &text, None);
        chat.re = Some(Change::new(target, &op));
        let bytes = encode_gossip(&Gossip::Chat(chat.clone()));
        assert!(bytes.len() <= MAX_GOSSIP_LEN);
        let old: previous::Gossip = decode(&bytes, MAX_GOSSIP_LEN).unwrap();
        let previous::Gossip::Chat(line) = old else {
            panic!("not a chat line")
        };
        assert_eq!((line.id, line.text.as_str()), (chat.id, text.as_str()));
        // And this release reads the change back.
        let Gossip::Chat(back) = decode_gossip(&bytes).unwrap() else {
            panic!()
        };
        assert_eq!(back.re.and_then(|c| c.op()), Some(op.clone()));

        let mut direct = DirectMessage::new("bob", &text);
        direct.re = Some(Change::new(target, &op));
        direct.receipts = true;
        let bytes = encode(&DirectRequest::Message(direct.clone()));
        let old: previous::DirectRequest = decode(&bytes, MAX_DIRECT_REQUEST_LEN).unwrap();
        let previous::DirectRequest::Message(m) = old;
        assert_eq!((m.id, m.text), (direct.id, text));
    }
}

#[test]
fn what_the_previous_release_sends_has_no_change_and_asks_no_receipts() {
    let old = previous::Gossip::Chat(previous::ChatMessage {
        id: MessageId::random(),
        name: "alice".into(),
        text: "hi".into(),
        sent_ms: 1,
        geo: None,
    });
    let Gossip::Chat(chat) = decode_gossip(&encode(&old)).unwrap() else {
        panic!()
    };
    assert_eq!(chat.re, None);
    let old = previous::DirectRequest::Message(previous::DirectMessage {
        id: MessageId::random(),
        name: "alice".into(),
        text: "hi".into(),
        sent_ms: 1,
        auto_reply: false,
    });
    let DirectRequest::Message(m) = decode(&encode(&old), MAX_DIRECT_REQUEST_LEN).unwrap() else {
        panic!()
    };
    assert!(!m.receipts, "an old node never gets a notice");
}

#[test]
fn a_later_releases_change_kind_reads_as_its_text() {
    let mut chat = ChatMessage::new("bob", "(pinned a message)", None);
    chat.re = Some(Change {
        target: MessageId::random(),
        kind: "pin".into(),
        value: None,
    });
    let Gossip::Chat(back) = decode_gossip(&encode_gossip(&Gossip::Chat(chat))).unwrap() else {
        panic!()
    };
    assert_eq!(back.re.as_ref().and_then(Change::op), None);
    assert_eq!(back.text, "(pinned a message)");
}

#[test]
fn a_later_releases_gossip_kind_is_unknown_not_malformed() {
    let future = serde_cbor::to_vec(&serde_cbor::Value::Map(
        [
            (
                serde_cbor::Value::Text("v".into()),
                serde_cbor::Value::Integer(1),
            ),
            (
                serde_cbor::Value::Text("body".into()),
                serde_cbor::Value::Map(
                    [(
                        serde_cbor::Value::Text("Poll".into()),
                        serde_cbor::Value::Array(vec![]),
                    )]
                    .into(),
                ),
            ),
        ]
        .into(),
    ))
    .unwrap();
    assert_eq!(
        decode_gossip(&future),
        Err(DecodeError::UnknownKind("Poll".into()))
    );
}

/// A file offer as the previous release reads it: without the `folder` field.
#[derive(Debug, serde::Deserialize)]
struct PreviousFileOffer {
    name: String,
    size: u64,
}

#[derive(Debug, serde::Deserialize)]
enum PreviousGossip {
    FileOffer(PreviousFileOffer),
}

#[derive(Debug, serde::Deserialize)]
struct PreviousEnvelope {
    body: PreviousGossip,
}

#[test]
fn a_folder_offer_reads_as_a_plain_file_offer_to_the_previous_release() {
    use ipm_protocol::folder::FolderSummary;
    let mut offer = ipm_protocol::FileOffer {
        transfer: MessageId::from_bytes([3; 16]),
        from_name: "alice".into(),
        name: "photos".into(),
        size: 12_345,
        sha256: [1; 32],
        folder: None,
    };
    // A plain file offer is written as before: no trace of the new field.
    let plain = encode_gossip(&Gossip::FileOffer(offer.clone()));
    assert!(!plain.windows(6).any(|w| w == b"folder"));
    offer.folder = Some(FolderSummary {
        files: 3,
        manifest_len: 200,
    });
    let bytes = encode_gossip(&Gossip::FileOffer(offer.clone()));
    let old: PreviousEnvelope = serde_cbor::from_slice(&bytes).unwrap();
    let PreviousGossip::FileOffer(seen) = old.body;
    assert_eq!((seen.name.as_str(), seen.size), ("photos", 12_345));
    assert_eq!(
        decode_gossip(&bytes).unwrap(),
        Gossip::FileOffer(offer),
        "and this release reads it back whole"
    );
}
