//! Settings remembered between runs (the user's name and, later, location and interests).

use std::{fs, io, path::Path};

use serde::{Deserialize, Serialize};

use crate::data_dir::write_atomic;

/// Largest settings file accepted.
const MAX_SETTINGS_FILE: u64 = 64 * 1024;

/// What the node remembers about its user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The display name chosen with `--name`.
    #[serde(default)]
    pub name: Option<String>,
}

impl Settings {
    /// Reads the settings file; a missing file gives the defaults.
    pub fn load(path: &Path) -> io::Result<Self> {
        match fs::metadata(path) {
            Ok(meta) if meta.len() > MAX_SETTINGS_FILE => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is larger than {MAX_SETTINGS_FILE} bytes",
                    path.display()
                ),
            )),
            Ok(_) => {
                let bytes = fs::read(path)?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not valid settings: {e}", path.display()),
                    )
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the settings atomically.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_atomic(path, &json, true)
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
        };
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path).unwrap(), s);
    }
}
