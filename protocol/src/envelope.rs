//! The versioned CBOR envelope `{ v, body }` every ipm payload travels in, with the size
//! check that comes before any parsing.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::DecodeError;
use crate::limits::PROTOCOL_VERSION;

/// A payload that can check its own protocol rules after decoding.
pub trait Payload: Serialize + DeserializeOwned {
    /// Checks every semantic rule a receiver enforces.
    fn validate(&self) -> Result<(), DecodeError>;
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u16,
    body: &'a T,
}

/// Only the version of an envelope; every other field is skipped.
#[derive(Deserialize)]
struct EnvelopeVersion {
    v: u16,
}

#[derive(Deserialize)]
struct EnvelopeBody<T> {
    body: T,
}

/// Encodes `body` as CBOR in a versioned envelope `{ v: PROTOCOL_VERSION, body }`.
pub fn encode<T: Payload>(body: &T) -> Vec<u8> {
    let envelope = EnvelopeOut {
        v: PROTOCOL_VERSION,
        body,
    };
    // Writing plain structs into a Vec cannot fail: there is no I/O and every key is a string.
    serde_cbor::to_vec(&envelope).expect("CBOR encoding into a Vec never fails")
}

/// Decodes and validates a payload of at most `max` bytes received from a peer.
///
/// In order: the length is checked before anything is parsed, then the envelope version,
/// then the body's shape, then [`Payload::validate`]. Unknown fields are ignored.
pub fn decode<T: Payload>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let malformed = |e: serde_cbor::Error| DecodeError::Malformed(e.to_string());
    let EnvelopeVersion { v } = serde_cbor::from_slice(bytes).map_err(malformed)?;
    if v != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion(v));
    }
    let EnvelopeBody { body } =
        serde_cbor::from_slice::<EnvelopeBody<T>>(bytes).map_err(malformed)?;
    body.validate()?;
    Ok(body)
}
