//! `EventLoop`: owns the swarm, answers `Client` requests and turns swarm events into `Event`s.
//!
//! Private messages live in `event_loop/direct.rs`, file transfer in `event_loop/files.rs`,
//! mailboxes in `event_loop/mailbox.rs`, name registries in `event_loop/registry.rs`; rooms and people in `location` (the location
//! group), `announcements` (presence), `name_records` (names in the DHT) and `people` (their
//! state, contacts, blocks, away). This file holds the loop itself, rooms, connections and
//! discovery.

mod announcements;
mod location;
mod name_records;
mod people;

mod direct;
mod exchange;
mod files;
mod mailbox;
mod pruning;
mod registry;
mod spam;

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::metrics::Recorder;
use libp2p::{
    autonat,
    core::ConnectedPoint,
    dcutr,
    gossipsub::{self, IdentTopic, MessageAcceptance},
    identify, kad, mdns,
    multiaddr::Protocol,
    ping,
    swarm::{
        dial_opts::{DialOpts, PeerCondition},
        ConnectionId, DialError, SwarmEvent,
    },
    Multiaddr, PeerId, Swarm,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use ipm_protocol::{
    decode_gossip, encode_gossip, ChatMessage, FileResponse, Gossip, MessageId, Room, TransferId,
};

use crate::{
    behaviour::{Behaviour, BehaviourEvent, IDENTIFY_PROTOCOL_VERSION, KAD_PROTOCOL},
    client::{NodeError, PeerStatus, Published, Request, RoomStatus, Status},
    config::{Config, Role},
    data_dir::DataDir,
    download::FetchError,
    event::Event,
    history::{Entry, History},
    mailbox::Mailbox,
    metrics::Metrics,
    outbox::Outbox,
    peers::{Directory, RecentIds},
    transfers::Transfers,
    StartError,
};

use people::PeopleState;

/// Most rooms a bootstrap forwards for (it joins every ipm room its peers join).
const MAX_FORWARDED_ROOMS: usize = ipm_protocol::limits::MAX_FORWARDED_ROOMS;
/// How many message ids are remembered to drop replays.
const SEEN_CAPACITY: usize = 50_000;

/// How often delivery deadlines and retries are checked.
const DELIVERY_TICK: Duration = Duration::from_millis(250);

/// How long before a peer reached only through a relay is dialled directly again.
const DIRECT_RETRY: Duration = Duration::from_secs(60);
/// How long a stopping node keeps its connections for its goodbye to leave.
const GOODBYE_FLUSH: Duration = Duration::from_millis(250);

type DialReply = oneshot::Sender<Result<PeerId, NodeError>>;

/// What the node keeps on disk (or in memory without a data dir).
#[derive(Debug)]
pub(crate) struct State {
    history: Option<History>,
    history_dir: Option<PathBuf>,
    outbox: Outbox,
    transfers: Transfers,
    downloads: Option<PathBuf>,
    mailbox: Mailbox,
    registry: crate::registry::Registry,
}

impl State {
    /// Opens what a node of `role` keeps in `dir` (a user's history, outbox and transfers;
    /// a bootstrap's mailbox), or keeps everything in memory.
    pub(crate) fn open(dir: Option<&DataDir>, role: Role) -> Result<Self, StartError> {
        let in_memory = Self {
            history: None,
            history_dir: None,
            outbox: Outbox::in_memory(),
            transfers: Transfers::default(),
            downloads: None,
            mailbox: Mailbox::in_memory(),
            registry: crate::registry::Registry::in_memory(),
        };
        let Some(dir) = dir else {
            return Ok(in_memory);
        };
        let failed = |path: PathBuf| {
            move |source| StartError::DataDir {
                path: path.display().to_string(),
                source,
            }
        };
        if role == Role::Bootstrap {
            let now = ipm_protocol::message::now_ms();
            return Ok(Self {
                mailbox: Mailbox::open(&dir.mailbox(), now).map_err(failed(dir.mailbox()))?,
                registry: crate::registry::Registry::open(&dir.registry())
                    .map_err(failed(dir.registry()))?,
                ..in_memory
            });
        }
        let downloads = dir.downloads();
        std::fs::create_dir_all(&downloads).map_err(failed(downloads.clone()))?;
        Ok(Self {
            history: Some(History::open(dir.history()).map_err(failed(dir.history()))?),
            history_dir: Some(dir.history()),
            outbox: Outbox::open(&dir.outbox()).map_err(failed(dir.outbox()))?,
            transfers: Transfers::open(&dir.transfers()).map_err(failed(dir.transfers()))?,
            downloads: Some(downloads),
            mailbox: Mailbox::in_memory(),
            registry: crate::registry::Registry::in_memory(),
        })
    }
}

/// Messages from the node's own tasks (downloads, file reads) back to the loop.
#[derive(Debug)]
pub(crate) enum Internal {
    /// A download wants one chunk from its sender.
    FetchChunk {
        peer: PeerId,
        transfer: TransferId,
        offset: u64,
        len: u32,
        reply: oneshot::Sender<Result<Vec<u8>, FetchError>>,
    },
    /// A download ended.
    DownloadFinished {
        transfer: TransferId,
        result: Result<PathBuf, String>,
    },
    /// A chunk asked for by a peer was read from disk.
    ChunkRead {
        channel: libp2p::request_response::ResponseChannel<FileResponse>,
        response: FileResponse,
    },
}

/// Drives one node. Run it with [`EventLoop::run`] on a tokio task.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    key: libp2p::identity::Keypair,
    requests: mpsc::Receiver<Request>,
    events: broadcast::Sender<Event>,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    config: Config,
    rooms: BTreeSet<Room>,
    state: State,
    directory: Directory,
    seen: RecentIds<MessageId>,
    pending_dials: HashMap<ConnectionId, (Multiaddr, DialReply)>,
    direct: direct::Delivery,
    files: files::Files,
    lookups: HashMap<kad::QueryId, PeerId>,
    relay_listeners: HashMap<PeerId, libp2p::core::transport::ListenerId>,
    nat: autonat::NatStatus,
    mailbox_calls: HashMap<libp2p::request_response::OutboundRequestId, mailbox::MailboxCall>,
    deposited: std::collections::HashSet<(MessageId, PeerId)>,
    metrics: Metrics,
    people: PeopleState,
    bootstrap_redial: HashMap<PeerId, (Instant, u32)>,
    /// When each peer reached only through a relay was last dialled directly.
    direct_tries: HashMap<PeerId, Instant>,
    usage: pruning::Usage,
    spam: spam::Spam,
    registry: registry::RegistryState,
}

/// Everything an event loop is built from.
pub(crate) struct Parts {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) key: libp2p::identity::Keypair,
    pub(crate) requests: mpsc::Receiver<Request>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) config: Config,
    pub(crate) state: State,
    pub(crate) directory: Directory,
    pub(crate) metrics: Metrics,
}

impl EventLoop {
    pub(crate) fn new(parts: Parts) -> Self {
        let Parts {
            swarm,
            key,
            requests,
            events,
            config,
            state,
            directory,
            metrics,
        } = parts;
        let (internal_tx, internal_rx) = mpsc::channel(256);
        let people = PeopleState::new(key.clone(), &config);
        Self {
            swarm,
            key,
            requests,
            events,
            internal_tx,
            internal_rx,
            config,
            rooms: BTreeSet::new(),
            state,
            directory,
            seen: RecentIds::new(SEEN_CAPACITY),
            pending_dials: HashMap::new(),
            direct: direct::Delivery::default(),
            files: files::Files::default(),
            lookups: HashMap::new(),
            relay_listeners: HashMap::new(),
            nat: autonat::NatStatus::Unknown,
            mailbox_calls: HashMap::new(),
            direct_tries: HashMap::new(),
            deposited: std::collections::HashSet::new(),
            metrics,
            people,
            bootstrap_redial: HashMap::new(),
            usage: pruning::Usage::default(),
            spam: spam::Spam::default(),
            registry: registry::RegistryState::default(),
        }
    }

    /// Runs until [`crate::Client::shutdown`] is called or every client handle is dropped.
    pub async fn run(mut self) {
        for addr in self.config.bootstrap.clone() {
            self.add_known_address(&addr);
        }
        if let Err(e) = self.join(Room::Lobby) {
            warn!("cannot join the lobby: {e}");
        }
        self.resume_downloads();
        self.start_people();
        let mut discovery = tokio::time::interval(self.config.discovery_interval);
        discovery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut delivery = tokio::time::interval(DELIVERY_TICK);
        delivery.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A random phase, so that nodes started together do not check in step.
        let presence_tick = self.config.presence_interval / 4;
        let mut presence = tokio::time::interval_at(
            tokio::time::Instant::now() + presence_tick.mul_f64(rand::random::<f64>()),
            presence_tick,
        );
        presence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                request = self.requests.recv() => match request {
                    Some(Request::Shutdown) | None => break,
                    Some(request) => self.on_request(request),
                },
                Some(internal) = self.internal_rx.recv() => self.on_internal(internal),
                _ = discovery.tick() => self.discover(),
                _ = delivery.tick() => {
                    let now = Instant::now();
                    self.retry_deliveries(now);
                    self.retry_offer_lookups(now);
                    self.retry_logins(now);
                    self.redial_bootstraps(now);
                    self.prune_connections(now);
                }
                _ = presence.tick() => self.on_presence_tick(),
            }
        }
        if self.announce_leaving() {
            self.flush(GOODBYE_FLUSH).await;
        }
        self.files.stop_downloads();
        info!("node stopped");
    }

    /// Keeps the connections going for `time`, handling what arrives, so that the last
    /// messages queued (the goodbye) leave before the connections drop.
    async fn flush(&mut self, time: Duration) {
        let deadline = tokio::time::sleep(time);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
            }
        }
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
            Request::SendDirect { to, text, reply } => self.send_direct(to, text, reply),
            Request::OfferFile {
                target,
                source,
                size,
                sha256,
                reply,
            } => {
                let _ = reply.send(self.offer_file(target, source, size, sha256));
            }
            Request::Accept { transfer, reply } => {
                let _ = reply.send(self.accept(&transfer));
            }
            Request::Reject { transfer, reply } => {
                let _ = reply.send(self.reject(&transfer));
            }
            Request::Transfers { reply } => {
                let _ = reply.send(self.transfer_views());
            }
            Request::People(request) => self.on_people_request(request),
            Request::Registry(ask) => self.on_registry_ask(ask),
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

    fn record(&mut self, room: &Room, entry: &Entry) {
        self.record_in(&room.slug(), &room.to_string(), entry);
    }

    /// Appends `entry` to the log `conversation`; a failure is reported, not fatal.
    fn record_in(&mut self, conversation: &str, shown: &str, entry: &Entry) {
        if let Some(history) = &mut self.state.history {
            if let Err(e) = history.append(conversation, entry) {
                warn!(conversation, "cannot write history: {e}");
                self.emit(Event::Error {
                    message: format!("cannot write history of {shown}: {e}"),
                });
            }
        }
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::FetchChunk {
                peer,
                transfer,
                offset,
                len,
                reply,
            } => self.fetch_chunk(peer, transfer, offset, len, reply),
            Internal::DownloadFinished { transfer, result } => {
                self.download_finished(transfer, result)
            }
            Internal::ChunkRead { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .file
                    .send_response(channel, response);
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
        let listen: Vec<Multiaddr> = self
            .swarm
            .listeners()
            .map(|a| a.clone().with_p2p(local).unwrap_or_else(|a| a))
            .collect();
        let (relayed, listen) = listen.into_iter().partition(is_relayed);
        Status {
            peer: local,
            name: self.config.name.clone(),
            listen,
            relayed,
            nat: match &self.nat {
                autonat::NatStatus::Public(_) => "public".into(),
                autonat::NatStatus::Private => "private (reachable through a relay only)".into(),
                autonat::NatStatus::Unknown => "unknown".into(),
            },
            external: self.swarm.external_addresses().cloned().collect(),
            peers,
            rooms,
        }
    }

    /// Re-dials bootstraps the node is not connected to, with a growing pause (1 s up to
    /// 30 s) so that a restarted bootstrap is found again within seconds.
    fn redial_bootstraps(&mut self, now: Instant) {
        for addr in self.config.bootstrap.clone() {
            let Some(peer) = peer_of(&addr) else {
                continue;
            };
            if self.swarm.is_connected(&peer) {
                self.bootstrap_redial.remove(&peer);
                continue;
            }
            let (due, attempts) = self
                .bootstrap_redial
                .get(&peer)
                .copied()
                .unwrap_or((now, 0));
            if due > now {
                continue;
            }
            let pause =
                crate::backoff::pause(Duration::from_secs(1), attempts, Duration::from_secs(30));
            self.bootstrap_redial
                .insert(peer, (now + pause, attempts + 1));
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, "not redialling the bootstrap: {e}");
            }
        }
    }

    /// Dials more peers from the DHT while the node has fewer than it wants.
    fn discover(&mut self) {
        self.poll_mailboxes();
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

    /// Asks a bootstrap that just connected for a relay reservation: peers that cannot
    /// reach this node directly then reach it through `<bootstrap>/p2p-circuit`.
    fn reserve_relay(&mut self, peer: PeerId) {
        if !self.config.use_relay || self.relay_listeners.contains_key(&peer) {
            return;
        }
        let Some(addr) = self
            .config
            .bootstrap
            .iter()
            .find(|a| peer_of(a) == Some(peer))
            .cloned()
        else {
            return;
        };
        match self.swarm.listen_on(addr.with(Protocol::P2pCircuit)) {
            Ok(id) => {
                self.relay_listeners.insert(peer, id);
            }
            Err(e) => warn!(%peer, "cannot ask the bootstrap for a relay reservation: {e}"),
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
        self.metrics.libp2p.record(&event);
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                // A bootstrap is deployed to be reachable where it listens (loopback only when
                // it was told to listen there, not as one interface of 0.0.0.0).
                let explicit_loopback = self.config.listen.iter().any(is_loopback);
                if self.config.role == Role::Bootstrap
                    && !is_relayed(&address)
                    && (!is_loopback(&address) || explicit_loopback)
                {
                    self.swarm.add_external_address(address.clone());
                }
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
                self.usage.touch(peer_id, Instant::now());
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    self.usage.pin(peer_id);
                    let _ = reply.send(Ok(peer_id));
                }
                // A graylisted peer keeps its score while away: it is cut off again.
                self.refuse_graylisted(peer_id);
                if num_established.get() == 1 {
                    self.emit(Event::Connected {
                        peer: peer_id,
                        addr,
                    });
                    self.flush_outbox(peer_id);
                    self.resend_offers(peer_id);
                    self.reserve_relay(peer_id);
                    if self
                        .config
                        .bootstrap
                        .iter()
                        .any(|a| peer_of(a) == Some(peer_id))
                    {
                        self.on_bootstrap_connected(peer_id);
                        self.log_in_at(peer_id);
                    }
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
                    self.usage.forget(&peer_id);
                    self.direct_tries.remove(&peer_id);
                    self.registry_peer_gone(peer_id);
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
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let before = self.relay_listeners.len();
                self.relay_listeners.retain(|_, id| *id != listener_id);
                if self.relay_listeners.len() < before {
                    debug!(?reason, "relay reservation ended");
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
        match &event {
            BehaviourEvent::Gossipsub(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::Identify(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::Kad(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::Ping(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::RelayServer(e) => self.metrics.libp2p.record(e),
            BehaviourEvent::Dcutr(e) => self.metrics.libp2p.record(e),
            _ => {}
        }
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let (acceptance, penalise) =
                    match self.gossip_over_budget(&propagation_source, &message) {
                        Some(verdict) => (verdict, true),
                        None => {
                            let verdict = self.on_gossip(&message);
                            let rejected = matches!(verdict, MessageAcceptance::Reject);
                            (verdict, rejected)
                        }
                    };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                if penalise {
                    self.penalise_author(message.source);
                }
            }
            // A peer subscribing to presence is not news: a newcomer's first announcement
            // brings the answers, and a peer reconnecting knows us already. Answering every
            // subscription made every connection of a churning overlay cost an announcement.
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { topic, .. })
                if self.people.is_presence_topic(&topic) => {}
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
            // A peer that stopped answering pings is gone (its network vanished): close the
            // connection now instead of when the kernel gives up on it.
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            }) => {
                debug!(%peer, "ping failed, closing the connection: {e}");
                self.swarm.close_connection(connection);
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                info!(status = ?new, "reachability");
                self.nat = new;
            }
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(_) => info!(peer = %remote_peer_id, "direct connection by hole punching"),
                Err(e) => debug!(peer = %remote_peer_id, "hole punching failed: {e}"),
            },
            BehaviourEvent::RelayClient(event) => debug!(?event, "relay"),
            BehaviourEvent::Direct(event) => {
                self.usage.touch(exchange::peer(&event), Instant::now());
                if let Some(event) = self.within_request_budget("direct", event) {
                    self.on_direct_event(event)
                }
            }
            BehaviourEvent::File(event) => {
                self.usage.touch(exchange::peer(&event), Instant::now());
                if let Some(event) = self.within_request_budget("file", event) {
                    self.on_file_event(event)
                }
            }
            BehaviourEvent::Mailbox(event) => {
                self.usage.touch(exchange::peer(&event), Instant::now());
                if let Some(event) = self.within_request_budget("mailbox", event) {
                    self.on_mailbox_event(event)
                }
            }
            BehaviourEvent::Registry(event) => {
                self.usage.touch(exchange::peer(&event), Instant::now());
                if let Some(event) = self.within_request_budget("registry", event) {
                    self.on_registry_event(event)
                }
            }
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

    fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        if info.protocol_version != IDENTIFY_PROTOCOL_VERSION {
            debug!(%peer, version = %info.protocol_version, "not an ipm peer; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        self.directory.observe_agent(peer, info.agent_version);
        let listen: Vec<Multiaddr> = info
            .listen_addrs
            .into_iter()
            .filter(|addr| worth_dialling(addr, &info.observed_addr))
            .collect();
        if info.protocols.contains(&KAD_PROTOCOL) {
            for addr in &listen {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
        }
        self.try_direct(peer, listen);
    }

    /// A peer reached only through a relay may well share a network with this node (both
    /// met at the bootstrap first): dials the addresses it listens on, at most once per
    /// [`DIRECT_RETRY`]. Hole punching covers the peers behind NATs.
    fn try_direct(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let relayed_only = self
            .directory
            .get(&peer)
            .is_some_and(|i| !i.connections.is_empty() && i.connections.iter().all(is_relayed));
        let direct: Vec<Multiaddr> = addrs.into_iter().filter(|a| !is_relayed(a)).collect();
        if !relayed_only || direct.is_empty() {
            return;
        }
        let now = Instant::now();
        if self
            .direct_tries
            .get(&peer)
            .is_some_and(|at| now < *at + DIRECT_RETRY)
        {
            return;
        }
        self.direct_tries.insert(peer, now);
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::Always)
            .addresses(direct)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            debug!(%peer, "no direct dial: {e}");
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
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                step,
                ..
            } => {
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                if let Some(target) = self.lookups.get(&id).copied() {
                    if let Some(found) = peers.iter().find(|p| p.peer_id == target) {
                        for addr in &found.addrs {
                            self.swarm
                                .behaviour_mut()
                                .kad
                                .add_address(&target, addr.clone());
                        }
                        self.lookups.remove(&id);
                        self.flush_outbox(target);
                        self.resend_offers(target);
                    } else if step.last {
                        self.lookups.remove(&id);
                        self.report_all_queued(target);
                    }
                    return;
                }
                for found in peers {
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

/// Whether an address goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether a listen address a peer announced is worth dialling from this node, which the
/// peer sees at `seen_as`. A loopback address means something only on the peer's own host,
/// to a node it sees at a loopback address: anywhere else dialling it reaches a process of
/// this host (often this very node), and that wrong peer fails the whole dial.
pub fn worth_dialling(addr: &Multiaddr, seen_as: &Multiaddr) -> bool {
    !is_loopback(addr) || is_loopback(seen_as)
}

/// The peer id at the end of an address, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The address a connection is shown under; an inbound relayed connection is shown under
/// the relay circuit it came through.
fn remote_addr(endpoint: &ConnectedPoint) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address.clone(),
        ConnectedPoint::Listener { local_addr, .. } if is_relayed(local_addr) => local_addr.clone(),
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
    }
}

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}
