//! The location group (a radius around the own position and the geohash cells that cover
//! it), the current room plain lines go to, what of both comes back after a restart, and who
//! counts as a person in a room.

use std::fmt;

use ipm_protocol::{
    geo::{group_cells, GeoError},
    Position, Room,
};

/// Radius of `/join-geo` when none is given, in kilometres.
pub const DEFAULT_RADIUS_KM: f64 = 10.0;

/// A location group: everyone within `radius_km` of `position`.
///
/// The node joins the rooms of [`GeoGroup::cells`] (its own cell at the
/// precision of the radius, then the eight neighbours), sends its lines to
/// its own cell, and shows only lines whose sender is within the radius.
#[derive(Clone, Debug, PartialEq)]
pub struct GeoGroup {
    /// The own position the radius is measured from.
    pub position: Position,
    /// The radius, in kilometres.
    pub radius_km: f64,
    /// The own cell first, then its neighbours.
    cells: Vec<String>,
}

impl GeoGroup {
    /// The group of `radius_km` around `position`.
    pub fn new(position: Position, radius_km: f64) -> Result<Self, GeoError> {
        let cells = group_cells(&position, radius_km)?;
        Ok(Self {
            position,
            radius_km,
            cells,
        })
    }

    /// The cell the own lines go to.
    pub fn own_cell(&self) -> &str {
        self.cells.first().map_or("", String::as_str)
    }

    /// The room of the own cell.
    pub fn room(&self) -> Room {
        Room::Geo(self.own_cell().to_owned())
    }

    /// Every cell of the group, own cell first.
    pub fn cells(&self) -> &[String] {
        &self.cells
    }

    /// The rooms of every cell.
    pub fn rooms(&self) -> impl Iterator<Item = Room> + '_ {
        self.cells.iter().map(|c| Room::Geo(c.clone()))
    }

    /// Whether `room` is one of the group's cells.
    pub fn covers(&self, room: &Room) -> bool {
        matches!(room, Room::Geo(cell) if self.cells.contains(cell))
    }

    /// The distance to a sender at the coarse cell `sender_geo`, when it is
    /// within the radius; `None` when it is further away or unknown.
    pub fn admits(&self, sender_geo: Option<&str>) -> Option<f64> {
        distance_to_cell(&self.position, sender_geo?).filter(|d| *d <= self.radius_km)
    }
}

/// The distance in kilometres from `me` to the centre of the geohash `cell`.
pub fn distance_to_cell(me: &Position, cell: &str) -> Option<f64> {
    Position::from_geohash(cell)
        .ok()
        .map(|centre| me.distance_km(&centre))
}

/// A distance or radius for people: `3.0 km`, `392 km`, `0.4 km`.
pub fn format_km(km: f64) -> String {
    if km >= 100.0 {
        format!("{km:.0} km")
    } else {
        format!("{km:.1} km")
    }
}

/// Where plain lines go: a joined room, the location group, or nowhere once every room was
/// left.
#[derive(Clone, Debug, PartialEq)]
pub enum CurrentRoom {
    /// A room joined with `/join` (or the lobby).
    Room(Room),
    /// The location group joined with `/join-geo`.
    Geo(GeoGroup),
    /// No room is joined: plain lines go nowhere until one is.
    Nowhere,
}

/// What a user is told to type when no room is joined.
pub const HOW_TO_JOIN: &str = "/join lobby, /join interest:<tag> or /join-geo";

impl CurrentRoom {
    /// The room lines are sent to: the room itself, or the group's own cell; none when no
    /// room is joined.
    pub fn room(&self) -> Option<Room> {
        match self {
            CurrentRoom::Room(room) => Some(room.clone()),
            CurrentRoom::Geo(group) => Some(group.room()),
            CurrentRoom::Nowhere => None,
        }
    }

    /// How the choice is remembered in the settings.
    pub fn remembered(&self) -> RememberedCurrent {
        match self {
            CurrentRoom::Room(room) => RememberedCurrent::Room(room.clone()),
            CurrentRoom::Geo(_) => RememberedCurrent::Group,
            CurrentRoom::Nowhere => RememberedCurrent::Nowhere,
        }
    }
}

impl fmt::Display for CurrentRoom {
    /// `lobby`, `interest:rust`, `geo:u09t (10.0 km)` for the group, `no room`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrentRoom::Room(room) => room.fmt(f),
            CurrentRoom::Geo(group) => {
                write!(f, "{} ({})", group.room(), format_km(group.radius_km))
            }
            CurrentRoom::Nowhere => f.write_str("no room"),
        }
    }
}

pub use crate::store::settings::{RememberedCurrent, RoomMemory};

/// The rooms, location group and current room a node starts with.
#[derive(Clone, Debug, PartialEq)]
pub struct Restored {
    /// Rooms to join, lobby first.
    pub rooms: Vec<Room>,
    /// The location group to join again.
    pub group: Option<GeoGroup>,
    /// The current room.
    pub current: CurrentRoom,
}

/// What comes back of `memory` for a node at `position` (the group needs one): the rooms
/// as they were (the lobby on a first start), the group at its radius, and the current room
/// when it is still one of them, else the first that is (see [`fallback`]).
pub fn restore(memory: &RoomMemory, position: Option<Position>) -> Restored {
    let mut rooms = memory.rooms.clone().unwrap_or_else(|| vec![Room::Lobby]);
    rooms.sort();
    rooms.dedup();
    let group = position
        .zip(memory.radius_km)
        .and_then(|(p, radius)| GeoGroup::new(p, radius).ok());
    let current = match &memory.current {
        Some(RememberedCurrent::Room(room)) if rooms.contains(room) => {
            CurrentRoom::Room(room.clone())
        }
        Some(RememberedCurrent::Group) if group.is_some() => {
            group.clone().map_or(CurrentRoom::Nowhere, CurrentRoom::Geo)
        }
        _ => fallback(&rooms, group.as_ref()),
    };
    Restored {
        rooms,
        group,
        current,
    }
}

/// The current room after `left` was left, with `rooms` and `group` still joined: unchanged
/// unless it was `left`, else [`fallback`].
pub fn after_leave(
    current: &CurrentRoom,
    left: &Room,
    rooms: &[Room],
    group: Option<&GeoGroup>,
) -> CurrentRoom {
    match current {
        CurrentRoom::Room(room) if room == left => fallback(rooms, group),
        CurrentRoom::Nowhere => fallback(rooms, group),
        other => other.clone(),
    }
}

/// The room that becomes current when the current one is gone: the lobby when joined, else
/// the first joined room, else the location group, else none.
pub fn fallback(rooms: &[Room], group: Option<&GeoGroup>) -> CurrentRoom {
    if rooms.contains(&Room::Lobby) {
        return CurrentRoom::Room(Room::Lobby);
    }
    match (rooms.iter().min(), group) {
        (Some(room), _) => CurrentRoom::Room(room.clone()),
        (None, Some(group)) => CurrentRoom::Geo(group.clone()),
        (None, None) => CurrentRoom::Nowhere,
    }
}

/// The people in a room, by peer: those whose presence says they are in it, and those
/// subscribed to it that announce themselves as people (`announced`); a bootstrap forwards
/// every room but announces no presence, and the node itself is not counted.
pub fn people_in_room<P: Ord + Copy>(
    me: P,
    subscribed: impl IntoIterator<Item = P>,
    announced: impl IntoIterator<Item = (P, bool)>,
) -> Vec<P> {
    let mut people = std::collections::BTreeSet::new();
    let mut users = std::collections::BTreeSet::new();
    for (peer, in_room) in announced {
        users.insert(peer);
        if in_room {
            people.insert(peer);
        }
    }
    people.extend(subscribed.into_iter().filter(|p| users.contains(p)));
    people.remove(&me);
    people.into_iter().collect()
}

/// `1 other`, `3 others`: how many people besides the user.
pub fn others(count: usize) -> String {
    match count {
        1 => "1 other".to_owned(),
        n => format!("{n} others"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::limits::WIRE_GEOHASH_PRECISION;

    const PARIS: Position = Position {
        lat: 48.8566,
        lon: 2.3522,
    };

    #[test]
    fn the_group_filters_by_real_distance() {
        let group = GeoGroup::new(PARIS, 10.0).unwrap();
        assert_eq!(group.own_cell(), "u09t");
        assert_eq!(group.rooms().count(), 9);
        assert!(group.covers(&Room::Geo("u09t".into())));
        assert!(!group.covers(&Room::Lobby));
        let near = Position::new(48.8566, 2.3931).unwrap();
        let d = group
            .admits(Some(&near.geohash(WIRE_GEOHASH_PRECISION)))
            .unwrap();
        assert!((d - 3.0).abs() < 0.8, "{d}");
        let lyon = Position::new(45.7640, 4.8357).unwrap();
        assert_eq!(
            group.admits(Some(&lyon.geohash(WIRE_GEOHASH_PRECISION))),
            None
        );
        assert_eq!(group.admits(None), None);
        assert_eq!(group.admits(Some("not a geohash")), None);
    }

    #[test]
    fn current_room_shows_the_group_with_its_radius() {
        let group = GeoGroup::new(PARIS, 10.0).unwrap();
        let current = CurrentRoom::Geo(group);
        assert_eq!(current.to_string(), "geo:u09t (10.0 km)");
        assert_eq!(current.room(), Some(Room::Geo("u09t".into())));
        assert_eq!(CurrentRoom::Room(Room::Lobby).to_string(), "lobby");
        assert_eq!(CurrentRoom::Nowhere.room(), None);
        assert_eq!(CurrentRoom::Nowhere.to_string(), "no room");
        assert_eq!(format_km(392.4), "392 km");
        assert_eq!(format_km(2.96), "3.0 km");
    }

    fn rust() -> Room {
        Room::Interest("rust".into())
    }

    #[test]
    fn a_first_start_is_in_the_lobby() {
        let back = restore(&RoomMemory::default(), Some(PARIS));
        assert_eq!(back.rooms, [Room::Lobby]);
        assert_eq!(back.group, None);
        assert_eq!(back.current, CurrentRoom::Room(Room::Lobby));
    }

    #[test]
    fn rooms_group_and_current_room_come_back_as_they_were() {
        let memory = RoomMemory {
            rooms: Some(vec![rust(), Room::Lobby]),
            current: Some(RememberedCurrent::Room(rust())),
            radius_km: Some(25.0),
        };
        let back = restore(&memory, Some(PARIS));
        assert_eq!(back.rooms, [Room::Lobby, rust()]);
        assert_eq!(back.group.as_ref().map(|g| g.radius_km), Some(25.0));
        assert_eq!(back.current, CurrentRoom::Room(rust()));

        let group = RoomMemory {
            current: Some(RememberedCurrent::Group),
            ..memory.clone()
        };
        let back = restore(&group, Some(PARIS));
        assert_eq!(back.current.to_string(), "geo:u09 (25.0 km)");
        // Without a position the group cannot come back: the lobby is current.
        let back = restore(&group, None);
        assert_eq!(back.group, None);
        assert_eq!(back.current, CurrentRoom::Room(Room::Lobby));
    }

    #[test]
    fn a_left_lobby_stays_left_and_a_stale_current_room_is_replaced() {
        let memory = RoomMemory {
            rooms: Some(vec![rust()]),
            current: Some(RememberedCurrent::Room(Room::Lobby)),
            radius_km: None,
        };
        let back = restore(&memory, None);
        assert_eq!(back.rooms, [rust()]);
        assert_eq!(back.current, CurrentRoom::Room(rust()));
        let nothing = RoomMemory {
            rooms: Some(vec![]),
            current: Some(RememberedCurrent::Nowhere),
            radius_km: None,
        };
        assert_eq!(restore(&nothing, None).current, CurrentRoom::Nowhere);
    }

    #[test]
    fn leaving_the_current_room_moves_to_a_room_still_joined() {
        let lobby = CurrentRoom::Room(Room::Lobby);
        // Leaving another room keeps the current one.
        assert_eq!(after_leave(&lobby, &rust(), &[Room::Lobby], None), lobby);
        assert_eq!(
            after_leave(&lobby, &Room::Lobby, &[rust()], None),
            CurrentRoom::Room(rust())
        );
        let group = GeoGroup::new(PARIS, 10.0).unwrap();
        assert_eq!(
            after_leave(&lobby, &Room::Lobby, &[], Some(&group)),
            CurrentRoom::Geo(group)
        );
        assert_eq!(
            after_leave(&lobby, &Room::Lobby, &[], None),
            CurrentRoom::Nowhere
        );
    }

    #[test]
    fn the_remembered_current_room_reads_back() {
        for current in [
            RememberedCurrent::Room(Room::Lobby),
            RememberedCurrent::Room(rust()),
            RememberedCurrent::Group,
            RememberedCurrent::Nowhere,
        ] {
            assert_eq!(RememberedCurrent::parse(&current.text()), Some(current));
        }
        assert_eq!(RememberedCurrent::parse("kitchen"), None);
    }

    #[test]
    fn people_in_a_room_leave_out_forwarders_and_the_node_itself() {
        // 0 is the node, 1 and 2 announced themselves in the room, 3 announced itself
        // elsewhere but is subscribed (its next announcement will say so), 9 is a bootstrap:
        // subscribed, never announced.
        let people = people_in_room(
            0,
            [0, 1, 3, 9],
            [(1, true), (2, true), (3, false), (4, false)],
        );
        assert_eq!(people, [1, 2, 3]);
        assert_eq!(others(people.len()), "3 others");
        assert_eq!(others(1), "1 other");
        assert_eq!(others(0), "0 others");
    }
}
