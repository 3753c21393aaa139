//! Presence announcements: who is online, in which rooms, roughly where, and whether away.
//!
//! Every node publishes a [`Presence`] on the presence topic
//! ([`crate::room::presence_topic`]) at a modest interval; peers that stay
//! silent for a while are considered offline.

use serde::{Deserialize, Serialize};

use crate::geo::is_geohash;
use crate::limits::{
    MAX_AWAY_LEN, MAX_PRESENCE_EVERY_MS, MAX_PRESENCE_ROOMS, WIRE_GEOHASH_PRECISION,
};
use crate::message::{now_ms, DecodeError, MessageId};
use crate::name::validate_name;
use crate::room::{normalize_tag, shown, Room};

/// One node's announcement of itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// Unique id of this announcement.
    pub id: MessageId,
    /// The sender's claimed display name (see [`validate_name`]).
    pub name: String,
    /// The rooms the sender has joined, at most [`MAX_PRESENCE_ROOMS`].
    pub rooms: Vec<Room>,
    /// The sender's coarse position: a lowercase geohash of at most
    /// [`WIRE_GEOHASH_PRECISION`] characters, when it has set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<String>,
    /// The cell of the sender's location group (the room its group lines go
    /// to), when it is in one; at most [`WIRE_GEOHASH_PRECISION`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The sender's away text, when it is away: 1 to [`MAX_AWAY_LEN`] bytes
    /// without control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away: Option<String>,
    /// When it was sent, by the sender's clock (ms since the Unix epoch).
    pub sent_ms: u64,
    /// The longest the sender will wait before announcing itself again, 1 to
    /// [`MAX_PRESENCE_EVERY_MS`] ms. Large overlays stretch it; peers stretch the
    /// silence after which the sender counts as offline by as much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_ms: Option<u32>,
    /// The sender is shutting down: it is offline from now on, until it announces itself
    /// again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub leaving: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

impl Presence {
    /// An announcement with a fresh id, sent now. Nothing is checked here:
    /// call [`Presence::validate`].
    pub fn new(
        name: &str,
        rooms: Vec<Room>,
        geo: Option<String>,
        group: Option<String>,
        away: Option<String>,
    ) -> Presence {
        Presence {
            id: MessageId::random(),
            name: name.to_string(),
            rooms,
            geo,
            group,
            away,
            sent_ms: now_ms(),
            every_ms: None,
            leaving: false,
        }
    }

    /// Checks every rule a receiver enforces: a valid name, at most
    /// [`MAX_PRESENCE_ROOMS`] canonical rooms, coarse geohashes only, and a
    /// valid away text.
    pub fn validate(&self) -> Result<(), DecodeError> {
        validate_name(&self.name).map_err(|e| DecodeError::Invalid(format!("name: {e}")))?;
        if self.rooms.len() > MAX_PRESENCE_ROOMS {
            return Err(DecodeError::Invalid(format!(
                "{} rooms listed, at most {MAX_PRESENCE_ROOMS} are allowed",
                self.rooms.len()
            )));
        }
        for room in &self.rooms {
            let canonical = match room {
                Room::Lobby => true,
                Room::Geo(hash) => is_geohash(hash),
                Room::Interest(tag) => normalize_tag(tag).as_deref() == Ok(tag.as_str()),
            };
            if !canonical {
                return Err(DecodeError::Invalid(format!(
                    "room '{}'",
                    shown(&room.to_string())
                )));
            }
        }
        for (field, value) in [("geo", &self.geo), ("group", &self.group)] {
            if let Some(hash) = value {
                if hash.len() > WIRE_GEOHASH_PRECISION || !is_geohash(hash) {
                    return Err(DecodeError::Invalid(format!(
                        "{field} '{}' is not a lowercase geohash of 1 to {WIRE_GEOHASH_PRECISION} characters",
                        shown(hash)
                    )));
                }
            }
        }
        if let Some(away) = &self.away {
            validate_away(away)?;
        }
        if let Some(every) = self.every_ms {
            if every == 0 || every > MAX_PRESENCE_EVERY_MS {
                return Err(DecodeError::Invalid(format!(
                    "announcement interval of {every} ms, 1 to {MAX_PRESENCE_EVERY_MS} are allowed"
                )));
            }
        }
        Ok(())
    }
}

/// Checks an away text: 1 to [`MAX_AWAY_LEN`] bytes, no control characters
/// (so that it always shows on one line).
pub fn validate_away(text: &str) -> Result<(), DecodeError> {
    if text.is_empty() {
        return Err(DecodeError::Invalid("away text is empty".to_string()));
    }
    if text.len() > MAX_AWAY_LEN {
        return Err(DecodeError::Invalid(format!(
            "away text is {} bytes, at most {MAX_AWAY_LEN} are allowed",
            text.len()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(DecodeError::Invalid(
            "away text contains a control character".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::limits::MAX_GOSSIP_LEN;
    use crate::message::{decode_gossip, encode_gossip, Gossip};
    use proptest::prelude::*;

    fn sample() -> Presence {
        Presence {
            id: MessageId::from_bytes([3; 16]),
            name: "alice".into(),
            rooms: vec![
                Room::Lobby,
                Room::Geo("u09t".into()),
                Room::Interest("rust-lang".into()),
            ],
            geo: Some("u09tvw".into()),
            group: Some("u09t".into()),
            away: Some("lunch, back at 2".into()),
            sent_ms: 1_700_000_000_000,
            every_ms: Some(25_000),
            leaving: false,
        }
    }

    #[test]
    fn round_trip_in_the_gossip_envelope() {
        let g = Gossip::Presence(sample());
        assert_eq!(decode_gossip(&encode_gossip(&g)).unwrap(), g);
        let bare = Presence::new("bob", vec![], None, None, None);
        bare.validate().unwrap();
        let g = Gossip::Presence(bare);
        assert_eq!(decode_gossip(&encode_gossip(&g)).unwrap(), g);
        let leaving = Gossip::Presence(Presence {
            leaving: true,
            ..sample()
        });
        assert_eq!(decode_gossip(&encode_gossip(&leaving)).unwrap(), leaving);
    }

    #[test]
    fn largest_valid_presence_fits() {
        let p = Presence {
            name: "n".repeat(32),
            every_ms: Some(MAX_PRESENCE_EVERY_MS),
            rooms: (0..MAX_PRESENCE_ROOMS)
                .map(|i| Room::Interest(format!("{i}{}", "t".repeat(30))))
                .collect(),
            away: Some("é".repeat(MAX_AWAY_LEN / 2)),
            ..sample()
        };
        p.validate().unwrap();
        assert!(encode_gossip(&Gossip::Presence(p)).len() <= MAX_GOSSIP_LEN);
    }

    #[test]
    fn every_rule_is_enforced() {
        let cases: Vec<(&str, Presence)> = vec![
            (
                "bad name",
                Presence {
                    name: "a b".into(),
                    ..sample()
                },
            ),
            (
                "too many rooms",
                Presence {
                    rooms: vec![Room::Lobby; MAX_PRESENCE_ROOMS + 1],
                    ..sample()
                },
            ),
            (
                "bad geo room",
                Presence {
                    rooms: vec![Room::Geo("ai".into())],
                    ..sample()
                },
            ),
            (
                "tag not normalised",
                Presence {
                    rooms: vec![Room::Interest("Rust".into())],
                    ..sample()
                },
            ),
            (
                "fine geo",
                Presence {
                    geo: Some("u09tvwx".into()),
                    ..sample()
                },
            ),
            (
                "uppercase geo",
                Presence {
                    geo: Some("U09T".into()),
                    ..sample()
                },
            ),
            (
                "fine group",
                Presence {
                    group: Some("u09tvwx".into()),
                    ..sample()
                },
            ),
            (
                "empty away",
                Presence {
                    away: Some(String::new()),
                    ..sample()
                },
            ),
            (
                "away with newline",
                Presence {
                    away: Some("a\nb".into()),
                    ..sample()
                },
            ),
            (
                "long away",
                Presence {
                    away: Some("x".repeat(MAX_AWAY_LEN + 1)),
                    ..sample()
                },
            ),
            (
                "no pause",
                Presence {
                    every_ms: Some(0),
                    ..sample()
                },
            ),
            (
                "pause too long",
                Presence {
                    every_ms: Some(MAX_PRESENCE_EVERY_MS + 1),
                    ..sample()
                },
            ),
        ];
        for (what, p) in cases {
            assert!(
                matches!(p.validate(), Err(DecodeError::Invalid(_))),
                "{what} was accepted"
            );
            let bytes = encode_gossip(&Gossip::Presence(p));
            assert!(decode_gossip(&bytes).is_err(), "{what} decoded");
        }
    }

    proptest! {
        #[test]
        fn damaged_presence_never_panics(
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut bytes = encode_gossip(&Gossip::Presence(sample()));
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            let _ = decode_gossip(&bytes);
            let end = cut.index(bytes.len());
            prop_assert!(decode_gossip(&bytes[..end]).is_err());
        }
    }
}
