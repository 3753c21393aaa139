//! `Client`: the cheap, cloneable handle frontends use to drive a node's event loop.

pub mod conversation;
mod errors;
pub mod folder_offer;
pub mod login;
pub mod people;

pub use crate::logic::{connection_budget::Kind, offers::OfferTarget, refusal::Refusal};
pub use errors::{FileError, NodeError};

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use libp2p::metrics::Registry;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use ipm_protocol::{MessageId, Room, TransferId};

use crate::{
    client::people::PeopleRequest,
    event::Event,
    store::history::direct_log,
    store::search::{Hit, Query},
    store::transfers::{hash_file, Direction, State},
};

/// The result of sending a room message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The new message's id.
    pub id: MessageId,
    /// Peers known to be in the room when it was sent.
    pub peers: usize,
}

/// One connected peer, as `/status` shows it.
#[derive(Clone, Debug)]
pub struct PeerStatus {
    /// The peer.
    pub peer: PeerId,
    /// Its display name.
    pub name: String,
    /// Addresses of its connections.
    pub addrs: Vec<Multiaddr>,
    /// Its agent string, once identify has run.
    pub agent: Option<String>,
    /// What it is to the node: in a mesh, dialled by a lookup, dialled in, a bootstrap,
    /// dialled by the user.
    pub kind: Kind,
}

/// How many peers the node keeps, and of which kinds.
#[derive(Clone, Debug)]
pub struct ConnectionsStatus {
    /// Connected peers of each kind.
    pub by_kind: Vec<(Kind, usize)>,
    /// Below this many the node looks for more.
    pub low: usize,
    /// The most it keeps, but for bootstraps, peers the user dialled and peers with a
    /// request in flight.
    pub high: usize,
}

/// A joined room and who else is in it.
#[derive(Clone, Debug)]
pub struct RoomStatus {
    /// The room.
    pub room: Room,
    /// Display names and peer ids of the peers subscribed to it (bootstraps too).
    pub members: Vec<(String, PeerId)>,
    /// Display names and peer ids of the people in it, the node itself and bootstraps left
    /// out (see [`crate::logic::geo_group::people_in_room`]).
    pub people: Vec<(String, PeerId)>,
}

/// A snapshot of the node.
#[derive(Clone, Debug)]
pub struct Status {
    /// Own peer id.
    pub peer: PeerId,
    /// Own display name.
    pub name: String,
    /// Full listen addresses, with `/p2p/`.
    pub listen: Vec<Multiaddr>,
    /// Addresses other peers saw us at.
    pub external: Vec<Multiaddr>,
    /// Whether peers can reach this node directly: `public`, `private` or `unknown`.
    pub nat: String,
    /// Relayed addresses this node can be reached at through a bootstrap.
    pub relayed: Vec<Multiaddr>,
    /// Connected peers.
    pub peers: Vec<PeerStatus>,
    /// Their counts by kind, and the watermarks.
    pub connections: ConnectionsStatus,
    /// Joined rooms.
    pub rooms: Vec<RoomStatus>,
}

/// A request to the event loop, each with the channel its answer goes back on.
#[derive(Debug)]
pub(crate) enum Request {
    Publish {
        room: Room,
        text: String,
        reply: oneshot::Sender<Result<Published, NodeError>>,
    },
    Join {
        room: Room,
        reply: oneshot::Sender<Result<bool, NodeError>>,
    },
    Leave {
        room: Room,
        reply: oneshot::Sender<Result<bool, NodeError>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NodeError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    SendDirect {
        to: PeerId,
        text: String,
        reply: oneshot::Sender<Result<DirectOutcome, NodeError>>,
    },
    OfferFile {
        target: OfferTarget,
        source: PathBuf,
        size: u64,
        sha256: [u8; 32],
        reply: oneshot::Sender<Result<TransferId, NodeError>>,
    },
    Accept {
        transfer: String,
        reply: oneshot::Sender<Result<TransferView, NodeError>>,
    },
    Reject {
        transfer: String,
        reply: oneshot::Sender<Result<TransferView, NodeError>>,
    },
    Transfers {
        reply: oneshot::Sender<Vec<TransferView>>,
    },
    Search {
        query: Query,
        only: Option<Conversation>,
        reply: oneshot::Sender<Result<Vec<Hit>, NodeError>>,
    },
    People(PeopleRequest),
    Registry(crate::client::login::RegistryAsk),
    Conversation(crate::client::conversation::ConversationRequest),
    Folder(crate::client::folder_offer::FolderAsk),
    Shutdown,
}

/// A conversation whose log the node keeps: a room or the private messages with one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conversation {
    /// A room (or a location group's own cell).
    Room(Room),
    /// The private messages with a peer.
    Direct(PeerId),
}

impl Conversation {
    /// The name of its log in the history folder.
    pub fn log(&self) -> String {
        match self {
            Conversation::Room(room) => room.slug(),
            Conversation::Direct(peer) => direct_log(peer),
        }
    }
}

/// What became of a private message right after `/msg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectOutcome {
    /// The message id.
    pub id: MessageId,
    /// The recipient's display name.
    pub name: String,
    /// True when the recipient acknowledged it; false when it waits in the outbox.
    pub delivered: bool,
}

/// One offer or transfer, as `/transfers` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferView {
    /// The transfer id.
    pub id: TransferId,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// The other side's display name (or the room of a share).
    pub with: String,
    /// The file name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Bytes downloaded so far (incoming only).
    pub bytes: u64,
    /// The local file an outgoing transfer serves.
    pub source: Option<PathBuf>,
    /// The other side's peer: the sender of an incoming file, the recipient of an outgoing
    /// one (`None` for a file shared with a room).
    pub peer: Option<PeerId>,
    /// Where it stands.
    pub state: State,
}

/// A handle on a running node. Clone it freely; the node stops when every handle is gone.
#[derive(Clone)]
pub struct Client {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    peer: PeerId,
    metrics: Arc<Mutex<Registry>>,
    /// The current room last chosen on any frontend, which a new session starts in.
    current: Arc<Mutex<crate::logic::geo_group::CurrentRoom>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("peer", &self.peer).finish()
    }
}

impl Client {
    pub(crate) fn new(
        requests: mpsc::Sender<Request>,
        events: broadcast::Sender<Event>,
        peer: PeerId,
        metrics: Arc<Mutex<Registry>>,
    ) -> Self {
        Self {
            requests,
            events,
            peer,
            metrics,
            current: Arc::new(Mutex::new(crate::logic::geo_group::CurrentRoom::Nowhere)),
        }
    }

    /// The node's metrics, for [`crate::net::metrics::serve`].
    pub fn metrics(&self) -> Arc<Mutex<Registry>> {
        self.metrics.clone()
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// A new stream of the node's events, starting now.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Sends `text` to `room` (which must be joined).
    pub async fn publish(&self, room: Room, text: String) -> Result<Published, NodeError> {
        self.ask(|reply| Request::Publish { room, text, reply })
            .await?
    }

    /// Joins `room`; true when it was not joined before.
    pub async fn join(&self, room: Room) -> Result<bool, NodeError> {
        self.ask(|reply| Request::Join { room, reply }).await?
    }

    /// Leaves `room`; true when it was joined.
    pub async fn leave(&self, room: Room) -> Result<bool, NodeError> {
        self.ask(|reply| Request::Leave { room, reply }).await?
    }

    /// Connects to `addr` and returns the peer that answered.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NodeError> {
        self.ask(|reply| Request::Dial { addr, reply }).await?
    }

    /// Like [`Client::dial`], giving up after `timeout`.
    pub async fn dial_within(
        &self,
        addr: Multiaddr,
        timeout: Duration,
    ) -> Result<PeerId, NodeError> {
        tokio::time::timeout(timeout, self.dial(addr.clone()))
            .await
            .map_err(|_| NodeError::Dial {
                addr,
                reason: format!("no answer within {}s", timeout.as_secs()),
            })?
    }

    /// A snapshot of identity, addresses, peers and rooms.
    pub async fn status(&self) -> Result<Status, NodeError> {
        self.ask(|reply| Request::Status { reply }).await
    }

    /// Sends a private message; waits briefly for the ack, then reports it as queued (it
    /// stays in the outbox and is retried until delivered).
    pub async fn send_direct(&self, to: PeerId, text: String) -> Result<DirectOutcome, NodeError> {
        self.ask(|reply| Request::SendDirect { to, text, reply })
            .await?
    }

    /// Offers the file (or the folder, as one transfer) at `path` to a peer or a room. The
    /// file is hashed here, in blocks, off the event loop.
    pub async fn offer_file(
        &self,
        target: OfferTarget,
        path: PathBuf,
    ) -> Result<TransferId, NodeError> {
        let read = |source| FileError::Read {
            path: path.clone(),
            source,
        };
        let source = tokio::fs::canonicalize(&path).await.map_err(read)?;
        if tokio::fs::metadata(&source).await.is_ok_and(|m| m.is_dir()) {
            return self.offer_folder(target, source).await;
        }
        let hashed = source.clone();
        let (size, sha256) = tokio::task::spawn_blocking(move || {
            let meta = std::fs::metadata(&hashed)?;
            if !meta.is_file() {
                return Ok(None);
            }
            hash_file(&hashed).map(Some)
        })
        .await
        .map_err(FileError::Hashing)?
        .map_err(read)?
        .ok_or_else(|| FileError::NotAFile { path: path.clone() })?;
        if size > ipm_protocol::limits::MAX_FILE_SIZE {
            return Err(FileError::TooLarge { path }.into());
        }
        self.ask(|reply| Request::OfferFile {
            target,
            source,
            size,
            sha256,
            reply,
        })
        .await?
    }

    /// Accepts an offered file (by id or a unique prefix of it) and starts downloading.
    pub async fn accept(&self, transfer: &str) -> Result<TransferView, NodeError> {
        let transfer = transfer.to_owned();
        self.ask(|reply| Request::Accept { transfer, reply })
            .await?
    }

    /// Declines an offered file, or stops a download.
    pub async fn reject(&self, transfer: &str) -> Result<TransferView, NodeError> {
        let transfer = transfer.to_owned();
        self.ask(|reply| Request::Reject { transfer, reply })
            .await?
    }

    /// Every offer and transfer, newest first.
    pub async fn transfers(&self) -> Result<Vec<TransferView>, NodeError> {
        self.ask(|reply| Request::Transfers { reply }).await
    }

    /// The newest [`crate::store::search::MAX_HITS`] lines holding every word of `query`, newest first, in
    /// `only` or in every conversation (none on a node that keeps no history).
    pub async fn search(
        &self,
        query: Query,
        only: Option<Conversation>,
    ) -> Result<Vec<Hit>, NodeError> {
        self.ask(|reply| Request::Search { query, only, reply })
            .await?
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        let _ = self.requests.send(Request::Shutdown).await;
    }
}
