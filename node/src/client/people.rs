//! Rooms and people as frontends see them: location and interest groups, presence, names,
//! contacts, blocks and the away text; the `Client` calls for them and the snapshot they read.

use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use ipm_protocol::{Position, Room};

use std::sync::PoisonError;

use crate::{
    client::{Client, NodeError, Request},
    logic::geo_group::{CurrentRoom, GeoGroup, RememberedCurrent},
};

/// Where this node's claim of its name stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimStatus {
    /// The node does not claim a name (the bootstrap).
    NotClaimed,
    /// The claim is not settled yet (no DHT peer reached so far).
    Pending,
    /// The DHT holds this node's signed record for its name.
    Registered,
    /// Another peer registered the name first; others see this node as `name#xxxx`.
    Taken {
        /// The peer holding the name.
        owner: PeerId,
    },
}

/// This node, as `/list-geo`, `/status` and `/users` show it.
#[derive(Clone, Debug)]
pub struct Me {
    /// Own peer id.
    pub peer: PeerId,
    /// Own name.
    pub name: String,
    /// Whether the name is registered to us.
    pub claim: ClaimStatus,
    /// Own position, when set.
    pub position: Option<Position>,
    /// The location group, when joined.
    pub group: Option<GeoGroup>,
    /// Peers subscribed to the group's own cell: they receive our group lines (and show them
    /// when we are within their radius).
    pub group_peers: usize,
    /// Own interests.
    pub interests: Vec<String>,
    /// Own away text, when away.
    pub away: Option<String>,
}

/// One online user.
#[derive(Clone, Debug)]
pub struct User {
    /// The user's peer id.
    pub peer: PeerId,
    /// How the user is shown (petname, name, or `name#xxxx`).
    pub name: String,
    /// The rooms it announced.
    pub rooms: Vec<Room>,
    /// The cell of its location group, when it is in one.
    pub group: Option<String>,
    /// Distance from us, when both positions are known.
    pub distance_km: Option<f64>,
    /// Whether it is a member of our location group: its group cell is one of ours and it is
    /// within our radius.
    pub in_group: bool,
    /// Its away text.
    pub away: Option<String>,
    /// Whether we block it.
    pub blocked: bool,
    /// Whether only a bootstrap's directory says it is online: its presence did not reach us
    /// (its rooms, position and away text are then unknown).
    pub via_bootstrap: bool,
}

/// One contact.
#[derive(Clone, Debug)]
pub struct ContactEntry {
    /// The petname.
    pub name: String,
    /// The peer.
    pub peer: PeerId,
    /// The address given when it was added.
    pub addr: Option<Multiaddr>,
    /// Whether it is online now.
    pub online: bool,
}

/// A snapshot of everyone this node knows about.
#[derive(Clone, Debug)]
pub struct People {
    /// This node.
    pub me: Me,
    /// Online users, sorted by how they are shown.
    pub users: Vec<User>,
    /// Contacts, by petname.
    pub contacts: Vec<ContactEntry>,
    /// Blocked peers and how they are shown.
    pub blocked: Vec<(String, PeerId)>,
}

impl People {
    /// The online users in `room`, or, when `geo` is set, in our location group (whose own
    /// cell `room` is).
    pub fn members(&self, room: &Room, geo: bool) -> Vec<&User> {
        self.users
            .iter()
            .filter(|u| {
                if geo {
                    u.in_group
                } else {
                    u.rooms.contains(room)
                }
            })
            .collect()
    }
}

/// Requests about rooms and people, answered by the event loop.
#[derive(Debug)]
pub(crate) enum PeopleRequest {
    Snapshot {
        reply: oneshot::Sender<People>,
    },
    SetPosition {
        position: Option<Position>,
        reply: oneshot::Sender<Result<Option<GeoGroup>, NodeError>>,
    },
    JoinGeo {
        radius_km: f64,
        reply: oneshot::Sender<Result<GeoGroup, NodeError>>,
    },
    LeaveGeo {
        reply: oneshot::Sender<bool>,
    },
    AddInterest {
        tag: String,
        reply: oneshot::Sender<Result<bool, NodeError>>,
    },
    Resolve {
        user: String,
        reply: oneshot::Sender<Result<PeerId, NodeError>>,
    },
    AddContact {
        name: String,
        peer: PeerId,
        addr: Option<Multiaddr>,
        reply: oneshot::Sender<Result<Option<String>, NodeError>>,
    },
    RemoveContact {
        name: String,
        reply: oneshot::Sender<Result<PeerId, NodeError>>,
    },
    Block {
        peer: PeerId,
        blocked: bool,
        reply: oneshot::Sender<Result<bool, NodeError>>,
    },
    SetAway {
        text: Option<String>,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    RememberCurrent {
        current: RememberedCurrent,
        /// Told once the choice is written, when the caller waits for that.
        saved: Option<oneshot::Sender<()>>,
    },
}

impl Client {
    /// The current room last chosen on any frontend (at start: the one of the last run),
    /// which a new session starts in.
    pub fn remembered_current(&self) -> CurrentRoom {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Remembers `current` as the current room: new sessions start in it, and so does the
    /// node's next start.
    pub fn remember_current(&self, current: &CurrentRoom) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = current.clone();
        let remembered = current.remembered();
        // Not waited for: the loop writes the settings when it gets to it; a full queue
        // means a busy node, and the next choice is remembered instead.
        let _ = self
            .requests
            .try_send(Request::People(PeopleRequest::RememberCurrent {
                current: remembered,
                saved: None,
            }));
    }

    /// Makes `current` the current room, as [`Client::remember_current`] does, and returns
    /// once the node has written it for its next start: a choice the user was told about
    /// survives a `kill -9` right after.
    pub async fn choose_current(&self, current: &CurrentRoom) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = current.clone();
        let (saved, written) = oneshot::channel();
        let request = Request::People(PeopleRequest::RememberCurrent {
            current: current.remembered(),
            saved: Some(saved),
        });
        // A stopped node remembers nothing more; the caller's answer says so elsewhere.
        if self.requests.send(request).await.is_ok() {
            let _ = written.await;
        }
    }

    async fn people_request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> PeopleRequest,
    ) -> Result<T, NodeError> {
        self.ask(|reply| Request::People(make(reply))).await
    }

    /// Everyone this node knows about: itself, online users, contacts, blocks.
    pub async fn people(&self) -> Result<People, NodeError> {
        self.people_request(|reply| PeopleRequest::Snapshot { reply })
            .await
    }

    /// Sets (or forgets, with `None`) the own position and remembers it in the settings;
    /// returns the location group, moved to the new position, when one is joined.
    pub async fn set_position(
        &self,
        position: Option<Position>,
    ) -> Result<Option<GeoGroup>, NodeError> {
        self.people_request(|reply| PeopleRequest::SetPosition { position, reply })
            .await?
    }

    /// Joins the location group of `radius_km` around the own position (replacing the one
    /// joined before).
    pub async fn join_geo(&self, radius_km: f64) -> Result<GeoGroup, NodeError> {
        self.people_request(|reply| PeopleRequest::JoinGeo { radius_km, reply })
            .await?
    }

    /// Leaves the location group; true when one was joined.
    pub async fn leave_geo(&self) -> Result<bool, NodeError> {
        self.people_request(|reply| PeopleRequest::LeaveGeo { reply })
            .await
    }

    /// Adds a normalised tag to the own interests and remembers it; true when it is new.
    pub async fn add_interest(&self, tag: String) -> Result<bool, NodeError> {
        self.people_request(|reply| PeopleRequest::AddInterest { tag, reply })
            .await?
    }

    /// Finds the peer a user typed (see [`crate::logic::directory::Directory::resolve_user`]).
    pub async fn resolve_user(&self, user: &str) -> Result<PeerId, NodeError> {
        let user = user.to_owned();
        self.people_request(|reply| PeopleRequest::Resolve { user, reply })
            .await?
    }

    /// Gives `peer` the petname `name` and remembers it; returns the peer's earlier petname.
    pub async fn add_contact(
        &self,
        name: String,
        peer: PeerId,
        addr: Option<Multiaddr>,
    ) -> Result<Option<String>, NodeError> {
        self.people_request(|reply| PeopleRequest::AddContact {
            name,
            peer,
            addr,
            reply,
        })
        .await?
    }

    /// Removes the contact `name`; returns its peer.
    pub async fn remove_contact(&self, name: String) -> Result<PeerId, NodeError> {
        self.people_request(|reply| PeopleRequest::RemoveContact { name, reply })
            .await?
    }

    /// Blocks (or unblocks) `peer` and remembers it; true when that changed anything.
    pub async fn set_blocked(&self, peer: PeerId, blocked: bool) -> Result<bool, NodeError> {
        self.people_request(|reply| PeopleRequest::Block {
            peer,
            blocked,
            reply,
        })
        .await?
    }

    /// Sets (or clears, with `None`) the away text announced with the node's presence.
    pub async fn set_away(&self, text: Option<String>) -> Result<(), NodeError> {
        self.people_request(|reply| PeopleRequest::SetAway { text, reply })
            .await?
    }
}
