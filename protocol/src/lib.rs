//! ipm wire protocol: rooms, positions, names, name records and the name registry, gossip
//! payloads (chat, presence) and the limits that bound them.
//!
//! This crate is pure: it performs no I/O and never blocks. Everything a peer
//! receives from the network goes through [`decode_gossip`], which checks
//! sizes, the protocol version and every semantic field before handing a
//! value to the rest of ipm.

pub mod direct;
pub mod envelope;
pub mod error;
pub mod file;
pub mod geo;
pub mod limits;
pub mod mailbox;
pub mod message;
pub mod name;
pub mod name_record;
pub mod presence;
pub mod registry;
pub mod room;
pub mod stamp;
pub mod text;

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
pub use stamp::{now_ms, MessageId, Stamp};
