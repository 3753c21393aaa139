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

/// Most room lines one catch-up answer carries (`/ipm/history/1`), and most a bootstrap
/// keeps of one room.
pub const MAX_CATCH_UP_LINES: usize = 500;

/// Oldest line a catch-up asks for or a bootstrap keeps, in milliseconds (7 days).
pub const MAX_CATCH_UP_AGE_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Maximum length of an encoded catch-up request, in bytes.
pub const MAX_HISTORY_REQUEST_LEN: usize = 1024;

/// Maximum length of an encoded catch-up answer: [`MAX_CATCH_UP_LINES`] gossip payloads
/// of the largest size, with their authors.
pub const MAX_HISTORY_RESPONSE_LEN: usize = MAX_CATCH_UP_LINES * (MAX_GOSSIP_LEN + 128) + 1024;

/// Most catch-up streams (`/ipm/history/1`) one connection may have in flight.
pub const MAX_HISTORY_STREAMS: usize = 4;

/// Maximum length of an away text carried in presence, in bytes (UTF-8).
pub const MAX_AWAY_LEN: usize = 256;

/// Maximum number of rooms one presence announcement lists.
pub const MAX_PRESENCE_ROOMS: usize = 64;

/// Longest pause between two presence announcements a node may promise, in milliseconds
/// (10 minutes): a larger promise would keep a vanished node listed for too long.
pub const MAX_PRESENCE_EVERY_MS: u32 = 10 * 60 * 1000;

/// Maximum length of an encoded name record, in bytes. Larger values are
/// rejected before any parsing.
pub const MAX_NAME_RECORD_LEN: usize = 1024;

/// Maximum length of a public key (protobuf encoding) in a name record.
pub const MAX_PUBLIC_KEY_LEN: usize = 128;

/// Maximum length of a signature in a name record.
pub const MAX_SIGNATURE_LEN: usize = 128;

/// Longest a name ticket may still hold when it is checked, in milliseconds (7 days): a
/// ticket promising more is refused, whatever the registry wrote.
pub const MAX_TICKET_TTL_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// How far in the future a name record's issue time may lie, in
/// milliseconds, before the record is refused (tolerated clock skew).
pub const MAX_CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

// ---------------------------------------------------------------------------
// What one peer may hold of a node's resources. Everything below is checked
// before the node allocates on a peer's behalf.
// ---------------------------------------------------------------------------

/// Most rooms a bootstrap forwards for: it joins the ipm rooms two of its peers join.
pub const MAX_FORWARDED_ROOMS: usize = 10_000;

/// Most rooms one peer's subscriptions count towards at a bootstrap deciding what to
/// forward.
pub const MAX_FORWARD_WANTS_PER_PEER: usize = 64;

/// Most room subscriptions a bootstrap counts from one address, all its peers together.
pub const MAX_FORWARD_WANTS_PER_ADDRESS: usize = 256;

/// Most rooms a bootstrap forwards for peers that all share one address (users behind one
/// NAT).
pub const MAX_FORWARDED_ROOMS_PER_SHARED_ADDRESS: usize = 8;

/// How long a bootstrap keeps forwarding a room fewer than two peers want, in
/// milliseconds.
pub const FORWARD_IDLE_MS: u64 = 10 * 60 * 1000;

/// Most gossipsub topics one peer may be subscribed to in a node's view (the
/// subscription filter). A bootstrap forwards up to [`MAX_FORWARDED_ROOMS`]
/// rooms plus the presence topic; a peer asking for more has its whole
/// subscription message ignored.
pub const MAX_ROOMS_PER_PEER: usize = MAX_FORWARDED_ROOMS + 16;

/// Most subscriptions one gossipsub message may carry.
pub const MAX_SUBSCRIPTIONS_PER_RPC: usize = 1024;

/// Most IHAVE messages a node accepts from one peer per heartbeat.
pub const MAX_IHAVE_MESSAGES: usize = 10;

/// Most connections kept to one peer.
pub const MAX_CONNECTIONS_PER_PEER: u32 = 4;

/// Most inbound connections still being set up (Noise and Yamux handshakes).
pub const MAX_PENDING_INCOMING: u32 = 64;

/// Of [`MAX_PENDING_INCOMING`], the slots only addresses a node has had a working
/// connection with may take: strangers flooding the rest leave room for returning peers.
pub const PENDING_RESERVED_FOR_KNOWN: u32 = 16;

/// Most inbound connections one IP address may have in the handshakes at once.
pub const MAX_PENDING_PER_IP: u32 = 4;

/// Most inbound connections one network (an IPv4 /24, an IPv6 /64) may have in the
/// handshakes at once.
pub const MAX_PENDING_PER_NETWORK: u32 = 16;

/// Most established inbound connections from one IP address (many users may share one
/// behind a NAT).
pub const MAX_ESTABLISHED_PER_IP: u32 = 64;

/// Most established inbound connections from one network (an IPv4 /24, an IPv6 /64).
pub const MAX_ESTABLISHED_PER_NETWORK: u32 = 256;

/// Share of a node's connection budget inbound connections may fill (in eighths): the
/// rest is kept for the node's own dials.
pub const INBOUND_EIGHTHS: u32 = 7;

/// How long an inbound connection may take to finish its Noise and Yamux handshakes, in
/// milliseconds.
pub const INBOUND_HANDSHAKE_MS: u64 = 5_000;

/// Share of the machine's memory above which new connections are refused.
pub const MAX_MEMORY_FRACTION: f64 = 0.9;

/// Most Yamux streams one connection may have open at once.
pub const MAX_STREAMS_PER_CONNECTION: usize = 256;

/// Most private-message streams (`/ipm/direct/1`) one connection may have in flight.
pub const MAX_DIRECT_STREAMS: usize = 32;

/// Most file-transfer streams (`/ipm/file/1`) one connection may have in flight.
pub const MAX_FILE_STREAMS: usize = 64;

/// Most mailbox streams (`/ipm/mailbox/1`) one connection may have in flight.
pub const MAX_MAILBOX_STREAMS: usize = 16;

/// Most undelivered private messages the outbox keeps for one recipient.
pub const MAX_OUTBOX_PER_PEER: usize = 1000;

/// Most undelivered private messages the outbox keeps in all.
pub const MAX_OUTBOX_TOTAL: usize = 10_000;

/// Most sealed messages a mailbox keeps from one sender.
pub const MAX_MAILBOX_PER_SENDER: usize = 200;

/// Most sealed messages a mailbox keeps for one recipient.
pub const MAX_MAILBOX_PER_RECIPIENT: usize = 1000;

/// Most sealed messages a mailbox keeps in all.
pub const MAX_MAILBOX_TOTAL: usize = 100_000;

/// Most file offers from one peer waiting for the user's answer (direct
/// offers and files shared in rooms); further offers are refused.
pub const MAX_PENDING_OFFERS_PER_PEER: usize = 16;

/// Most file offers from all peers waiting for the user's answer.
pub const MAX_PENDING_OFFERS: usize = 256;

/// Most of [`MAX_PENDING_OFFERS`] that files shared in rooms may hold, so that
/// offers sent to this user directly always find a slot.
pub const MAX_PENDING_SHARED: usize = MAX_PENDING_OFFERS / 2;

/// How long an unanswered offer counts as pending, in milliseconds (1 day);
/// older offers stay listed but no longer hold a sender's quota.
pub const PENDING_OFFER_TTL_MS: u64 = 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------
// Spam control: token buckets per peer. A bucket holds at most `BURST`
// tokens and gains `PER_SEC` tokens a second; each message or request takes
// one. Honest users type far below these rates; floods run dry quickly.
// ---------------------------------------------------------------------------

/// Room messages (chat and shared files) one author may send in a burst.
pub const ROOM_MESSAGE_BURST: u32 = 30;

/// Room messages one author may send per second, sustained.
pub const ROOM_MESSAGES_PER_SEC: u32 = 5;

/// Requests of one protocol one peer may send in a burst. File chunks are
/// requested back to back by downloads, so the bucket is generous; a flood of
/// tiny requests still runs it dry within a second.
pub const REQUEST_BURST: u32 = 512;

/// Requests of one protocol one peer may send per second, sustained.
pub const REQUESTS_PER_SEC: u32 = 256;

/// Private messages strangers (peers not among the user's contacts) at one address may
/// send in a burst: keys are free, addresses are not. One over it gets no answer, and its
/// sender's outbox tries again later.
pub const STRANGER_DIRECT_BURST: u32 = 60;

/// Private messages strangers at one address may send per second, sustained.
pub const STRANGER_DIRECT_PER_SEC: u32 = 1;

/// Most peers whose buckets and penalties are tracked at once; the idlest are
/// forgotten first (a forgotten peer starts again with a full bucket).
pub const MAX_RATE_TRACKED_PEERS: usize = 4096;

// ---------------------------------------------------------------------------
// Gossipsub peer scoring. A peer's score mixes its behaviour in each room (P1
// time in mesh, P2 first deliveries, P4 invalid messages) with an application
// penalty (P5) the node adds for every rejected room message. Below
// `GOSSIP_THRESHOLD` a peer gets no gossip, below `PUBLISH_THRESHOLD` no
// published messages, below `GRAYLIST_THRESHOLD` everything it sends is
// ignored and the node disconnects it.
// ---------------------------------------------------------------------------

/// Application penalty added for each rejected room message (invalid, or over
/// the author's rate). The application score is minus the decayed sum.
pub const SPAM_PENALTY: f64 = 10.0;

/// Half-life of the application penalty, in seconds: a peer that stops
/// misbehaving recovers.
pub const SPAM_PENALTY_HALF_LIFE_SECS: f64 = 60.0;

/// Weight of the application score (P5) in a peer's score.
pub const APP_SCORE_WEIGHT: f64 = 1.0;

/// Weight of P4 (squared count of invalid messages) per room: two invalid
/// messages cost 20, four cost 80.
pub const INVALID_MESSAGE_WEIGHT: f64 = -5.0;

/// Decay of the invalid-message count per second (half-life about 23 s).
pub const INVALID_MESSAGE_DECAY: f64 = 0.97;

/// Score below which a peer receives no gossip (IHAVE/IWANT) from the node.
pub const GOSSIP_THRESHOLD: f64 = -10.0;

/// Score below which the node does not publish its own messages to a peer.
pub const PUBLISH_THRESHOLD: f64 = -50.0;

/// Score below which everything a peer sends is ignored and it is disconnected.
pub const GRAYLIST_THRESHOLD: f64 = -80.0;
/// Most users one registry online listing returns.
pub const MAX_ONLINE_LISTED: usize = 256;

/// Maximum length of an encoded registry request, in bytes: one name record and its envelope.
pub const MAX_REGISTRY_REQUEST_LEN: usize = MAX_NAME_RECORD_LEN + 2 * MAX_NAME_LEN + 256;

/// Maximum length of an encoded registry response, in bytes: a full online listing.
pub const MAX_REGISTRY_RESPONSE_LEN: usize =
    MAX_ONLINE_LISTED * (MAX_NAME_RECORD_LEN + MAX_NAME_LEN + 16) + 1024;

// ---------------------------------------------------------------------------
// Folders: one transfer of many files, described by a manifest the recipient
// fetches before any file (see `folder`). Every bound is checked before the
// manifest is fetched (its length, from the offer) or walked (the rest).
// ---------------------------------------------------------------------------

/// Most files one folder may hold.
pub const MAX_FOLDER_FILES: usize = 10_000;

/// Longest encoded manifest, in bytes: about [`MAX_FOLDER_FILES`] paths of 150 bytes.
pub const MAX_MANIFEST_LEN: usize = 2 * 1024 * 1024;

/// Longest relative path of a file in a folder, in bytes (UTF-8, `/` between names).
pub const MAX_FOLDER_PATH_LEN: usize = 1024;

/// Most names in one relative path (folders within folders, the file's own name included).
pub const MAX_FOLDER_DEPTH: usize = 32;

/// Most distinct folders the paths of one folder's files pass through (each counted once,
/// however many files share it): every one is made on the recipient's disk, where it takes
/// an inode and a block whatever the size of the files.
pub const MAX_FOLDER_DIRS: usize = 10_000;

/// Largest total size of a folder's files, in bytes: the same as one file.
pub const MAX_FOLDER_SIZE: u64 = MAX_FILE_SIZE;
