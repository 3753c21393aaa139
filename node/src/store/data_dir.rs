//! The node's folder on disk: where each file lives, and atomic whole-file writes.
//!
//! The folder is the user's alone: it is created 0700, its files 0600, and a folder or
//! identity file that other users may write is refused with the command that fixes it
//! (someone who can write there could swap the key, the contacts or the ctl socket).

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

/// A file or folder of the data dir that other users may write.
#[derive(Debug, thiserror::Error)]
pub enum Exposed {
    /// The data dir.
    #[error("data dir {0} is writable by other users: run chmod 700 {0}")]
    Dir(String),
    /// A file in it.
    #[error("{0} is writable by other users: run chmod 600 {0}")]
    File(String),
}

impl Exposed {
    /// As an I/O error (permission denied) whose text is this one line.
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, self)
    }
}

/// Refuses `path` when users other than its owner may write it.
#[cfg(unix)]
pub fn refuse_exposed(path: &Path, meta: &fs::Metadata) -> Result<(), Exposed> {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o022 == 0 {
        return Ok(());
    }
    let shown = path.display().to_string();
    Err(if meta.is_dir() {
        Exposed::Dir(shown)
    } else {
        Exposed::File(shown)
    })
}

/// Refuses `path` when users other than its owner may write it.
#[cfg(not(unix))]
pub fn refuse_exposed(_: &Path, _: &fs::Metadata) -> Result<(), Exposed> {
    Ok(())
}

/// Bytes an unprivileged user may still write on the file system holding `path`.
#[cfg(unix)]
pub fn free_space(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Bytes an unprivileged user may still write on the file system holding `path` (unknown
/// on this platform).
#[cfg(not(unix))]
pub fn free_space(_: &Path) -> io::Result<u64> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "free space unknown",
    ))
}

/// Inodes (files and folders) an unprivileged user may still make on the file system
/// holding `path`; `None` when that file system has no fixed number of them (it reports a
/// total of 0, as btrfs does).
#[cfg(unix)]
pub fn free_inodes(path: &Path) -> io::Result<Option<u64>> {
    let stat = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok((stat.f_files > 0).then_some(stat.f_favail))
}

/// Inodes an unprivileged user may still make on the file system holding `path` (unknown
/// on this platform).
#[cfg(not(unix))]
pub fn free_inodes(_: &Path) -> io::Result<Option<u64>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "free inodes unknown",
    ))
}

/// Creates the folder `path` and its missing parents, each readable by its owner only.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

impl DataDir {
    /// Opens `root`, creating it (but never its parent) when it does not exist yet; a
    /// folder other users may write is refused.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        if let Ok(meta) = fs::metadata(&root) {
            if meta.is_dir() {
                refuse_exposed(&root, &meta).map_err(Exposed::into_io)?;
            }
        }
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
        if !root.is_dir() {
            if let Some(parent) = root.parent() {
                fs::create_dir_all(parent)?;
            }
            create_private_dir(&root)?;
        }
        refuse_exposed(&root, &fs::metadata(&root)?).map_err(Exposed::into_io)?;
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

    /// The names last heard from other peers.
    pub fn heard_names(&self) -> PathBuf {
        self.root.join("heard-names.json")
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

    /// The bootstrap's room archive journal (lines kept for catch-up).
    pub fn archive(&self) -> PathBuf {
        self.root.join("archive.jsonl")
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

    #[cfg(unix)]
    #[test]
    fn a_data_dir_others_can_write_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("fresh");
        DataDir::open(&fresh).unwrap();
        let mode = fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        for exposed in [0o777, 0o770, 0o702] {
            fs::set_permissions(&fresh, fs::Permissions::from_mode(exposed)).unwrap();
            let err = DataDir::open(&fresh).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            let text = err.to_string();
            assert_eq!(
                text,
                format!(
                    "data dir {0} is writable by other users: run chmod 700 {0}",
                    fresh.display()
                )
            );
        }
        // Readable by others is the user's choice; only writing is refused.
        fs::set_permissions(&fresh, fs::Permissions::from_mode(0o755)).unwrap();
        DataDir::open(&fresh).unwrap();
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
