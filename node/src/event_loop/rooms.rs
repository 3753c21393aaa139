//! Rooms in the event loop: joining and leaving, publishing a line, and taking in what
//! arrives on a room's topic (chat lines and shared files).

use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use tracing::{debug, warn};

use ipm_protocol::{decode_gossip, encode_gossip, ChatMessage, Gossip, Room};

use super::EventLoop;
use crate::{
    client::{NodeError, Published},
    config::Role,
    event::Event,
    store::history::Entry,
};

impl EventLoop {
    pub(super) fn publish(&mut self, room: Room, text: String) -> Result<Published, NodeError> {
        if !self.is_subscribed(&room) {
            return Err(NodeError::NotInRoom(room));
        }
        let chat = ChatMessage::new(&self.config.name, &text, self.wire_geo(&room));
        let bytes = encode_gossip(&Gossip::Chat(chat.clone()));
        // Receivers apply exactly these rules; refuse here what they would reject.
        decode_gossip(&bytes).map_err(NodeError::InvalidMessage)?;
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
        self.seen.insert(chat.id);
        self.metrics.count_sent("room");
        let entry = Entry {
            ts: chat.sent_ms,
            id: chat.id.to_string(),
            from: self.config.name.clone(),
            peer: self.local_peer_id().to_string(),
            text: chat.text,
            outgoing: true,
        };
        self.record(&room, &entry);
        Ok(Published { id: chat.id, peers })
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

    pub(super) fn join(&mut self, room: Room) -> Result<bool, NodeError> {
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
        if new {
            self.emit(Event::Joined { room });
            self.announce_soon();
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
        if was {
            self.emit(Event::Left { room });
            self.announce_soon();
        }
        Ok(was)
    }

    /// Checks a room message and shows it; the verdict feeds gossipsub's peer scoring.
    pub(super) fn on_gossip(&mut self, message: &gossipsub::Message) -> MessageAcceptance {
        let Some(source) = message.source else {
            return MessageAcceptance::Reject;
        };
        if self.people.is_presence_topic(&message.topic) {
            return self.on_presence(source, &message.data);
        }
        let room = match Room::from_topic(message.topic.as_str()) {
            Ok(room) => room,
            Err(_) => return MessageAcceptance::Reject,
        };
        let chat = match decode_gossip(&message.data) {
            Ok(Gossip::Chat(chat)) => chat,
            Ok(Gossip::FileOffer(offer)) => {
                if !self.rooms.contains(&room) || !self.seen.insert(offer.transfer) {
                    return MessageAcceptance::Ignore;
                }
                self.observe_name(source, &offer.from_name);
                return self.on_shared_file(source, room, offer);
            }
            Ok(Gossip::Presence(_)) => {
                debug!(peer = %source, "rejecting presence sent to a room");
                return MessageAcceptance::Reject;
            }
            Err(e) => {
                debug!(peer = %source, "rejecting gossip: {e}");
                return MessageAcceptance::Reject;
            }
        };
        if !self.is_subscribed(&room) || !self.seen.insert(chat.id) {
            return MessageAcceptance::Ignore;
        }
        self.observe_name(source, &chat.name);
        // Blocked authors and geo lines from beyond the radius are not shown, but still
        // forwarded: the verdict is about validity, not about this user's taste.
        if self.directory.is_blocked(&source) {
            return MessageAcceptance::Accept;
        }
        let Some((room, distance_km)) = self.geo_view(&room, chat.geo.as_deref()) else {
            return MessageAcceptance::Accept;
        };
        let from = self.directory.display_name(&source);
        if self.config.role == Role::Node {
            let entry = Entry {
                ts: ipm_protocol::message::now_ms(),
                id: chat.id.to_string(),
                from: from.clone(),
                peer: source.to_string(),
                text: chat.text.clone(),
                outgoing: false,
            };
            self.record(&room, &entry);
        }
        self.metrics.count_received("room");
        self.emit(Event::Message {
            room,
            id: chat.id,
            from,
            peer: source,
            text: chat.text,
            distance_km,
        });
        MessageAcceptance::Accept
    }
}
