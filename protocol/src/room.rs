//! Rooms: the lobby, geographic rooms and interest rooms, with their user
//! syntax, gossipsub topic names and file-name-safe slugs.

use std::fmt;
use std::str::FromStr;

use crate::error::shown;
use crate::geo::is_geohash;
use crate::limits::{MAX_GEOHASH_LEN, MAX_TAG_LEN, PROTOCOL_VERSION};

/// A chat room. Each room maps to exactly one gossipsub topic.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Room {
    /// The global room every peer can join.
    Lobby,
    /// A geographic room for one geohash cell (lowercase, valid alphabet).
    Geo(String),
    /// An interest room for one normalised tag (see [`normalize_tag`]).
    Interest(String),
}

/// Why a room, tag or topic was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// Nothing was given.
    #[error("no room given: use lobby, geo:<geohash> or interest:<tag>")]
    Empty,
    /// The room kind before the `:` is not known.
    #[error("unknown room kind '{}': use lobby, geo:<geohash> or interest:<tag>", shown(.0))]
    UnknownKind(String),
    /// The geohash of a geographic room is not valid.
    #[error(
        "bad geohash '{}': use 1 to {MAX_GEOHASH_LEN} characters from 0-9 and b-z except i, l and o",
        shown(.0)
    )]
    BadGeohash(String),
    /// The interest tag is empty or contains a character that is not allowed.
    #[error(
        "bad interest tag '{}': use letters and digits, words joined by '-' (spaces and '_' become '-')",
        shown(.0)
    )]
    BadTag(String),
    /// The normalised interest tag is too long.
    #[error("interest tag is {len} bytes long, at most {max} are allowed")]
    TagTooLong {
        /// Length of the normalised tag, in bytes.
        len: usize,
        /// Maximum length, in bytes.
        max: usize,
    },
    /// The topic name is not the topic of an ipm room.
    #[error(
        "'{}' is not an ipm room topic: expected /ipm/{PROTOCOL_VERSION}/lobby, /ipm/{PROTOCOL_VERSION}/geo/<geohash> or /ipm/{PROTOCOL_VERSION}/interest/<tag>",
        shown(.0)
    )]
    NotIpmTopic(String),
}

/// Normalises a user-typed interest tag.
///
/// The input is trimmed, a single leading `#` is dropped, letters are
/// lowercased, every run of whitespace, `_` and `-` becomes one `-`, and
/// leading or trailing `-` are removed. What remains must be made of Unicode
/// letters, digits and `-`, and be 1 to [`MAX_TAG_LEN`] bytes long.
///
/// `"  #Rust  Lang_"` becomes `"rust-lang"`.
pub fn normalize_tag(raw: &str) -> Result<String, RoomError> {
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_prefix('#').unwrap_or(trimmed);
    let mut out = String::with_capacity(trimmed.len().min(MAX_TAG_LEN * 4));
    let mut pending_dash = false;
    for c in trimmed.chars().flat_map(char::to_lowercase) {
        if c.is_whitespace() || c == '_' || c == '-' {
            pending_dash = true;
            continue;
        }
        if !c.is_alphanumeric() {
            return Err(RoomError::BadTag(raw.to_string()));
        }
        if pending_dash && !out.is_empty() {
            out.push('-');
        }
        pending_dash = false;
        out.push(c);
    }
    if out.is_empty() {
        return Err(RoomError::BadTag(raw.to_string()));
    }
    if out.len() > MAX_TAG_LEN {
        return Err(RoomError::TagTooLong {
            len: out.len(),
            max: MAX_TAG_LEN,
        });
    }
    Ok(out)
}

/// Prefix shared by every ipm room topic, e.g. `/ipm/1/`.
fn topic_prefix() -> String {
    format!("/ipm/{PROTOCOL_VERSION}/")
}

/// The gossipsub topic every node subscribes to for presence announcements:
/// `/ipm/1/presence`. It is not a room: [`Room::from_topic`] refuses it.
pub fn presence_topic() -> String {
    format!("{}presence", topic_prefix())
}

impl Room {
    /// A geographic room for the cell `hash`: 1 to [`MAX_GEOHASH_LEN`]
    /// characters of the geohash alphabet, in any case (stored lowercase).
    pub fn geo(hash: &str) -> Result<Room, RoomError> {
        if hash.len() > MAX_GEOHASH_LEN {
            return Err(RoomError::BadGeohash(hash.to_string()));
        }
        let lower = hash.to_ascii_lowercase();
        if is_geohash(&lower) {
            Ok(Room::Geo(lower))
        } else {
            Err(RoomError::BadGeohash(hash.to_string()))
        }
    }

    /// An interest room for `tag`, stored as [`normalize_tag`]`(tag)`.
    pub fn interest(tag: &str) -> Result<Room, RoomError> {
        normalize_tag(tag).map(Room::Interest)
    }

    /// The gossipsub topic of this room: `/ipm/1/lobby`, `/ipm/1/geo/<hash>`
    /// or `/ipm/1/interest/<tag>`.
    pub fn topic(&self) -> String {
        let prefix = topic_prefix();
        match self {
            Room::Lobby => format!("{prefix}lobby"),
            Room::Geo(hash) => format!("{prefix}geo/{hash}"),
            Room::Interest(tag) => format!("{prefix}interest/{tag}"),
        }
    }

    /// The room whose [`topic`](Room::topic) is exactly `topic`.
    ///
    /// Only canonical topics are accepted (lowercase geohash, normalised
    /// tag), so every room has exactly one topic and vice versa.
    pub fn from_topic(topic: &str) -> Result<Room, RoomError> {
        let not_ipm = || RoomError::NotIpmTopic(topic.to_string());
        let rest = topic.strip_prefix(&topic_prefix()).ok_or_else(not_ipm)?;
        if rest == "lobby" {
            return Ok(Room::Lobby);
        }
        if let Some(hash) = rest.strip_prefix("geo/") {
            if is_geohash(hash) {
                return Ok(Room::Geo(hash.to_string()));
            }
            return Err(RoomError::BadGeohash(hash.to_string()));
        }
        if let Some(tag) = rest.strip_prefix("interest/") {
            return match normalize_tag(tag) {
                Ok(normal) if normal == tag => Ok(Room::Interest(normal)),
                Ok(_) => Err(RoomError::BadTag(tag.to_string())),
                Err(e) => Err(e),
            };
        }
        Err(not_ipm())
    }

    /// Parses the user syntax: `lobby`, `geo:<geohash>` or `interest:<tag>`.
    ///
    /// Surrounding whitespace is ignored and the kind is case-insensitive.
    pub fn parse(s: &str) -> Result<Room, RoomError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(RoomError::Empty);
        }
        match s.split_once(':') {
            None if s.eq_ignore_ascii_case("lobby") => Ok(Room::Lobby),
            None => Err(RoomError::UnknownKind(s.to_string())),
            Some((kind, rest)) => {
                let kind = kind.trim();
                if kind.eq_ignore_ascii_case("geo") {
                    Room::geo(rest.trim())
                } else if kind.eq_ignore_ascii_case("interest") {
                    Room::interest(rest)
                } else {
                    Err(RoomError::UnknownKind(kind.to_string()))
                }
            }
        }
    }

    /// A file-name-safe name for this room: `lobby`, `geo-<hash>` or
    /// `interest-<tag>`.
    pub fn slug(&self) -> String {
        match self {
            Room::Lobby => "lobby".to_string(),
            Room::Geo(hash) => format!("geo-{hash}"),
            Room::Interest(tag) => format!("interest-{tag}"),
        }
    }
}

impl fmt::Display for Room {
    /// The user syntax: `lobby`, `geo:u09tv`, `interest:rust`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Room::Lobby => f.write_str("lobby"),
            Room::Geo(hash) => write!(f, "geo:{hash}"),
            Room::Interest(tag) => write!(f, "interest:{tag}"),
        }
    }
}

impl FromStr for Room {
    type Err = RoomError;

    fn from_str(s: &str) -> Result<Room, RoomError> {
        Room::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn presence_topic_is_not_a_room() {
        assert_eq!(presence_topic(), "/ipm/1/presence");
        assert!(matches!(
            Room::from_topic(&presence_topic()),
            Err(RoomError::NotIpmTopic(_))
        ));
    }

    #[test]
    fn topics() {
        assert_eq!(Room::Lobby.topic(), "/ipm/1/lobby");
        assert_eq!(Room::geo("U09TV").unwrap().topic(), "/ipm/1/geo/u09tv");
        assert_eq!(
            Room::interest("Rust").unwrap().topic(),
            "/ipm/1/interest/rust"
        );
    }

    #[test]
    fn from_topic_inverse_and_strict() {
        for t in [
            "/ipm/1/lobby",
            "/ipm/1/geo/u09tv",
            "/ipm/1/interest/rust-lang",
        ] {
            assert_eq!(Room::from_topic(t).unwrap().topic(), t);
        }
        assert_eq!(
            Room::from_topic("/ipm/1/interest/émile").unwrap(),
            Room::Interest("émile".into())
        );
        for t in [
            "",
            "/ipm/2/lobby",
            "/ipm/1/lobby/",
            "/ipm/1/other/x",
            "ipm/1/lobby",
            "/ipm/1/",
        ] {
            assert!(
                matches!(Room::from_topic(t), Err(RoomError::NotIpmTopic(_))),
                "{t}"
            );
        }
        assert_eq!(
            Room::from_topic("/ipm/1/geo/U09TV"),
            Err(RoomError::BadGeohash("U09TV".into()))
        );
        assert_eq!(
            Room::from_topic("/ipm/1/geo/"),
            Err(RoomError::BadGeohash(String::new()))
        );
        assert_eq!(
            Room::from_topic("/ipm/1/interest/Rust"),
            Err(RoomError::BadTag("Rust".into()))
        );
        assert_eq!(
            Room::from_topic("/ipm/1/interest/a/b"),
            Err(RoomError::BadTag("a/b".into()))
        );
        assert!(matches!(
            Room::from_topic(&format!("/ipm/1/interest/{}", "a".repeat(40))),
            Err(RoomError::TagTooLong { len: 40, max: 32 })
        ));
    }

    #[test]
    fn parse_user_syntax() {
        assert_eq!(Room::parse("lobby").unwrap(), Room::Lobby);
        assert_eq!(Room::parse("  LOBBY ").unwrap(), Room::Lobby);
        assert_eq!(Room::parse("geo:u09tv").unwrap(), Room::Geo("u09tv".into()));
        assert_eq!(
            Room::parse("GEO: U09Tv ").unwrap(),
            Room::Geo("u09tv".into())
        );
        assert_eq!(
            Room::parse("Interest:#Rust Lang").unwrap(),
            Room::Interest("rust-lang".into())
        );
        assert_eq!(
            "interest:rust".parse::<Room>().unwrap(),
            Room::Interest("rust".into())
        );
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Room::parse(""), Err(RoomError::Empty));
        assert_eq!(Room::parse("   "), Err(RoomError::Empty));
        assert_eq!(
            Room::parse("foo"),
            Err(RoomError::UnknownKind("foo".into()))
        );
        assert_eq!(
            Room::parse("foo:bar"),
            Err(RoomError::UnknownKind("foo".into()))
        );
        assert_eq!(
            Room::parse("geo:abc"),
            Err(RoomError::BadGeohash("abc".into()))
        );
        assert_eq!(
            Room::parse("geo:"),
            Err(RoomError::BadGeohash(String::new()))
        );
        assert_eq!(
            Room::parse("geo:u09tvu09tvu09tv"),
            Err(RoomError::BadGeohash("u09tvu09tvu09tv".into()))
        );
        assert_eq!(
            Room::parse("interest:"),
            Err(RoomError::BadTag(String::new()))
        );
        assert_eq!(
            Room::parse("interest:c++"),
            Err(RoomError::BadTag("c++".into()))
        );
    }

    #[test]
    fn display_and_slug() {
        assert_eq!(Room::Lobby.to_string(), "lobby");
        assert_eq!(Room::Geo("u09tv".into()).to_string(), "geo:u09tv");
        assert_eq!(Room::Interest("rust".into()).to_string(), "interest:rust");
        assert_eq!(Room::Lobby.slug(), "lobby");
        assert_eq!(Room::Geo("u09tv".into()).slug(), "geo-u09tv");
        assert_eq!(Room::Interest("rust".into()).slug(), "interest-rust");
    }

    #[test]
    fn normalize_tag_rules() {
        assert_eq!(normalize_tag("rust").unwrap(), "rust");
        assert_eq!(normalize_tag("  #Rust  Lang_").unwrap(), "rust-lang");
        assert_eq!(normalize_tag("a__b--c \t d").unwrap(), "a-b-c-d");
        assert_eq!(normalize_tag("-_-x-_-").unwrap(), "x");
        assert_eq!(normalize_tag("Émile").unwrap(), "émile");
        assert_eq!(normalize_tag("日本").unwrap(), "日本");
        assert_eq!(normalize_tag("# rust").unwrap(), "rust");
        assert_eq!(
            normalize_tag(&"a".repeat(MAX_TAG_LEN)).unwrap().len(),
            MAX_TAG_LEN
        );
        for bad in [
            "", "   ", "#", "---", "##rust", "a/b", "a:b", "a.b", "a#b", "a\u{0}b",
        ] {
            assert!(
                matches!(normalize_tag(bad), Err(RoomError::BadTag(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            normalize_tag(&"a".repeat(MAX_TAG_LEN + 1)),
            Err(RoomError::TagTooLong {
                len: MAX_TAG_LEN + 1,
                max: MAX_TAG_LEN
            })
        );
    }

    #[test]
    fn error_messages_are_one_line() {
        let errors = [
            RoomError::Empty,
            RoomError::UnknownKind("foo\nbar".into()),
            RoomError::BadGeohash("a\r".into()),
            RoomError::BadTag("x\u{1b}[2J".into()),
            RoomError::TagTooLong { len: 40, max: 32 },
            RoomError::NotIpmTopic("x".repeat(10_000)),
        ];
        for e in errors {
            let msg = e.to_string();
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            assert!(msg.len() < 400, "{msg}");
        }
        assert_eq!(
            RoomError::UnknownKind("foo".into()).to_string(),
            "unknown room kind 'foo': use lobby, geo:<geohash> or interest:<tag>"
        );
    }

    fn arb_room() -> impl Strategy<Value = Room> {
        prop_oneof![
            Just(Room::Lobby),
            "[0-9bcdefghjkmnpqrstuvwxyz]{1,12}".prop_map(Room::Geo),
            "[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}".prop_map(Room::Interest),
        ]
    }

    proptest! {
        #[test]
        fn topic_round_trip(room in arb_room()) {
            prop_assert_eq!(Room::from_topic(&room.topic()).unwrap(), room);
        }

        #[test]
        fn display_parse_round_trip(room in arb_room()) {
            prop_assert_eq!(Room::parse(&room.to_string()).unwrap(), room.clone());
            prop_assert_eq!(room.to_string().parse::<Room>().unwrap(), room);
        }

        #[test]
        fn from_topic_never_panics(s in any::<String>()) {
            if let Ok(room) = Room::from_topic(&s) {
                prop_assert_eq!(room.topic(), s);
            }
        }

        #[test]
        fn parse_never_panics_and_is_canonical(s in any::<String>()) {
            if let Ok(room) = Room::parse(&s) {
                prop_assert_eq!(Room::from_topic(&room.topic()).unwrap(), room);
            }
        }

        #[test]
        fn normalize_tag_is_idempotent(s in any::<String>()) {
            if let Ok(tag) = normalize_tag(&s) {
                prop_assert!(tag.len() <= MAX_TAG_LEN && !tag.is_empty());
                prop_assert!(!tag.starts_with('-') && !tag.ends_with('-'));
                prop_assert!(!tag.contains("--"));
                prop_assert_eq!(normalize_tag(&tag).unwrap(), tag);
            }
        }
    }
}
