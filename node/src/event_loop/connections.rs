//! Connections in the event loop: dialling on request, redialling bootstraps, discovering
//! peers through the DHT, relay reservations, and what identify and Kademlia report.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use libp2p::{
    identify, kad,
    multiaddr::Protocol,
    swarm::dial_opts::{DialOpts, PeerCondition},
    Multiaddr, PeerId,
};
use tracing::{debug, info, warn};

use super::{DialReply, EventLoop};
use crate::{
    client::NodeError,
    logic::dht_upkeep::Step,
    logic::presence,
    net::{
        addresses::{dial_reason, peer_of, worth_dialling},
        behaviour::{IDENTIFY_PROTOCOL_VERSION, KAD_PROTOCOL},
        metrics::KindLabel,
    },
};

impl EventLoop {
    pub(super) fn dial(&mut self, addr: Multiaddr, reply: DialReply) {
        let opts = match peer_of(&addr) {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let id = opts.connection_id();
        self.swarm.behaviour_mut().peer_manager.user_dial(id);
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, (addr, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Dial {
                    addr,
                    reason: dial_reason(&e),
                }));
            }
        }
    }

    /// Lets the peer manager redial bootstraps and trim connections, telling it which peers
    /// are in gossipsub's meshes (kept) and their scores; walks the DHT when it wants more
    /// peers.
    pub(super) fn peer_heartbeat(&mut self, now: Instant) {
        let behaviour = self.swarm.behaviour_mut();
        let mesh: HashSet<PeerId> = behaviour.gossipsub.all_mesh_peers().copied().collect();
        // Scores only rank the peers to close above the high mark.
        let scores: HashMap<PeerId, f64> = if behaviour.peer_manager.needs_scores() {
            self.swarm
                .connected_peers()
                .filter_map(|p| Some((*p, self.swarm.behaviour().gossipsub.peer_score(p)?)))
                .collect()
        } else {
            HashMap::new()
        };
        let behaviour = self.swarm.behaviour_mut();
        if behaviour.peer_manager.heartbeat(now, mesh, scores) {
            behaviour.kad.get_closest_peers(PeerId::random());
        }
        self.record_connections();
    }

    /// Cuts the bootstraps libp2p-kad started on its own that [`DhtUpkeep`] finds too soon
    /// after the last own-key lookup; looked for whenever Kademlia reports something, so
    /// that a new one is seen within its first requests.
    ///
    /// [`DhtUpkeep`]: crate::logic::dht_upkeep::DhtUpkeep
    fn screen_bootstraps(&mut self, now: Instant) {
        let upkeep = &mut self.dht_upkeep;
        for mut query in self.swarm.behaviour_mut().kad.iter_queries_mut() {
            if matches!(query.info(), kad::QueryInfo::Bootstrap { .. })
                && upkeep.running(query.id(), now) == Step::Cut
            {
                query.finish();
            }
        }
    }

    /// Sets the connection gauges, by kind.
    fn record_connections(&self) {
        for (kind, count) in self.swarm.behaviour().peer_manager.counts() {
            self.metrics
                .connections
                .get_or_create(&KindLabel {
                    kind: kind.label().into(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Polls the mailboxes now and then (the DHT is walked from the peer heartbeat).
    pub(super) fn discover(&mut self) {
        self.poll_mailboxes();
    }

    /// The DHT reported `peer`: the peer manager dials it while the node wants peers.
    pub(super) fn maybe_dial(&mut self, peer: PeerId) {
        if peer != self.local_peer_id() {
            self.swarm.behaviour_mut().peer_manager.discovered(peer);
        }
    }

    /// Asks a bootstrap that just connected for a relay reservation: peers that cannot
    /// reach this node directly then reach it through `<bootstrap>/p2p-circuit`.
    pub(super) fn reserve_relay(&mut self, peer: PeerId) {
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

    pub(super) fn add_known_address(&mut self, addr: &Multiaddr) {
        if let Some(peer) = peer_of(addr) {
            let mut plain = addr.clone();
            if matches!(plain.iter().last(), Some(Protocol::P2p(_))) {
                plain.pop();
            }
            self.swarm.behaviour_mut().kad.add_address(&peer, plain);
        }
    }

    pub(super) fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        if info.protocol_version != IDENTIFY_PROTOCOL_VERSION {
            debug!(%peer, version = %info.protocol_version, "not an ipm peer");
            self.swarm.behaviour_mut().peer_manager.foreign(peer);
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
        // A peer reached only through a relay may share a network with this node (both met
        // at the bootstrap first): the peer manager dials it directly now and then. Hole
        // punching covers the peers behind NATs.
        self.swarm
            .behaviour_mut()
            .peer_manager
            .identified(peer, &listen, Instant::now());
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        self.screen_bootstraps(Instant::now());
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
                result: kad::QueryResult::Bootstrap(_),
                step,
                ..
            } => {
                let now = Instant::now();
                let step = self
                    .dht_upkeep
                    .on_step(id, step.count.get(), step.last, now);
                if step == Step::Cut {
                    if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                        query.finish();
                    }
                }
            }
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

impl EventLoop {
    /// A first connection to `peer` was established: a user whose connection broke is back.
    pub(super) fn presence_connected(&mut self, peer: PeerId) {
        self.presence_step(Instant::now(), presence::Input::Connected(peer));
    }

    /// The last connection to `peer` closed. When the peer's side broke it (not this node
    /// trimming or idling it out), a user announced through it is shown offline after a
    /// short grace unless it comes back; users heard only through it lose their stretch.
    pub(super) fn presence_disconnected(
        &mut self,
        peer: PeerId,
        cause: Option<&libp2p::swarm::ConnectionError>,
    ) {
        let now = Instant::now();
        if matches!(cause, Some(libp2p::swarm::ConnectionError::IO(_))) {
            self.presence_step(now, presence::Input::ConnectionLost(peer));
        }
        self.forwarder_gone(peer);
    }

    /// mDNS found peers on the local network: the DHT and the peer manager learn of them.
    pub(super) fn on_found_nearby(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        let behaviour = self.swarm.behaviour_mut();
        for (peer, addr) in found {
            behaviour.kad.add_address(&peer, addr.clone());
            behaviour.peer_manager.found_nearby(peer, addr);
        }
    }

    /// A hole punch (DCUtR) ended.
    pub(super) fn on_hole_punch(&mut self, event: libp2p::dcutr::Event) {
        match event.result {
            Ok(_) => info!(peer = %event.remote_peer_id, "direct connection by hole punching"),
            Err(e) => debug!(peer = %event.remote_peer_id, "hole punching failed: {e}"),
        }
    }
}
