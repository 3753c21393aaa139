//! `EventLoop`: owns the swarm, answers `Client` requests and turns swarm events into `Event`s.
//!
//! Rooms and people live in the child modules: `location` (the location group),
//! `announcements` (presence), `name_records` (names in the DHT) and `people` (their state,
//! contacts, blocks, away).

mod announcements;
mod location;
mod name_records;
mod people;

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use libp2p::{
    core::ConnectedPoint,
    gossipsub::{self, IdentTopic, MessageAcceptance},
    identify,
    identity::Keypair,
    kad, mdns,
    multiaddr::Protocol,
    swarm::{
        dial_opts::{DialOpts, PeerCondition},
        ConnectionId, DialError, SwarmEvent,
    },
    Multiaddr, PeerId, Swarm,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use ipm_protocol::{decode_gossip, encode_gossip, ChatMessage, Gossip, MessageId, Room};

use crate::{
    behaviour::{Behaviour, BehaviourEvent, IDENTIFY_PROTOCOL_VERSION, KAD_PROTOCOL},
    client::{NodeError, PeerStatus, Published, Request, RoomStatus, Status},
    config::{Config, Role},
    event::Event,
    history::{Entry, History},
    peers::{Directory, RecentIds},
};

use people::PeopleState;

/// Most rooms a bootstrap forwards for (it joins every ipm room its peers join).
const MAX_FORWARDED_ROOMS: usize = 10_000;
/// How many message ids are remembered to drop replays.
const SEEN_CAPACITY: usize = 50_000;

type DialReply = oneshot::Sender<Result<PeerId, NodeError>>;

/// Drives one node. Run it with [`EventLoop::run`] on a tokio task.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    requests: mpsc::Receiver<Request>,
    events: broadcast::Sender<Event>,
    config: Config,
    rooms: BTreeSet<Room>,
    history: Option<History>,
    directory: Directory,
    seen: RecentIds<MessageId>,
    pending_dials: HashMap<ConnectionId, (Multiaddr, DialReply)>,
    people: PeopleState,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        requests: mpsc::Receiver<Request>,
        events: broadcast::Sender<Event>,
        config: Config,
        history: Option<History>,
        directory: Directory,
        key: Keypair,
    ) -> Self {
        let people = PeopleState::new(key, &config);
        Self {
            swarm,
            requests,
            events,
            config,
            rooms: BTreeSet::new(),
            history,
            directory,
            seen: RecentIds::new(SEEN_CAPACITY),
            pending_dials: HashMap::new(),
            people,
        }
    }

    /// Runs until [`crate::Client::shutdown`] is called or every client handle is dropped.
    pub async fn run(mut self) {
        for addr in self.config.bootstrap.clone() {
            self.add_known_address(&addr);
            if let Err(e) = self.swarm.dial(addr.clone()) {
                warn!(%addr, "cannot dial bootstrap: {e}");
            }
        }
        if let Err(e) = self.join(Room::Lobby) {
            warn!("cannot join the lobby: {e}");
        }
        self.start_people();
        let mut discovery = tokio::time::interval(self.config.discovery_interval);
        discovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut presence = tokio::time::interval(self.config.presence_interval / 4);
        presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                request = self.requests.recv() => match request {
                    Some(Request::Shutdown) | None => break,
                    Some(request) => self.on_request(request),
                },
                _ = discovery.tick() => self.discover(),
                _ = presence.tick() => self.on_presence_tick(),
            }
        }
        info!("node stopped");
    }

    fn emit(&self, event: Event) {
        // No subscriber is fine: history is written by the loop itself.
        let _ = self.events.send(event);
    }

    fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Publish { room, text, reply } => {
                let _ = reply.send(self.publish(room, text));
            }
            Request::Join { room, reply } => {
                let _ = reply.send(self.join(room));
            }
            Request::Leave { room, reply } => {
                let _ = reply.send(self.leave(room));
            }
            Request::Dial { addr, reply } => self.dial(addr, reply),
            Request::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Request::People(request) => self.on_people_request(request),
            Request::Shutdown => {}
        }
    }

    fn publish(&mut self, room: Room, text: String) -> Result<Published, NodeError> {
        if !self.is_subscribed(&room) {
            return Err(NodeError::NotInRoom(room.to_string()));
        }
        let chat = ChatMessage::new(&self.config.name, &text, self.wire_geo(&room));
        let bytes = encode_gossip(&Gossip::Chat(chat.clone()));
        // Receivers apply exactly these rules; refuse here what they would reject.
        decode_gossip(&bytes).map_err(|e| NodeError::InvalidMessage(e.to_string()))?;
        let topic = IdentTopic::new(room.topic());
        let hash = topic.hash();
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        let peers = gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .count();
        match gossipsub.publish(topic, bytes) {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => return Err(NodeError::Publish(format!("{e:?}"))),
        }
        self.seen.insert(chat.id);
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

    fn record(&mut self, room: &Room, entry: &Entry) {
        if let Some(history) = &mut self.history {
            if let Err(e) = history.append(&room.slug(), entry) {
                warn!(%room, "cannot write history: {e}");
                self.emit(Event::Error {
                    message: format!("cannot write history of {room}: {e}"),
                });
            }
        }
    }

    fn join(&mut self, room: Room) -> Result<bool, NodeError> {
        let topic = IdentTopic::new(room.topic());
        self.swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| NodeError::Room(format!("cannot join {room}: {e:?}")))?;
        let new = self.rooms.insert(room.clone());
        if new {
            self.emit(Event::Joined { room });
            self.announce_soon();
        }
        Ok(new)
    }

    fn leave(&mut self, room: Room) -> Result<bool, NodeError> {
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

    fn dial(&mut self, addr: Multiaddr, reply: DialReply) {
        let opts = match peer_of(&addr) {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, (addr, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Dial {
                    addr: addr.to_string(),
                    reason: dial_reason(&e),
                }));
            }
        }
    }

    fn status(&self) -> Status {
        let local = self.local_peer_id();
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let rooms = self
            .rooms
            .iter()
            .map(|room| {
                let hash = IdentTopic::new(room.topic()).hash();
                let mut members: Vec<(String, PeerId)> = gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(p, _)| (self.directory.display_name(p), *p))
                    .collect();
                members.sort();
                RoomStatus {
                    room: room.clone(),
                    members,
                }
            })
            .collect();
        let mut peers: Vec<PeerStatus> = self
            .swarm
            .connected_peers()
            .map(|p| {
                let info = self.directory.get(p);
                PeerStatus {
                    peer: *p,
                    name: self.directory.display_name(p),
                    addrs: info.map(|i| i.connections.clone()).unwrap_or_default(),
                    agent: info.and_then(|i| i.agent.clone()),
                }
            })
            .collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        Status {
            peer: local,
            name: self.config.name.clone(),
            listen: self
                .swarm
                .listeners()
                .map(|a| a.clone().with_p2p(local).unwrap_or_else(|a| a))
                .collect(),
            external: self.swarm.external_addresses().cloned().collect(),
            peers,
            rooms,
        }
    }

    /// Dials more peers from the DHT while the node has fewer than it wants.
    fn discover(&mut self) {
        if self.wants_peers() {
            self.swarm
                .behaviour_mut()
                .kad
                .get_closest_peers(PeerId::random());
        }
    }

    fn wants_peers(&self) -> bool {
        self.config.role == Role::Node
            && self.swarm.network_info().num_peers() < self.config.target_peers
    }

    fn maybe_dial(&mut self, peer: PeerId) {
        if peer == self.local_peer_id() || self.swarm.is_connected(&peer) || !self.wants_peers() {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            debug!(%peer, "not dialling discovered peer: {e}");
        }
    }

    fn add_known_address(&mut self, addr: &Multiaddr) {
        if let Some(peer) = peer_of(addr) {
            let mut plain = addr.clone();
            if matches!(plain.iter().last(), Some(Protocol::P2p(_))) {
                plain.pop();
            }
            self.swarm.behaviour_mut().kad.add_address(&peer, plain);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                let addr = address.with_p2p(self.local_peer_id()).unwrap_or_else(|a| a);
                info!(%addr, "listening");
                self.emit(Event::Listening { addr });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let addr = remote_addr(&endpoint);
                debug!(peer = %peer_id, %addr, "connection established");
                self.directory.connected(peer_id, addr.clone());
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                if num_established.get() == 1 {
                    self.emit(Event::Connected {
                        peer: peer_id,
                        addr,
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                endpoint,
                num_established,
                cause,
                ..
            } => {
                debug!(peer = %peer_id, ?cause, "connection closed");
                self.directory
                    .disconnected(&peer_id, &remote_addr(&endpoint));
                if num_established == 0 {
                    self.emit(Event::Disconnected { peer: peer_id });
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                debug!(?peer_id, "dial failed: {error}");
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NodeError::Dial {
                        addr: addr.to_string(),
                        reason: dial_reason(&error),
                    }));
                }
            }
            SwarmEvent::ListenerError { error, .. } => {
                warn!("listener failed: {error}");
                self.emit(Event::Error {
                    message: format!("listener failed: {error}"),
                });
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let acceptance = self.on_gossip(&message);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { topic, .. })
                if self.people.is_presence_topic(&topic) =>
            {
                self.announce_soon()
            }
            // The bootstrap forwards every ipm room so that peers which only know it still
            // hear each other.
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { topic, .. })
                if self.config.role == Role::Bootstrap
                    && self.rooms.len() < MAX_FORWARDED_ROOMS =>
            {
                if let Ok(room) = Room::from_topic(topic.as_str()) {
                    if !self.rooms.contains(&room) {
                        let _ = self.join(room);
                    }
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identify(peer_id, info)
            }
            BehaviourEvent::Kad(event) => self.on_kad(event),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let opts = DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks a room message and shows it; the verdict feeds gossipsub's peer scoring.
    fn on_gossip(&mut self, message: &gossipsub::Message) -> MessageAcceptance {
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

    fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        if info.protocol_version != IDENTIFY_PROTOCOL_VERSION {
            debug!(%peer, version = %info.protocol_version, "not an ipm peer; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        self.directory.observe_agent(peer, info.agent_version);
        if info.protocols.contains(&KAD_PROTOCOL) {
            for addr in info.listen_addrs {
                self.swarm.behaviour_mut().kad.add_address(&peer, addr);
            }
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated { peer, .. } => {
                self.maybe_dial(peer);
                self.maybe_claim_name();
            }
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_inbound_record(source, record),
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetRecord(result),
                step,
                ..
            } => self.on_get_record(id, result, step.last),
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::PutRecord(result),
                ..
            } => self.on_put_record(id, result),
            kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetClosestPeers(Ok(ok)),
                ..
            } => {
                for found in ok.peers {
                    self.maybe_dial(found.peer_id);
                }
            }
            _ => {}
        }
    }
}

/// One short line saying why a dial failed: the innermost cause of each attempt.
fn dial_reason(error: &DialError) -> String {
    let mut reasons: Vec<String> = match error {
        DialError::Transport(attempts) => attempts
            .iter()
            .map(|(_, e)| innermost(e).to_string())
            .collect(),
        other => vec![innermost(other).to_string()],
    };
    reasons.dedup();
    reasons
        .join("; ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn innermost<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> &'a (dyn std::error::Error + 'static) {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current
}

/// The peer id at the end of an address, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

fn remote_addr(endpoint: &ConnectedPoint) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address.clone(),
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
    }
}
