//! Rooms and people in the event loop: their state, the requests frontends send about them,
//! interests, contacts, blocks and the away text, and saving them in the data dir.

use std::{collections::HashMap, time::Instant};

use libp2p::{
    gossipsub::{IdentTopic, TopicHash},
    identity::Keypair,
    kad::QueryId,
    PeerId,
};
use tracing::warn;

use ipm_protocol::{
    presence::validate_away,
    room::{normalize_tag, presence_topic},
    validate_name, Position, Room,
};

use super::{name_records::NameQuery, EventLoop};
use crate::client::Refusal;
use crate::{
    client::people::{ClaimStatus, ContactEntry, Me, People, PeopleRequest, User},
    client::NodeError,
    config::{Config, Role},
    logic::announcing::Announcer,
    logic::geo_group::{distance_to_cell, GeoGroup},
    logic::names::OwnClaim,
    logic::presence::PresenceTable,
    store::contacts::ContactBook,
    store::heard_names::HeardNames,
    store::settings::Settings,
};

/// What the event loop keeps about rooms and people besides the directory.
pub(super) struct PeopleState {
    /// Signs the own name record.
    pub(super) key: Keypair,
    pub(super) presence_topic: IdentTopic,
    pub(super) position: Option<Position>,
    pub(super) group: Option<GeoGroup>,
    pub(super) interests: Vec<String>,
    pub(super) away: Option<String>,
    pub(super) table: PresenceTable,
    /// When this node announces itself.
    pub(super) announcer: Announcer,
    /// Where the claim of the own name stands.
    pub(super) claim: OwnClaim,
    /// Running DHT lookups of names.
    pub(super) queries: HashMap<QueryId, NameQuery>,
    /// The running put of the own name record.
    pub(super) put_query: Option<QueryId>,
    /// Whether the user was told that the name is taken.
    pub(super) told_taken: bool,
    /// The names heard from peers as last saved.
    pub(super) saved_names: Option<HeardNames>,
}

impl PeopleState {
    pub(super) fn new(key: Keypair, config: &Config) -> Self {
        Self {
            key,
            presence_topic: IdentTopic::new(presence_topic()),
            position: config.position,
            group: None,
            interests: config.interests.clone(),
            away: None,
            table: PresenceTable::new(config.presence_timeout, config.presence_interval),
            announcer: Announcer::new(
                config.presence_interval,
                config.role == Role::Node,
                Instant::now(),
            ),
            claim: OwnClaim::new(Instant::now(), !config.bootstrap.is_empty()),
            queries: HashMap::new(),
            put_query: None,
            told_taken: false,
            saved_names: None,
        }
    }

    pub(super) fn is_presence_topic(&self, topic: &TopicHash) -> bool {
        *topic == self.presence_topic.hash()
    }

    /// Whether `room` is one of the location group's cells.
    pub(super) fn group_covers(&self, room: &Room) -> bool {
        self.group.as_ref().is_some_and(|g| g.covers(room))
    }
}

impl EventLoop {
    /// Subscribes to presence and tells the DHT where contacts were last seen.
    pub(super) fn start_people(&mut self) {
        let topic = self.people.presence_topic.clone();
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
            warn!("cannot subscribe to presence: {e:?}");
        }
        let addrs: Vec<_> = self
            .directory
            .contacts
            .contacts()
            .filter_map(|(_, c)| c.addr.clone())
            .collect();
        for addr in addrs {
            self.add_known_address(&addr);
        }
    }

    /// The away text announced with the node's presence, when the user is away; the
    /// private-message auto-reply uses it.
    pub fn away_text(&self) -> Option<&str> {
        self.people.away.as_deref()
    }

    pub(super) fn on_people_request(&mut self, request: PeopleRequest) {
        match request {
            PeopleRequest::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            PeopleRequest::SetPosition { position, reply } => {
                let _ = reply.send(self.set_position(position));
            }
            PeopleRequest::JoinGeo { radius_km, reply } => {
                let _ = reply.send(self.join_geo(radius_km));
            }
            PeopleRequest::LeaveGeo { reply } => {
                let was = self.people.group.is_some();
                self.replace_group(None);
                let _ = reply.send(was);
            }
            PeopleRequest::AddInterest { tag, reply } => {
                let _ = reply.send(self.add_interest(&tag));
            }
            PeopleRequest::Resolve { user, reply } => {
                let _ = reply.send(self.directory.resolve_user(&user).map_err(NodeError::from));
            }
            PeopleRequest::AddContact {
                name,
                peer,
                addr,
                reply,
            } => {
                let _ = reply.send(self.add_contact(&name, peer, addr));
            }
            PeopleRequest::RemoveContact { name, reply } => {
                let _ = reply.send(self.change_contacts(|book| {
                    book.remove(&name)
                        .ok_or_else(|| NodeError::Refused(Refusal::NoContact(name.clone())))
                }));
            }
            PeopleRequest::Block {
                peer,
                blocked,
                reply,
            } => {
                let result = if peer == self.local_peer_id() {
                    Err(NodeError::Refused(Refusal::OwnPeer))
                } else {
                    self.change_contacts(|book| {
                        Ok(if blocked {
                            book.block(peer)
                        } else {
                            book.unblock(&peer)
                        })
                    })
                };
                let _ = reply.send(result);
            }
            PeopleRequest::SetAway { text, reply } => {
                let _ = reply.send(self.set_away(text));
            }
            PeopleRequest::RememberCurrent { current, saved } => {
                self.remember_current(current);
                if let Some(saved) = saved {
                    let _ = saved.send(());
                }
            }
        }
    }

    fn snapshot(&self) -> People {
        let now = Instant::now();
        let me = &self.people;
        let mut users: Vec<User> = me
            .table
            .online(now)
            .map(|(peer, p)| {
                let distance_km = me
                    .position
                    .zip(p.geo.as_deref())
                    .and_then(|(pos, cell)| distance_to_cell(&pos, cell));
                let in_group = match (&me.group, &p.group) {
                    (Some(mine), Some(theirs)) => {
                        mine.cells().contains(theirs) && mine.admits(p.geo.as_deref()).is_some()
                    }
                    _ => false,
                };
                User {
                    peer: *peer,
                    name: self.directory.display_name(peer),
                    rooms: p.rooms.clone(),
                    group: p.group.clone(),
                    distance_km,
                    in_group,
                    away: p.away.clone(),
                    blocked: self.directory.is_blocked(peer),
                    via_bootstrap: false,
                }
            })
            .collect();
        let local = self.local_peer_id();
        for peer in self.registry.listed_users().into_keys() {
            if peer == local || me.table.get(&peer, now).is_some() {
                continue;
            }
            users.push(User {
                peer,
                name: self.directory.display_name(&peer),
                rooms: Vec::new(),
                group: None,
                distance_km: None,
                in_group: false,
                away: None,
                blocked: self.directory.is_blocked(&peer),
                via_bootstrap: true,
            });
        }
        users.sort_by(|a, b| a.name.cmp(&b.name));
        let contacts = self
            .directory
            .contacts
            .contacts()
            .map(|(name, c)| ContactEntry {
                name: name.to_owned(),
                peer: c.peer,
                addr: c.addr.clone(),
                online: me.table.get(&c.peer, now).is_some(),
            })
            .collect();
        let blocked = self
            .directory
            .contacts
            .blocked()
            .map(|p| (self.directory.display_name(p), *p))
            .collect();
        // A registry's ticket makes the name the node's, before its record is in the DHT.
        let claim = match (&self.config.role, &me.claim) {
            (Role::Bootstrap, _) => ClaimStatus::NotClaimed,
            (_, OwnClaim::Registered) => ClaimStatus::Registered,
            (_, OwnClaim::Taken { owner, .. }) => ClaimStatus::Taken { owner: *owner },
            _ if self.holds_own_ticket() => ClaimStatus::Registered,
            _ => ClaimStatus::Pending,
        };
        let group_peers = me.group.as_ref().map_or(0, |group| {
            let hash = IdentTopic::new(group.room().topic()).hash();
            self.swarm
                .behaviour()
                .gossipsub
                .all_peers()
                .filter(|(_, topics)| topics.contains(&&hash))
                .count()
        });
        People {
            me: Me {
                peer: self.local_peer_id(),
                name: self.config.name.clone(),
                claim,
                position: me.position,
                group: me.group.clone(),
                group_peers,
                interests: me.interests.clone(),
                away: me.away.clone(),
            },
            users,
            contacts,
            blocked,
        }
    }

    fn add_interest(&mut self, tag: &str) -> Result<bool, NodeError> {
        let tag = normalize_tag(tag).map_err(|e| NodeError::Refused(Refusal::Tag(e)))?;
        if self.people.interests.contains(&tag) {
            return Ok(false);
        }
        let mut interests = self.people.interests.clone();
        interests.push(tag);
        self.save_settings(|s| s.interests = interests.clone())?;
        self.people.interests = interests;
        Ok(true)
    }

    fn set_away(&mut self, text: Option<String>) -> Result<(), NodeError> {
        if let Some(text) = &text {
            validate_away(text).map_err(|e| NodeError::Refused(Refusal::Away(e)))?;
        }
        self.people.away = text;
        self.reset_auto_replies();
        self.announce(Instant::now());
        Ok(())
    }

    fn add_contact(
        &mut self,
        name: &str,
        peer: PeerId,
        addr: Option<libp2p::Multiaddr>,
    ) -> Result<Option<String>, NodeError> {
        validate_name(name).map_err(|e| {
            NodeError::Refused(Refusal::BadContactName {
                name: name.to_owned(),
                source: e,
            })
        })?;
        if peer == self.local_peer_id() {
            return Err(NodeError::Refused(Refusal::OwnPeer));
        }
        let previous = self.change_contacts(|book| {
            book.add(name, peer, addr.clone())
                .map_err(|e| NodeError::Refused(Refusal::Contact(e)))
        })?;
        if let Some(addr) = addr {
            self.add_known_address(&addr);
        }
        Ok(previous)
    }

    /// Saves the names heard from peers when they changed since the last save, so that a
    /// restarted node knows who is who before anyone speaks again.
    pub(super) fn save_heard_names(&mut self) {
        let Some(dir) = &self.config.data_dir else {
            return;
        };
        let heard = self.directory.heard_names();
        if self.people.saved_names.as_ref() == Some(&heard) {
            return;
        }
        match heard.save(&dir.heard_names()) {
            Ok(()) => self.people.saved_names = Some(heard),
            Err(e) => warn!("cannot save {}: {e}", dir.heard_names().display()),
        }
    }

    /// Applies `change` to a copy of the contact book, saves it, then keeps it.
    fn change_contacts<T>(
        &mut self,
        change: impl FnOnce(&mut ContactBook) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        let mut book = self.directory.contacts.clone();
        let result = change(&mut book)?;
        if let Some(dir) = &self.config.data_dir {
            book.save(&dir.contacts()).map_err(|e| NodeError::Save {
                path: dir.contacts(),
                source: e,
            })?;
        }
        self.directory.contacts = book;
        Ok(result)
    }

    pub(super) fn save_settings(
        &self,
        change: impl FnOnce(&mut Settings),
    ) -> Result<(), NodeError> {
        match &self.config.data_dir {
            Some(dir) => Settings::update(&dir.settings(), change).map_err(|e| NodeError::Save {
                path: dir.settings(),
                source: e,
            }),
            None => Ok(()),
        }
    }
}
