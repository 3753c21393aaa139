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
