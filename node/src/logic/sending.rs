//! What the user who offered a file or a folder is told while peers fetch it, without I/O:
//! one line when a peer starts getting it, its progress, one `sent whole` per file the user
//! offered and one per folder with a line for each of its files (never one for a folder's
//! manifest, which the user did not send), and the state `/transfers` and the web page show
//! (offered, then sending, then sent).
//!
//! The driver (`event_loop/file_streams.rs`) feeds the reports of every way bytes leave:
//! the streams of `/ipm/file/2` and the chunks of `/ipm/file/1`. One fetch may report the
//! same end twice (a stream's last buffer and its close) or come over several streams: each
//! change is told once per peer and fetch.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use ipm_protocol::TransferId;
use libp2p::PeerId;

/// Least time between two progress reports of one fetch.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// How long a fetch is remembered after its last report: a fetch silent for longer that
/// resumes is told again as a new one.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// What the bytes of one report belong to, as the driver found it in the transfer table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// A file the user offered.
    File {
        /// Its transfer.
        transfer: TransferId,
        /// Its name.
        name: String,
        /// Its size.
        size: u64,
    },
    /// The manifest of a folder the user offered: fetched first, never told as a file.
    Manifest {
        /// The folder's transfer.
        folder: TransferId,
        /// The manifest's own transfer id.
        part: TransferId,
        /// How the folder is shown (`name/`).
        name: String,
        /// The total size of its files.
        total: u64,
        /// The manifest's size.
        size: u64,
    },
    /// One file of a folder the user offered; a folder's files are fetched in its
    /// manifest's order.
    FolderFile {
        /// The folder's transfer.
        folder: TransferId,
        /// The part's own transfer id.
        part: TransferId,
        /// How the folder is shown (`name/`).
        name: String,
        /// The file's path in the folder.
        path: String,
        /// The total size of the folder's files.
        total: u64,
        /// The bytes of the files before this one in the manifest.
        before: u64,
        /// The file's size.
        size: u64,
    },
}

impl Part {
    /// The transfer the user offered (the file or the folder).
    fn offered(&self) -> TransferId {
        match self {
            Part::File { transfer, .. } => *transfer,
            Part::Manifest { folder, .. } | Part::FolderFile { folder, .. } => *folder,
        }
    }

    /// The id the bytes were asked for with.
    fn id(&self) -> TransferId {
        match self {
            Part::File { transfer, .. } => *transfer,
            Part::Manifest { part, .. } | Part::FolderFile { part, .. } => *part,
        }
    }

    fn name(&self) -> &str {
        match self {
            Part::File { name, .. }
            | Part::Manifest { name, .. }
            | Part::FolderFile { name, .. } => name,
        }
    }

    /// The bytes of the offered transfer the peer has once it has `bytes` of this part, and
    /// the transfer's size.
    fn progress(&self, bytes: u64) -> (u64, u64) {
        match self {
            Part::File { size, .. } => (bytes.min(*size), *size),
            // The manifest comes before any file: nothing of the folder yet.
            Part::Manifest { total, .. } => (0, *total),
            Part::FolderFile {
                total,
                before,
                size,
                ..
            } => (before.saturating_add(bytes.min(*size)).min(*total), *total),
        }
    }

    /// Whether `bytes` of this part make the offered transfer whole.
    fn completes(&self, bytes: u64) -> bool {
        match self {
            Part::File { size, .. } => bytes >= *size,
            Part::Manifest { total, size, .. } => *total == 0 && bytes >= *size,
            Part::FolderFile {
                total,
                before,
                size,
                ..
            } => bytes >= *size && before.saturating_add(*size) >= *total,
        }
    }

    fn size(&self) -> u64 {
        match self {
            Part::File { size, .. }
            | Part::Manifest { size, .. }
            | Part::FolderFile { size, .. } => *size,
        }
    }
}

/// What to tell the user and what to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `peer` started getting `transfer` (`name`): tell the user, and the transfer is
    /// being sent.
    Getting {
        /// The file or folder offered.
        transfer: TransferId,
        /// Who gets it.
        peer: PeerId,
        /// Its name (`name/` for a folder).
        name: String,
    },
    /// How far `peer` is with `transfer`.
    Progress {
        /// The file or folder offered.
        transfer: TransferId,
        /// Who gets it.
        peer: PeerId,
        /// Its name.
        name: String,
        /// Bytes the peer has.
        bytes: u64,
        /// The transfer's size.
        size: u64,
    },
    /// One file of folder `transfer` reached `peer` whole.
    FolderFileSent {
        /// The folder.
        transfer: TransferId,
        /// Who got it.
        peer: PeerId,
        /// The file as shown: the folder's name and the file's path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// `peer` has `transfer` whole: tell the user, and the transfer is sent.
    Sent {
        /// The file or folder offered.
        transfer: TransferId,
        /// Who got it.
        peer: PeerId,
        /// Its name.
        name: String,
        /// Its size.
        size: u64,
    },
}

/// One fetch by one peer of one offered transfer.
#[derive(Clone, Copy, Debug)]
struct Fetch {
    last_report: Instant,
    last_progress: Option<Instant>,
}

/// The fetches of this node's offers under way, and the parts and transfers each peer got
/// whole lately.
#[derive(Debug, Default)]
pub struct Sending {
    fetches: HashMap<(PeerId, TransferId), Fetch>,
    /// Parts (and offered transfers) sent whole, by peer, with when.
    whole: HashMap<(PeerId, TransferId), Instant>,
}

impl Sending {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// `peer` has `bytes` of `part` now (counting what it had before this fetch).
    pub fn report(&mut self, now: Instant, peer: PeerId, part: &Part, bytes: u64) -> Vec<Action> {
        self.forget(now);
        let offered = part.offered();
        let part_whole = bytes >= part.size();
        let mut actions = Vec::new();
        if part_whole {
            // The second report of an end already told (a stream's last buffer, then its
            // close; a chunk asked again).
            if self.whole.contains_key(&(peer, part.id())) {
                return actions;
            }
        } else {
            // A new fetch of something this peer got before.
            self.whole.remove(&(peer, part.id()));
            self.whole.remove(&(peer, offered));
        }
        let fetch = self.fetches.entry((peer, offered)).or_insert_with(|| {
            actions.push(Action::Getting {
                transfer: offered,
                peer,
                name: part.name().to_owned(),
            });
            Fetch {
                last_report: now,
                last_progress: None,
            }
        });
        fetch.last_report = now;
        if part_whole {
            self.whole.insert((peer, part.id()), now);
            if let Part::FolderFile {
                folder,
                name,
                path,
                size,
                ..
            } = part
            {
                actions.push(Action::FolderFileSent {
                    transfer: *folder,
                    peer,
                    path: format!("{name}{path}"),
                    size: *size,
                });
            }
        }
        let (have, size) = part.progress(bytes);
        if part.completes(bytes) {
            self.fetches.remove(&(peer, offered));
            self.whole.insert((peer, offered), now);
            actions.push(Action::Sent {
                transfer: offered,
                peer,
                name: part.name().to_owned(),
                size,
            });
            return actions;
        }
        let due = fetch
            .last_progress
            .is_none_or(|at| now.saturating_duration_since(at) >= PROGRESS_EVERY);
        if due && !matches!(part, Part::Manifest { .. }) {
            fetch.last_progress = Some(now);
            actions.push(Action::Progress {
                transfer: offered,
                peer,
                name: part.name().to_owned(),
                bytes: have,
                size,
            });
        }
        actions
    }

    /// Forgets fetches silent for [`FORGET_AFTER`] and ends told that long ago.
    fn forget(&mut self, now: Instant) {
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < FORGET_AFTER;
        self.fetches.retain(|_, f| fresh(&f.last_report));
        self.whole.retain(|_, at| fresh(at));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(size: u64) -> Part {
        Part::File {
            transfer: TransferId::from_bytes([1; 16]),
            name: "big.bin".into(),
            size,
        }
    }

    fn told(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .map(|a| match a {
                Action::Getting { .. } => "getting",
                Action::Progress { .. } => "progress",
                Action::FolderFileSent { .. } => "file sent",
                Action::Sent { .. } => "sent whole",
            })
            .collect()
    }

    #[test]
    fn a_file_fetched_by_a_peer_is_told_once_as_getting_and_once_as_sent_whole() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Sending::new();
        let carol = PeerId::random();
        let part = file(1000);
        let mut all = Vec::new();
        for (at, bytes) in [(0, 0), (100, 200), (300, 500), (400, 600), (900, 1000)] {
            all.extend(s.report(t0 + ms(at), carol, &part, bytes));
        }
        // The stream's close reports the end again.
        all.extend(s.report(t0 + ms(901), carol, &part, 1000));
        assert_eq!(
            told(&all),
            ["getting", "progress", "progress", "sent whole"],
            "{all:?}"
        );
        assert!(matches!(
            &all[0],
            Action::Getting { peer, name, .. } if *peer == carol && name == "big.bin"
        ));
        // Another peer, and carol again later: each a fetch of its own.
        let dave = PeerId::random();
        assert_eq!(
            told(&s.report(t0 + ms(950), dave, &part, 0)),
            ["getting", "progress"]
        );
        let again = s.report(t0 + ms(2000), carol, &part, 0);
        assert_eq!(told(&again), ["getting", "progress"]);
    }

    #[test]
    fn a_folder_is_told_as_its_files_and_the_folder_never_as_its_manifest() {
        let t0 = Instant::now();
        let mut s = Sending::new();
        let carol = PeerId::random();
        let folder = TransferId::from_bytes([2; 16]);
        let sizes = [100u64, 0, 300, 50];
        let total: u64 = sizes.iter().sum();
        let manifest = Part::Manifest {
            folder,
            part: TransferId::from_bytes([9; 16]),
            name: "photos/".into(),
            total,
            size: 80,
        };
        let mut all = Vec::new();
        all.extend(s.report(t0, carol, &manifest, 0));
        all.extend(s.report(t0, carol, &manifest, 80));
        all.extend(s.report(t0, carol, &manifest, 80));
        let mut before = 0;
        for (i, size) in sizes.into_iter().enumerate() {
            let part = Part::FolderFile {
                folder,
                part: TransferId::from_bytes([10 + i as u8; 16]),
                name: "photos/".into(),
                path: format!("{i}.jpg"),
                total,
                before,
                size,
            };
            all.extend(s.report(t0, carol, &part, size));
            all.extend(s.report(t0, carol, &part, size));
            before += size;
        }
        assert_eq!(
            told(&all),
            [
                "getting",
                "file sent",
                "progress",
                "file sent",
                "file sent",
                "file sent",
                "sent whole"
            ],
            "{all:?}"
        );
        assert!(all.iter().all(|a| match a {
            Action::Getting { transfer, .. } | Action::Sent { transfer, .. } => *transfer == folder,
            Action::FolderFileSent { transfer, path, .. } =>
                *transfer == folder && path.starts_with("photos/"),
            Action::Progress { .. } => true,
        }));
        assert!(matches!(all.last(), Some(Action::Sent { size: 450, .. })));
    }

    #[test]
    fn a_resumed_folder_is_whole_with_its_last_file() {
        let t0 = Instant::now();
        let mut s = Sending::new();
        let carol = PeerId::random();
        let folder = TransferId::from_bytes([3; 16]);
        // The first two files came before a restart; only the last is fetched now.
        let last = Part::FolderFile {
            folder,
            part: TransferId::from_bytes([4; 16]),
            name: "docs/".into(),
            path: "c.txt".into(),
            total: 30,
            before: 20,
            size: 10,
        };
        let mut all = s.report(t0, carol, &last, 0);
        all.extend(s.report(t0 + Duration::from_secs(1), carol, &last, 10));
        assert_eq!(
            told(&all),
            ["getting", "progress", "file sent", "sent whole"]
        );
        assert!(matches!(
            &all[1],
            Action::Progress {
                bytes: 20,
                size: 30,
                ..
            }
        ));
    }

    #[test]
    fn a_silent_fetch_is_forgotten() {
        let t0 = Instant::now();
        let mut s = Sending::new();
        let carol = PeerId::random();
        let part = file(1000);
        s.report(t0, carol, &part, 0);
        assert!(told(&s.report(t0 + Duration::from_millis(100), carol, &part, 10)).is_empty());
        let later = t0 + FORGET_AFTER + Duration::from_secs(2);
        assert_eq!(
            told(&s.report(later, carol, &part, 20)),
            ["getting", "progress"]
        );
        assert!(s.fetches.len() == 1 && s.whole.is_empty());
    }
}
