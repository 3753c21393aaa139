//! Room forwarding at a bootstrap in the event loop: peers' subscriptions feed the
//! bootstrap's room demand, and the rooms it decides on are joined and left.

use std::time::Instant;

use libp2p::{gossipsub::TopicHash, PeerId};
use tracing::debug;

use ipm_protocol::Room;

use super::EventLoop;
use crate::services::forwarding::Origin;

impl EventLoop {
    /// `peer` subscribed to `topic`: a bootstrap joins the room once two peers want it.
    /// A user's node waiting to catch up on that room may ask the newcomer.
    pub(super) fn on_room_subscribed(&mut self, peer: PeerId, topic: &TopicHash) {
        if self.services.is_none() {
            self.ask_for_missed();
        }
        let ip = self.swarm.behaviour().peer_manager.remote_ip(&peer);
        let origin = Origin::of(peer, ip, self.config.address_limits.loopback_exempt);
        let Some(services) = self.services.as_mut() else {
            return;
        };
        let forward = services.room_to_forward(peer, origin, topic.as_str(), &self.rooms);
        if let Some(room) = forward {
            debug!(%room, "forwarding a room two peers share");
            let _ = self.join(room);
        }
    }

    /// `peer` left `topic`.
    pub(super) fn on_room_unsubscribed(&mut self, peer: PeerId, topic: &TopicHash) {
        if let (Some(services), Ok(room)) =
            (self.services.as_mut(), Room::from_topic(topic.as_str()))
        {
            services
                .forwarding
                .unsubscribed(&peer, &room, Instant::now());
        }
    }

    /// `peer` disconnected: it wants no room any more.
    pub(super) fn forwarding_peer_gone(&mut self, peer: PeerId) {
        if let Some(services) = self.services.as_mut() {
            services.forwarding.peer_gone(&peer, Instant::now());
        }
    }

    /// Leaves the forwarded rooms nobody shares any more.
    pub(super) fn leave_idle_rooms(&mut self, now: Instant) {
        let idle = match self.services.as_mut() {
            Some(services) => services.forwarding.idle(now),
            None => return,
        };
        for room in idle {
            debug!(%room, "no longer forwarding a room nobody shares");
            let _ = self.leave(room);
        }
    }
}
