//! The location group in the event loop: the own position, the group's cells and their
//! subscriptions, the coarse position sent with lines, and the distance filter.

use std::{collections::BTreeSet, time::Instant};

use libp2p::gossipsub::IdentTopic;
use tracing::warn;

use ipm_protocol::{limits::WIRE_GEOHASH_PRECISION, Position, Room};

use super::{people_state::PeopleState, EventLoop};
use crate::client::Refusal;
use crate::{
    client::NodeError,
    logic::geo_group::{distance_to_cell, GeoGroup},
};

impl EventLoop {
    /// Whether the node listens to `room`: joined with `/join`, or a cell of the group.
    pub(super) fn is_subscribed(&self, room: &Room) -> bool {
        self.rooms.contains(room) || self.people.group_covers(room)
    }

    /// The coarse position to send with a line to `room`: only in geo rooms, only when the
    /// own position is known.
    pub(super) fn wire_geo(&self, room: &Room) -> Option<String> {
        match room {
            Room::Geo(_) => self
                .people
                .position
                .map(|p| p.geohash(WIRE_GEOHASH_PRECISION)),
            _ => None,
        }
    }

    /// Sets or forgets the own position, remembers it, and moves (or, without a position,
    /// leaves) the location group.
    pub(super) fn set_position(
        &mut self,
        position: Option<Position>,
    ) -> Result<Option<GeoGroup>, NodeError> {
        let group = match (&self.people.group, position) {
            (Some(group), Some(position)) => Some(
                GeoGroup::new(position, group.radius_km)
                    .map_err(|e| NodeError::Refused(Refusal::Geo(e)))?,
            ),
            _ => None,
        };
        self.save_settings(|s| s.position = position)?;
        self.people.position = position;
        self.replace_group(group);
        Ok(self.people.group.clone())
    }

    /// Joins the location group of `radius_km` around the own position.
    pub(super) fn join_geo(&mut self, radius_km: f64) -> Result<GeoGroup, NodeError> {
        let position = self.people.position.ok_or(NodeError::NoPosition)?;
        let group =
            GeoGroup::new(position, radius_km).map_err(|e| NodeError::Refused(Refusal::Geo(e)))?;
        self.replace_group(Some(group.clone()));
        Ok(group)
    }

    /// Moves the subscriptions from the current group's cells to those of `group`, keeping
    /// rooms joined with `/join`, remembers its radius for the next start, and tells the
    /// others.
    pub(super) fn replace_group(&mut self, group: Option<GeoGroup>) {
        let radius = group.as_ref().map(|g| g.radius_km);
        self.remember_rooms(|s| s.group_radius_km = radius);
        let old = std::mem::replace(&mut self.people.group, group);
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        for room in old.iter().flat_map(GeoGroup::rooms) {
            if !self.rooms.contains(&room) && !self.people.group_covers(&room) {
                gossipsub.unsubscribe(&IdentTopic::new(room.topic()));
            }
        }
        for room in self.people.group.iter().flat_map(GeoGroup::rooms) {
            if let Err(e) = gossipsub.subscribe(&IdentTopic::new(room.topic())) {
                warn!(%room, "cannot join a cell of the location group: {e:?}");
            }
        }
        self.announce(Instant::now());
    }
}

/// How a line that arrived in `room` from a sender at `geo` is shown, given the joined
/// `rooms` and the location group in `people`: the room to show and log it under and the
/// sender's distance, or `None` when it is not shown (a group cell, and the sender is beyond
/// the radius or gave no position).
pub(super) fn geo_view(
    people: &PeopleState,
    rooms: &BTreeSet<Room>,
    room: &Room,
    geo: Option<&str>,
) -> Option<(Room, Option<f64>)> {
    match &people.group {
        Some(group) if group.covers(room) && !rooms.contains(room) => group
            .admits(geo)
            .map(|distance| (group.room(), Some(distance))),
        _ => {
            let distance = people
                .position
                .zip(geo)
                .and_then(|(me, cell)| distance_to_cell(&me, cell));
            Some((room.clone(), distance))
        }
    }
}
