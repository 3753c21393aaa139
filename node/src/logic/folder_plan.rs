//! Folder transfers without I/O: which outgoing folder (and which part of it) a peer's
//! request names and whether that peer may have it, whether a fetched manifest is the one
//! the offer promised, what a received folder takes on disk (its folders and inodes counted,
//! not only its bytes) and whether that fits, which files of a folder are still to fetch, and
//! how a folder's offer and arrival are told to the user. The offer itself goes through
//! `logic::offers` like any file's; the driver is `event_loop/folders.rs`.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;

use ipm_protocol::{
    folder::{part_of, FolderSummary, Manifest, Part},
    limits::{MAX_FOLDER_DEPTH, MAX_FOLDER_DIRS},
    FileOffer, TransferId,
};

use crate::{
    event::Event,
    logic::offers::DISK_MARGIN,
    store::transfers::{Direction, State, Transfers},
};

/// What a sender answers a peer that asks for a folder as if it were one file: a node of the
/// previous release, which shows a folder offer as a file offer.
pub const NEEDS_NEWER: &str = "this is a folder: receiving folders needs a newer ipm";

/// The answer to a request naming no transfer this peer may have.
pub const NO_SUCH_TRANSFER: &str = "no such transfer";

/// What a request for transfer `id` from `peer` names among this node's outgoing folders:
/// `None` when it names none (a plain file, or nothing), else the folder and the part of it
/// to serve, or the refusal to send. `candidate` is the offered folder whose id starts like
/// `id` (every part's id shares the folder's first 12 bytes), if there is one.
pub fn served_part(
    transfers: &Transfers,
    peer: &PeerId,
    id: &TransferId,
    candidate: Option<TransferId>,
) -> Option<Result<(TransferId, Part), String>> {
    if let Some(t) = transfers.get(id) {
        return (t.direction == Direction::Outgoing && t.offer.folder.is_some())
            .then(|| Err(NEEDS_NEWER.to_owned()));
    }
    let folder = candidate?;
    let t = transfers.get(&folder)?;
    let summary = t
        .offer
        .folder
        .filter(|_| t.direction == Direction::Outgoing)?;
    let part = part_of(&folder, id)?;
    let allowed = t.serves(peer)
        && t.state != State::Rejected
        && match part {
            Part::Manifest => true,
            Part::Entry(i) => i < summary.files,
        };
    Some(if allowed {
        Ok((folder, part))
    } else {
        Err(NO_SUCH_TRANSFER.to_owned())
    })
}

/// Whether a fetched (and decoded, hence path-checked) manifest is what the offer promised:
/// as many files, adding up to the offered size.
pub fn check_manifest(
    manifest: &Manifest,
    summary: &FolderSummary,
    size: u64,
) -> Result<(), String> {
    if manifest.entries.len() != summary.files as usize {
        return Err(format!(
            "the manifest lists {} files, the offer said {}",
            manifest.entries.len(),
            summary.files
        ));
    }
    let total = manifest.total_size();
    if total != size {
        return Err(format!(
            "the manifest's files add up to {total} bytes, the offer said {size}"
        ));
    }
    Ok(())
}

/// The block a file system gives each folder, and rounds each file's size up to: what a
/// folder of empty files costs on disk although its files add up to 0 bytes.
pub const BLOCK: u64 = 4096;

/// Inodes a folder download must leave free, so that the user can still make files and the
/// node can still save its history, outbox and settings.
pub const INODE_MARGIN: u64 = 10_000;

/// What a received folder makes on disk, counted from its manifest before any of it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Its files.
    pub files: u64,
    /// The distinct folders its paths pass through (the folder itself left out).
    pub folders: u64,
    /// The most names in one of its paths.
    pub depth: usize,
    /// Bytes it takes: each file rounded up to whole [`BLOCK`]s, one block for each folder
    /// and one for the folder itself.
    pub bytes: u64,
    /// Inodes it takes: one for each file, each folder and the folder itself.
    pub inodes: u64,
    /// Of `bytes`, those beyond the files' own sizes: the rounding up to blocks and the
    /// folders' blocks, which no count of a download's bytes includes.
    pub overhead: u64,
}

/// Why a received folder is not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FolderRefusal {
    /// Its paths pass through more folders than [`MAX_FOLDER_DIRS`].
    #[error("refused the folder: more than {MAX_FOLDER_DIRS} folders in one folder")]
    TooManyFolders,
    /// A path has more names than [`MAX_FOLDER_DEPTH`].
    #[error("refused the folder: a path deeper than {MAX_FOLDER_DEPTH} names")]
    TooDeep,
    /// It does not fit in the free space, [`DISK_MARGIN`] left over.
    #[error(
        "not enough disk space for this folder: its {files} files in {folders} folders need \
         {} MiB and {} MiB must stay free, {} MiB are free",
        mib(*.need), mib(DISK_MARGIN), mib(*.free)
    )]
    NoSpace {
        /// Its files.
        files: u64,
        /// Its folders.
        folders: u64,
        /// The bytes it takes.
        need: u64,
        /// Free bytes for downloads.
        free: u64,
    },
    /// It does not fit in the free inodes, [`INODE_MARGIN`] left over.
    #[error(
        "not enough free inodes for this folder: its {files} files in {folders} folders need \
         {need} and {INODE_MARGIN} must stay free, {free} are free"
    )]
    NoInodes {
        /// Its files.
        files: u64,
        /// Its folders.
        folders: u64,
        /// The inodes it takes.
        need: u64,
        /// Free inodes.
        free: u64,
    },
}

/// Bytes in MiB, rounded up.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

/// What the folder of `manifest` makes on disk. Each folder is counted once however many
/// paths share it; counting stops, refused, past [`MAX_FOLDER_DIRS`] folders or at a path
/// deeper than [`MAX_FOLDER_DEPTH`]. Paths differing only in case count as two folders
/// where the file system would make one: the count never falls short.
pub fn footprint(manifest: &Manifest) -> Result<Footprint, FolderRefusal> {
    let mut folders: HashSet<&str> = HashSet::new();
    let (mut depth, mut file_bytes) = (0usize, 0u64);
    for entry in &manifest.entries {
        let names = entry.path.split('/').count();
        if names > MAX_FOLDER_DEPTH {
            return Err(FolderRefusal::TooDeep);
        }
        depth = depth.max(names);
        file_bytes = file_bytes.saturating_add(entry.size.div_ceil(BLOCK).saturating_mul(BLOCK));
        // Every folder in the set has its parents in it too: the walk up stops at the
        // first one known.
        let mut path = entry.path.as_str();
        while let Some((up, _)) = path.rsplit_once('/') {
            if !folders.insert(up) {
                break;
            }
            if folders.len() > MAX_FOLDER_DIRS {
                return Err(FolderRefusal::TooManyFolders);
            }
            path = up;
        }
    }
    let files = manifest.entries.len() as u64;
    let folders = folders.len() as u64;
    let bytes = file_bytes.saturating_add(folders.saturating_add(1).saturating_mul(BLOCK));
    Ok(Footprint {
        files,
        folders,
        depth,
        bytes,
        inodes: files.saturating_add(folders).saturating_add(1),
        overhead: bytes.saturating_sub(manifest.total_size()),
    })
}

impl Footprint {
    /// Whether the folder fits in `free_space` bytes with [`DISK_MARGIN`] left over, and in
    /// `free_inodes` with [`INODE_MARGIN`] left over (`None`: unknown, not checked).
    pub fn fits(
        &self,
        free_space: Option<u64>,
        free_inodes: Option<u64>,
    ) -> Result<(), FolderRefusal> {
        if let Some(free) = free_space {
            if self.bytes.saturating_add(DISK_MARGIN) > free {
                return Err(FolderRefusal::NoSpace {
                    files: self.files,
                    folders: self.folders,
                    need: self.bytes,
                    free,
                });
            }
        }
        if let Some(free) = free_inodes {
            if self.inodes.saturating_add(INODE_MARGIN) > free {
                return Err(FolderRefusal::NoInodes {
                    files: self.files,
                    folders: self.folders,
                    need: self.inodes,
                    free,
                });
            }
        }
        Ok(())
    }
}

/// The room claimed by the folders being made: the footprint of each running folder
/// download, from the check of its manifest until it ends. A folder must fit in what the
/// others' claims leave, so that folders checked at the same time cannot together take
/// what each alone would fit in.
#[derive(Debug, Default)]
pub struct Claims {
    held: HashMap<TransferId, Footprint>,
}

impl Claims {
    /// Claims room for folder `id` of `manifest` before any of it is made: refused when it
    /// breaks the bounds on folders and depth, or does not fit (see [`Footprint::fits`]) in
    /// `free_space` and `free_inodes` less what the other claims hold. Of the others' bytes
    /// only their overhead is taken off: `free_space` already leaves out the bytes of the
    /// files every download still needs.
    pub fn claim(
        &mut self,
        id: TransferId,
        manifest: &Manifest,
        free_space: Option<u64>,
        free_inodes: Option<u64>,
    ) -> Result<Footprint, FolderRefusal> {
        let footprint = footprint(manifest)?;
        let (bytes, inodes) = self
            .held
            .iter()
            .filter(|(other, _)| **other != id)
            .fold((0u64, 0u64), |(b, i), (_, f)| {
                (b.saturating_add(f.overhead), i.saturating_add(f.inodes))
            });
        footprint.fits(
            free_space.map(|free| free.saturating_sub(bytes)),
            free_inodes.map(|free| free.saturating_sub(inodes)),
        )?;
        self.held.insert(id, footprint);
        Ok(footprint)
    }

    /// Gives back the room of folder `id`: its download ended or stopped.
    pub fn release(&mut self, id: &TransferId) {
        self.held.remove(id);
    }
}

/// Where a folder download starts again: the bytes of the files already complete (`done`
/// says which are) and the indexes of the files still to fetch, in the manifest's order.
pub fn remaining(manifest: &Manifest, mut done: impl FnMut(usize) -> bool) -> (u64, Vec<u32>) {
    let mut have = 0u64;
    let mut left = Vec::new();
    for (i, entry) in manifest.entries.iter().enumerate() {
        if done(i) {
            have = have.saturating_add(entry.size);
        } else if let Ok(i) = u32::try_from(i) {
            left.push(i);
        }
    }
    (have, left)
}

/// The name `/transfers` shows for an offer: a folder's ends with `/`.
pub fn label(offer: &FileOffer) -> String {
    match offer.folder {
        Some(_) => format!("{}/", offer.name),
        None => offer.name.clone(),
    }
}

/// The event to tell the user for `event`, which the offer machine wrote for a file: a
/// folder's offer and arrival are told as such (its progress and failure read as a file's).
pub fn told(event: Event, transfers: &Transfers) -> Event {
    let folder = |id: &TransferId| transfers.get(id).and_then(|t| t.offer.folder);
    match event {
        Event::FileOffer {
            transfer,
            from,
            peer,
            name,
            size,
            room,
        } if folder(&transfer).is_some() => Event::FolderOffer {
            transfer,
            from,
            peer,
            name,
            size,
            files: folder(&transfer).map_or(0, |f| f.files),
            room,
        },
        Event::FileReceived {
            transfer,
            path,
            size,
            ..
        } if folder(&transfer).is_some() => Event::FolderReceived {
            transfer,
            path,
            size,
            files: folder(&transfer).map_or(0, |f| f.files),
        },
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::transfers::Transfer;
    use ipm_protocol::folder::{entry_id, manifest_id, ManifestEntry, FILE_KIND};

    fn offer(folder: Option<FolderSummary>) -> FileOffer {
        FileOffer {
            transfer: TransferId::random(),
            from_name: "alice".into(),
            name: "photos".into(),
            size: 10,
            sha256: [3; 32],
            folder,
        }
    }

    fn summary(files: u32) -> FolderSummary {
        FolderSummary {
            files,
            manifest_len: 100,
        }
    }

    fn add(
        transfers: &mut Transfers,
        offer: FileOffer,
        peer: Option<PeerId>,
        room: Option<&str>,
    ) -> TransferId {
        let id = offer.transfer;
        transfers
            .insert(Transfer {
                offer,
                direction: Direction::Outgoing,
                peer,
                room: room.map(str::to_owned),
                source: Some("/home/alice/photos".into()),
                state: State::Offered,
                created_ms: 1,
            })
            .unwrap();
        id
    }

    fn manifest(sizes: &[u64]) -> Manifest {
        Manifest {
            entries: sizes
                .iter()
                .enumerate()
                .map(|(i, size)| ManifestEntry {
                    path: format!("f{i}"),
                    size: *size,
                    sha256: [0; 32],
                    kind: FILE_KIND.into(),
                })
                .collect(),
        }
    }

    #[test]
    fn only_the_recipient_gets_the_parts_of_a_folder_and_nobody_the_folder_itself() {
        let mut transfers = Transfers::default();
        let (bob, eve) = (PeerId::random(), PeerId::random());
        let folder = add(&mut transfers, offer(Some(summary(2))), Some(bob), None);
        let file = add(&mut transfers, offer(None), Some(bob), None);
        assert_eq!(
            served_part(&transfers, &bob, &manifest_id(&folder), Some(folder)),
            Some(Ok((folder, Part::Manifest)))
        );
        assert_eq!(
            served_part(&transfers, &bob, &entry_id(&folder, 1), Some(folder)),
            Some(Ok((folder, Part::Entry(1))))
        );
        let refused = Some(Err(NO_SUCH_TRANSFER.to_owned()));
        assert_eq!(
            served_part(&transfers, &bob, &entry_id(&folder, 2), Some(folder)),
            refused
        );
        assert_eq!(
            served_part(&transfers, &eve, &entry_id(&folder, 0), Some(folder)),
            refused
        );
        // An old node asking for the folder as one file is told why it cannot have it.
        assert_eq!(
            served_part(&transfers, &bob, &folder, Some(folder)),
            Some(Err(NEEDS_NEWER.to_owned()))
        );
        // Plain files and unknown ids are not the folders' business.
        assert_eq!(served_part(&transfers, &bob, &file, Some(folder)), None);
        assert_eq!(
            served_part(&transfers, &bob, &TransferId::random(), Some(folder)),
            None
        );
        // A declined folder is served no more.
        transfers.set_state(&folder, State::Rejected).unwrap();
        assert_eq!(
            served_part(&transfers, &bob, &entry_id(&folder, 0), Some(folder)),
            refused
        );
        // Without the folder known, nothing is served.
        assert_eq!(
            served_part(&transfers, &bob, &entry_id(&folder, 0), None),
            None
        );
    }

    #[test]
    fn a_folder_shared_in_a_room_is_served_to_anyone() {
        let mut transfers = Transfers::default();
        let folder = add(&mut transfers, offer(Some(summary(1))), None, Some("lobby"));
        assert_eq!(
            served_part(
                &transfers,
                &PeerId::random(),
                &entry_id(&folder, 0),
                Some(folder)
            ),
            Some(Ok((folder, Part::Entry(0))))
        );
    }

    #[test]
    fn a_manifest_must_keep_the_offers_promise() {
        let m = manifest(&[4, 6]);
        assert!(check_manifest(&m, &summary(2), 10).is_ok());
        assert_eq!(
            check_manifest(&m, &summary(3), 10).unwrap_err(),
            "the manifest lists 2 files, the offer said 3"
        );
        assert_eq!(
            check_manifest(&m, &summary(2), 11).unwrap_err(),
            "the manifest's files add up to 10 bytes, the offer said 11"
        );
    }

    fn manifest_of(paths: &[String], size: u64) -> Manifest {
        Manifest {
            entries: paths
                .iter()
                .map(|path| ManifestEntry {
                    path: path.clone(),
                    size,
                    sha256: [0; 32],
                    kind: FILE_KIND.into(),
                })
                .collect(),
        }
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn every_folder_is_counted_once_and_charged_a_block_and_an_inode() {
        let paths = ["a.txt", "sub/b", "sub/deeper/c", "sub/deeper/d", "x/y/z/e"];
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        let f = footprint(&manifest_of(&paths, 1)).unwrap();
        // sub, sub/deeper, x, x/y, x/y/z
        assert_eq!((f.files, f.folders, f.depth), (5, 5, 4));
        assert_eq!(f.bytes, 5 * BLOCK + 6 * BLOCK);
        assert_eq!(f.inodes, 11);
        // Empty files cost no block, sizes round up to whole blocks.
        let mut m = manifest_of(&paths[..1], 0);
        assert_eq!(footprint(&m).unwrap().bytes, BLOCK);
        m.entries[0].size = BLOCK + 1;
        assert_eq!(footprint(&m).unwrap().bytes, 3 * BLOCK);
    }

    /// Each of `files` files at the end of a chain of folders of its own, as deep as a
    /// path may go.
    fn own_chains(files: usize) -> Vec<String> {
        let chain = vec!["d"; MAX_FOLDER_DEPTH - 2].join("/");
        (0..files).map(|i| format!("c{i}/{chain}/f")).collect()
    }

    #[test]
    fn a_folder_of_empty_files_in_deep_folders_is_refused_whatever_the_disk() {
        // 1000 files of 0 bytes in 31 000 folders: more than a folder may make.
        let chains = manifest_of(&own_chains(1000), 0);
        assert_eq!(chains.total_size(), 0);
        assert_eq!(footprint(&chains), Err(FolderRefusal::TooManyFolders));
        assert_eq!(
            Claims::default()
                .claim(
                    TransferId::random(),
                    &chains,
                    Some(u64::MAX),
                    Some(u64::MAX)
                )
                .unwrap_err()
                .to_string(),
            "refused the folder: more than 10000 folders in one folder"
        );
        // Paths sharing the top of a binary trie (2022 folders) and each a chain of its own
        // below: still counted folder by folder.
        let tail = vec!["x"; MAX_FOLDER_DEPTH - 11].join("/");
        let trie: Vec<String> = (0..1000)
            .map(|i| {
                let bits: Vec<String> = (0..10).map(|b| ((i >> b) & 1).to_string()).collect();
                format!("{}/{tail}/f", bits.join("/"))
            })
            .collect();
        assert_eq!(
            footprint(&manifest_of(&trie, 0)),
            Err(FolderRefusal::TooManyFolders)
        );
        // As many folders as allowed are taken.
        let most: Vec<String> = (0..MAX_FOLDER_DIRS).map(|i| format!("s{i}/f")).collect();
        let f = footprint(&manifest_of(&most, 0)).unwrap();
        assert_eq!((f.files, f.folders), (10_000, 10_000));
        // One path too deep.
        let deep = vec!["d"; MAX_FOLDER_DEPTH + 1].join("/");
        assert_eq!(
            footprint(&manifest_of(&[deep], 0)),
            Err(FolderRefusal::TooDeep)
        );
    }

    #[test]
    fn a_folder_must_fit_in_the_free_space_and_inodes_with_margins() {
        // 300 files of 0 bytes, each under 31 folders of its own: 9300 folders.
        let m = manifest_of(&own_chains(300), 0);
        let f = footprint(&m).unwrap();
        assert_eq!((f.files, f.folders, f.inodes), (300, 9300, 9601));
        assert_eq!(f.bytes, 9301 * BLOCK);
        assert!(f.fits(Some(GIB), Some(1_000_000)).is_ok());
        assert!(f.fits(None, None).is_ok());
        // Its 0 bytes fit in what a byte count alone would allow, its folders do not.
        let free = DISK_MARGIN + 1024 * 1024;
        let refused = f.fits(Some(free), None).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "not enough disk space for this folder: its 300 files in 9300 folders need 37 MiB \
             and 256 MiB must stay free, 257 MiB are free"
        );
        assert!(f.fits(Some(f.bytes + DISK_MARGIN), None).is_ok());
        let refused = f.fits(Some(GIB), Some(15_000)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "not enough free inodes for this folder: its 300 files in 9300 folders need 9601 \
             and 10000 must stay free, 15000 are free"
        );
        assert!(f.fits(Some(GIB), Some(f.inodes + INODE_MARGIN)).is_ok());
        assert!(f
            .fits(Some(GIB), Some(f.inodes + INODE_MARGIN - 1))
            .is_err());
        assert_eq!(f.overhead, f.bytes);
    }

    #[test]
    fn folders_checked_at_once_must_fit_together() {
        let (first, second) = (TransferId::random(), TransferId::random());
        let m = manifest_of(&own_chains(300), 5000);
        let f = footprint(&m).unwrap();
        assert_eq!(f.overhead, f.bytes - 300 * 5000);
        let mut claims = Claims::default();
        // Room for one folder and a half, in inodes then in bytes.
        let inodes = Some(INODE_MARGIN + f.inodes * 3 / 2);
        assert_eq!(claims.claim(first, &m, Some(GIB), inodes), Ok(f));
        let refused = claims.claim(second, &m, Some(GIB), inodes).unwrap_err();
        assert!(
            matches!(refused, FolderRefusal::NoInodes { .. }),
            "{refused}"
        );
        // A folder's own claim does not count against it (a resumed download).
        assert_eq!(claims.claim(first, &m, Some(GIB), inodes), Ok(f));
        claims.release(&first);
        assert_eq!(claims.claim(second, &m, Some(GIB), inodes), Ok(f));
        let space = Some(DISK_MARGIN + f.bytes + f.overhead / 2);
        let refused = claims.claim(first, &m, space, None).unwrap_err();
        assert!(
            matches!(refused, FolderRefusal::NoSpace { .. }),
            "{refused}"
        );
        claims.release(&second);
        assert_eq!(claims.claim(first, &m, space, None), Ok(f));
    }

    #[test]
    fn complete_files_are_not_fetched_again() {
        let m = manifest(&[5, 7, 11, 13]);
        assert_eq!(remaining(&m, |i| i == 0 || i == 2), (16, vec![1, 3]));
        assert_eq!(remaining(&m, |_| false), (0, vec![0, 1, 2, 3]));
        assert_eq!(remaining(&m, |_| true), (36, vec![]));
    }

    #[test]
    fn folders_are_told_as_folders() {
        let mut transfers = Transfers::default();
        let o = offer(Some(summary(2)));
        assert_eq!(label(&o), "photos/");
        assert_eq!(label(&offer(None)), "photos");
        let folder = add(&mut transfers, o, None, Some("lobby"));
        let peer = PeerId::random();
        let offered = Event::FileOffer {
            transfer: folder,
            from: "alice".into(),
            peer,
            name: "photos".into(),
            size: 10,
            room: None,
        };
        assert!(matches!(
            told(offered, &transfers),
            Event::FolderOffer {
                files: 2,
                size: 10,
                ..
            }
        ));
        let received = Event::FileReceived {
            transfer: folder,
            path: "/d/photos".into(),
            size: 10,
            sha256: String::new(),
        };
        assert!(matches!(
            told(received, &transfers),
            Event::FolderReceived { files: 2, .. }
        ));
        let plain = Event::FileFailed {
            transfer: folder,
            reason: "x".into(),
        };
        assert!(matches!(told(plain, &transfers), Event::FileFailed { .. }));
        let other = Event::FileReceived {
            transfer: TransferId::random(),
            path: "/d/a".into(),
            size: 1,
            sha256: String::new(),
        };
        assert!(matches!(
            told(other, &transfers),
            Event::FileReceived { .. }
        ));
    }
}
