//! The node's folder on disk: where each file lives, and atomic whole-file writes.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

/// A node's data directory and the files inside it.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens `root`, creating it (but never its parent) when it does not exist yet.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            match root.parent() {
                Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("parent folder {} does not exist", parent.display()),
                    ));
                }
                _ => {}
            }
            fs::create_dir(&root)?;
            restrict_dir(&root)?;
        }
        Ok(Self { root })
    }

    /// Opens the platform's default data directory for `app` (`ipm`, `ipm-bootstrap`),
    /// creating it with its parents.
    pub fn open_default(app: &str) -> io::Result<Self> {
        let dirs = directories::ProjectDirs::from("", "", app).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no home folder: pass --data-dir or set IPM_DATA_DIR",
            )
        })?;
        let root = dirs.data_dir().to_path_buf();
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The node's private key.
    pub fn identity_key(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    /// Name and other remembered settings.
    pub fn settings(&self) -> PathBuf {
        self.root.join("settings.json")
    }

    /// Contacts (petnames) and blocked peers.
    pub fn contacts(&self) -> PathBuf {
        self.root.join("contacts.json")
    }

    /// One append-only log per conversation.
    pub fn history(&self) -> PathBuf {
        self.root.join("history")
    }

    /// Private messages waiting for their recipient.
    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox.jsonl")
    }

    /// Offers and transfers in both directions.
    pub fn transfers(&self) -> PathBuf {
        self.root.join("transfers.json")
    }

    /// Sealed messages a bootstrap keeps for offline users.
    pub fn mailbox(&self) -> PathBuf {
        self.root.join("mailbox.jsonl")
    }

    /// The bootstrap's name registry journal.
    pub fn registry(&self) -> PathBuf {
        self.root.join("registry.jsonl")
    }

    /// Where received files land.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// The local socket `ipm ctl` talks to.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("ipm.sock")
    }

    /// Lines typed at the prompt, for arrow-up recall.
    pub fn prompt_history(&self) -> PathBuf {
        self.root.join("prompt-history.txt")
    }
}

/// Reads the JSON file `path` of at most `max_len` bytes, describing its content as `what`
/// in errors (e.g. "settings"); `Ok(None)` when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    max_len: u64,
    what: &str,
) -> io::Result<Option<T>> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    match fs::metadata(path) {
        Ok(meta) if meta.len() > max_len => Err(invalid(format!(
            "{} is larger than {max_len} bytes",
            path.display()
        ))),
        Ok(_) => serde_json::from_slice(&fs::read(path)?)
            .map(Some)
            .map_err(|e| invalid(format!("{} is not valid {what}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content:
/// a temporary file beside it is written, synced, then renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            // Persist the rename itself; not every platform can sync a folder.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn restrict_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict_dir(_: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn open_refuses_a_missing_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let err = DataDir::open(tmp.path().join("no/such")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(DataDir::open(tmp.path().join("fresh")).is_ok());
    }

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        write_atomic(&path, b"one", true).unwrap();
        write_atomic(&path, b"two", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
