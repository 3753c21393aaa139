//! Signed name records: a claim "`name` belongs to `peer`" that anyone can verify.
//!
//! A node stores its record in the DHT under [`name_key`]`(name)`. The record
//! carries the claimant's public key and a signature, made with the
//! claimant's libp2p identity key, over a canonical CBOR byte string
//! ([`NameRecord::signed_bytes`]). Nodes that store records keep the first
//! valid claim for a name ([`admit`]); a later claim by another peer is
//! refused.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use serde::{Deserialize, Serialize};

use crate::error::shown;
use crate::limits::{
    MAX_CLOCK_SKEW_MS, MAX_NAME_RECORD_LEN, MAX_PUBLIC_KEY_LEN, MAX_SIGNATURE_LEN, PROTOCOL_VERSION,
};
use crate::name::validate_name;

/// Prefix of every name record key in the DHT.
pub const NAME_KEY_PREFIX: &str = "/ipm/name/";

/// Domain separator at the start of the signed bytes, so that a name
/// signature can never be mistaken for any other signature of the same key.
const SIGNING_DOMAIN: &str = "ipm-name-record";

/// Why a name record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRecordError {
    /// The encoded record is larger than [`MAX_NAME_RECORD_LEN`].
    #[error("name record is {len} bytes, at most {MAX_NAME_RECORD_LEN} are allowed")]
    TooLarge {
        /// Length of the rejected record, in bytes.
        len: usize,
    },
    /// The bytes are not a name record.
    #[error("malformed name record: {}", shown(.0))]
    Malformed(String),
    /// The record was written for another protocol version.
    #[error("unsupported name record version {0}, this ipm speaks version {PROTOCOL_VERSION}")]
    UnsupportedVersion(u16),
    /// The claimed name is not a valid name.
    #[error("bad name in record: {0}")]
    BadName(String),
    /// The public key cannot be read.
    #[error("bad public key in name record: {}", shown(.0))]
    BadKey(String),
    /// The peer id is not the one of the public key.
    #[error("the name record's peer id does not belong to its key")]
    PeerMismatch,
    /// The signature does not verify.
    #[error("the name record's signature is not valid")]
    BadSignature,
    /// The record is stored under the key of another name.
    #[error("the name record is stored under the key of another name")]
    WrongKey,
    /// The record says it was issued in the future.
    #[error("the name record was issued {0} ms in the future")]
    FromTheFuture(u64),
    /// Another peer claimed the name first.
    #[error("the name is already claimed by {owner}")]
    Taken {
        /// The peer that holds the name.
        owner: PeerId,
    },
    /// The same peer already stored a newer record.
    #[error("a newer record for this name is already stored")]
    Stale,
    /// Signing failed.
    #[error("cannot sign the name record: {0}")]
    Signing(String),
}

/// A verified claim that `name` belongs to `peer`.
///
/// Values of this type only come from [`NameRecord::sign`] or
/// [`NameRecord::decode`], so they always carry a valid signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameRecord {
    /// The claimed name.
    pub name: String,
    /// The claimant.
    pub peer: PeerId,
    /// When the claim was made, by the claimant's clock (ms since the epoch).
    pub issued_ms: u64,
    /// The claimant's public key; `peer` is derived from it.
    pub key: PublicKey,
    /// The claimant's signature over [`NameRecord::signed_bytes`].
    pub signature: Vec<u8>,
}

/// The record as it is stored in the DHT.
#[derive(Serialize, Deserialize)]
struct Wire {
    v: u16,
    name: String,
    #[serde(with = "serde_bytes")]
    peer: Vec<u8>,
    issued_ms: u64,
    #[serde(with = "serde_bytes")]
    key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    sig: Vec<u8>,
}

/// The public key a peer id holds inline (ed25519 keys are short enough to be their own id).
pub fn public_key(peer: &PeerId) -> Option<PublicKey> {
    let hash = peer.as_ref();
    // Multihash code 0 is the identity hash: the digest is the protobuf-encoded key.
    if hash.code() != 0 {
        return None;
    }
    let key = PublicKey::try_decode_protobuf(hash.digest()).ok()?;
    (key.to_peer_id() == *peer).then_some(key)
}

/// The DHT key of the record for `name`: `/ipm/name/<name in lowercase>`, so
/// that `Bob` and `bob` compete for the same key.
pub fn name_key(name: &str) -> Vec<u8> {
    format!("{NAME_KEY_PREFIX}{}", name.to_lowercase()).into_bytes()
}

impl NameRecord {
    /// Signs a claim of `name` for the owner of `keypair`, issued at
    /// `issued_ms`.
    pub fn sign(keypair: &Keypair, name: &str, issued_ms: u64) -> Result<Self, NameRecordError> {
        validate_name(name).map_err(|e| NameRecordError::BadName(e.to_string()))?;
        let key = keypair.public();
        let peer = key.to_peer_id();
        let signature = keypair
            .sign(&Self::signed_bytes(name, &peer, issued_ms))
            .map_err(|e| NameRecordError::Signing(e.to_string()))?;
        Ok(NameRecord {
            name: name.to_string(),
            peer,
            issued_ms,
            key,
            signature,
        })
    }

    /// The canonical bytes a claimant signs: the CBOR array
    /// `["ipm-name-record", version, name, peer id bytes, issued_ms]`.
    pub fn signed_bytes(name: &str, peer: &PeerId, issued_ms: u64) -> Vec<u8> {
        let peer = peer.to_bytes();
        let fields = (
            SIGNING_DOMAIN,
            PROTOCOL_VERSION,
            name,
            serde_bytes::Bytes::new(&peer),
            issued_ms,
        );
        // Writing a tuple of plain values into a Vec cannot fail.
        serde_cbor::to_vec(&fields).unwrap_or_default()
    }

    /// The DHT key this record belongs under.
    pub fn key(&self) -> Vec<u8> {
        name_key(&self.name)
    }

    /// The bytes stored in the DHT.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            v: PROTOCOL_VERSION,
            name: self.name.clone(),
            peer: self.peer.to_bytes(),
            issued_ms: self.issued_ms,
            key: self.key.encode_protobuf(),
            sig: self.signature.clone(),
        };
        serde_cbor::to_vec(&wire).unwrap_or_default()
    }

    /// Decodes and verifies a record found under DHT key `key`.
    ///
    /// In order: the size is checked before anything is parsed, then the
    /// version, the name, the key, that the peer id is the key's, that the
    /// record belongs under `key`, and finally the signature.
    pub fn decode(key: &[u8], value: &[u8]) -> Result<Self, NameRecordError> {
        if value.len() > MAX_NAME_RECORD_LEN {
            return Err(NameRecordError::TooLarge { len: value.len() });
        }
        let wire: Wire =
            serde_cbor::from_slice(value).map_err(|e| NameRecordError::Malformed(e.to_string()))?;
        if wire.v != PROTOCOL_VERSION {
            return Err(NameRecordError::UnsupportedVersion(wire.v));
        }
        validate_name(&wire.name).map_err(|e| NameRecordError::BadName(e.to_string()))?;
        if wire.key.len() > MAX_PUBLIC_KEY_LEN {
            return Err(NameRecordError::BadKey(format!(
                "{} bytes, at most {MAX_PUBLIC_KEY_LEN} are allowed",
                wire.key.len()
            )));
        }
        let public = PublicKey::try_decode_protobuf(&wire.key)
            .map_err(|e| NameRecordError::BadKey(e.to_string()))?;
        let peer = PeerId::from_bytes(&wire.peer).map_err(|_| NameRecordError::PeerMismatch)?;
        if public.to_peer_id() != peer {
            return Err(NameRecordError::PeerMismatch);
        }
        if name_key(&wire.name) != key {
            return Err(NameRecordError::WrongKey);
        }
        if wire.sig.len() > MAX_SIGNATURE_LEN
            || !public.verify(
                &Self::signed_bytes(&wire.name, &peer, wire.issued_ms),
                &wire.sig,
            )
        {
            return Err(NameRecordError::BadSignature);
        }
        Ok(NameRecord {
            name: wire.name,
            peer,
            issued_ms: wire.issued_ms,
            key: public,
            signature: wire.sig,
        })
    }
}

/// Whether a node that stores records accepts `incoming` when it already
/// holds `existing` (both verified) for the same key, at `now_ms`.
///
/// The first claim wins: a record of another peer is refused as
/// [`NameRecordError::Taken`]. The owner may refresh its claim with a record
/// issued at the same time or later. A record issued more than
/// [`MAX_CLOCK_SKEW_MS`] in the future is refused.
pub fn admit(
    incoming: &NameRecord,
    existing: Option<&NameRecord>,
    now_ms: u64,
) -> Result<(), NameRecordError> {
    if incoming.issued_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
        return Err(NameRecordError::FromTheFuture(incoming.issued_ms - now_ms));
    }
    match existing {
        Some(held) if held.peer != incoming.peer => {
            Err(NameRecordError::Taken { owner: held.peer })
        }
        Some(held) if incoming.issued_ms < held.issued_ms => Err(NameRecordError::Stale),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_cbor::Value;
    use std::collections::BTreeMap;

    fn keypair(seed: u8) -> Keypair {
        Keypair::ed25519_from_bytes([seed; 32]).unwrap()
    }

    const T: u64 = 1_700_000_000_000;

    fn tamper(record: &NameRecord, field: &str, value: Value) -> Vec<u8> {
        let mut map: BTreeMap<Value, Value> = serde_cbor::from_slice(&record.encode()).unwrap();
        map.insert(Value::Text(field.into()), value);
        serde_cbor::to_vec(&map).unwrap()
    }

    #[test]
    fn a_signed_record_verifies_for_anyone() {
        let record = NameRecord::sign(&keypair(1), "Bob", T).unwrap();
        assert_eq!(record.key(), b"/ipm/name/bob".to_vec());
        assert_eq!(record.peer, keypair(1).public().to_peer_id());
        let back = NameRecord::decode(&name_key("bob"), &record.encode()).unwrap();
        assert_eq!(back, record);
        assert!(record.encode().len() <= MAX_NAME_RECORD_LEN);
    }

    #[test]
    fn tampering_is_detected() {
        let record = NameRecord::sign(&keypair(1), "bob", T).unwrap();
        let key = name_key("bob");
        let other = keypair(2);
        let cases = [
            (
                "issued_ms",
                Value::Integer(i128::from(T + 1)),
                NameRecordError::BadSignature,
            ),
            (
                "peer",
                Value::Bytes(other.public().to_peer_id().to_bytes()),
                NameRecordError::PeerMismatch,
            ),
            (
                "key",
                Value::Bytes(other.public().encode_protobuf()),
                NameRecordError::PeerMismatch,
            ),
            (
                "sig",
                Value::Bytes(vec![0; 64]),
                NameRecordError::BadSignature,
            ),
            (
                "sig",
                Value::Bytes(vec![0; MAX_SIGNATURE_LEN + 1]),
                NameRecordError::BadSignature,
            ),
            (
                "peer",
                Value::Bytes(vec![1, 2, 3]),
                NameRecordError::PeerMismatch,
            ),
            (
                "v",
                Value::Integer(2),
                NameRecordError::UnsupportedVersion(2),
            ),
        ];
        for (field, value, expected) in cases {
            assert_eq!(
                NameRecord::decode(&key, &tamper(&record, field, value)),
                Err(expected),
                "{field}"
            );
        }
        // A different name under the same signature, and a record under another name's key.
        assert_eq!(
            NameRecord::decode(
                &name_key("alice"),
                &tamper(&record, "name", Value::Text("alice".into()))
            ),
            Err(NameRecordError::BadSignature)
        );
        assert_eq!(
            NameRecord::decode(&name_key("alice"), &record.encode()),
            Err(NameRecordError::WrongKey)
        );
        // Another key type's bytes, a huge key, a bad name.
        assert!(matches!(
            NameRecord::decode(&key, &tamper(&record, "key", Value::Bytes(vec![8, 9, 10]))),
            Err(NameRecordError::BadKey(_))
        ));
        assert!(matches!(
            NameRecord::decode(
                &key,
                &tamper(
                    &record,
                    "key",
                    Value::Bytes(vec![0; MAX_PUBLIC_KEY_LEN + 1])
                )
            ),
            Err(NameRecordError::BadKey(_))
        ));
        assert!(matches!(
            NameRecord::decode(&key, &tamper(&record, "name", Value::Text("b#b".into()))),
            Err(NameRecordError::BadName(_))
        ));
    }

    #[test]
    fn size_and_shape_are_checked_first() {
        let key = name_key("bob");
        assert_eq!(
            NameRecord::decode(&key, &vec![0; MAX_NAME_RECORD_LEN + 1]),
            Err(NameRecordError::TooLarge {
                len: MAX_NAME_RECORD_LEN + 1
            })
        );
        for bytes in [
            &b""[..],
            &[0xff][..],
            &[0xa0][..],
            &[0x7a, 0xff, 0xff, 0xff, 0xff][..],
        ] {
            assert!(matches!(
                NameRecord::decode(&key, bytes),
                Err(NameRecordError::Malformed(_))
            ));
        }
        assert!(matches!(
            NameRecord::sign(&keypair(1), "", T),
            Err(NameRecordError::BadName(_))
        ));
    }

    #[test]
    fn the_first_claim_wins() {
        let bob = NameRecord::sign(&keypair(1), "bob", T).unwrap();
        let impostor = NameRecord::sign(&keypair(2), "bob", T - 1000).unwrap();
        assert_eq!(admit(&bob, None, T), Ok(()));
        assert_eq!(
            admit(&impostor, Some(&bob), T),
            Err(NameRecordError::Taken { owner: bob.peer })
        );
        let refreshed = NameRecord::sign(&keypair(1), "bob", T + 5).unwrap();
        assert_eq!(admit(&refreshed, Some(&bob), T + 5), Ok(()));
        assert_eq!(
            admit(&bob, Some(&bob), T),
            Ok(()),
            "replicas of the same record are fine"
        );
        assert_eq!(
            admit(&bob, Some(&refreshed), T),
            Err(NameRecordError::Stale)
        );
        let future = NameRecord::sign(&keypair(1), "bob", T + MAX_CLOCK_SKEW_MS + 1).unwrap();
        assert_eq!(
            admit(&future, None, T),
            Err(NameRecordError::FromTheFuture(MAX_CLOCK_SKEW_MS + 1))
        );
    }

    #[test]
    fn errors_are_one_line() {
        let peer = keypair(1).public().to_peer_id();
        for e in [
            NameRecordError::Malformed("a\nb".into()),
            NameRecordError::Taken { owner: peer },
            NameRecordError::BadKey("x".repeat(1000)),
        ] {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && msg.len() < 300, "{msg}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = NameRecord::decode(&name_key("bob"), &bytes);
        }

        #[test]
        fn damaged_records_never_verify(
            at in any::<prop::sample::Index>(),
            b in any::<u8>(),
        ) {
            let record = NameRecord::sign(&keypair(7), "carol", T).unwrap();
            let mut bytes = record.encode();
            let i = at.index(bytes.len());
            prop_assume!(bytes[i] != b);
            bytes[i] = b;
            if let Ok(back) = NameRecord::decode(&name_key("carol"), &bytes) {
                // Only a change that keeps every signed field may still verify.
                prop_assert_eq!(back.name, record.name);
                prop_assert_eq!(back.peer, record.peer);
                prop_assert_eq!(back.issued_ms, record.issued_ms);
            }
        }
    }
}
