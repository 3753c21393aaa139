//! The bootstrap's name registry over `/ipm/registry/1`: a node registers its name (or logs in
//! with it) by sending its signed [`NameRecord`]; anyone may look a name up or ask who is
//! online at the bootstrap.
//!
//! The registry keeps the first claim of a name (compared in lowercase, as DHT keys are) and
//! binds it to the claimant's key: a later run of the same key logs in, another key is refused
//! with [`RegistryError::Taken`]. Answers carry the owners' signed records, so a node checks
//! every signature itself and trusts the bootstrap only for who came first.

use serde::{Deserialize, Serialize};

use crate::envelope::Payload;
use crate::error::DecodeError;
use crate::limits::{MAX_NAME_RECORD_LEN, MAX_ONLINE_LISTED};
use crate::name::validate_name;
use crate::name_record::{name_key, NameRecord};
use crate::name_ticket::NameTicket;
use crate::text::validate_reason;

/// Request-response protocol name of the registry.
pub const REGISTRY_PROTOCOL: &str = "/ipm/registry/1";

/// Largest encoded peer id accepted (an ed25519 peer id is 38 bytes).
const MAX_PEER_ID_LEN: usize = 64;

/// A signed name record as it travels in the registry protocol (the DHT encoding).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedName {
    /// The claimed name, exactly as registered.
    pub name: String,
    /// [`NameRecord::encode`] of the claim.
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

impl SignedName {
    /// The wire form of a verified record.
    pub fn new(record: &NameRecord) -> Self {
        Self {
            name: record.name.clone(),
            record: record.encode(),
        }
    }

    /// Decodes and verifies the record: signature, key, and that it claims `name` exactly.
    pub fn verify(&self) -> Result<NameRecord, DecodeError> {
        if self.record.len() > MAX_NAME_RECORD_LEN {
            return Err(DecodeError::Invalid(format!(
                "a name record is at most {MAX_NAME_RECORD_LEN} bytes"
            )));
        }
        validate_name(&self.name).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        let record = NameRecord::decode(&name_key(&self.name), &self.record)
            .map_err(|e| DecodeError::Invalid(e.to_string()))?;
        if record.name != self.name {
            return Err(DecodeError::Invalid(
                "the record claims another spelling of the name".into(),
            ));
        }
        Ok(record)
    }
}

/// What a peer asks the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryRequest {
    /// Register this name to me, or log me in with it when it already is mine. The record
    /// must be signed by the requester's own key. A key holds one name: registering another
    /// frees the previous one.
    Register(SignedName),
    /// Who holds this name?
    Lookup {
        /// The name (any case).
        name: String,
    },
    /// Who is online at the bootstrap (logged in and connected), at most `max` of them.
    Online {
        /// 1..=[`MAX_ONLINE_LISTED`].
        max: u16,
    },
}

/// Why the registry refused a registration: the one error type of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegistryError {
    /// Another key registered the name first.
    #[error("the name \"{name}\" is registered to another user")]
    Taken {
        /// The name asked for.
        name: String,
        /// The holder's peer id, as bytes.
        #[serde(with = "serde_bytes")]
        owner: Vec<u8>,
    },
    /// The registry holds as many names as it may.
    #[error("the registry is full")]
    Full,
    /// The request breaks a rule (a record of another key, from the future, ...), or the
    /// registry could not store it.
    #[error("{0}")]
    Refused(String),
}

/// The registry's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryResponse {
    /// The name is registered to the requester; `new` is false for a login (it already was).
    Registered {
        /// Whether this request registered the name for the first time.
        new: bool,
        /// The registry's ticket for the name, to put in presence announcements (a
        /// registry of an older release gives none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket: Option<NameTicket>,
    },
    /// The registration was refused.
    Refused(RegistryError),
    /// The holder of a looked-up name, if anyone holds it.
    Owner(Option<SignedName>),
    /// Users online at the bootstrap, with their registered names.
    Online {
        /// Their signed records.
        users: Vec<SignedName>,
        /// Whether more are online than listed.
        more: bool,
    },
}

impl Payload for RegistryRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            RegistryRequest::Register(signed) => signed.verify().map(|_| ()),
            RegistryRequest::Lookup { name } => {
                validate_name(name).map_err(|e| DecodeError::Invalid(e.to_string()))
            }
            RegistryRequest::Online { max }
                if *max == 0 || usize::from(*max) > MAX_ONLINE_LISTED =>
            {
                Err(DecodeError::Invalid(format!(
                    "an online listing asks for 1..={MAX_ONLINE_LISTED} users"
                )))
            }
            RegistryRequest::Online { .. } => Ok(()),
        }
    }
}

impl Payload for RegistryResponse {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            RegistryResponse::Registered { ticket, .. } => {
                ticket.as_ref().map_or(Ok(()), NameTicket::validate)
            }
            RegistryResponse::Owner(None) => Ok(()),
            RegistryResponse::Refused(RegistryError::Taken { name, owner }) => {
                validate_name(name).map_err(|e| DecodeError::Invalid(e.to_string()))?;
                if owner.is_empty() || owner.len() > MAX_PEER_ID_LEN {
                    return Err(DecodeError::Invalid("the owner is not a peer id".into()));
                }
                Ok(())
            }
            RegistryResponse::Refused(RegistryError::Full) => Ok(()),
            RegistryResponse::Refused(RegistryError::Refused(reason)) => validate_reason(reason),
            RegistryResponse::Owner(Some(signed)) => signed.verify().map(|_| ()),
            RegistryResponse::Online { users, .. } => {
                if users.len() > MAX_ONLINE_LISTED {
                    return Err(DecodeError::Invalid(format!(
                        "at most {MAX_ONLINE_LISTED} users per listing"
                    )));
                }
                users.iter().try_for_each(|u| u.verify().map(|_| ()))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use crate::limits::{MAX_NAME_LEN, MAX_REGISTRY_REQUEST_LEN, MAX_REGISTRY_RESPONSE_LEN};
    use libp2p_identity::Keypair;
    use proptest::prelude::*;

    const T: u64 = 1_700_000_000_000;

    fn signed(seed: u8, name: &str) -> SignedName {
        let key = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
        SignedName::new(&NameRecord::sign(&key, name, T).unwrap())
    }

    #[test]
    fn round_trips_and_the_largest_fit_their_limits() {
        let long = "x".repeat(MAX_NAME_LEN);
        let register = RegistryRequest::Register(signed(1, &long));
        let bytes = encode(&register);
        assert!(bytes.len() <= MAX_REGISTRY_REQUEST_LEN);
        assert_eq!(
            decode::<RegistryRequest>(&bytes, MAX_REGISTRY_REQUEST_LEN).unwrap(),
            register
        );
        let full = RegistryResponse::Online {
            users: (0..MAX_ONLINE_LISTED).map(|_| signed(2, &long)).collect(),
            more: true,
        };
        let bytes = encode(&full);
        assert!(bytes.len() <= MAX_REGISTRY_RESPONSE_LEN);
        assert_eq!(
            decode::<RegistryResponse>(&bytes, MAX_REGISTRY_RESPONSE_LEN).unwrap(),
            full
        );
        let taken = RegistryResponse::Refused(RegistryError::Taken {
            name: "alice".into(),
            owner: vec![1; 38],
        });
        assert_eq!(
            decode::<RegistryResponse>(&encode(&taken), MAX_REGISTRY_RESPONSE_LEN).unwrap(),
            taken
        );
        let record = signed(3, "Bob").verify().unwrap();
        assert_eq!(record.name, "Bob");
    }

    #[test]
    fn forged_or_out_of_bounds_payloads_are_refused() {
        let mut forged = signed(1, "alice");
        forged.name = "mallory".into();
        let mut respelled = signed(1, "alice");
        respelled.name = "ALICE".into();
        let mut flipped = signed(1, "alice");
        let last = flipped.record.len() - 1;
        flipped.record[last] ^= 1;
        let mut huge = signed(1, "alice");
        huge.record = vec![0; MAX_NAME_RECORD_LEN + 1];
        for request in [
            RegistryRequest::Register(forged),
            RegistryRequest::Register(respelled),
            RegistryRequest::Register(flipped.clone()),
            RegistryRequest::Register(huge),
            RegistryRequest::Lookup { name: "".into() },
            RegistryRequest::Lookup { name: "a b".into() },
            RegistryRequest::Online { max: 0 },
            RegistryRequest::Online {
                max: MAX_ONLINE_LISTED as u16 + 1,
            },
        ] {
            assert!(
                decode::<RegistryRequest>(&encode(&request), usize::MAX).is_err(),
                "{request:?}"
            );
        }
        for response in [
            RegistryResponse::Owner(Some(flipped.clone())),
            RegistryResponse::Online {
                users: vec![flipped],
                more: false,
            },
            RegistryResponse::Online {
                users: vec![signed(1, "a"); MAX_ONLINE_LISTED + 1],
                more: false,
            },
            RegistryResponse::Refused(RegistryError::Taken {
                name: "alice".into(),
                owner: vec![],
            }),
            RegistryResponse::Refused(RegistryError::Refused("x".repeat(1000))),
        ] {
            assert!(
                decode::<RegistryResponse>(&encode(&response), usize::MAX).is_err(),
                "{response:?}"
            );
        }
        let register = encode(&RegistryRequest::Register(signed(1, "alice")));
        assert!(matches!(
            decode::<RegistryRequest>(&register, register.len() - 1),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn refusals_read_as_one_line() {
        let taken = RegistryError::Taken {
            name: "alice".into(),
            owner: vec![1],
        };
        assert_eq!(
            taken.to_string(),
            "the name \"alice\" is registered to another user"
        );
        assert_eq!(RegistryError::Full.to_string(), "the registry is full");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<RegistryRequest>(&bytes, MAX_REGISTRY_REQUEST_LEN);
            let _ = decode::<RegistryResponse>(&bytes, MAX_REGISTRY_RESPONSE_LEN);
        }

        #[test]
        fn every_valid_name_round_trips(name in "[a-zA-Z0-9_.-]{1,32}", seed in 1u8..200) {
            let request = RegistryRequest::Register(signed(seed, &name));
            let decoded = decode::<RegistryRequest>(&encode(&request), MAX_REGISTRY_REQUEST_LEN);
            prop_assert_eq!(decoded.unwrap(), request);
        }
    }
}
