//! The table of file offers and transfers, in both directions, saved on every state change.

use std::{
    collections::BTreeMap,
    fs, io,
    io::Read,
    path::{Path, PathBuf},
};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use ipm_protocol::{limits, FileOffer, TransferId};

use crate::store::data_dir::write_atomic;

/// Largest transfers file accepted.
const MAX_TABLE_FILE: u64 = 16 * 1024 * 1024;
/// Most transfers kept: past it the oldest finished ones, and unanswered incoming offers
/// older than [`limits::PENDING_OFFER_TTL_MS`], are forgotten. A row takes at most about
/// 1 KiB (a name of 255 bytes, a reason of 256, a path), so the table stays far below
/// [`MAX_TABLE_FILE`] and each save rewrites a few MiB at most.
pub const MAX_TRANSFERS: usize = 4_000;

/// Which way a file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Someone offers us a file.
    Incoming,
    /// We offer a file.
    Outgoing,
}

/// Where a transfer stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Offered, not yet accepted or rejected (outgoing: nobody fetched it yet).
    Offered,
    /// Being downloaded (resumed after a restart).
    Downloading,
    /// Outgoing: a peer is fetching it.
    Sending,
    /// Outgoing: a peer has it whole (a file shared in a room stays served to others).
    Sent,
    /// Complete and verified.
    Done {
        /// Where the file is.
        path: PathBuf,
    },
    /// Declined by the recipient.
    Rejected,
    /// Gave up.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One offer or transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The offer as sent or received.
    pub offer: FileOffer,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// The other side: the sender of an incoming file, the recipient of an outgoing one
    /// (`None` for a file shared with a room).
    pub peer: Option<PeerId>,
    /// The room a shared file was offered in.
    pub room: Option<String>,
    /// The local file an outgoing transfer serves.
    pub source: Option<PathBuf>,
    /// Where it stands.
    pub state: State,
    /// When it was created, ms since the epoch.
    pub created_ms: u64,
}

impl Transfer {
    /// Whether `peer` may download this outgoing file.
    pub fn serves(&self, peer: &PeerId) -> bool {
        self.direction == Direction::Outgoing
            && match self.peer {
                Some(p) => &p == peer,
                None => self.room.is_some(),
            }
    }
}

/// Every transfer this node knows, saved as one JSON file.
#[derive(Debug, Default)]
pub struct Transfers {
    path: Option<PathBuf>,
    table: BTreeMap<TransferId, Transfer>,
}

#[derive(Serialize, Deserialize)]
struct Row {
    id: TransferId,
    #[serde(flatten)]
    transfer: Transfer,
}

impl Transfers {
    /// Loads the table at `path` (a missing file is an empty table).
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut table = BTreeMap::new();
        match fs::metadata(path) {
            Ok(meta) if meta.len() > MAX_TABLE_FILE => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is too large", path.display()),
                ))
            }
            Ok(_) => {
                let rows: Vec<Row> = serde_json::from_slice(&fs::read(path)?).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is damaged: {e}", path.display()),
                    )
                })?;
                // Nobody fetches a file from a node that was stopped: a send under way
                // then is offered again (its recipient resumes from what it has).
                table.extend(rows.into_iter().map(|mut r| {
                    if r.transfer.state == State::Sending {
                        r.transfer.state = State::Offered;
                    }
                    (r.id, r.transfer)
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Self {
            path: Some(path.to_owned()),
            table,
        })
    }

    fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let rows: Vec<Row> = self
            .table
            .iter()
            .map(|(id, t)| Row {
                id: *id,
                transfer: t.clone(),
            })
            .collect();
        let json = serde_json::to_vec(&rows).map_err(io::Error::other)?;
        write_atomic(path, &json, true)
    }

    /// Adds a transfer and saves the table. An id already known is left as it is (an offer
    /// received twice); returns whether it was new.
    pub fn insert(&mut self, transfer: Transfer) -> io::Result<bool> {
        if self.table.contains_key(&transfer.offer.transfer) {
            return Ok(false);
        }
        while self.table.len() >= MAX_TRANSFERS && self.forget_oldest(transfer.created_ms) {}
        self.table.insert(transfer.offer.transfer, transfer);
        self.save()?;
        Ok(true)
    }

    /// Forgets the oldest transfer that is finished, or an incoming offer left unanswered
    /// for [`limits::PENDING_OFFER_TTL_MS`] at `now_ms`; whether there was one.
    fn forget_oldest(&mut self, now_ms: u64) -> bool {
        let oldest = self
            .table
            .iter()
            .filter(|(_, t)| match t.state {
                State::Downloading | State::Sending => false,
                // A share stays served to the room's members.
                State::Sent => t.room.is_none(),
                State::Offered => {
                    t.direction == Direction::Incoming
                        && now_ms.saturating_sub(t.created_ms) >= limits::PENDING_OFFER_TTL_MS
                }
                State::Done { .. } | State::Rejected | State::Failed { .. } => true,
            })
            .min_by_key(|(_, t)| t.created_ms)
            .map(|(id, _)| *id);
        oldest.is_some_and(|id| self.table.remove(&id).is_some())
    }

    /// Incoming transfers whose download was started and has not ended.
    pub fn downloading(&self) -> impl Iterator<Item = (TransferId, &Transfer)> {
        self.table
            .iter()
            .filter(|(_, t)| t.direction == Direction::Incoming && t.state == State::Downloading)
            .map(|(id, t)| (*id, t))
    }

    /// Whether transfer `id` is known.
    pub fn contains(&self, id: &TransferId) -> bool {
        self.table.contains_key(id)
    }

    /// Moves a transfer to `state` and saves the table.
    pub fn set_state(&mut self, id: &TransferId, state: State) -> io::Result<()> {
        if let Some(t) = self.table.get_mut(id) {
            t.state = state;
            self.save()?;
        }
        Ok(())
    }

    /// A transfer by id.
    pub fn get(&self, id: &TransferId) -> Option<&Transfer> {
        self.table.get(id)
    }

    /// Every transfer, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (TransferId, &Transfer)> {
        self.table.iter().map(|(id, t)| (*id, t))
    }

    /// Every transfer, newest first.
    pub fn list(&self) -> Vec<(TransferId, &Transfer)> {
        let mut rows: Vec<(TransferId, &Transfer)> =
            self.table.iter().map(|(id, t)| (*id, t)).collect();
        rows.sort_by_key(|(_, t)| std::cmp::Reverse(t.created_ms));
        rows
    }

    /// The ids of incoming transfers that were downloading when the node stopped.
    pub fn unfinished_downloads(&self) -> Vec<TransferId> {
        self.table
            .iter()
            .filter(|(_, t)| t.direction == Direction::Incoming && t.state == State::Downloading)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Size and SHA-256 of a file, read in blocks (never whole into memory).
pub fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize().into()))
}

/// `dir/name`, or `dir/stem (1).ext`, `dir/stem (2).ext`, … when taken: never overwrites.
pub fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let candidate = dir.join(name);
    if !candidate.exists() {
        return candidate;
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    (1u32..)
        .map(|n| dir.join(format!("{stem} ({n}){ext}")))
        .find(|p| !p.exists())
        .unwrap_or(candidate)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn transfer(direction: Direction) -> Transfer {
        Transfer {
            offer: FileOffer {
                transfer: TransferId::random(),
                from_name: "alice".into(),
                name: "a.txt".into(),
                size: 3,
                sha256: [0; 32],
                folder: None,
            },
            direction,
            peer: Some(PeerId::random()),
            room: None,
            source: None,
            state: State::Offered,
            created_ms: 1,
        }
    }

    #[test]
    fn a_send_under_way_at_a_stop_is_offered_again_and_a_sent_one_stays_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transfers.json");
        let mut table = Transfers::open(&path).unwrap();
        let (sending, sent) = (transfer(Direction::Outgoing), transfer(Direction::Outgoing));
        let (a, b) = (sending.offer.transfer, sent.offer.transfer);
        table.insert(sending).unwrap();
        table.insert(sent).unwrap();
        table.set_state(&a, State::Sending).unwrap();
        table.set_state(&b, State::Sent).unwrap();
        let again = Transfers::open(&path).unwrap();
        assert_eq!(again.get(&a).unwrap().state, State::Offered);
        assert_eq!(again.get(&b).unwrap().state, State::Sent);
    }

    #[test]
    fn the_table_stays_bounded_when_old_offers_are_never_answered() {
        // Offers nobody answers, arriving over days: the stale ones make room.
        let mut table = Transfers::default();
        let day = limits::PENDING_OFFER_TTL_MS;
        for i in 0..(3 * MAX_TRANSFERS) as u64 {
            let mut t = transfer(Direction::Incoming);
            t.created_ms = i * (3 * day / MAX_TRANSFERS as u64);
            table.insert(t).unwrap();
            assert!(table.table.len() <= MAX_TRANSFERS);
        }
        // Live offers and downloads are never forgotten; the user's own offers neither.
        let mut live = Transfers::default();
        let mut mine = transfer(Direction::Outgoing);
        mine.created_ms = 0;
        let mine_id = mine.offer.transfer;
        live.insert(mine).unwrap();
        for _ in 0..MAX_TRANSFERS + 10 {
            let mut t = transfer(Direction::Incoming);
            t.state = State::Done {
                path: PathBuf::from("x"),
            };
            live.insert(t).unwrap();
        }
        assert!(live.table.len() <= MAX_TRANSFERS);
        assert!(live.get(&mine_id).is_some());
    }

    #[test]
    fn the_saved_table_is_compact() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("transfers.json");
        let mut table = Transfers::open(&path).unwrap();
        for _ in 0..100 {
            table.insert(transfer(Direction::Incoming)).unwrap();
        }
        let bytes = fs::read(&path).unwrap();
        assert!(!bytes.contains(&b'\n'), "pretty-printed");
        assert!(
            bytes.len() < 100 * 450,
            "{} bytes for 100 rows",
            bytes.len()
        );
        assert_eq!(Transfers::open(&path).unwrap().list().len(), 100);
    }

    #[test]
    fn states_are_saved_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("transfers.json");
        let t = transfer(Direction::Incoming);
        let id = t.offer.transfer;
        let mut table = Transfers::open(&path).unwrap();
        assert!(table.insert(t.clone()).unwrap());
        assert!(!table.insert(t).unwrap());
        table.set_state(&id, State::Downloading).unwrap();
        let reloaded = Transfers::open(&path).unwrap();
        assert_eq!(reloaded.get(&id).unwrap().state, State::Downloading);
        assert_eq!(reloaded.unfinished_downloads(), vec![id]);
    }

    #[test]
    fn only_the_intended_peer_or_a_room_is_served() {
        let t = transfer(Direction::Outgoing);
        assert!(t.serves(&t.peer.unwrap()));
        assert!(!t.serves(&PeerId::random()));
        let shared = Transfer {
            peer: None,
            room: Some("lobby".into()),
            ..t.clone()
        };
        assert!(shared.serves(&PeerId::random()));
        let incoming = transfer(Direction::Incoming);
        assert!(!incoming.serves(&incoming.peer.unwrap()));
    }

    #[test]
    fn unique_paths_never_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(unique_path(tmp.path(), "a.txt"), tmp.path().join("a.txt"));
        fs::write(tmp.path().join("a.txt"), b"x").unwrap();
        assert_eq!(
            unique_path(tmp.path(), "a.txt"),
            tmp.path().join("a (1).txt")
        );
        fs::write(tmp.path().join("a (1).txt"), b"x").unwrap();
        assert_eq!(
            unique_path(tmp.path(), "a.txt"),
            tmp.path().join("a (2).txt")
        );
        fs::write(tmp.path().join("README"), b"x").unwrap();
        assert_eq!(
            unique_path(tmp.path(), "README"),
            tmp.path().join("README (1)")
        );
    }

    #[test]
    fn hashing_streams_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        fs::write(&path, b"abc").unwrap();
        let (size, sha) = hash_file(&path).unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            hex::encode(sha),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
