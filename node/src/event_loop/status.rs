//! `/status` in the event loop: the node's addresses, reachability, peers (each with its
//! kind, and counted by kind against the watermarks) and rooms.

use libp2p::{autonat, gossipsub::IdentTopic, Multiaddr, PeerId};

use super::EventLoop;
use crate::{
    client::{ConnectionsStatus, Kind, PeerStatus, RoomStatus, Status},
    logic::geo_group::people_in_room,
    net::addresses::is_relayed,
};

impl EventLoop {
    pub(super) fn status(&self) -> Status {
        let local = self.local_peer_id();
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let now = std::time::Instant::now();
        let named = |p: &PeerId| (self.directory.display_name(p), *p);
        let rooms = self
            .rooms
            .iter()
            .map(|room| {
                let hash = IdentTopic::new(room.topic()).hash();
                let subscribed: Vec<PeerId> = gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(p, _)| *p)
                    .collect();
                let announced = self
                    .people
                    .table
                    .online(now)
                    .map(|(p, presence)| (*p, presence.rooms.contains(room)));
                let mut people: Vec<(String, PeerId)> =
                    people_in_room(local, subscribed.iter().copied(), announced)
                        .iter()
                        .map(named)
                        .collect();
                people.sort();
                let mut members: Vec<(String, PeerId)> = subscribed.iter().map(named).collect();
                members.sort();
                RoomStatus {
                    room: room.clone(),
                    members,
                    people,
                }
            })
            .collect();
        let manager = &self.swarm.behaviour().peer_manager;
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
                    kind: manager.kind(p).unwrap_or(Kind::Inbound),
                }
            })
            .collect();
        let connections = ConnectionsStatus {
            by_kind: manager.counts(),
            low: manager.marks().low,
            high: manager.marks().high,
        };
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
            connections,
            rooms,
        }
    }
}
