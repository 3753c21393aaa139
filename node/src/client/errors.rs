//! Why a `Client` request failed: `NodeError` and the causes it carries (`FileError` for
//! files and transfers, `Refusal` for names, contacts, blocks and settings).

use std::{io, path::PathBuf};

use libp2p::{gossipsub, Multiaddr};

use ipm_protocol::{DecodeError, MessageId, Room};

use crate::{
    logic::refusal::Refusal,
    logic::{directory::ResolveError, offers::TransferError},
    store::outbox::OutboxError,
};

/// Why a request to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The event loop has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The text breaks the wire rules (too long, empty, ...) and cannot be sent as it is.
    #[error(transparent)]
    InvalidMessage(#[from] DecodeError),
    /// The recipient answered that it does not take this private message.
    #[error("{name} refused message {id}: {reason}")]
    DirectRefused {
        /// How the recipient is shown.
        name: String,
        /// The refused message.
        id: MessageId,
        /// The reason the recipient gave, as it sent it.
        reason: String,
    },
    /// A private message was addressed to this node itself.
    #[error("that is you: private messages go to other users")]
    SelfMessage,
    /// The node is not in that room.
    #[error("not in room {0}: /join it first")]
    NotInRoom(Room),
    /// Gossipsub refused the message.
    #[error("could not send: {0:?}")]
    Publish(#[source] gossipsub::PublishError),
    /// A dial failed.
    #[error("could not connect to {addr}: {reason}")]
    Dial {
        /// The address dialled.
        addr: Multiaddr,
        /// Why it failed: built from libp2p's nested transport errors (one line per
        /// address tried), or the wait that ran out, so it stays text.
        reason: String,
    },
    /// Gossipsub could not subscribe to the room's topic.
    #[error("cannot join {room}: {source:?}")]
    Room {
        /// The room.
        room: Room,
        /// Why.
        #[source]
        source: gossipsub::SubscriptionError,
    },
    /// A file cannot be offered or a transfer cannot be found or started.
    #[error(transparent)]
    File(#[from] FileError),
    /// The outbox refused the message.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// A location group needs the own position.
    #[error("no location set: use /geo <lat,lon|geohash> or start ipm with --geo")]
    NoPosition,
    /// A typed user could not be found.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A line reference (`/reply`, `/react`, `/edit`, `/delete`) names no single line.
    #[error(transparent)]
    Ref(#[from] crate::logic::edits::RefError),
    /// A name, contact, block or setting was refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A change could not be written to the data dir.
    #[error("cannot save {}: {source}", path.display())]
    Save {
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An own line was not sent because its conversation's log could not be written.
    #[error("not sent: cannot write the history of {shown}: {source}")]
    NotKept {
        /// The conversation, as shown.
        shown: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A conversation's log could not be read.
    #[error("{0}")]
    History(#[source] io::Error),
}

/// Why a file cannot be offered, or a transfer cannot be found, accepted or rejected.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file to offer cannot be opened or read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The path as the user gave it.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The path names something other than a regular file.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path as the user gave it.
        path: PathBuf,
    },
    /// The task hashing the file failed.
    #[error("{0}")]
    Hashing(#[source] tokio::task::JoinError),
    /// The file is larger than a transfer may be.
    #[error("{} is larger than 1 TiB", path.display())]
    TooLarge {
        /// The path as the user gave it.
        path: PathBuf,
    },
    /// The file's name cannot be offered as a file name.
    #[error("{} has no usable file name", path.display())]
    NoFileName {
        /// The file.
        path: PathBuf,
    },
    /// A file was offered to this node itself.
    #[error("that is you: files go to other users")]
    ToSelf,
    /// The new transfer could not be written to the transfers file.
    #[error("cannot save the transfer: {0}")]
    Save(#[source] io::Error),
    /// The typed transfer cannot be found, accepted or rejected.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A folder cannot be offered.
    #[error(transparent)]
    Folder(#[from] crate::store::folder_source::FolderError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipm_protocol::RegistryError;
    use libp2p::PeerId;

    #[test]
    fn messages_read_as_the_user_sees_them() {
        let room = Room::parse("chess").unwrap_or(Room::Lobby);
        assert_eq!(
            NodeError::NotInRoom(room.clone()).to_string(),
            format!("not in room {room}: /join it first")
        );
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1"
            .parse()
            .unwrap_or_else(|_| Multiaddr::empty());
        assert_eq!(
            NodeError::Dial {
                addr,
                reason: "no answer within 10s".into()
            }
            .to_string(),
            "could not connect to /ip4/127.0.0.1/tcp/1: no answer within 10s"
        );
        assert_eq!(
            NodeError::from(FileError::Transfer(TransferError::Unknown("abcd".into()))).to_string(),
            "no transfer abcd: see /transfers"
        );
        assert_eq!(
            NodeError::from(FileError::TooLarge {
                path: PathBuf::from("/tmp/big")
            })
            .to_string(),
            "/tmp/big is larger than 1 TiB"
        );
        assert_eq!(
            NodeError::from(Refusal::NoContact("bob".into())).to_string(),
            "no contact 'bob': /contacts lists them"
        );
        let bootstrap = PeerId::random();
        assert_eq!(
            Refusal::Registry {
                bootstrap,
                source: Box::new(RegistryError::Taken {
                    name: "bob".into(),
                    owner: Vec::new(),
                }),
            }
            .to_string(),
            format!("the name \"bob\" is registered to another user at bootstrap {bootstrap}")
        );
        assert_eq!(
            NodeError::Save {
                path: PathBuf::from("/d/settings.json"),
                source: io::Error::other("disk full"),
            }
            .to_string(),
            "cannot save /d/settings.json: disk full"
        );
    }

    #[test]
    fn causes_are_kept_as_sources() {
        use std::error::Error as _;
        let e = NodeError::from(FileError::Read {
            path: PathBuf::from("/nope"),
            source: io::Error::new(io::ErrorKind::NotFound, "gone"),
        });
        let source = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(source.map(io::Error::kind), Some(io::ErrorKind::NotFound));
    }
}
