//! The location group (a radius around the own position and the geohash cells that cover
//! it) and the current room plain lines go to.

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

/// Where plain lines go: a joined room, or the location group.
#[derive(Clone, Debug, PartialEq)]
pub enum CurrentRoom {
    /// A room joined with `/join` (or the lobby).
    Room(Room),
    /// The location group joined with `/join-geo`.
    Geo(GeoGroup),
}

impl CurrentRoom {
    /// The room lines are sent to: the room itself, or the group's own cell.
    pub fn room(&self) -> Room {
        match self {
            CurrentRoom::Room(room) => room.clone(),
            CurrentRoom::Geo(group) => group.room(),
        }
    }
}

impl fmt::Display for CurrentRoom {
    /// `lobby`, `interest:rust`, or `geo:u09t (10.0 km)` for the group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrentRoom::Room(room) => room.fmt(f),
            CurrentRoom::Geo(group) => {
                write!(f, "{} ({})", group.room(), format_km(group.radius_km))
            }
        }
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
        assert_eq!(current.room(), Room::Geo("u09t".into()));
        assert_eq!(CurrentRoom::Room(Room::Lobby).to_string(), "lobby");
        assert_eq!(format_km(392.4), "392 km");
        assert_eq!(format_km(2.96), "3.0 km");
    }
}
