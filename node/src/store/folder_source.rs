//! A local folder offered as one transfer: its files walked, checked against the rules a
//! recipient applies and hashed into a manifest (links and special files are left out), and
//! the manifests of offered folders kept in the data dir as `folders/<id>.manifest`.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use ipm_protocol::{
    decode, encode,
    folder::{check_path, Manifest, ManifestEntry, PathError, FILE_KIND},
    limits::{MAX_FOLDER_DEPTH, MAX_FOLDER_FILES, MAX_FOLDER_SIZE, MAX_MANIFEST_LEN},
    TransferId,
};

use crate::store::{data_dir::write_atomic, transfers::hash_file};

/// Why a folder cannot be offered.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// A file or folder inside cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A path inside breaks a rule recipients enforce.
    #[error("{} cannot be sent: {reason}", path.display())]
    BadPath {
        /// The offending file or folder.
        path: PathBuf,
        /// The rule.
        reason: PathError,
    },
    /// A name inside is not UTF-8.
    #[error("{} cannot be sent: its name is not UTF-8", path.display())]
    NotUtf8 {
        /// The offending file or folder.
        path: PathBuf,
    },
    /// The folder holds no file (links and special files are left out).
    #[error("{} holds no file to send", path.display())]
    Empty {
        /// The folder.
        path: PathBuf,
    },
    /// The folder holds too many files.
    #[error("{} holds more than {MAX_FOLDER_FILES} files", path.display())]
    TooMany {
        /// The folder.
        path: PathBuf,
    },
    /// The files add up to more than a transfer may hold.
    #[error("{} holds more than 1 TiB", path.display())]
    TooLarge {
        /// The folder.
        path: PathBuf,
    },
    /// The node has no data dir to keep the manifest in.
    #[error(transparent)]
    NoDataDir(#[from] NoDataDir),
    /// The manifest could not be kept.
    #[error("cannot keep the folder's manifest: {0}")]
    Keep(#[source] io::Error),
    /// The list of files and their names is too long for one manifest.
    #[error(
        "the list of the files of {} is over {MAX_MANIFEST_LEN} bytes: send fewer files or shorter names",
        path.display()
    )]
    ManifestTooLong {
        /// The folder.
        path: PathBuf,
    },
}

/// Why a folder cannot be offered by a node without a data dir: it has nowhere to keep the
/// folder's manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("only a node with a data dir can offer folders")]
pub struct NoDataDir;

/// A walked folder: its manifest, encoded, and how many links or special files were left out.
#[derive(Debug, Clone)]
pub struct Walked {
    /// The files, sorted by path.
    pub manifest: Manifest,
    /// The encoded manifest, at most [`MAX_MANIFEST_LEN`] bytes.
    pub bytes: Vec<u8>,
    /// Links and special files left out.
    pub skipped: usize,
}

/// Walks the folder `root` (not following links), checks each path as a recipient will and
/// hashes each file, reading it in blocks.
pub fn walk(root: &Path) -> Result<Walked, FolderError> {
    let read = |path: &Path| {
        let path = path.to_owned();
        move |source| FolderError::Read { path, source }
    };
    let mut entries = Vec::new();
    let mut skipped = 0;
    let mut total = 0u64;
    let mut stack = vec![(root.to_owned(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        for item in fs::read_dir(&dir).map_err(read(&dir))? {
            let item = item.map_err(read(&dir))?;
            let path = item.path();
            let name = item
                .file_name()
                .into_string()
                .map_err(|_| FolderError::NotUtf8 { path: path.clone() })?;
            let inner = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let bad = |reason| FolderError::BadPath {
                path: path.clone(),
                reason,
            };
            check_path(&inner).map_err(bad)?;
            let kind = fs::symlink_metadata(&path)
                .map_err(read(&path))?
                .file_type();
            if kind.is_dir() {
                if depth + 2 > MAX_FOLDER_DEPTH {
                    return Err(bad(PathError::TooDeep));
                }
                stack.push((path, inner, depth + 1));
            } else if kind.is_file() {
                if entries.len() == MAX_FOLDER_FILES {
                    return Err(FolderError::TooMany {
                        path: root.to_owned(),
                    });
                }
                let (size, sha256) = hash_file(&path).map_err(read(&path))?;
                total = total
                    .checked_add(size)
                    .filter(|t| *t <= MAX_FOLDER_SIZE)
                    .ok_or_else(|| FolderError::TooLarge {
                        path: root.to_owned(),
                    })?;
                entries.push(ManifestEntry {
                    path: inner,
                    size,
                    sha256,
                    kind: FILE_KIND.to_owned(),
                });
            } else {
                skipped += 1;
            }
        }
    }
    if entries.is_empty() {
        return Err(FolderError::Empty {
            path: root.to_owned(),
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest { entries };
    let bytes = encode(&manifest);
    if bytes.len() > MAX_MANIFEST_LEN {
        return Err(FolderError::ManifestTooLong {
            path: root.to_owned(),
        });
    }
    Ok(Walked {
        manifest,
        bytes,
        skipped,
    })
}

/// Where the manifest of the offered folder `id` is kept under the data dir `root`.
pub fn manifest_path(root: &Path, id: &TransferId) -> PathBuf {
    root.join("folders").join(format!("{id}.manifest"))
}

/// Keeps an offered folder's encoded manifest at `path` (written atomically, private).
pub fn save_manifest(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::store::data_dir::create_private_dir(dir)?;
    }
    write_atomic(path, bytes, true)
}

/// Reads back a manifest kept at `path`, its length checked before it is read.
pub fn load_manifest(path: &Path) -> io::Result<Manifest> {
    let len = fs::metadata(path)?.len();
    if len > MAX_MANIFEST_LEN as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is too large", path.display()),
        ));
    }
    let bytes = fs::read(path)?;
    decode(&bytes, MAX_MANIFEST_LEN).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_folder_is_listed_sorted_and_hashed_without_its_links() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("photos");
        fs::create_dir_all(root.join("2026/summer")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::write(root.join("b.txt"), b"bee").unwrap();
        fs::write(root.join("2026/summer/sea.jpg"), b"waves").unwrap();
        fs::write(root.join(".hidden"), b"").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
        let walked = walk(&root).unwrap();
        let paths: Vec<&str> = walked
            .manifest
            .entries
            .iter()
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(paths, [".hidden", "2026/summer/sea.jpg", "b.txt"]);
        assert_eq!(walked.manifest.total_size(), 8);
        assert_eq!(walked.skipped, usize::from(cfg!(unix)));
        let sea = &walked.manifest.entries[1];
        assert_eq!(
            sea.sha256,
            hash_file(&root.join("2026/summer/sea.jpg")).unwrap().1
        );

        let kept = manifest_path(tmp.path(), &TransferId::random());
        save_manifest(&kept, &walked.bytes).unwrap();
        assert_eq!(load_manifest(&kept).unwrap(), walked.manifest);
    }

    #[test]
    fn what_cannot_be_sent_is_said() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = tmp.path().join("empty");
        fs::create_dir_all(empty.join("sub")).unwrap();
        assert!(walk(&empty)
            .unwrap_err()
            .to_string()
            .ends_with("holds no file to send"));
        let odd = tmp.path().join("odd");
        fs::create_dir_all(&odd).unwrap();
        fs::write(odd.join("notes:1"), b"x").unwrap();
        let err = walk(&odd).unwrap_err().to_string();
        assert!(
            err.contains("cannot be sent: a name with the character ':'"),
            "{err}"
        );
        assert!(walk(&tmp.path().join("missing")).is_err());
    }
}
