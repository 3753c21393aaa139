//! `EventLoop`: owns the swarm, answers `Client` requests and turns swarm events into `Event`s.
//!
//! This file holds the loop's `select!` and the dispatch of swarm events and requests. What
//! each part does lives beside it: `rooms` (join, leave, publish, room lines arriving),
//! `connections` (dialling, bootstraps, discovery, identify and Kademlia), `direct` (private
//! messages), `mailbox` (sealed messages at bootstraps), `files` (offers and downloads),
//! `folders` (folders as one transfer), `registry` (names at bootstraps), `room_forwarding` (the rooms a bootstrap forwards), and
//! for people `announcements` (presence), `location` (the location group), `name_records`
//! (names in the DHT) and `people_state`.

mod announcements;
mod catch_up_driver;
mod changes;
mod connections;
mod conversations;
mod location;
mod name_records;
mod people_state;

mod direct;
mod file_streams;
mod files;
mod folders;
mod mailbox;
mod multi_source;
mod receipts;
mod registry;
mod room_forwarding;
mod rooms;
pub(crate) use rooms::remembered;
mod spam;
mod status;

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::metrics::Recorder;
use libp2p::{
    autonat,
    gossipsub::{self, MessageAcceptance},
    identify, kad, mdns, ping,
    swarm::{ConnectionId, SwarmEvent},
    Multiaddr, PeerId, Swarm,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use ipm_protocol::Room;

use crate::{
    client::{NodeError, Request},
    config::Config,
    event::Event,
    logic::{directory::Directory, intake::Intake},
    net::addresses::{dial_reason, peer_of, remote_addr},
    net::behaviour::{Behaviour, BehaviourEvent},
    net::metrics::Metrics,
    services::BootstrapServices,
    store::NodeStore,
};

use files::Internal;
use people_state::PeopleState;

/// How many message ids are remembered to drop replays.
const SEEN_CAPACITY: usize = 50_000;

/// How often delivery deadlines and retries are checked.
const DELIVERY_TICK: Duration = Duration::from_millis(250);

/// How long a stopping node keeps its connections for its goodbye to leave.
const GOODBYE_FLUSH: Duration = Duration::from_millis(250);

type DialReply = oneshot::Sender<Result<PeerId, NodeError>>;

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
    store: NodeStore,
    services: Option<BootstrapServices>,
    directory: Directory,
    intake: Intake,
    pending_dials: HashMap<ConnectionId, (Multiaddr, DialReply)>,
    direct: direct::DirectState,
    files: files::Files,
    folders: folders::Folders,
    lookups: HashMap<kad::QueryId, PeerId>,
    dht_upkeep: crate::logic::dht_upkeep::DhtUpkeep<kad::QueryId>,
    relay_listeners: HashMap<PeerId, libp2p::core::transport::ListenerId>,
    nat: autonat::NatStatus,
    mailbox_calls: HashMap<libp2p::request_response::OutboundRequestId, mailbox::MailboxCall>,
    mail_pickup: crate::logic::mail_pickup::MailPickup,
    metrics: Metrics,
    people: PeopleState,
    registry: registry::RegistryState,
    catch_up: catch_up_driver::CatchUpState,
    changes: changes::ChangeState,
    receipts: receipts::ReceiptState,
}

/// Everything an event loop is built from.
pub(crate) struct Parts {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) key: libp2p::identity::Keypair,
    pub(crate) requests: mpsc::Receiver<Request>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) config: Config,
    pub(crate) store: NodeStore,
    pub(crate) services: Option<BootstrapServices>,
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
            store,
            services,
            directory,
            metrics,
        } = parts;
        let (internal_tx, internal_rx) = mpsc::channel(256);
        let people = PeopleState::new(key.clone(), &config);
        let files = files::Files::new(&config, store.downloads.is_some());
        let registry = registry::RegistryState::new(&config);
        let intake = Intake::new(SEEN_CAPACITY, config.presence_interval);
        let marks = config
            .data_dir
            .as_ref()
            .map(|d| d.root().join("unread.json"));
        let serves_archive = services.is_some();
        Self {
            swarm,
            key,
            requests,
            events,
            internal_tx,
            internal_rx,
            direct: direct::DirectState::new(&config, &store.outbox),
            // A bootstrap neither deposits nor fetches mail: it keeps the mailbox.
            mail_pickup: crate::logic::mail_pickup::MailPickup::new(services.is_none()),
            config,
            rooms: BTreeSet::new(),
            store,
            services,
            directory,
            intake,
            pending_dials: HashMap::new(),
            files,
            folders: folders::Folders::default(),
            lookups: HashMap::new(),
            dht_upkeep: crate::logic::dht_upkeep::DhtUpkeep::new(Instant::now()),
            relay_listeners: HashMap::new(),
            nat: autonat::NatStatus::Unknown,
            mailbox_calls: HashMap::new(),
            metrics,
            people,
            registry,
            catch_up: catch_up_driver::CatchUpState::new(serves_archive),
            changes: changes::ChangeState::default(),
            receipts: receipts::ReceiptState::new(marks),
        }
    }

    /// Runs until [`crate::Client::shutdown`] is called or every client handle is dropped.
    pub async fn run(mut self) {
        for addr in self.config.bootstrap.clone() {
            self.add_known_address(&addr);
        }
        self.rejoin_remembered();
        self.serve_file_streams();
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
                    self.renew_ticket();
                    self.peer_heartbeat(now);
                    self.leave_idle_rooms(now);
                }
                _ = presence.tick() => self.on_presence_tick(),
            }
        }
        // Caught-up lines still waiting for their authors' names are logged now.
        self.release_caught_up(true);
        self.save_heard_names();
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
            Request::Search { query, only, reply } => self.search(query, only, reply),
            Request::People(request) => self.on_people_request(request),
            Request::Registry(ask) => self.on_registry_ask(ask),
            Request::Conversation(request) => self.on_conversation_request(request),
            Request::Folder(ask) => self.offer_folder(ask),
            Request::Shutdown => {}
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.libp2p.record(&event);
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                let advertised = self
                    .services
                    .as_ref()
                    .is_some_and(|s| s.advertises(&address, &self.config.listen));
                if advertised {
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
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    self.swarm.behaviour_mut().peer_manager.pin(peer_id);
                    let _ = reply.send(Ok(peer_id));
                }
                // A graylisted peer keeps its score while away: it is cut off again.
                self.check_score(peer_id);
                if num_established.get() == 1 {
                    self.emit(Event::Connected {
                        peer: peer_id,
                        addr,
                    });
                    self.presence_connected(peer_id);
                    self.flush_outbox(peer_id);
                    self.resend_offers(peer_id);
                    self.reserve_relay(peer_id);
                    self.catch_up_connected(peer_id);
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
                    self.registry_peer_gone(peer_id);
                    self.presence_disconnected(peer_id, cause.as_ref());
                    self.forwarding_peer_gone(peer_id);
                    self.catch_up_gone(peer_id);
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
                        addr,
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
                            let verdict = self.on_gossip(propagation_source, &message);
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
            // A bootstrap forwards the rooms its peers share, so that peers which only know
            // it still hear each other.
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }) => {
                self.on_room_subscribed(peer_id, &topic)
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Unsubscribed { peer_id, topic }) => {
                self.on_room_unsubscribed(peer_id, &topic)
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identify(peer_id, info)
            }
            BehaviourEvent::Kad(event) => self.on_kad(event),
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            }) => {
                debug!(%peer, "ping failed: {e}");
                self.swarm
                    .behaviour_mut()
                    .peer_manager
                    .unresponsive(peer, connection);
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                info!(status = ?new, "reachability");
                self.nat = new;
            }
            BehaviourEvent::Dcutr(event) => self.on_hole_punch(event),
            BehaviourEvent::RelayClient(event) => debug!(?event, "relay"),
            BehaviourEvent::Direct(event) => {
                if let Some(event) = self.within_request_budget("direct", event) {
                    self.on_direct_event(event)
                }
            }
            BehaviourEvent::File(event) => {
                if let Some(event) = self.within_request_budget("file", event) {
                    self.on_file_event(event)
                }
            }
            BehaviourEvent::Mailbox(event) => {
                if let Some(event) = self.within_request_budget("mailbox", event) {
                    self.on_mailbox_event(event)
                }
            }
            BehaviourEvent::Registry(event) => {
                if let Some(event) = self.within_request_budget("registry", event) {
                    self.on_registry_event(event)
                }
            }
            BehaviourEvent::History(event) => {
                if let Some(event) = self.within_request_budget("history", event) {
                    self.on_history_event(event)
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => self.on_found_nearby(found),
            _ => {}
        }
    }
}
