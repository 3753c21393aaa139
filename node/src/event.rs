//! Typed events a node reports to its frontends, and their JSON form (`--json`).

use libp2p::{Multiaddr, PeerId};
use serde::{Serialize, Serializer};

use ipm_protocol::{MessageId, Room, TransferId};

/// Something that happened on the node, for frontends to show.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The node listens on a new address (with `/p2p/<peer id>`).
    Listening {
        /// The full address, ready to paste into `--bootstrap` or `/connect`.
        addr: Multiaddr,
    },
    /// A first connection to a peer was established.
    Connected {
        /// The peer.
        peer: PeerId,
        /// The address of the connection.
        addr: Multiaddr,
    },
    /// The last connection to a peer was closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// The node joined a room.
    Joined {
        /// The room.
        #[serde(serialize_with = "display")]
        room: Room,
    },
    /// The node left a room.
    Left {
        /// The room.
        #[serde(serialize_with = "display")]
        room: Room,
    },
    /// Lines said in a room while this node was away came back from a bootstrap or a
    /// member; the `count` lines follow as `Message` events, oldest first. Sent only when
    /// there is something to tell (see `logic::notices::CatchUpMarkers`).
    CaughtUp {
        /// The room.
        #[serde(serialize_with = "display")]
        room: Room,
        /// How many lines follow.
        count: usize,
        /// The node had never been in the room: the lines were said before it came, not
        /// while it was away.
        first_visit: bool,
    },
    /// A room message from another user.
    Message {
        /// The room it was sent to.
        #[serde(serialize_with = "display")]
        room: Room,
        /// Its unique id.
        #[serde(serialize_with = "display")]
        id: MessageId,
        /// The author's display name (`name` or `name#xxxx`).
        from: String,
        /// The author's peer id (verified by signature).
        peer: PeerId,
        /// The text.
        text: String,
        /// How far the author is, when both positions are known (geo rooms).
        #[serde(skip_serializing_if = "Option::is_none")]
        distance_km: Option<f64>,
        /// The line this one answers.
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "display_some"
        )]
        reply_to: Option<MessageId>,
    },
    /// A bootstrap's registry registered this node's name (`new`), or logged it in with the
    /// name it registered before.
    Registered {
        /// The name.
        name: String,
        /// The bootstrap.
        at: PeerId,
        /// True for a first registration, false for a login.
        new: bool,
    },
    /// A user announced itself for the first time, or again after falling silent.
    UserOnline {
        /// The user.
        peer: PeerId,
        /// How it is shown.
        name: String,
    },
    /// A user fell silent for longer than the presence timeout.
    UserOffline {
        /// The user.
        peer: PeerId,
        /// How it is shown.
        name: String,
    },
    /// A private message for this node.
    Direct {
        /// Its unique id.
        #[serde(serialize_with = "display")]
        id: MessageId,
        /// The sender's display name.
        from: String,
        /// The sender's peer id.
        peer: PeerId,
        /// The text.
        text: String,
        /// The message this one answers.
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "display_some"
        )]
        reply_to: Option<MessageId>,
    },
    /// Someone reacted to a line of a room (`room`) or of a private conversation.
    Reaction {
        /// The room; absent for a private conversation (the one with `peer`).
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The reaction's own id.
        #[serde(serialize_with = "display")]
        id: MessageId,
        /// The line reacted to.
        #[serde(serialize_with = "display")]
        target: MessageId,
        /// Who reacted.
        from: String,
        /// Their peer id.
        peer: PeerId,
        /// The emoji.
        emoji: String,
    },
    /// The author of a line changed its text.
    Edited {
        /// The room; absent for a private conversation (the one with `peer`).
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The edit's own id.
        #[serde(serialize_with = "display")]
        id: MessageId,
        /// The line edited.
        #[serde(serialize_with = "display")]
        target: MessageId,
        /// The author.
        from: String,
        /// The author's peer id.
        peer: PeerId,
        /// The new text.
        text: String,
    },
    /// The author of a line withdrew it.
    Deleted {
        /// The room; absent for a private conversation (the one with `peer`).
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// The deletion's own id.
        #[serde(serialize_with = "display")]
        id: MessageId,
        /// The line withdrawn.
        #[serde(serialize_with = "display")]
        target: MessageId,
        /// The author.
        from: String,
        /// The author's peer id.
        peer: PeerId,
    },
    /// The recipient of a private message has seen it.
    Read {
        /// The message.
        #[serde(serialize_with = "display")]
        id: MessageId,
        /// The recipient.
        by: PeerId,
        /// The recipient's display name.
        name: String,
    },
    /// A user is typing a private message to this node.
    Typing {
        /// The user.
        peer: PeerId,
        /// How it is shown.
        from: String,
    },
    /// The recipient acknowledged a private message.
    Delivered {
        /// The message.
        #[serde(serialize_with = "display")]
        id: MessageId,
        /// The recipient.
        to: PeerId,
        /// The recipient's display name.
        name: String,
        /// The user was told already (by the sending command's answer or a read receipt),
        /// or the node sent the message on its own: the prompt does not show it.
        #[serde(skip)]
        told: bool,
    },
    /// A private message could not be delivered yet: it waits in the outbox (`at` absent),
    /// or, sealed, in a bootstrap's mailbox (`at` the bootstrap).
    Queued {
        /// The message.
        #[serde(serialize_with = "display")]
        id: MessageId,
        /// The recipient.
        to: PeerId,
        /// The recipient's display name.
        name: String,
        /// The bootstrap whose mailbox keeps a sealed copy.
        #[serde(skip_serializing_if = "Option::is_none")]
        at: Option<PeerId>,
    },
    /// Someone offers a file, to this node or to a room it is in.
    FileOffer {
        /// The transfer id to `/accept` (or `/get`).
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// The sender's display name.
        from: String,
        /// The sender's peer id.
        peer: PeerId,
        /// The sanitised file name.
        name: String,
        /// Size in bytes.
        size: u64,
        /// The room a shared file was offered in.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// A download advanced.
    FileProgress {
        /// The transfer.
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// Bytes on disk so far.
        bytes: u64,
        /// Total size.
        size: u64,
    },
    /// A peer started getting a file or folder this node offered (once per fetch).
    FileGetting {
        /// The transfer offered (the file or the folder).
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// The peer getting it.
        peer: PeerId,
        /// How the peer is shown.
        by: String,
        /// The file's name (`name/` for a folder).
        name: String,
    },
    /// A file or folder this node offered is being sent: at most every 250 ms per fetch,
    /// and with `bytes == size` once, when the recipient has it whole.
    FileSending {
        /// The transfer offered (the file or the folder, never a folder's part).
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// The recipient.
        to: PeerId,
        /// Bytes of the file the recipient has now, counting those it had before.
        bytes: u64,
        /// Total size.
        size: u64,
        /// The file's name (`name/` for a folder).
        name: String,
        /// How the recipient is shown.
        to_name: String,
    },
    /// One file of a folder this node offered reached a peer whole.
    FolderFileSent {
        /// The folder's transfer.
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// The recipient.
        to: PeerId,
        /// How the recipient is shown.
        to_name: String,
        /// The file: the folder's name and its path in the folder.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A download finished and matched its SHA-256.
    FileReceived {
        /// The transfer.
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// Where the file is.
        path: std::path::PathBuf,
        /// Size in bytes.
        size: u64,
        /// Its SHA-256, hex.
        sha256: String,
    },
    /// Someone offers a folder, to this node or to a room it is in; `/accept` (or `/get`)
    /// fetches it whole.
    FolderOffer {
        /// The transfer id to `/accept` (or `/get`).
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// The sender's display name.
        from: String,
        /// The sender's peer id.
        peer: PeerId,
        /// The sanitised folder name.
        name: String,
        /// The total size of its files, in bytes.
        size: u64,
        /// How many files it holds.
        files: u32,
        /// The room a shared folder was offered in.
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// A folder arrived: every file matched its SHA-256 before the folder appeared.
    FolderReceived {
        /// The transfer.
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// Where the folder is.
        path: std::path::PathBuf,
        /// The total size of its files, in bytes.
        size: u64,
        /// How many files it holds.
        files: u32,
    },
    /// A transfer ended without a file.
    FileFailed {
        /// The transfer.
        #[serde(serialize_with = "display")]
        transfer: TransferId,
        /// Why.
        reason: String,
    },
    /// Something went wrong that the user should know about.
    Error {
        /// One line saying what.
        message: String,
    },
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn display_some<T: std::fmt::Display, S: Serializer>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// An event with the time it happened, as printed by `--json`.
#[derive(Serialize)]
struct Stamped<'a> {
    #[serde(flatten)]
    event: &'a Event,
    ts: u64,
}

impl Event {
    /// One line of JSON: the event's fields plus `"ts"` (ms since the epoch).
    pub fn to_json_line(&self) -> String {
        let stamped = Stamped {
            event: self,
            ts: ipm_protocol::now_ms(),
        };
        serde_json::to_string(&stamped).unwrap_or_else(|e| {
            format!(r#"{{"event":"error","message":"unprintable event: {e}"}}"#)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_event_ts_and_fields() {
        let peer = PeerId::random();
        let id = MessageId::random();
        let line = Event::Message {
            room: Room::Lobby,
            id,
            from: "alice".into(),
            peer,
            text: "hi".into(),
            distance_km: None,
            reply_to: None,
        }
        .to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "message");
        assert_eq!(v["room"], "lobby");
        assert_eq!(v["id"], id.to_string());
        assert_eq!(v["peer"], peer.to_string());
        assert_eq!(v["text"], "hi");
        assert!(v["ts"].as_u64().unwrap() > 1_600_000_000_000);
        assert!(v.get("distance_km").is_none());
    }

    #[test]
    fn geo_messages_carry_the_distance() {
        let line = Event::Message {
            room: Room::Geo("u09t".into()),
            id: MessageId::random(),
            from: "bob".into(),
            peer: PeerId::random(),
            text: "hi".into(),
            distance_km: Some(3.0),
            reply_to: None,
        }
        .to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["room"], "geo:u09t");
        assert_eq!(v["distance_km"], 3.0);
        let line = Event::UserOnline {
            peer: PeerId::random(),
            name: "bob".into(),
        }
        .to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "user_online");
        assert_eq!(v["name"], "bob");
    }
}
