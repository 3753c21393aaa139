//! The peer manager: a `NetworkBehaviour` beside the protocols that sees every connection
//! open and close, and dials or closes connections as [`PeerPolicy`] decides (the
//! connection budget, bootstrap redials, direct dials of relayed peers, spam budgets and
//! the graylist). It speaks no protocol of its own: its handler is libp2p's dummy.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    convert::Infallible,
    task::{Context, Poll, Waker},
    time::Instant,
};

use libp2p::{
    core::{transport::PortUse, Endpoint},
    swarm::{
        behaviour::ConnectionEstablished,
        dial_opts::{DialOpts, PeerCondition},
        dummy, CloseConnection, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm,
        NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};
use tracing::debug;

use super::addresses::{ip_of, is_relayed, remote_addr};
use crate::logic::peer_policy::{DialWhen, OverBudget, PeerAction, PeerPolicy, PeerSettings};

/// Drives the node's [`PeerPolicy`] from the swarm's connection events.
pub struct PeerManager {
    policy: PeerPolicy,
    /// The open connections of each connected peer, with the address each is shown under.
    connections: HashMap<PeerId, HashMap<ConnectionId, Multiaddr>>,
    pending: VecDeque<ToSwarm<Infallible, THandlerInEvent<Self>>>,
    waker: Option<Waker>,
}

impl PeerManager {
    /// A peer manager with `settings`.
    pub fn new(settings: PeerSettings) -> Self {
        Self {
            policy: PeerPolicy::new(settings),
            connections: HashMap::new(),
            pending: VecDeque::new(),
            waker: None,
        }
    }

    /// How many peers are connected.
    pub fn connected(&self) -> usize {
        self.connections.len()
    }

    /// The IP address `peer` is connected from over a direct connection (the first one
    /// when it holds several); `None` when it is not connected or only through a relay.
    pub fn remote_ip(&self, peer: &PeerId) -> Option<std::net::IpAddr> {
        self.connections.get(peer)?.values().find_map(ip_of)
    }

    /// Whether `peer` is one of the bootstraps.
    pub fn is_bootstrap(&self, peer: &PeerId) -> bool {
        self.policy.is_bootstrap(peer)
    }

    /// Whether the node looks for more peers now.
    pub fn wants_peers(&self) -> bool {
        self.policy.wants_peers(self.connected())
    }

    /// `peer` exchanged a request with this node.
    pub fn used(&mut self, peer: PeerId, now: Instant) {
        self.policy.used(peer, now);
    }

    /// The user dialled `peer`: it is kept.
    pub fn pin(&mut self, peer: PeerId) {
        self.policy.pin(peer);
    }

    /// Runs from time to time with the peers in the node's gossipsub meshes.
    pub fn heartbeat(&mut self, now: Instant, mesh: &HashSet<PeerId>) {
        let connected: HashSet<PeerId> = self.connections.keys().copied().collect();
        for action in self.policy.heartbeat(now, &connected, mesh) {
            self.act(action);
        }
    }

    /// The DHT reported `peer`.
    pub fn discovered(&mut self, peer: PeerId) {
        let connected = self.connections.contains_key(&peer);
        if let Some(action) = self
            .policy
            .discovered(peer, Vec::new(), connected, self.connected())
        {
            self.act(action);
        }
    }

    /// mDNS found `peer` at `addr` on the LAN.
    pub fn found_nearby(&mut self, peer: PeerId, addr: Multiaddr) {
        let connected = self.connections.contains_key(&peer);
        if let Some(action) = self.policy.found_nearby(peer, addr, connected) {
            self.act(action);
        }
    }

    /// Identify told where `peer` listens.
    pub fn identified(&mut self, peer: PeerId, listen: &[Multiaddr], now: Instant) {
        let relayed_only = self
            .connections
            .get(&peer)
            .is_some_and(|c| !c.is_empty() && c.values().all(is_relayed));
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

impl NetworkBehaviour for PeerManager {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            }) => {
                self.connections
                    .entry(peer_id)
                    .or_default()
                    .insert(connection_id, remote_addr(endpoint));
                self.policy.used(peer_id, Instant::now());
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
