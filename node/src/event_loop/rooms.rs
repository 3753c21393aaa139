//! Rooms in the event loop: joining and leaving (remembered in the settings, and joined
//! again at the next start), publishing a line, and carrying out what the gossip intake
//! decides about each message (chat lines, shared files, presence).

use std::{collections::BTreeSet, time::Instant};

use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance},
    PeerId,
};
use tracing::{debug, warn};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use ipm_protocol::{
    decode_gossip, encode_gossip, sign_chat, ChatMessage, DecodeError, Gossip, Op, Room,
};

use super::{changes::Checked, location::geo_view, people_state::PeopleState, EventLoop};
use crate::{
    client::{NodeError, Published},
    config::{Config, Role},
    event::Event,
    logic::directory::Directory,
    logic::geo_group::{restore, RememberedCurrent, Restored, RoomMemory},
    logic::intake::{Action, Arrival, Context, Topic, Verdict},
    store::{history::Entry, settings::Settings},
};

/// The rooms, location group and current room a node starts with, from the settings of
/// its data dir: as they were when it stopped, the lobby on a first start. A bootstrap, or
/// a node without a data dir, starts in the lobby.
pub(crate) fn remembered(config: &Config) -> Restored {
    let memory = match (&config.data_dir, config.role) {
        (Some(dir), Role::Node) => match Settings::load(&dir.settings()) {
            Ok(settings) => settings.room_memory(),
            Err(e) => {
                warn!("cannot read the rooms of the last run: {e}");
                RoomMemory::default()
            }
        },
        _ => RoomMemory::default(),
    };
    restore(&memory, config.position)
}

impl EventLoop {
    pub(super) fn publish(&mut self, room: Room, text: String) -> Result<Published, NodeError> {
        self.publish_with(room, text, None, None)
    }

    /// Publishes a line of `text` to `room`, doing `re` to an earlier line; `logged` is
    /// what the log keeps instead of the text (a change's own text and record).
    pub(super) fn publish_with(
        &mut self,
        room: Room,
        text: String,
        re: Option<ipm_protocol::Change>,
        logged: Option<(String, crate::store::history::EntryChange)>,
    ) -> Result<Published, NodeError> {
        if !self.is_subscribed(&room) {
            return Err(NodeError::NotInRoom(room));
        }
        let mut chat = ChatMessage::new(&self.config.name, &text, self.wire_geo(&room));
        chat.re = re;
        // Receivers apply exactly these rules; refuse here what they would reject.
        decode_gossip(&encode_gossip(&Gossip::Chat(chat.clone())))
            .map_err(NodeError::InvalidMessage)?;
        let bytes = sign_chat(&self.key, &room.topic(), chat.clone())
            .map_err(|e| NodeError::InvalidMessage(DecodeError::Invalid(e.to_string())))?;
        let signed = STANDARD.encode(&bytes);
        let is_line = logged
            .as_ref()
            .is_none_or(|(_, re)| re.kind == crate::logic::edits::kind::REPLY);
        let (text, re) = match logged {
            Some((text, re)) => (text, Some(re)),
            None => (chat.text, None),
        };
        let entry = Entry {
            ts: chat.sent_ms,
            id: chat.id.to_string(),
            from: self.config.name.clone(),
            peer: self.local_peer_id().to_string(),
            text,
            outgoing: true,
            signed: Some(signed),
            re,
        };
        // The user's own record first: a line that cannot be kept (a full disk) is not
        // sent, and the user is told so rather than shown it as sent.
        if let Some(history) = &mut self.store.history {
            history
                .append(&room.slug(), &entry)
                .map_err(|source| NodeError::NotKept {
                    shown: room.to_string(),
                    source,
                })?;
        }
        let topic = IdentTopic::new(room.topic());
        let hash = topic.hash();
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        let peers = gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .count();
        match gossipsub.publish(topic, bytes) {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => return Err(NodeError::Publish(e)),
        }
        self.intake.insert(chat.id);
        self.metrics.count_sent("room");
        if is_line {
            let me = self.local_peer_id();
            self.note_line(&room.slug(), chat.id, &me, true);
        }
        Ok(Published { id: chat.id, peers })
    }

    /// Logs an incoming line ([`Action::Record`]): a plain line, or a change to an earlier
    /// line its author may make; a change it may not make is dropped.
    pub(super) fn record_line(&mut self, record: Action) {
        let Action::Record {
            room,
            id,
            peer,
            text,
            ts,
            signed,
            re,
        } = record
        else {
            return;
        };
        let log = room.slug();
        let (text, re, is_line) = match self.check_change(&log, &peer, re.as_ref(), &text) {
            Checked::Plain => (text, None, true),
            Checked::Refused => return,
            Checked::Change { re, text, op, .. } => (text, Some(re), op == Op::Reply),
        };
        let entry = Entry {
            ts,
            id: id.to_string(),
            from: self.directory.display_name(&peer),
            peer: peer.to_string(),
            text,
            outgoing: false,
            signed: signed.map(|data| STANDARD.encode(data)),
            re,
        };
        self.record(&room, &entry);
        if is_line {
            self.note_line(&log, id, &peer, false);
            self.count_unread(&log);
        }
    }

    /// Shows an incoming line ([`Action::Show`]), or the change it makes.
    pub(super) fn show_line(&mut self, show: Action) {
        let Action::Show {
            room,
            id,
            peer,
            text,
            distance_km,
            re,
        } = show
        else {
            return;
        };
        self.metrics.count_received("room");
        let event = match self.check_change(&room.slug(), &peer, re.as_ref(), &text) {
            Checked::Plain => Event::Message {
                room,
                id,
                from: self.directory.display_name(&peer),
                peer,
                text,
                distance_km,
                reply_to: None,
            },
            Checked::Refused => return,
            Checked::Change { op, target, .. } => {
                self.change_event(Some(&room), id, peer, target, op, text)
            }
        };
        self.emit(event);
    }

    pub(super) fn record(&mut self, room: &Room, entry: &Entry) {
        self.record_in(&room.slug(), &room.to_string(), entry);
    }

    /// Appends `entry` to the log `conversation`; a failure is reported, not fatal.
    pub(super) fn record_in(&mut self, conversation: &str, shown: &str, entry: &Entry) {
        if let Some(history) = &mut self.store.history {
            if let Err(e) = history.append(conversation, entry) {
                warn!(conversation, "cannot write history: {e}");
                self.emit(Event::Error {
                    message: format!("cannot write history of {shown}: {e}"),
                });
            }
        }
    }

    /// Joins the rooms and the location group of the last run (see [`remembered`]).
    pub(super) fn rejoin_remembered(&mut self) {
        let restored = remembered(&self.config);
        // Not remembered one by one: a kill between two writes would forget the rest.
        for room in restored.rooms {
            if let Err(e) = self.join_and_remember(room, false) {
                warn!("cannot join a room of the last run: {e}");
            }
        }
        if let Some(group) = restored.group {
            self.replace_group(Some(group));
        }
    }

    /// Writes a change of the rooms to the settings, on a user node; a failure is reported,
    /// not fatal: the room is joined or left for this run.
    pub(super) fn remember_rooms(&mut self, change: impl FnOnce(&mut Settings)) {
        if self.config.role != Role::Node {
            return;
        }
        if let Err(e) = self.save_settings(change) {
            warn!("cannot remember the rooms: {e}");
            self.emit(Event::Error {
                message: format!("cannot remember the rooms for the next start: {e}"),
            });
        }
    }

    /// Remembers the current room a frontend chose, for the next start.
    pub(super) fn remember_current(&mut self, current: RememberedCurrent) {
        self.remember_rooms(|s| s.current = Some(current.text()));
    }

    /// Joins `room` and remembers it for the next start; true when it is new.
    pub(super) fn join(&mut self, room: Room) -> Result<bool, NodeError> {
        self.join_and_remember(room, true)
    }

    fn join_and_remember(&mut self, room: Room, remember: bool) -> Result<bool, NodeError> {
        let topic = IdentTopic::new(room.topic());
        self.swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|source| NodeError::Room {
                room: room.clone(),
                source,
            })?;
        let new = self.rooms.insert(room.clone());
        if new && remember {
            let rooms = self.rooms.clone();
            self.remember_rooms(|s| s.set_rooms(&rooms));
        }
        if new {
            self.emit(Event::Joined { room: room.clone() });
            self.announce_soon();
            if self.config.role == Role::Node {
                self.catch_up_on(room);
            }
        }
        Ok(new)
    }

    pub(super) fn leave(&mut self, room: Room) -> Result<bool, NodeError> {
        // The location group keeps its own cells.
        if !self.people.group_covers(&room) {
            let topic = IdentTopic::new(room.topic());
            self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
        }
        let was = self.rooms.remove(&room);
        self.stop_catching_up(&room);
        if was {
            let rooms = self.rooms.clone();
            self.remember_rooms(|s| s.set_rooms(&rooms));
            self.emit(Event::Left { room });
            self.announce_soon();
        }
        Ok(was)
    }

    /// Checks a gossip message (room line, shared file or presence) and carries out what
    /// the intake decides; the verdict feeds gossipsub's peer scoring.
    /// `forwarder` is the peer that delivered it.
    pub(super) fn on_gossip(
        &mut self,
        forwarder: PeerId,
        message: &gossipsub::Message,
    ) -> MessageAcceptance {
        let topic = if self.people.is_presence_topic(&message.topic) {
            Topic::Presence
        } else {
            Room::from_topic(message.topic.as_str()).map_or(Topic::Foreign, Topic::Room)
        };
        let arrival = Arrival {
            source: message.source,
            topic,
            data: &message.data,
            forwarder,
            forwarder_ip: self
                .swarm
                .behaviour()
                .peer_manager
                .remote_ip(&forwarder)
                .and_then(|ip| self.config.address_limits.counted(ip)),
            via_bootstrap: self.swarm.behaviour().peer_manager.is_bootstrap(&forwarder),
            received: Instant::now(),
        };
        let here = Here {
            local: *self.swarm.local_peer_id(),
            bootstrap: self.services.is_some(),
            user_node: self.config.role == Role::Node,
            rooms: &self.rooms,
            people: &self.people,
            directory: &self.directory,
            now: Instant::now(),
        };
        let now_ms = ipm_protocol::now_ms();
        let outcome = self.intake.handle(now_ms, arrival, &here);
        let mut acceptance = match outcome.verdict {
            Verdict::Accept | Verdict::Deferred => MessageAcceptance::Accept,
            Verdict::Ignore => MessageAcceptance::Ignore,
            Verdict::Reject(reason) => {
                debug!(peer = ?message.source, "rejecting gossip: {reason}");
                MessageAcceptance::Reject
            }
        };
        for action in outcome.actions {
            match action {
                // A bootstrap forwards whatever its users bring and caps it itself.
                Action::PenaliseForwarder(peer) => {
                    if !self.swarm.behaviour().peer_manager.is_bootstrap(&peer) {
                        self.penalise_author(Some(peer));
                    }
                }
                Action::EndSession(peer) => self.registry_peer_gone(peer),
                Action::CheckTicket { peer, ticket } => self.check_ticket(peer, &ticket),
                Action::ObserveName { peer, name } => self.observe_name(peer, &name),
                Action::ShareFile {
                    source,
                    room,
                    offer,
                } => acceptance = self.on_shared_file(source, room, offer),
                record @ Action::Record { .. } => self.record_line(record),
                archive @ Action::Archive { .. } => self.archive_line(archive),
                show @ Action::Show { .. } => self.show_line(show),
                Action::Presence {
                    peer,
                    presence,
                    forwarder,
                } => self.hear_presence(peer, presence, forwarder),
            }
        }
        acceptance
    }
}

/// What the intake asks of the node, borrowed from the loop's fields.
struct Here<'a> {
    local: PeerId,
    bootstrap: bool,
    user_node: bool,
    rooms: &'a BTreeSet<Room>,
    people: &'a PeopleState,
    directory: &'a Directory,
    now: Instant,
}

impl Context for Here<'_> {
    fn local_peer(&self) -> PeerId {
        self.local
    }

    fn is_bootstrap(&self) -> bool {
        self.bootstrap
    }

    fn is_user_node(&self) -> bool {
        self.user_node
    }

    fn joined(&self, room: &Room) -> bool {
        self.rooms.contains(room)
    }

    fn subscribed(&self, room: &Room) -> bool {
        self.rooms.contains(room) || self.people.group_covers(room)
    }

    fn blocked(&self, peer: &PeerId) -> bool {
        self.directory.is_blocked(peer)
    }

    fn trusted(&self, peer: &PeerId) -> bool {
        self.directory.contacts.petname(peer).is_some()
    }

    fn listed(&self, peer: &PeerId) -> bool {
        self.people.table.get(peer, self.now).is_some()
    }

    fn placement(&self, room: &Room, geo: Option<&str>) -> Option<(Room, Option<f64>)> {
        geo_view(self.people, self.rooms, room, geo)
    }
}
