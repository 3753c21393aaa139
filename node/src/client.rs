//! `Client`: the cheap, cloneable handle frontends use to drive a node's event loop.

use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use ipm_protocol::{MessageId, Room};

use crate::{event::Event, peers::ResolveError, people::PeopleRequest};

/// Why a request to the node failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    /// The event loop has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The text cannot be sent as it is.
    #[error("{0}")]
    InvalidMessage(String),
    /// The node is not in that room.
    #[error("not in room {0}: /join it first")]
    NotInRoom(String),
    /// Gossipsub refused the message.
    #[error("could not send: {0}")]
    Publish(String),
    /// A dial failed.
    #[error("could not connect to {addr}: {reason}")]
    Dial {
        /// The address dialled.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// Joining or leaving a room failed.
    #[error("{0}")]
    Room(String),
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A location group needs the own position.
    #[error("no location set: use /geo <lat,lon|geohash> or start ipm with --geo")]
    NoPosition,
    /// A typed user could not be found.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// A contact, block or setting was refused.
    #[error("{0}")]
    Refused(String),
    /// A change could not be written to the data dir.
    #[error("cannot save {what}: {reason}")]
    Save {
        /// Which file.
        what: String,
        /// Why.
        reason: String,
    },
}

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
}

/// A joined room and who else is in it.
#[derive(Clone, Debug)]
pub struct RoomStatus {
    /// The room.
    pub room: Room,
    /// Display names and peer ids of the peers subscribed to it.
    pub members: Vec<(String, PeerId)>,
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
    /// Connected peers.
    pub peers: Vec<PeerStatus>,
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
    People(PeopleRequest),
    Shutdown,
}

/// A handle on a running node. Clone it freely; the node stops when every handle is gone.
#[derive(Clone, Debug)]
pub struct Client {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    peer: PeerId,
}

impl Client {
    pub(crate) fn new(
        requests: mpsc::Sender<Request>,
        events: broadcast::Sender<Event>,
        peer: PeerId,
    ) -> Self {
        Self {
            requests,
            events,
            peer,
        }
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
        let shown = addr.to_string();
        tokio::time::timeout(timeout, self.dial(addr))
            .await
            .map_err(|_| NodeError::Dial {
                addr: shown,
                reason: format!("no answer within {}s", timeout.as_secs()),
            })?
    }

    /// A snapshot of identity, addresses, peers and rooms.
    pub async fn status(&self) -> Result<Status, NodeError> {
        self.ask(|reply| Request::Status { reply }).await
    }

    /// Stops the node.
    pub async fn shutdown(&self) {
        let _ = self.requests.send(Request::Shutdown).await;
    }
}
