//! Presence announcements: who is online, in which rooms, roughly where, and whether away.
//!
//! Every node publishes a [`Presence`] on the presence topic
//! ([`crate::room::presence_topic`]) at a modest interval; peers that stay
//! silent for a while are considered offline.

use serde::{Deserialize, Serialize};

use crate::error::{shown, DecodeError};
use crate::geo::is_geohash;
use crate::limits::{
    MAX_AWAY_LEN, MAX_PRESENCE_EVERY_MS, MAX_PRESENCE_ROOMS, WIRE_GEOHASH_PRECISION,
};
use crate::name::validate_name;
use crate::name_ticket::NameTicket;
use crate::room::{normalize_tag, Room};
use crate::stamp::{MessageId, Stamp};

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
    /// The registry's ticket for `name`, when the sender holds one: peers that trust the
    /// registry confirm the name from it without a lookup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<NameTicket>,
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
        Presence::with_stamp(name, rooms, geo, group, away, Stamp::fresh())
    }

    /// An announcement with the id and send time of `stamp`; the same
    /// arguments always give the same announcement. Nothing is checked here.
    pub fn with_stamp(
        name: &str,
        rooms: Vec<Room>,
        geo: Option<String>,
        group: Option<String>,
        away: Option<String>,
        stamp: Stamp,
    ) -> Presence {
        Presence {
            id: stamp.id,
            name: name.to_string(),
            rooms,
            geo,
            group,
            away,
            sent_ms: stamp.sent_ms,
            every_ms: None,
            leaving: false,
            ticket: None,
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
        if let Some(ticket) = &self.ticket {
            ticket.validate()?;
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
    //! Presence in the gossip envelope is tested in `tests/presence_gossip.rs`.

    use super::*;

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
            ticket: None,
        }
    }

    #[test]
    fn stamped_announcements_are_deterministic() {
        let stamp = Stamp::new(MessageId::from_bytes([3; 16]), 1_700_000_000_000);
        let build = |stamp| {
            Presence::with_stamp(
                "alice",
                sample().rooms,
                Some("u09tvw".into()),
                Some("u09t".into()),
                Some("lunch, back at 2".into()),
                stamp,
            )
        };
        let a = Presence {
            every_ms: Some(25_000),
            ..build(stamp)
        };
        assert_eq!(a, sample());
        let cbor = |p: &Presence| serde_cbor::to_vec(p).unwrap();
        assert_eq!(cbor(&build(stamp)), cbor(&build(stamp)));
        let later = Stamp::new(stamp.id, stamp.sent_ms + 1);
        assert_ne!(cbor(&build(stamp)), cbor(&build(later)));
        let fresh = Presence::new("alice", vec![], None, None, None);
        assert!(fresh.sent_ms > 1_600_000_000_000 && !fresh.leaving);
        assert_eq!(fresh.every_ms, None);
    }
}
