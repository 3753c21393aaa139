//! Every size and range limit of the ipm protocol, in one place.

/// Version of the wire protocol. It is carried in every gossip envelope and
/// in every gossipsub topic name (`/ipm/<version>/...`).
pub const PROTOCOL_VERSION: u16 = 1;

/// Maximum length of a user name, in bytes (UTF-8).
pub const MAX_NAME_LEN: usize = 32;

/// Maximum length of a normalised interest tag, in bytes (UTF-8).
pub const MAX_TAG_LEN: usize = 32;

/// Maximum length of a geohash (the `geohash` encoding supports 12 characters).
pub const MAX_GEOHASH_LEN: usize = 12;

/// Maximum length of the text of one chat message, in bytes (UTF-8).
pub const MAX_TEXT_LEN: usize = 4096;

/// Maximum length of an encoded gossip payload, in bytes. Larger payloads are
/// rejected before any parsing.
pub const MAX_GOSSIP_LEN: usize = 16 * 1024;

/// Precision (number of geohash characters) of the coarse position a sender
/// puts on the wire: a cell of roughly 1.2 km x 0.6 km.
pub const WIRE_GEOHASH_PRECISION: usize = 6;

/// Largest radius, in kilometres, accepted for a geographic room search.
pub const MAX_RADIUS_KM: f64 = 2500.0;

/// Maximum length of an away text carried in presence, in bytes (UTF-8).
pub const MAX_AWAY_LEN: usize = 256;

/// Maximum number of rooms one presence announcement lists.
pub const MAX_PRESENCE_ROOMS: usize = 64;

/// Maximum length of an encoded name record, in bytes. Larger values are
/// rejected before any parsing.
pub const MAX_NAME_RECORD_LEN: usize = 1024;

/// Maximum length of a public key (protobuf encoding) in a name record.
pub const MAX_PUBLIC_KEY_LEN: usize = 128;

/// Maximum length of a signature in a name record.
pub const MAX_SIGNATURE_LEN: usize = 128;

/// How far in the future a name record's issue time may lie, in
/// milliseconds, before the record is refused (tolerated clock skew).
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;
