//! The names heard from other peers, kept in `heard-names.json` so that a restarted node
//! still knows who `alice` is (for `/history alice`, `/msg alice`, and how logged lines are
//! labelled) before anyone has spoken again.
//!
//! It is a cache: a missing or damaged file is an empty book, and what it says is checked
//! again as peers speak and name lookups finish.

use std::{collections::BTreeMap, io, path::Path};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::store::data_dir::{read_json, write_atomic};

/// Most peers kept; past that, those heard from longest ago are left out.
pub const MAX_HEARD: usize = 4096;
/// Largest file accepted (a name is at most 32 bytes, a peer id about 52 characters).
const MAX_HEARD_FILE: u64 = 2 * 1024 * 1024;

/// What was last heard from one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heard {
    /// The name the peer last used.
    pub name: String,
    /// Whether the name was found registered to this peer.
    #[serde(default)]
    pub registered: bool,
    /// When, in the order names were heard (higher is later).
    #[serde(default)]
    pub order: u64,
}

/// The names heard from peers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeardNames {
    #[serde(default)]
    peers: BTreeMap<PeerId, Heard>,
}

impl HeardNames {
    /// A book of `peers`, keeping the [`MAX_HEARD`] heard from last and leaving out names
    /// that are not valid names.
    pub fn new(peers: impl IntoIterator<Item = (PeerId, Heard)>) -> Self {
        let mut all: Vec<(PeerId, Heard)> = peers
            .into_iter()
            .filter(|(_, h)| ipm_protocol::validate_name(&h.name).is_ok())
            .collect();
        all.sort_by_key(|(_, h)| std::cmp::Reverse(h.order));
        all.truncate(MAX_HEARD);
        Self {
            peers: all.into_iter().collect(),
        }
    }

    /// Reads `path`; a missing file is an empty book, a damaged one an error.
    pub fn load(path: &Path) -> io::Result<Self> {
        let book: HeardNames = read_json(path, MAX_HEARD_FILE, "heard names")?.unwrap_or_default();
        Ok(Self::new(book.peers))
    }

    /// Writes the book to `path` atomically.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec(self).map_err(io::Error::other)?;
        write_atomic(path, &json, true)
    }

    /// Every peer with what was heard from it.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &Heard)> {
        self.peers.iter()
    }

    /// How many peers the book holds.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(name: &str, order: u64) -> Heard {
        Heard {
            name: name.into(),
            registered: order.is_multiple_of(2),
            order,
        }
    }

    #[test]
    fn a_saved_book_reads_back_the_same() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("heard-names.json");
        let book = HeardNames::new([
            (PeerId::random(), heard("alice", 1)),
            (PeerId::random(), heard("bob", 2)),
        ]);
        book.save(&path).expect("saved");
        assert_eq!(HeardNames::load(&path).expect("read"), book);
    }

    #[test]
    fn no_file_is_an_empty_book_and_a_damaged_one_an_error() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("heard-names.json");
        assert!(HeardNames::load(&path).expect("read").is_empty());
        std::fs::write(&path, b"{\"peers\": [").expect("written");
        assert!(HeardNames::load(&path).is_err());
    }

    #[test]
    fn only_the_latest_heard_are_kept_and_bad_names_are_left_out() {
        let peers: Vec<(PeerId, Heard)> = (0..MAX_HEARD as u64 + 10)
            .map(|i| (PeerId::random(), heard("someone", i)))
            .chain([(PeerId::random(), heard("no spaces allowed", u64::MAX))])
            .collect();
        let book = HeardNames::new(peers);
        assert_eq!(book.len(), MAX_HEARD);
        assert!(book
            .iter()
            .all(|(_, h)| h.order >= 10 && h.name == "someone"));
    }
}
