//! ipm wire protocol: rooms, positions, names, name records and the name registry, gossip
//! payloads (chat, presence) and the limits that bound them.
//!
//! This crate is pure: it performs no I/O and never blocks. Everything a peer
//! receives from the network goes through [`decode_gossip`] (gossip) or
//! [`decode`] (request-response protocols), which check sizes, the protocol
//! version and every semantic field before handing a value to the rest of ipm.
//!
//! # Modules
//!
//! Listed from the bottom up: a module only uses modules above it.
//!
//! - [`limits`]: every size, count and time limit, and the protocol version.
//! - [`error`]: [`DecodeError`], the error of every payload check.
//! - [`stamp`]: [`MessageId`], the clock ([`now_ms`]) and [`Stamp`] (id + send time).
//! - [`text`]: rules for free text: chat texts, refusal reasons.
//! - [`name`]: what a display name may contain.
//! - [`geo`]: positions, geohash cells and the cells a search radius covers.
//! - [`room`]: rooms (lobby, geographic, interest), their syntax and topics.
//! - [`envelope`]: the versioned CBOR envelope and the [`Payload`] trait.
//! - [`name_record`]: signed name records stored in the DHT.
//! - [`name_ticket`]: a registry's signed word that a name is registered, carried in presence.
//! - [`presence`]: presence announcements (online, rooms, away).
//! - [`file`](mod@file): file offers and chunk transfer over `/ipm/file/1`.
//! - [`change`]: replies, reactions, edits and deletions of earlier messages.
//! - [`file_stream`]: streamed file transfer over `/ipm/file/2`.
//! - [`folder`]: folders as one transfer: the manifest, its checks, the ids of its parts.
//! - [`message`]: chat messages and [`Gossip`], everything gossiped.
//! - [`signed_line`]: room lines signed by their author, checkable long after gossip.
//! - [`catch_up`]: room catch-up over `/ipm/history/1`.
//! - [`direct`]: private messages over `/ipm/direct/1`.
//! - [`mailbox`]: sealed messages for offline users, `/ipm/mailbox/1`.
//! - [`registry`]: the bootstrap's name registry, `/ipm/registry/1`.

pub mod catch_up;
pub mod change;
pub mod direct;
pub mod envelope;
pub mod error;
pub mod file;
pub mod file_stream;
pub mod folder;
pub mod geo;
pub mod limits;
pub mod mailbox;
pub mod message;
pub mod name;
pub mod name_record;
pub mod name_ticket;
pub mod presence;
pub mod registry;
pub mod room;
pub mod signed_line;
pub mod stamp;
pub mod text;

pub use catch_up::{ArchivedLine, HistoryRequest, HistoryResponse};
pub use change::{Change, Op};
pub use direct::{DirectMessage, DirectRequest, DirectResponse};
pub use envelope::{decode, encode, Payload};
pub use error::DecodeError;
pub use file::{FileOffer, FileRequest, FileResponse, TransferId};
pub use geo::{GeoError, Position};
pub use mailbox::{MailboxRequest, MailboxResponse, Sealed};
pub use message::{decode_gossip, encode_gossip, ChatMessage, Gossip};
pub use name::{validate_name, NameError};
pub use name_record::{NameRecord, NameRecordError};
pub use presence::Presence;
pub use registry::{RegistryError, RegistryRequest, RegistryResponse, SignedName};
pub use room::{Room, RoomError};
pub use signed_line::{sign_chat, verify_chat, LineError};
pub use stamp::{now_ms, MessageId, Stamp};
