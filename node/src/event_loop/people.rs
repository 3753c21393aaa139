//! Rooms and people in the event loop: the location group and its distance filter, interests,
//! presence announcements, contacts, blocks and the away text.

use std::{collections::HashMap, time::Instant};

use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash},
    identity::Keypair,
    kad::QueryId,
    PeerId,
};
use tracing::{debug, warn};

use ipm_protocol::{
    decode_gossip, encode_gossip,
    limits::{MAX_PRESENCE_ROOMS, WIRE_GEOHASH_PRECISION},
    name_record::name_key,
    presence::validate_away,
    room::{normalize_tag, presence_topic},
    validate_name, Gossip, Position, Presence, Room,
};

use super::{name_records::NameQuery, EventLoop};
use crate::{
    client::NodeError,
    config::{Config, Role},
    contacts::ContactBook,
    event::Event,
    geo_group::{distance_to_cell, GeoGroup},
    names::OwnClaim,
    people::{ClaimStatus, ContactEntry, Me, People, PeopleRequest, User},
    presence::{announcement_due, PresenceTable},
    settings::Settings,
};

/// What the event loop keeps about rooms and people besides the directory.
pub(super) struct PeopleState {
    /// Signs the own name record.
    pub(super) key: Keypair,
    presence_topic: IdentTopic,
    position: Option<Position>,
    group: Option<GeoGroup>,
    interests: Vec<String>,
    away: Option<String>,
    table: PresenceTable,
    last_announce: Option<Instant>,
    /// Whether an announcement before the next periodic one is wanted (a newcomer).
    announce_wanted: bool,
    /// When the node started: the first announcement waits for the name claim to settle,
    /// but not longer than one presence interval from here.
    started: Instant,
    /// Where the claim of the own name stands.
    pub(super) claim: OwnClaim,
    /// Running DHT lookups of names.
    pub(super) queries: HashMap<QueryId, NameQuery>,
    /// The running put of the own name record.
    pub(super) put_query: Option<QueryId>,
    /// Whether the user was told that the name is taken.
    pub(super) told_taken: bool,
    /// Users who came online while their name was being looked up: they are reported once
    /// the lookup settles, under the name it allows.
    unreported: HashMap<PeerId, String>,
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
            table: PresenceTable::new(config.presence_timeout),
            last_announce: None,
            announce_wanted: false,
            started: Instant::now(),
            claim: OwnClaim::Idle { next_try: None },
            queries: HashMap::new(),
            put_query: None,
            told_taken: false,
            unreported: HashMap::new(),
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

    /// Whether the node listens to `room`: joined with `/join`, or a cell of the group.
    pub(super) fn is_subscribed(&self, room: &Room) -> bool {
        self.rooms.contains(room) || self.people.group_covers(room)
    }

    /// The coarse position to send with a line to `room`: only in geo rooms, only when the
    /// own position is known.
    pub(super) fn wire_geo(&self, room: &Room) -> Option<String> {
        match room {
            Room::Geo(_) => self
                .people
                .position
                .map(|p| p.geohash(WIRE_GEOHASH_PRECISION)),
            _ => None,
        }
    }

    /// How a line that arrived in `room` from a sender at `geo` is shown: the room to show
    /// and log it under and the sender's distance, or `None` when it is not shown (a group
    /// cell, and the sender is beyond the radius or gave no position).
    pub(super) fn geo_view(&self, room: &Room, geo: Option<&str>) -> Option<(Room, Option<f64>)> {
        match &self.people.group {
            Some(group) if group.covers(room) && !self.rooms.contains(room) => group
                .admits(geo)
                .map(|distance| (group.room(), Some(distance))),
            _ => {
                let distance = self
                    .people
                    .position
                    .zip(geo)
                    .and_then(|(me, cell)| distance_to_cell(&me, cell));
                Some((room.clone(), distance))
            }
        }
    }

    /// Runs four times per presence interval: drops silent users, announces this node when
    /// due and retries the name claim.
    pub(super) fn on_presence_tick(&mut self) {
        let now = Instant::now();
        for (peer, _) in self.people.table.expire(now) {
            if self.people.unreported.remove(&peer).is_none() {
                let name = self.directory.display_name(&peer);
                self.emit(Event::UserOffline { peer, name });
            }
        }
        self.announce_if_due(now);
        self.maybe_claim_name();
    }

    /// A peer joined the presence topic, or announced itself for the first time: let it know
    /// about us now rather than at the next periodic announcement (at most four times per
    /// interval; a wanted announcement that has to wait goes out at a later tick).
    pub(super) fn announce_soon(&mut self) {
        self.people.announce_wanted = true;
        self.announce_if_due(Instant::now());
    }

    fn announce_if_due(&mut self, now: Instant) {
        if announcement_due(
            self.people.last_announce,
            now,
            self.config.presence_interval,
            self.people.announce_wanted,
        ) {
            self.announce(now);
        }
    }

    /// Announces this node on the presence topic. The first announcement waits until the name
    /// claim has settled (at most one interval), so that peers who look the name up on
    /// hearing of us find the record.
    pub(super) fn announce(&mut self, now: Instant) {
        let settled = matches!(
            self.people.claim,
            OwnClaim::Registered | OwnClaim::Taken { .. }
        );
        if self.config.role != Role::Node
            || !(settled
                || now.saturating_duration_since(self.people.started)
                    >= self.config.presence_interval)
        {
            return;
        }
        let rooms = self
            .rooms
            .iter()
            .take(MAX_PRESENCE_ROOMS)
            .cloned()
            .collect();
        let presence = Presence::new(
            &self.config.name,
            rooms,
            self.people
                .position
                .map(|p| p.geohash(WIRE_GEOHASH_PRECISION)),
            self.people.group.as_ref().map(|g| g.own_cell().to_owned()),
            self.people.away.clone(),
        );
        let bytes = encode_gossip(&Gossip::Presence(presence));
        let topic = self.people.presence_topic.clone();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => debug!("cannot announce presence: {e}"),
        }
        self.people.last_announce = Some(now);
        self.people.announce_wanted = false;
    }

    /// Checks and records a presence announcement.
    pub(super) fn on_presence(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        let presence = match decode_gossip(data) {
            Ok(Gossip::Presence(presence)) => presence,
            Ok(Gossip::Chat(_) | Gossip::FileOffer(_)) => {
                debug!(peer = %source, "rejecting a room payload sent to the presence topic");
                return MessageAcceptance::Reject;
            }
            Err(e) => {
                debug!(peer = %source, "rejecting presence: {e}");
                return MessageAcceptance::Reject;
            }
        };
        if self.config.role != Role::Node || source == self.local_peer_id() {
            return MessageAcceptance::Accept;
        }
        self.observe_name(source, &presence.name);
        let name = presence.name.clone();
        if self.people.table.observe(source, presence, Instant::now()) {
            if self.directory.names.is_running(&name) {
                self.people.unreported.insert(source, name);
            } else {
                self.report_online(source);
            }
            self.announce_soon();
        }
        MessageAcceptance::Accept
    }

    fn report_online(&mut self, peer: PeerId) {
        let name = self.directory.display_name(&peer);
        self.emit(Event::UserOnline { peer, name });
    }

    /// A lookup of `name` settled: report the users who came online waiting for it.
    pub(super) fn name_settled(&mut self, name: &str) {
        let key = name_key(name);
        let waiting: Vec<PeerId> = self
            .people
            .unreported
            .iter()
            .filter(|(_, n)| name_key(n) == key)
            .map(|(p, _)| *p)
            .collect();
        for peer in waiting {
            self.people.unreported.remove(&peer);
            self.report_online(peer);
        }
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
                    book.remove(&name).ok_or_else(|| {
                        NodeError::Refused(format!("no contact '{name}': /contacts lists them"))
                    })
                }));
            }
            PeopleRequest::Block {
                peer,
                blocked,
                reply,
            } => {
                let result = if peer == self.local_peer_id() {
                    Err(NodeError::Refused("that is you".into()))
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
                }
            })
            .collect();
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
        let claim = match (&self.config.role, &me.claim) {
            (Role::Bootstrap, _) => ClaimStatus::NotClaimed,
            (_, OwnClaim::Registered) => ClaimStatus::Registered,
            (_, OwnClaim::Taken { owner, .. }) => ClaimStatus::Taken { owner: *owner },
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

    fn set_position(&mut self, position: Option<Position>) -> Result<Option<GeoGroup>, NodeError> {
        let group = match (&self.people.group, position) {
            (Some(group), Some(position)) => Some(
                GeoGroup::new(position, group.radius_km)
                    .map_err(|e| NodeError::Refused(e.to_string()))?,
            ),
            _ => None,
        };
        self.save_settings(|s| s.position = position)?;
        self.people.position = position;
        self.replace_group(group);
        Ok(self.people.group.clone())
    }

    fn join_geo(&mut self, radius_km: f64) -> Result<GeoGroup, NodeError> {
        let position = self.people.position.ok_or(NodeError::NoPosition)?;
        let group =
            GeoGroup::new(position, radius_km).map_err(|e| NodeError::Refused(e.to_string()))?;
        self.replace_group(Some(group.clone()));
        Ok(group)
    }

    /// Moves the subscriptions from the current group's cells to those of `group`, keeping
    /// rooms joined with `/join`, and tells the others.
    fn replace_group(&mut self, group: Option<GeoGroup>) {
        let old = std::mem::replace(&mut self.people.group, group);
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        for room in old.iter().flat_map(GeoGroup::rooms) {
            if !self.rooms.contains(&room) && !self.people.group_covers(&room) {
                gossipsub.unsubscribe(&IdentTopic::new(room.topic()));
            }
        }
        for room in self.people.group.iter().flat_map(GeoGroup::rooms) {
            if let Err(e) = gossipsub.subscribe(&IdentTopic::new(room.topic())) {
                warn!(%room, "cannot join a cell of the location group: {e:?}");
            }
        }
        self.announce(Instant::now());
    }

    fn add_interest(&mut self, tag: &str) -> Result<bool, NodeError> {
        let tag = normalize_tag(tag).map_err(|e| NodeError::Refused(e.to_string()))?;
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
            validate_away(text).map_err(|e| NodeError::Refused(e.to_string()))?;
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
        validate_name(name)
            .map_err(|e| NodeError::Refused(format!("bad contact name '{name}': {e}")))?;
        if peer == self.local_peer_id() {
            return Err(NodeError::Refused("that is you".into()));
        }
        let previous = self.change_contacts(|book| {
            book.add(name, peer, addr.clone())
                .map_err(|e| NodeError::Refused(e.to_string()))
        })?;
        if let Some(addr) = addr {
            self.add_known_address(&addr);
        }
        Ok(previous)
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
                what: dir.contacts().display().to_string(),
                reason: e.to_string(),
            })?;
        }
        self.directory.contacts = book;
        Ok(result)
    }

    fn save_settings(&self, change: impl FnOnce(&mut Settings)) -> Result<(), NodeError> {
        match &self.config.data_dir {
            Some(dir) => Settings::update(&dir.settings(), change).map_err(|e| NodeError::Save {
                what: dir.settings().display().to_string(),
                reason: e.to_string(),
            }),
            None => Ok(()),
        }
    }
}
