//! Name tickets: a registry's signed word that a name is registered to a key, until a
//! given time.
//!
//! A bootstrap hands one out with every registration or login; the node puts it in its
//! presence announcements. A peer that trusts the registry (one of its own bootstraps)
//! checks the ticket on the spot and shows the name as confirmed, instead of asking the
//! registry about every name it hears of. Without tickets each of N users would ask about
//! each of the N others: N² lookups at one bootstrap as an overlay grows.
//!
//! The ticket carries the owner's own signed [`NameRecord`], so the registry vouches only
//! for who came first, as in its lookups. What the registry signs is the CBOR array
//! `["ipm-name-ticket", version, record bytes, expires_ms]`.

use libp2p_identity::{Keypair, PeerId};
use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::limits::{MAX_NAME_RECORD_LEN, MAX_SIGNATURE_LEN, MAX_TICKET_TTL_MS, PROTOCOL_VERSION};
use crate::name::validate_name;
use crate::name_record::{name_key, public_key, NameRecord};

/// Domain separator of a ticket signature.
const SIGNING_DOMAIN: &str = "ipm-name-ticket";

/// Largest encoded peer id accepted (an ed25519 peer id is 38 bytes).
const MAX_REGISTRY_ID_LEN: usize = 64;

/// A registry's signed statement: the record in it holds its name until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameTicket {
    /// The registered name, exactly as registered.
    pub name: String,
    /// [`NameRecord::encode`] of the owner's claim.
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
    /// The registry's peer id, as bytes (its key is inline: see [`public_key`]).
    #[serde(with = "serde_bytes")]
    pub registry: Vec<u8>,
    /// Until when the ticket holds, by the registry's clock (ms since the Unix epoch).
    pub expires_ms: u64,
    /// The registry's signature.
    #[serde(with = "serde_bytes")]
    pub sig: Vec<u8>,
}

/// Why a ticket is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// A field is out of bounds or undecodable.
    #[error("malformed name ticket: {0}")]
    Malformed(String),
    /// Signed by a registry this node does not trust.
    #[error("the name ticket is from a registry this node does not use")]
    Untrusted,
    /// The registry's signature does not verify.
    #[error("the name ticket's signature is not valid")]
    BadSignature,
    /// The ticket is past its time.
    #[error("the name ticket expired")]
    Expired,
    /// The ticket names another peer than the one presenting it.
    #[error("the name ticket belongs to another peer")]
    NotTheHolder,
    /// The registry could not sign.
    #[error("cannot sign the name ticket: {0}")]
    Signing(String),
}

impl NameTicket {
    /// The registry holding `registry_key` vouches for `record` until `expires_ms`.
    pub fn issue(
        registry_key: &Keypair,
        record: &NameRecord,
        expires_ms: u64,
    ) -> Result<Self, TicketError> {
        let encoded = record.encode();
        let sig = registry_key
            .sign(&signed_bytes(&encoded, expires_ms))
            .map_err(|e| TicketError::Signing(e.to_string()))?;
        Ok(Self {
            name: record.name.clone(),
            record: encoded,
            registry: registry_key.public().to_peer_id().to_bytes(),
            expires_ms,
            sig,
        })
    }

    /// Bounds of every field, checked before anything is decoded.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let bad = |what: &str| Err(DecodeError::Invalid(format!("name ticket: {what}")));
        if self.record.len() > MAX_NAME_RECORD_LEN {
            return bad("the record is too long");
        }
        if self.registry.len() > MAX_REGISTRY_ID_LEN {
            return bad("the registry id is too long");
        }
        if self.sig.len() > MAX_SIGNATURE_LEN {
            return bad("the signature is too long");
        }
        validate_name(&self.name).map_err(|e| DecodeError::Invalid(e.to_string()))
    }

    /// The owner's record, when the ticket is signed by one of `trusted`, holds at `now_ms`
    /// (allowing no more than [`MAX_TICKET_TTL_MS`] ahead, whatever the registry wrote) and
    /// belongs to `holder`.
    pub fn verify(
        &self,
        trusted: &[PeerId],
        holder: &PeerId,
        now_ms: u64,
    ) -> Result<NameRecord, TicketError> {
        self.validate()
            .map_err(|e| TicketError::Malformed(e.to_string()))?;
        let registry = PeerId::from_bytes(&self.registry)
            .map_err(|e| TicketError::Malformed(e.to_string()))?;
        if !trusted.contains(&registry) {
            return Err(TicketError::Untrusted);
        }
        let key = public_key(&registry).ok_or(TicketError::Untrusted)?;
        if !key.verify(&signed_bytes(&self.record, self.expires_ms), &self.sig) {
            return Err(TicketError::BadSignature);
        }
        if self.expires_ms <= now_ms || self.expires_ms - now_ms > MAX_TICKET_TTL_MS {
            return Err(TicketError::Expired);
        }
        let record = NameRecord::decode(&name_key(&self.name), &self.record)
            .map_err(|e| TicketError::Malformed(e.to_string()))?;
        if record.name != self.name {
            return Err(TicketError::Malformed(
                "the record claims another spelling of the name".into(),
            ));
        }
        if record.peer != *holder {
            return Err(TicketError::NotTheHolder);
        }
        Ok(record)
    }
}

/// The canonical bytes a registry signs.
fn signed_bytes(record: &[u8], expires_ms: u64) -> Vec<u8> {
    let fields = (
        SIGNING_DOMAIN,
        PROTOCOL_VERSION,
        serde_bytes::Bytes::new(record),
        expires_ms,
    );
    // Encoding a tuple of plain values into a vector cannot fail.
    serde_cbor::to_vec(&fields).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;
    const DAY: u64 = 24 * 60 * 60 * 1000;

    fn setup() -> (Keypair, Keypair, NameTicket) {
        let registry = Keypair::generate_ed25519();
        let alice = Keypair::generate_ed25519();
        let record = NameRecord::sign(&alice, "alice", NOW).unwrap();
        let ticket = NameTicket::issue(&registry, &record, NOW + DAY).unwrap();
        (registry, alice, ticket)
    }

    fn peer(key: &Keypair) -> PeerId {
        key.public().to_peer_id()
    }

    #[test]
    fn a_ticket_of_a_trusted_registry_confirms_its_holder() {
        let (registry, alice, ticket) = setup();
        let record = ticket
            .verify(&[peer(&registry)], &peer(&alice), NOW)
            .unwrap();
        assert_eq!(record.name, "alice");
        assert_eq!(record.peer, peer(&alice));
    }

    #[test]
    fn a_ticket_is_refused_from_strangers_for_others_and_when_old_or_forged() {
        let (registry, alice, ticket) = setup();
        let trusted = [peer(&registry)];
        let mallory = Keypair::generate_ed25519();
        // A registry of its own, or the ticket of somebody else.
        assert_eq!(
            ticket.verify(&[peer(&mallory)], &peer(&alice), NOW),
            Err(TicketError::Untrusted)
        );
        assert_eq!(
            ticket.verify(&trusted, &peer(&mallory), NOW),
            Err(TicketError::NotTheHolder)
        );
        // Expired, or promising more than the longest life.
        assert_eq!(
            ticket.verify(&trusted, &peer(&alice), NOW + DAY),
            Err(TicketError::Expired)
        );
        let record = NameRecord::sign(&alice, "alice", NOW).unwrap();
        let forever = NameTicket::issue(&registry, &record, NOW + MAX_TICKET_TTL_MS + 1).unwrap();
        assert_eq!(
            forever.verify(&trusted, &peer(&alice), NOW),
            Err(TicketError::Expired)
        );
        // A later expiry, or another name, written over a valid signature.
        let mut stretched = ticket.clone();
        stretched.expires_ms += DAY;
        assert_eq!(
            stretched.verify(&trusted, &peer(&alice), NOW),
            Err(TicketError::BadSignature)
        );
        let mallory_record = NameRecord::sign(&mallory, "alice", NOW).unwrap();
        let mut swapped = ticket.clone();
        swapped.record = mallory_record.encode();
        assert_eq!(
            swapped.verify(&trusted, &peer(&mallory), NOW),
            Err(TicketError::BadSignature)
        );
        let mut renamed = ticket;
        renamed.name = "bob".into();
        assert!(matches!(
            renamed.verify(&trusted, &peer(&alice), NOW),
            Err(TicketError::Malformed(_))
        ));
    }

    #[test]
    fn oversized_fields_are_refused_before_decoding() {
        let (registry, alice, mut ticket) = setup();
        ticket.sig = vec![0; MAX_SIGNATURE_LEN + 1];
        assert!(ticket.validate().is_err());
        assert!(matches!(
            ticket.verify(&[peer(&registry)], &peer(&alice), NOW),
            Err(TicketError::Malformed(_))
        ));
        let (_, _, mut ticket) = setup();
        ticket.record = vec![0; MAX_NAME_RECORD_LEN + 1];
        assert!(ticket.validate().is_err());
        let (_, _, mut ticket) = setup();
        ticket.registry = vec![0; 65];
        assert!(ticket.validate().is_err());
    }
}
