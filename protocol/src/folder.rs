//! Folders sent as one transfer. The offer is a [`FileOffer`](crate::FileOffer) whose
//! `folder` field holds a [`FolderSummary`]: its `size` is the total of the files, its
//! `sha256` that of the encoded [`Manifest`], which the recipient fetches first, like a file,
//! under [`manifest_id`]. The manifest lists each file's relative path, size and SHA-256;
//! each file is then fetched like any offered file under its own [`entry_id`].
//!
//! Every path is checked on receipt ([`check_path`]): relative, never `..`, no links, no
//! name a file system cannot store. A node of the previous release ignores the `folder`
//! field, shows a plain file offer, and is refused by the sender when it asks for it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::envelope::Payload;
use crate::error::{shown, DecodeError};
use crate::limits::{
    MAX_FILE_NAME_LEN, MAX_FOLDER_DEPTH, MAX_FOLDER_DIRS, MAX_FOLDER_FILES, MAX_FOLDER_PATH_LEN,
    MAX_FOLDER_SIZE, MAX_MANIFEST_LEN,
};
use crate::stamp::MessageId as TransferId;

/// The kind of every manifest entry this release writes and accepts.
pub const FILE_KIND: &str = "file";

/// What a folder offer says of its manifest, before it is fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderSummary {
    /// How many files the folder holds.
    pub files: u32,
    /// The length of the encoded manifest, in bytes.
    pub manifest_len: u32,
}

impl FolderSummary {
    /// Checks the bounds: 1 to [`MAX_FOLDER_FILES`] files, a manifest of 1 to
    /// [`MAX_MANIFEST_LEN`] bytes.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.files == 0 || self.files as usize > MAX_FOLDER_FILES {
            return Err(DecodeError::Invalid(format!(
                "a folder holds 1 to {MAX_FOLDER_FILES} files, not {}",
                self.files
            )));
        }
        if self.manifest_len == 0 || self.manifest_len as usize > MAX_MANIFEST_LEN {
            return Err(DecodeError::Invalid(format!(
                "a manifest of {} bytes is not within 1..={MAX_MANIFEST_LEN}",
                self.manifest_len
            )));
        }
        Ok(())
    }
}

/// One file of a folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Its path inside the folder: names joined by `/`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    #[serde(with = "serde_bytes")]
    pub sha256: [u8; 32],
    /// What it is: always [`FILE_KIND`] here (a word, so that a later kind reads as one).
    #[serde(default = "file_kind")]
    pub kind: String,
}

fn file_kind() -> String {
    FILE_KIND.to_owned()
}

/// The list of a folder's files, in the order the recipient fetches them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The files.
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// The total size of the files (saturating: a valid manifest stays far below).
    pub fn total_size(&self) -> u64 {
        self.entries
            .iter()
            .fold(0u64, |sum, e| sum.saturating_add(e.size))
    }
}

/// Why a path of a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path is empty.
    #[error("an empty path")]
    Empty,
    /// The path is longer than [`MAX_FOLDER_PATH_LEN`].
    #[error("a path longer than {MAX_FOLDER_PATH_LEN} bytes")]
    TooLong,
    /// The path has more than [`MAX_FOLDER_DEPTH`] names.
    #[error("a path deeper than {MAX_FOLDER_DEPTH} names")]
    TooDeep,
    /// The path starts at a root (`/x`, `\x`) or a drive (`C:`).
    #[error("an absolute path")]
    Absolute,
    /// A name of the path is `..`.
    #[error("a path going up (..)")]
    GoesUp,
    /// A name of the path is empty (`a//b`, `a/`) or `.`.
    #[error("an empty or `.` name in a path")]
    EmptyName,
    /// A name is longer than [`MAX_FILE_NAME_LEN`], which file systems do not store.
    #[error("a name longer than {MAX_FILE_NAME_LEN} bytes")]
    NameTooLong,
    /// A name holds a character that is refused (control characters, `\`, `:`, and on
    /// Windows `<>"|?*`).
    #[error("a name with the character {0:?}")]
    Forbidden(char),
    /// A name the platform reserves (on Windows `CON`, `NUL`, `COM1`…, or a trailing dot
    /// or space).
    #[error("a name this system reserves")]
    Reserved,
    /// The entry is a link: links are never created.
    #[error("a link (links are never created)")]
    Link,
    /// The entry is of a kind this release does not know.
    #[error("an entry of unknown kind {}", shown(.0))]
    UnknownKind(String),
    /// Two entries have the same path.
    #[error("two files with one path")]
    Duplicate,
    /// A path is a file and a folder at once (`a` and `a/b`).
    #[error("a path that is both a file and a folder")]
    FileAndFolder,
}

/// Checks one relative path of a manifest; the same rules apply when a folder is offered.
pub fn check_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.len() > MAX_FOLDER_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if path.starts_with(['/', '\\']) || path.as_bytes().get(1) == Some(&b':') {
        return Err(PathError::Absolute);
    }
    let mut depth = 0;
    for name in path.split('/') {
        depth += 1;
        if depth > MAX_FOLDER_DEPTH {
            return Err(PathError::TooDeep);
        }
        check_name(name)?;
    }
    Ok(())
}

/// Checks one name of a path.
fn check_name(name: &str) -> Result<(), PathError> {
    match name {
        ".." => return Err(PathError::GoesUp),
        "" | "." => return Err(PathError::EmptyName),
        _ => {}
    }
    if name.len() > MAX_FILE_NAME_LEN {
        return Err(PathError::NameTooLong);
    }
    let windows = cfg!(windows);
    if let Some(c) = name.chars().find(|c| {
        c.is_control()
            || matches!(c, '\\' | ':')
            || (windows && matches!(c, '<' | '>' | '"' | '|' | '?' | '*'))
    }) {
        return Err(PathError::Forbidden(c));
    }
    if windows && reserved_on_windows(name) {
        return Err(PathError::Reserved);
    }
    Ok(())
}

/// Whether Windows refuses `name`: a device name (with any extension) or a trailing dot
/// or space.
fn reserved_on_windows(name: &str) -> bool {
    if name.ends_with(['.', ' ']) {
        return true;
    }
    let stem = name.split('.').next().unwrap_or(name).to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit()
            && stem.as_bytes()[3] != b'0')
}

/// The key under which a path collides with another on this platform: case folded where
/// file systems ignore case (Windows, macOS).
fn collision_key(path: &str) -> String {
    if cfg!(any(windows, target_os = "macos")) {
        path.to_lowercase()
    } else {
        path.to_owned()
    }
}

impl Payload for Manifest {
    fn validate(&self) -> Result<(), DecodeError> {
        let count = self.entries.len();
        if count == 0 || count > MAX_FOLDER_FILES {
            return Err(DecodeError::Invalid(format!(
                "a folder holds 1 to {MAX_FOLDER_FILES} files, not {count}"
            )));
        }
        let refuse = |e: PathError, path: &str| DecodeError::Invalid(format!("{e}: {path}"));
        let mut total = 0u64;
        let mut files = HashSet::with_capacity(count);
        let mut folders = HashSet::new();
        for entry in &self.entries {
            match entry.kind.as_str() {
                FILE_KIND => {}
                "link" | "symlink" | "hardlink" => {
                    return Err(refuse(PathError::Link, &entry.path))
                }
                other => return Err(refuse(PathError::UnknownKind(other.into()), &entry.path)),
            }
            check_path(&entry.path).map_err(|e| refuse(e, &entry.path))?;
            total = total
                .checked_add(entry.size)
                .filter(|t| *t <= MAX_FOLDER_SIZE)
                .ok_or_else(|| {
                    DecodeError::Invalid(format!(
                        "the files add up to more than {MAX_FOLDER_SIZE} bytes"
                    ))
                })?;
            let key = collision_key(&entry.path);
            // The set holds every folder above each folder in it, so the walk up stops at
            // the first folder known already; it never holds more than the bound allows.
            let mut parent = key.as_str();
            while let Some((up, _)) = parent.rsplit_once('/') {
                if folders.contains(up) {
                    break;
                }
                if folders.len() == MAX_FOLDER_DIRS {
                    return Err(DecodeError::Invalid(format!(
                        "more than {MAX_FOLDER_DIRS} folders in one folder"
                    )));
                }
                folders.insert(up.to_owned());
                parent = up;
            }
            if !files.insert(key) {
                return Err(refuse(PathError::Duplicate, &entry.path));
            }
        }
        if let Some(both) = files.intersection(&folders).next() {
            return Err(refuse(PathError::FileAndFolder, both));
        }
        Ok(())
    }
}

/// What a transfer id derived from a folder's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The manifest.
    Manifest,
    /// The file at this index of the manifest.
    Entry(u32),
}

/// The folder id with its last four bytes xored with `k`.
fn derived(folder: &TransferId, k: u32) -> TransferId {
    let mut bytes = *folder.as_bytes();
    let tail = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) ^ k;
    bytes[12..].copy_from_slice(&tail.to_be_bytes());
    TransferId::from_bytes(bytes)
}

/// The transfer id under which the manifest of `folder` is fetched.
pub fn manifest_id(folder: &TransferId) -> TransferId {
    derived(folder, u32::MAX)
}

/// The transfer id under which the file at `index` of the manifest of `folder` is fetched.
pub fn entry_id(folder: &TransferId, index: u32) -> TransferId {
    derived(folder, index.saturating_add(1))
}

/// Which part of `folder` the transfer id `id` names, if any (never the folder itself).
pub fn part_of(folder: &TransferId, id: &TransferId) -> Option<Part> {
    let (f, i) = (folder.as_bytes(), id.as_bytes());
    if f[..12] != i[..12] {
        return None;
    }
    let k = u32::from_be_bytes([f[12], f[13], f[14], f[15]])
        ^ u32::from_be_bytes([i[12], i[13], i[14], i[15]]);
    match k {
        u32::MAX => Some(Part::Manifest),
        0 => None,
        k if k as usize <= MAX_FOLDER_FILES => Some(Part::Entry(k - 1)),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use proptest::prelude::*;

    fn entry(path: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            size: 3,
            sha256: [1; 32],
            kind: FILE_KIND.into(),
        }
    }

    fn manifest(paths: &[&str]) -> Manifest {
        Manifest {
            entries: paths.iter().map(|p| entry(p)).collect(),
        }
    }

    fn refusal(m: &Manifest) -> String {
        decode::<Manifest>(&encode(m), MAX_MANIFEST_LEN)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_nested_manifest_round_trips() {
        let m = manifest(&["a.txt", "sub/b.txt", "sub/deeper/c", ".hidden/ok"]);
        let bytes = encode(&m);
        assert_eq!(decode::<Manifest>(&bytes, MAX_MANIFEST_LEN).unwrap(), m);
        assert_eq!(m.total_size(), 12);
        assert!(decode::<Manifest>(&bytes, bytes.len() - 1).is_err());
    }

    #[test]
    fn hostile_paths_are_refused_with_a_reason() {
        let long = "n".repeat(300);
        for (paths, why) in [
            (vec!["../x"], "going up"),
            (vec!["a/../../x"], "going up"),
            (vec!["/etc/passwd"], "absolute"),
            (vec!["\\x"], "absolute"),
            (vec!["C:x"], "absolute"),
            (vec![long.as_str()], "longer than 255"),
            (vec!["a//b"], "empty"),
            (vec!["a/./b"], "empty"),
            (vec!["a/"], "empty"),
            (vec![""], "empty path"),
            (vec!["a\nb"], "character"),
            (vec!["a\\b"], "character"),
            (vec!["ab:c"], "character"),
            (vec!["x", "x"], "two files"),
            (vec!["a", "a/b"], "both a file and a folder"),
            (vec!["a/b/c", "a/b"], "both a file and a folder"),
        ] {
            let got = refusal(&manifest(&paths));
            assert!(got.contains(why), "{paths:?}: {got}");
        }
        let deep = vec!["d"; MAX_FOLDER_DEPTH + 1].join("/");
        assert!(refusal(&manifest(&[&deep])).contains("deeper"));
        let far = "a/".repeat(MAX_FOLDER_PATH_LEN / 2) + "b";
        assert!(refusal(&manifest(&[&far])).contains("longer than 1024"));
        // Folders are counted once however many files share them, and bounded.
        let shared: Vec<String> = (0..MAX_FOLDER_DIRS)
            .map(|i| format!("d{i}/a/f{i}"))
            .collect();
        let shared: Vec<&str> = shared.iter().map(String::as_str).collect();
        assert!(refusal(&manifest(&shared)).contains("more than 10000 folders"));
        let within = &shared[..MAX_FOLDER_DIRS / 2];
        let m = manifest(within);
        assert_eq!(
            decode::<Manifest>(&encode(&m), MAX_MANIFEST_LEN).unwrap(),
            m
        );
        let chain = vec!["d"; MAX_FOLDER_DEPTH - 1].join("/");
        let chains: Vec<String> = (0..MAX_FOLDER_DIRS / (MAX_FOLDER_DEPTH - 1) + 1)
            .map(|i| format!("c{i}/{chain}"))
            .collect();
        let chains: Vec<&str> = chains.iter().map(String::as_str).collect();
        assert!(refusal(&manifest(&chains)).contains("more than 10000 folders"));
        let mut link = manifest(&["shortcut"]);
        link.entries[0].kind = "link".into();
        assert!(refusal(&link).contains("link"));
        link.entries[0].kind = "socket".into();
        assert!(refusal(&link).contains("unknown kind"));
    }

    #[test]
    fn counts_and_sizes_are_bounded() {
        assert!(refusal(&manifest(&[])).contains("1 to"));
        let mut big = manifest(&["a", "b"]);
        big.entries[0].size = MAX_FOLDER_SIZE;
        assert!(refusal(&big).contains("add up"));
        big.entries[0].size = u64::MAX;
        assert!(refusal(&big).contains("add up"));
        let summary = FolderSummary {
            files: 1,
            manifest_len: MAX_MANIFEST_LEN as u32 + 1,
        };
        assert!(summary.validate().is_err());
        assert!(FolderSummary {
            files: 0,
            manifest_len: 10
        }
        .validate()
        .is_err());
        assert!(FolderSummary {
            files: MAX_FOLDER_FILES as u32,
            manifest_len: 10
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn derived_ids_name_their_part_and_nothing_else() {
        let folder = TransferId::random();
        assert_eq!(part_of(&folder, &folder), None);
        assert_eq!(
            part_of(&folder, &manifest_id(&folder)),
            Some(Part::Manifest)
        );
        for i in [0, 1, 77, MAX_FOLDER_FILES as u32 - 1] {
            let id = entry_id(&folder, i);
            assert_ne!(id, folder);
            assert_eq!(part_of(&folder, &id), Some(Part::Entry(i)));
        }
        assert_eq!(part_of(&folder, &TransferId::random()), None);
        assert_eq!(
            part_of(&folder, &entry_id(&folder, MAX_FOLDER_FILES as u32)),
            None
        );
    }

    proptest! {
        #[test]
        fn accepted_paths_stay_inside_the_folder(path in "[a-z./\\\\:]{0,40}") {
            if check_path(&path).is_ok() {
                prop_assert!(!path.starts_with('/'));
                prop_assert!(path.split('/').all(|n| !n.is_empty() && n != "." && n != ".."));
                prop_assert!(!path.contains(['\\', ':']));
            }
        }

        #[test]
        fn random_manifests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode::<Manifest>(&bytes, MAX_MANIFEST_LEN);
        }
    }
}
