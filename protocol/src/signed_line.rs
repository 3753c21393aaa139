//! Room lines signed by their author, so that a copy served later by a store or another
//! member can be checked: it may be withheld, but not forged or altered.
//!
//! Gossipsub signs each message for its transport, but that signature is gone once the
//! message is delivered. A line therefore carries a second signature of its own, in the
//! [`ChatMessage::sig`] field, by the author's identity key over
//!
//! ```text
//! "ipm-line/1" 0x00 <topic> 0x00 <canonical CBOR of the payload without `sig`>
//! ```
//!
//! The canonical form is the payload decoded as a generic CBOR value (maps sorted by key)
//! and encoded again, so fields a later release adds are covered too, and a node checks
//! lines of newer nodes without knowing their fields.

use libp2p_identity::{Keypair, PeerId};
use serde_cbor::Value;

use crate::error::DecodeError;
use crate::limits::MAX_GOSSIP_LEN;
use crate::message::{decode_gossip, encode_gossip, ChatMessage, Gossip};

/// What every signed line's signature starts with.
const CONTEXT: &[u8] = b"ipm-line/1";

/// Why a signed line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The payload is no valid chat line.
    #[error("not a chat line: {0}")]
    Undecodable(DecodeError),
    /// The line carries no signature (a line of an older node).
    #[error("the line is not signed")]
    Unsigned,
    /// The author's peer id does not hold its public key (not an ed25519 key).
    #[error("the author's key cannot be read from its peer id")]
    NoKey,
    /// The signature does not match the author, the room or the content.
    #[error("the signature does not match the author, room and text")]
    BadSignature,
    /// Signing failed (the key cannot sign).
    #[error("cannot sign the line")]
    Signing,
}

/// Encodes `chat` for the room `topic`, signed with `key`: the bytes to publish.
pub fn sign_chat(key: &Keypair, topic: &str, mut chat: ChatMessage) -> Result<Vec<u8>, LineError> {
    chat.sig = None;
    let unsigned = encode_gossip(&Gossip::Chat(chat.clone()));
    let message = signed_bytes(topic, &unsigned)?;
    let sig = key.sign(&message).map_err(|_| LineError::Signing)?;
    chat.sig = Some(serde_bytes::ByteBuf::from(sig));
    Ok(encode_gossip(&Gossip::Chat(chat)))
}

/// Checks that `data` is a chat line `author` signed for the room `topic`, and returns it.
pub fn verify_chat(author: &PeerId, topic: &str, data: &[u8]) -> Result<ChatMessage, LineError> {
    let chat = match decode_gossip(data).map_err(LineError::Undecodable)? {
        Gossip::Chat(chat) => chat,
        _ => {
            return Err(LineError::Undecodable(DecodeError::Invalid(
                "not a chat line".into(),
            )))
        }
    };
    let sig = chat.sig.as_ref().ok_or(LineError::Unsigned)?;
    let key = public_key(author).ok_or(LineError::NoKey)?;
    let message = signed_bytes(topic, data)?;
    if key.verify(&message, sig) {
        Ok(chat)
    } else {
        Err(LineError::BadSignature)
    }
}

pub use crate::name_record::public_key;

/// What is signed: the context, the topic and the payload in canonical form without `sig`.
fn signed_bytes(topic: &str, payload: &[u8]) -> Result<Vec<u8>, LineError> {
    let malformed =
        |e: serde_cbor::Error| LineError::Undecodable(DecodeError::Malformed(e.to_string()));
    if payload.len() > MAX_GOSSIP_LEN {
        return Err(LineError::Undecodable(DecodeError::TooLarge {
            len: payload.len(),
            max: MAX_GOSSIP_LEN,
        }));
    }
    let mut value: Value = serde_cbor::from_slice(payload).map_err(malformed)?;
    if let Value::Map(envelope) = &mut value {
        if let Some(Value::Map(body)) = envelope.get_mut(&Value::Text("body".into())) {
            if let Some(Value::Map(chat)) = body.get_mut(&Value::Text("Chat".into())) {
                chat.remove(&Value::Text("sig".into()));
            }
        }
    }
    let canonical = serde_cbor::to_vec(&value).map_err(malformed)?;
    let mut out = Vec::with_capacity(CONTEXT.len() + topic.len() + canonical.len() + 2);
    out.extend_from_slice(CONTEXT);
    out.push(0);
    out.extend_from_slice(topic.as_bytes());
    out.push(0);
    out.extend_from_slice(&canonical);
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::room::Room;
    use serde_cbor::Value;
    use std::collections::BTreeMap;

    fn new_key() -> Keypair {
        Keypair::ed25519_from_bytes(rand::random::<[u8; 32]>()).unwrap()
    }

    fn line(text: &str) -> ChatMessage {
        ChatMessage::new("alice", text, None)
    }

    #[test]
    fn a_signed_line_verifies_for_its_author_and_room() {
        let key = new_key();
        let topic = Room::Lobby.topic();
        let data = sign_chat(&key, &topic, line("hello")).unwrap();
        let chat = verify_chat(&key.public().to_peer_id(), &topic, &data).unwrap();
        assert_eq!(chat.text, "hello");
        assert!(chat.sig.is_some());
    }

    #[test]
    fn another_author_another_room_or_an_altered_text_is_refused() {
        let key = new_key();
        let topic = Room::Lobby.topic();
        let data = sign_chat(&key, &topic, line("hello")).unwrap();
        let other = new_key().public().to_peer_id();
        assert_eq!(
            verify_chat(&other, &topic, &data),
            Err(LineError::BadSignature)
        );
        let elsewhere = Room::interest("rust").unwrap().topic();
        let author = key.public().to_peer_id();
        assert_eq!(
            verify_chat(&author, &elsewhere, &data),
            Err(LineError::BadSignature)
        );
        let Gossip::Chat(mut chat) = decode_gossip(&data).unwrap() else {
            panic!("not a chat line")
        };
        chat.text = "hellO".into();
        let altered = encode_gossip(&Gossip::Chat(chat));
        assert_eq!(
            verify_chat(&author, &topic, &altered),
            Err(LineError::BadSignature)
        );
    }

    #[test]
    fn an_unsigned_line_is_refused() {
        let key = new_key();
        let data = encode_gossip(&Gossip::Chat(line("hi")));
        assert_eq!(
            verify_chat(&key.public().to_peer_id(), &Room::Lobby.topic(), &data),
            Err(LineError::Unsigned)
        );
    }

    #[test]
    fn fields_of_a_later_release_are_covered_by_the_signature() {
        // A newer node adds a field this release does not know; its signature covers it.
        let key = new_key();
        let topic = Room::Lobby.topic();
        let author = key.public().to_peer_id();
        let chat_map = |extra: &str| {
            let mut chat = BTreeMap::new();
            chat.insert(Value::Text("id".into()), Value::Bytes(vec![7; 16]));
            chat.insert(Value::Text("name".into()), Value::Text("alice".into()));
            chat.insert(Value::Text("text".into()), Value::Text("hi".into()));
            chat.insert(Value::Text("sent_ms".into()), Value::Integer(5));
            chat.insert(Value::Text("mood".into()), Value::Text(extra.into()));
            chat
        };
        let envelope = |chat: BTreeMap<Value, Value>| {
            let mut body = BTreeMap::new();
            body.insert(Value::Text("Chat".into()), Value::Map(chat));
            let mut env = BTreeMap::new();
            env.insert(Value::Text("v".into()), Value::Integer(1));
            env.insert(Value::Text("body".into()), Value::Map(body));
            serde_cbor::to_vec(&Value::Map(env)).unwrap()
        };
        let unsigned = envelope(chat_map("glad"));
        let sig = key.sign(&signed_bytes(&topic, &unsigned).unwrap()).unwrap();
        let mut signed = chat_map("glad");
        signed.insert(Value::Text("sig".into()), Value::Bytes(sig.clone()));
        assert!(verify_chat(&author, &topic, &envelope(signed)).is_ok());
        let mut altered = chat_map("sad");
        altered.insert(Value::Text("sig".into()), Value::Bytes(sig));
        assert_eq!(
            verify_chat(&author, &topic, &envelope(altered)),
            Err(LineError::BadSignature)
        );
    }

    #[test]
    fn the_key_is_read_from_an_ed25519_peer_id_only() {
        let key = new_key();
        let peer = key.public().to_peer_id();
        assert_eq!(public_key(&peer), Some(key.public()));
        // An identity hash of random bytes in place of a key.
        let mut bytes = vec![0, 32];
        bytes.extend(rand::random::<[u8; 32]>());
        assert_eq!(public_key(&PeerId::from_bytes(&bytes).unwrap()), None);
    }
}
