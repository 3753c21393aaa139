//! The peer manager: a `NetworkBehaviour` beside the protocols that sees every connection
//! open and close, lets it in or refuses it, and dials or closes connections as the
//! [`ConnectionBudget`] (how many peers, which to trim) and the [`PeerPolicy`] (bootstrap
//! redials, direct dials of relayed peers, spam budgets and the graylist) decide. It also
//! keeps which requests are in flight with each peer, so that trimming never cuts one. It
//! speaks no protocol of its own: its handler is libp2p's dummy.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    convert::Infallible,
    task::{Context, Poll, Waker},
    time::Instant,
};

use libp2p::{
    core::{transport::PortUse, Endpoint},
    request_response::{self, InboundRequestId, OutboundRequestId},
    swarm::{
        behaviour::ConnectionEstablished,
        dial_opts::{DialOpts, PeerCondition},
        dummy, CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, DialFailure,
        FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};
use tracing::debug;

use super::addresses::{ip_of, is_relayed, remote_addr};
use crate::logic::{
    connection_budget::{Admission, ConnectionBudget, Kind, Standing, Watermarks},
    peer_policy::{DialWhen, OverBudget, PeerAction, PeerPolicy, PeerSettings},
    second_connections::{self, Open},
};

/// Requests tracked per peer at most (more are not protected, nothing else changes).
const MAX_TRACKED_REQUESTS: usize = 4096;

/// One request in flight, on the protocol named by the string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum InFlight {
    Sent(&'static str, OutboundRequestId),
    Received(&'static str, InboundRequestId),
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("already connected to {0} peers, each kept for now")]
struct Full(usize);

/// One open connection.
struct OpenConnection {
    /// The address it is shown under.
    addr: Multiaddr,
    /// Whether this node dialled it.
    dialled_here: bool,
    /// When it was established.
    opened: Instant,
}

/// Drives the node's [`PeerPolicy`] from the swarm's connection events.
pub struct PeerManager {
    policy: PeerPolicy,
    budget: ConnectionBudget,
    /// This node's peer id (of two connections to one peer, the smaller id decides).
    local: PeerId,
    /// The open connections of each connected peer.
    connections: HashMap<PeerId, HashMap<ConnectionId, OpenConnection>>,
    /// Requests in flight with each peer, either way.
    in_flight: HashMap<PeerId, HashSet<InFlight>>,
    /// Dials the user asked for, not established yet.
    user_dials: HashSet<ConnectionId>,
    /// The peers in gossipsub's meshes and their scores, as of the last heartbeat.
    mesh: HashSet<PeerId>,
    scores: HashMap<PeerId, f64>,
    pending: VecDeque<ToSwarm<Infallible, THandlerInEvent<Self>>>,
    waker: Option<Waker>,
}

impl PeerManager {
    /// The peer manager of node `local`, with `settings`.
    pub fn new(local: PeerId, settings: PeerSettings) -> Self {
        let bootstraps = settings.bootstraps.iter().map(|(p, _)| *p).collect();
        Self {
            budget: ConnectionBudget::new(settings.marks.clone(), bootstraps),
            policy: PeerPolicy::new(settings),
            local,
            connections: HashMap::new(),
            in_flight: HashMap::new(),
            user_dials: HashSet::new(),
            mesh: HashSet::new(),
            scores: HashMap::new(),
            pending: VecDeque::new(),
            waker: None,
        }
    }

    /// The watermarks the node keeps to.
    pub fn marks(&self) -> &Watermarks {
        self.budget.marks()
    }

    /// What `peer` is to the node, as of the last heartbeat (`None`: not connected).
    pub fn kind(&self, peer: &PeerId) -> Option<Kind> {
        self.budget.kind(peer, &self.mesh)
    }

    /// How many connected peers are of each kind.
    pub fn counts(&self) -> Vec<(Kind, usize)> {
        self.budget.counts(&self.mesh)
    }

    /// The user dials on `connection`: it is let in and kept.
    pub fn user_dial(&mut self, connection: ConnectionId) {
        self.user_dials.insert(connection);
    }

    /// This node sent request `id` to `peer` on `protocol`: the connection is kept until
    /// it is answered or failed.
    pub fn request_sent(&mut self, peer: PeerId, protocol: &'static str, id: OutboundRequestId) {
        self.track(peer, InFlight::Sent(protocol, id));
    }

    /// Keeps the requests in flight up to date from an event of `protocol`'s
    /// request-response behaviour (a request received within its budget is in flight until
    /// answered; one sent, until its answer or failure).
    pub fn exchanged<Req, Resp>(
        &mut self,
        protocol: &'static str,
        event: &request_response::Event<Req, Resp>,
    ) {
        use request_response::{Event, Message};
        match event {
            Event::Message {
                peer,
                message: Message::Request { request_id, .. },
                ..
            } => self.track(*peer, InFlight::Received(protocol, *request_id)),
            Event::Message {
                peer,
                message: Message::Response { request_id, .. },
                ..
            }
            | Event::OutboundFailure {
                peer, request_id, ..
            } => self.untrack(peer, InFlight::Sent(protocol, *request_id)),
            Event::ResponseSent {
                peer, request_id, ..
            }
            | Event::InboundFailure {
                peer, request_id, ..
            } => self.untrack(peer, InFlight::Received(protocol, *request_id)),
        }
    }

    fn track(&mut self, peer: PeerId, request: InFlight) {
        let requests = self.in_flight.entry(peer).or_default();
        if requests.len() < MAX_TRACKED_REQUESTS {
            requests.insert(request);
        }
    }

    fn untrack(&mut self, peer: &PeerId, request: InFlight) {
        if let Some(requests) = self.in_flight.get_mut(peer) {
            requests.remove(&request);
            if requests.is_empty() {
                self.in_flight.remove(peer);
            }
        }
    }

    fn busy(&self) -> HashSet<PeerId> {
        self.in_flight.keys().copied().collect()
    }

    /// How many peers are connected.
    pub fn connected(&self) -> usize {
        self.connections.len()
    }

    /// The IP address `peer` is connected from over a direct connection (the first one
    /// when it holds several); `None` when it is not connected or only through a relay.
    pub fn remote_ip(&self, peer: &PeerId) -> Option<std::net::IpAddr> {
        self.connections
            .get(peer)?
            .values()
            .find_map(|c| ip_of(&c.addr))
    }

    /// Whether `peer` is one of the bootstraps.
    pub fn is_bootstrap(&self, peer: &PeerId) -> bool {
        self.policy.is_bootstrap(peer)
    }

    /// Whether the node looks for more peers now.
    pub fn wants_peers(&self) -> bool {
        self.budget.wants_peers()
    }

    /// `peer` exchanged a request with this node.
    pub fn used(&mut self, peer: PeerId, now: Instant) {
        self.budget.used(&peer, now);
    }

    /// The user dialled `peer`: it is kept.
    pub fn pin(&mut self, peer: PeerId) {
        self.budget.pin(&peer);
    }

    /// Runs from time to time with the peers in the node's gossipsub meshes and the scores
    /// of the connected peers: redials bootstraps and trims. Whether to walk the DHT for
    /// more peers now.
    pub fn heartbeat(
        &mut self,
        now: Instant,
        mesh: HashSet<PeerId>,
        scores: HashMap<PeerId, f64>,
    ) -> bool {
        self.mesh = mesh;
        self.scores = scores;
        let connected: HashSet<PeerId> = self.connections.keys().copied().collect();
        for action in self.policy.heartbeat(now, &connected) {
            self.act(action);
        }
        let busy = self.busy();
        let standing = Standing {
            mesh: &self.mesh,
            busy: &busy,
            scores: &self.scores,
        };
        for peer in self.budget.trim(standing, now) {
            debug!(%peer, "trimming a connection");
            self.act(PeerAction::Disconnect(peer));
        }
        self.close_second_connections(&busy, now);
        self.budget.walk(now)
    }

    /// Closes the surplus direct connections to peers with several (see
    /// [`second_connections`]), but not to a peer with a request in flight or a recent one.
    fn close_second_connections(&mut self, busy: &HashSet<PeerId>, now: Instant) {
        let mut surplus = Vec::new();
        for (peer, open) in self.connections.iter().filter(|(_, c)| c.len() > 1) {
            if busy.contains(peer) || self.budget.exchanged_lately(peer, now) {
                continue;
            }
            let open: Vec<Open<ConnectionId>> = open
                .iter()
                .map(|(id, c)| Open {
                    id: *id,
                    dialled_here: c.dialled_here,
                    relayed: is_relayed(&c.addr),
                    opened: c.opened,
                })
                .collect();
            let decides = self.local < *peer;
            surplus.extend(
                second_connections::surplus(decides, &open, now)
                    .into_iter()
                    .map(|id| (*peer, id)),
            );
        }
        for (peer, connection) in surplus {
            debug!(%peer, "closing a second connection");
            self.push(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::One(connection),
            });
        }
    }

    /// Whether the next heartbeat needs the peers' gossipsub scores.
    pub fn needs_scores(&self) -> bool {
        self.budget.needs_scores()
    }

    /// The DHT reported `peer`: dialled while the node wants peers.
    pub fn discovered(&mut self, peer: PeerId) {
        if self.budget.discovered(peer, Instant::now()) {
            self.act(PeerAction::Dial {
                peer,
                addrs: Vec::new(),
                when: DialWhen::Disconnected,
            });
        }
    }

    /// mDNS found `peer` at `addr` on the LAN: dialled below the high mark.
    pub fn found_nearby(&mut self, peer: PeerId, addr: Multiaddr) {
        if self.budget.nearby(&peer) {
            self.act(PeerAction::Dial {
                peer,
                addrs: vec![addr],
                when: DialWhen::Disconnected,
            });
        }
    }

    /// Identify told where `peer` listens.
    pub fn identified(&mut self, peer: PeerId, listen: &[Multiaddr], now: Instant) {
        let relayed_only = self
            .connections
            .get(&peer)
            .is_some_and(|c| !c.is_empty() && c.values().all(|c| is_relayed(&c.addr)));
        let direct = listen.iter().filter(|a| !is_relayed(a)).cloned().collect();
        if let Some(action) = self.policy.identified(peer, relayed_only, direct, now) {
            self.act(action);
        }
    }

    /// Checks a room message by `author` that `forwarder` delivered against the author's
    /// budget (`None`: within it).
    pub fn room_message(
        &mut self,
        author: PeerId,
        forwarder: PeerId,
        now: Instant,
    ) -> Option<OverBudget> {
        let verdict = self.policy.room_message(author, forwarder, now);
        if verdict.is_some() {
            debug!(peer = %author, "room message over the author's budget");
        }
        verdict
    }

    /// Whether a request from `peer` on `protocol` is within its budget; one over it is
    /// dropped unanswered.
    pub fn request(&mut self, peer: PeerId, protocol: &'static str, now: Instant) -> bool {
        let allowed = self.policy.request(peer, protocol, now);
        if !allowed {
            debug!(%peer, protocol, "request over the peer's budget: dropped");
        }
        allowed
    }

    /// Penalises `author`; the penalty to subtract from its gossipsub score.
    pub fn penalise(&mut self, author: PeerId, now: Instant) -> f64 {
        self.policy.penalise(author, now)
    }

    /// `peer`'s gossipsub score is `score` now: a graylisted peer is cut off (also when it
    /// comes back: it keeps its score while away).
    pub fn score(&mut self, peer: PeerId, score: Option<f64>) {
        if PeerPolicy::graylisted(score) && self.connections.contains_key(&peer) {
            debug!(%peer, ?score, "graylisted: disconnecting");
            self.act(PeerAction::Disconnect(peer));
        }
    }

    /// `peer` speaks another protocol than ipm's (its identify version differs): it is cut off.
    pub fn foreign(&mut self, peer: PeerId) {
        self.act(PeerAction::Disconnect(peer));
    }

    /// A peer stopped answering pings on `connection` (its network vanished): the
    /// connection closes now instead of when the kernel gives up on it.
    pub fn unresponsive(&mut self, peer: PeerId, connection: ConnectionId) {
        debug!(%peer, "ping failed, closing the connection");
        self.push(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::One(connection),
        });
    }

    fn act(&mut self, action: PeerAction) {
        match action {
            PeerAction::Dial { peer, addrs, when } => {
                let condition = match when {
                    DialWhen::Disconnected => PeerCondition::DisconnectedAndNotDialing,
                    DialWhen::Always => PeerCondition::Always,
                };
                let opts = DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .condition(condition)
                    .build();
                self.push(ToSwarm::Dial { opts });
            }
            PeerAction::Disconnect(peer) => {
                debug!(%peer, "closing the connections to a peer");
                self.push(ToSwarm::CloseConnection {
                    peer_id: peer,
                    connection: CloseConnection::All,
                });
            }
        }
    }

    fn push(&mut self, action: ToSwarm<Infallible, THandlerInEvent<Self>>) {
        self.pending.push_back(action);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl PeerManager {
    /// Whether a dial of `peer` may start: one the budget would refuse once connected is
    /// not worth the handshake.
    fn may_dial(&self, connection: ConnectionId, peer: &PeerId) -> bool {
        let user = self.user_dials.contains(&connection);
        let busy = self.in_flight.contains_key(peer);
        let busy_peers = self.busy();
        let standing = Standing {
            mesh: &self.mesh,
            busy: &busy_peers,
            scores: &self.scores,
        };
        self.budget
            .may_dial(peer, user, busy, standing, Instant::now())
    }

    /// Lets a connection to `peer` in, making room or refusing it at the high mark.
    fn admit(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let user = self.user_dials.contains(&connection);
        let busy = self.in_flight.contains_key(&peer);
        let busy_peers = self.busy();
        let standing = Standing {
            mesh: &self.mesh,
            busy: &busy_peers,
            scores: &self.scores,
        };
        match self
            .budget
            .admit(peer, user, busy, standing, Instant::now())
        {
            Admission::Accept => Ok(dummy::ConnectionHandler),
            Admission::Evict(victim) => {
                debug!(%victim, newcomer = %peer, "closing a connection to make room");
                self.act(PeerAction::Disconnect(victim));
                Ok(dummy::ConnectionHandler)
            }
            Admission::Deny => {
                debug!(%peer, "refusing a connection: at the high mark");
                Err(ConnectionDenied::new(Full(self.budget.connected())))
            }
        }
    }
}

impl NetworkBehaviour for PeerManager {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(connection, peer)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        match peer {
            Some(peer) if !self.may_dial(connection, &peer) => {
                debug!(%peer, "not dialling: at the high mark");
                Err(ConnectionDenied::new(Full(self.budget.connected())))
            }
            _ => Ok(Vec::new()),
        }
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.admit(connection, peer)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                self.connections.entry(peer_id).or_default().insert(
                    connection_id,
                    OpenConnection {
                        addr: remote_addr(endpoint),
                        dialled_here: endpoint.is_dialer(),
                        opened: Instant::now(),
                    },
                );
                let user = self.user_dials.remove(&connection_id);
                self.budget
                    .established(peer_id, endpoint.is_dialer(), user, Instant::now());
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id,
                connection_id,
                ..
            }) => {
                self.user_dials.remove(&connection_id);
                if let Some(peer) = peer_id {
                    self.budget.dial_failed(&peer);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                remaining_established,
                ..
            }) => {
                if let Some(connections) = self.connections.get_mut(&peer_id) {
                    connections.remove(&connection_id);
                }
                if remaining_established == 0 {
                    self.connections.remove(&peer_id);
                    self.policy.disconnected(&peer_id);
                    self.budget.closed(&peer_id);
                    self.in_flight.remove(&peer_id);
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        match self.pending.pop_front() {
            Some(action) => Poll::Ready(action),
            None => {
                self.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
