//! Connections in the event loop: dialling on request, redialling bootstraps, discovering
//! peers through the DHT, relay reservations, and what identify and Kademlia report.

use std::time::{Duration, Instant};

use libp2p::{
    identify, kad,
    multiaddr::Protocol,
    swarm::dial_opts::{DialOpts, PeerCondition},
    Multiaddr, PeerId,
};
use tracing::{debug, warn};

use super::{DialReply, EventLoop, DIRECT_RETRY};
use crate::{
    client::NodeError,
    config::Role,
    net::{
        addresses::{dial_reason, is_relayed, peer_of, worth_dialling},
        behaviour::{IDENTIFY_PROTOCOL_VERSION, KAD_PROTOCOL},
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

    /// Re-dials bootstraps the node is not connected to, with a growing pause (1 s up to
    /// 30 s) so that a restarted bootstrap is found again within seconds.
    pub(super) fn redial_bootstraps(&mut self, now: Instant) {
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
            let pause = crate::logic::backoff::pause(
                Duration::from_secs(1),
                attempts,
                Duration::from_secs(30),
            );
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
    pub(super) fn discover(&mut self) {
        self.poll_mailboxes();
        if self.wants_peers() {
            self.swarm
                .behaviour_mut()
                .kad
                .get_closest_peers(PeerId::random());
        }
    }

    pub(super) fn wants_peers(&self) -> bool {
        self.config.role == Role::Node
            && self.swarm.network_info().num_peers() < self.config.target_peers
    }

    pub(super) fn maybe_dial(&mut self, peer: PeerId) {
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
    pub(super) fn try_direct(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
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

    pub(super) fn on_kad(&mut self, event: kad::Event) {
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
