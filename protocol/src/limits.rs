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

/// Maximum length of an encoded private-message request, in bytes.
pub const MAX_DIRECT_REQUEST_LEN: usize = 16 * 1024;

/// Maximum length of an encoded private-message response, in bytes.
pub const MAX_DIRECT_RESPONSE_LEN: usize = 1024;

/// Largest piece of a file one chunk request may ask for, in bytes.
pub const MAX_CHUNK_LEN: u32 = 1024 * 1024;

/// Maximum length of an encoded file-transfer request, in bytes.
pub const MAX_FILE_REQUEST_LEN: usize = 4 * 1024;

/// Maximum length of an encoded file-transfer response: one chunk plus its envelope.
pub const MAX_FILE_RESPONSE_LEN: usize = MAX_CHUNK_LEN as usize + 1024;

/// Largest file size an offer may declare, in bytes (1 TiB).
pub const MAX_FILE_SIZE: u64 = 1 << 40;

/// Maximum length of an offered file name, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;

/// Maximum length of a refusal or error reason carried in a response, in bytes.
pub const MAX_REASON_LEN: usize = 256;

/// Largest sealed private message a mailbox stores, in bytes.
pub const MAX_SEALED_LEN: usize = 24 * 1024;

/// Most sealed messages one mailbox fetch returns.
pub const MAX_FETCH: usize = 64;

/// Most message ids one mailbox acknowledgement carries.
pub const MAX_ACK_IDS: usize = 256;

/// Maximum length of an encoded mailbox request, in bytes.
pub const MAX_MAILBOX_REQUEST_LEN: usize = MAX_SEALED_LEN + 1024 + MAX_ACK_IDS * 20;

/// Maximum length of an encoded mailbox response, in bytes.
pub const MAX_MAILBOX_RESPONSE_LEN: usize = MAX_FETCH * (MAX_SEALED_LEN + 128) + 1024;

/// Longest a mailbox keeps a message, in milliseconds (7 days).
pub const MAX_MAILBOX_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;

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
