//! Settings remembered between runs: the user's name, location and interests, the rooms
//! joined, the current room and the location group's radius. Every change is written
//! atomically (a new file synced, then renamed over the old), so that a kill at any moment
//! leaves the old settings or the new, never a torn file.

use std::{io, path::Path};

use ipm_protocol::{room::normalize_tag, Position, Room};
use serde::{Deserialize, Serialize};

use crate::store::data_dir::{read_json, write_atomic};

/// Largest settings file accepted.
const MAX_SETTINGS_FILE: u64 = 64 * 1024;

/// What the node remembers about its user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The display name chosen with `--name`.
    #[serde(default)]
    pub name: Option<String>,
    /// The own position, from `--geo` or `/geo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// The own interests (normalised tags), from `--interest` or `/join-interest <tag>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<String>,
    /// Read receipts and typing notices are off (`--no-receipts`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_receipts: bool,
    /// The rooms joined with `/join` and `/join-interest` (`lobby`, `interest:rust`,
    /// `geo:u09t`); absent until a room was joined or left (the lobby then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    /// The current room: a room, `location-group` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// The radius of the location group joined with `/join-geo`, in kilometres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_radius_km: Option<f64>,
}

impl Settings {
    /// Reads the settings file; a missing file gives the defaults.
    pub fn load(path: &Path) -> io::Result<Self> {
        let settings: Settings =
            read_json(path, MAX_SETTINGS_FILE, "settings")?.unwrap_or_default();
        settings.check().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not valid settings: {e}", path.display()),
            )
        })?;
        Ok(settings)
    }

    /// Writes the settings atomically.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_atomic(path, &json, true)
    }

    /// Reads `path`, applies `change` and writes the result back atomically when it changed
    /// anything.
    pub fn update(path: &Path, change: impl FnOnce(&mut Settings)) -> io::Result<()> {
        let mut settings = Self::load(path)?;
        let before = settings.clone();
        change(&mut settings);
        if settings == before && path.exists() {
            return Ok(());
        }
        settings.save(path)
    }

    /// What the settings remember of the rooms (read after [`Settings::load`] checked them).
    pub fn room_memory(&self) -> RoomMemory {
        RoomMemory {
            rooms: self
                .rooms
                .as_ref()
                .map(|rooms| rooms.iter().filter_map(|r| Room::parse(r).ok()).collect()),
            current: self.current.as_deref().and_then(RememberedCurrent::parse),
            radius_km: self.group_radius_km,
        }
    }

    /// Remembers the joined `rooms`.
    pub fn set_rooms<'a>(&mut self, rooms: impl IntoIterator<Item = &'a Room>) {
        self.rooms = Some(rooms.into_iter().map(ToString::to_string).collect());
    }

    /// Checks what a hand-edited file may have got wrong: the position's range, the
    /// interests' and rooms' normal form, the current room and the radius.
    fn check(&self) -> Result<(), BadSettings> {
        if let Some(p) = &self.position {
            Position::new(p.lat, p.lon).map_err(|e| BadSettings::Position(e.to_string()))?;
        }
        for tag in &self.interests {
            match normalize_tag(tag) {
                Ok(normal) if normal == *tag => {}
                _ => return Err(BadSettings::Interest(tag.clone())),
            }
        }
        for room in self.rooms.iter().flatten() {
            match Room::parse(room) {
                Ok(normal) if normal.to_string() == *room => {}
                _ => return Err(BadSettings::Room(room.clone())),
            }
        }
        if let Some(current) = &self.current {
            if RememberedCurrent::parse(current).is_none() {
                return Err(BadSettings::Current(current.clone()));
            }
        }
        if let Some(radius) = self.group_radius_km {
            if !(radius.is_finite() && radius > 0.0) {
                return Err(BadSettings::Radius(radius));
            }
        }
        Ok(())
    }
}

/// What a hand-edited settings file got wrong.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BadSettings {
    /// The position is out of range.
    #[error("{0}")]
    Position(String),
    /// An interest is not in its normal form.
    #[error("interest {0:?} is not a normalised tag")]
    Interest(String),
    /// A remembered room is not a room.
    #[error("room {0:?} is not a room (lobby, interest:<tag>)")]
    Room(String),
    /// The current room is not one.
    #[error("current room {0:?} is not a room, location-group or none")]
    Current(String),
    /// The radius is not a distance.
    #[error("radius {0} is not a distance in km")]
    Radius(f64),
}

/// The current room as the settings keep it: the group's cells move with the position, so
/// only that the group was current is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RememberedCurrent {
    /// A joined room.
    Room(Room),
    /// The location group.
    Group,
    /// No room.
    Nowhere,
}

impl RememberedCurrent {
    /// The settings' text: `lobby`, `interest:rust`, `geo:u09t`, `location-group`, `none`.
    pub fn text(&self) -> String {
        match self {
            RememberedCurrent::Room(room) => room.to_string(),
            RememberedCurrent::Group => "location-group".to_owned(),
            RememberedCurrent::Nowhere => "none".to_owned(),
        }
    }

    /// Reads [`RememberedCurrent::text`] back; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "location-group" => Some(RememberedCurrent::Group),
            "none" => Some(RememberedCurrent::Nowhere),
            room => Room::parse(room).ok().map(RememberedCurrent::Room),
        }
    }
}

/// What a node remembered of its rooms when it stopped (see `store::settings`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoomMemory {
    /// The rooms joined with `/join` and `/join-interest`; `None` before anything was
    /// remembered (a first start: the lobby).
    pub rooms: Option<Vec<Room>>,
    /// The current room.
    pub current: Option<RememberedCurrent>,
    /// The radius of the location group, when one was joined.
    pub radius_km: Option<f64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn name_is_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("settings.json");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        let s = Settings {
            name: Some("alice".into()),
            ..Settings::default()
        };
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path).unwrap(), s);
    }

    #[test]
    fn location_and_interests_are_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("settings.json");
        Settings::update(&path, |s| {
            s.position = Some(Position::new(48.8566, 2.3522).unwrap());
            s.interests = vec!["rust".into(), "chess".into()];
        })
        .unwrap();
        let back = Settings::load(&path).unwrap();
        assert_eq!(back.position, Some(Position::new(48.8566, 2.3522).unwrap()));
        assert_eq!(back.interests, ["rust", "chess"]);
        Settings::update(&path, |s| s.position = None).unwrap();
        assert_eq!(Settings::load(&path).unwrap().position, None);
    }

    #[test]
    fn hand_edited_mistakes_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("settings.json");
        for bad in [
            r#"{"position": {"lat": 91, "lon": 0}}"#,
            r#"{"interests": ["Rust Lang"]}"#,
            r#"{"rooms": ["kitchen"]}"#,
            r#"{"rooms": ["Interest:Rust"]}"#,
            r#"{"current": "attic"}"#,
            r#"{"group_radius_km": -3}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = Settings::load(&path).unwrap_err().to_string();
            assert!(err.contains("not valid settings"), "{err}");
        }
    }

    #[test]
    fn rooms_current_room_and_radius_are_remembered() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("settings.json");
        assert_eq!(
            Settings::load(&path).unwrap().room_memory(),
            RoomMemory::default()
        );
        let rust = Room::Interest("rust".into());
        Settings::update(&path, |s| {
            s.set_rooms([&Room::Lobby, &rust]);
            s.current = Some(RememberedCurrent::Room(rust.clone()).text());
            s.group_radius_km = Some(25.0);
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""interest:rust""#), "{text}");
        let memory = Settings::load(&path).unwrap().room_memory();
        assert_eq!(memory.rooms, Some(vec![Room::Lobby, rust.clone()]));
        assert_eq!(memory.current, Some(RememberedCurrent::Room(rust)));
        assert_eq!(memory.radius_km, Some(25.0));
        // Leaving every room is remembered too: not the lobby of a first start.
        Settings::update(&path, |s| s.set_rooms([])).unwrap();
        assert_eq!(
            Settings::load(&path).unwrap().room_memory().rooms,
            Some(vec![])
        );
    }
}
