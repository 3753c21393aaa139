//! Settings remembered between runs: the user's name, location and interests.

use std::{io, path::Path};

use ipm_protocol::{room::normalize_tag, Position};
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

    /// Reads `path`, applies `change` and writes the result back atomically.
    pub fn update(path: &Path, change: impl FnOnce(&mut Settings)) -> io::Result<()> {
        let mut settings = Self::load(path)?;
        change(&mut settings);
        settings.save(path)
    }

    /// Checks what a hand-edited file may have got wrong: the position's
    /// range and the interests' normal form.
    fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.position {
            Position::new(p.lat, p.lon).map_err(|e| e.to_string())?;
        }
        for tag in &self.interests {
            match normalize_tag(tag) {
                Ok(normal) if normal == *tag => {}
                _ => return Err(format!("interest {tag:?} is not a normalised tag")),
            }
        }
        Ok(())
    }
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
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = Settings::load(&path).unwrap_err().to_string();
            assert!(err.contains("not valid settings"), "{err}");
        }
    }
}
