//! The bootstrap's name registry: first come, first served per name (compared in lowercase),
//! each name bound to the key that signed its record, kept in an append-only journal so a
//! restart (or a crash) loses no registration.
//!
//! A key holds one name. Registering another name frees the previous one; registering the
//! same name again is a login and keeps the newest record.

use std::{collections::HashMap, io, path::Path};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use ipm_protocol::{name_record::name_key, now_ms, NameRecord, RegistryError, SignedName};

use crate::store::journal::{self, Journal};

/// Most names one registry holds.
pub const MAX_NAMES: usize = 100_000;

/// One journal line: `name` (re)bound to the key that signed `record` (hex of the encoded
/// name record).
#[derive(Serialize, Deserialize)]
struct Bind {
    name: String,
    record: String,
}

/// What a successful registration was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registered {
    /// The name was free and is now the requester's.
    New,
    /// The name already was the requester's.
    Login,
}

/// Registered names, by DHT key (lowercase name), and the name each key holds.
#[derive(Debug, Default)]
pub struct Registry {
    journal: Option<Journal>,
    by_key: HashMap<Vec<u8>, NameRecord>,
    by_peer: HashMap<PeerId, Vec<u8>>,
    superseded: usize,
}

impl Registry {
    /// A registry kept only in memory.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the journal at `path`; lines that are torn or whose record does not verify are
    /// skipped.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut registry = Self::default();
        for bind in journal::read_all::<Bind>(path)? {
            let Ok(record) = hex::decode(&bind.record) else {
                continue;
            };
            let signed = SignedName {
                name: bind.name,
                record,
            };
            if let Ok(record) = signed.verify() {
                registry.bind(record);
            }
        }
        registry.journal = Some(Journal::open(path)?);
        registry.compact()?;
        Ok(registry)
    }

    /// Registers `record` (already verified) for the peer that sent it, `from`.
    pub fn register(
        &mut self,
        from: PeerId,
        record: NameRecord,
    ) -> Result<Registered, RegistryError> {
        if record.peer != from {
            return Err(RegistryError::Refused(
                "the name record is signed by another key".into(),
            ));
        }
        let now = now_ms();
        if record.issued_ms > now.saturating_add(ipm_protocol::limits::MAX_CLOCK_SKEW_MS) {
            return Err(RegistryError::Refused(
                "the name record was issued in the future: check your clock".into(),
            ));
        }
        let key = name_key(&record.name);
        let outcome = match self.by_key.get(&key) {
            Some(held) if held.peer != from => {
                return Err(RegistryError::Taken {
                    name: record.name,
                    owner: held.peer.to_bytes(),
                })
            }
            Some(held) if held.name == record.name && held.issued_ms >= record.issued_ms => {
                // A login with an older or the same record: nothing to write.
                return Ok(Registered::Login);
            }
            Some(_) => Registered::Login,
            None if self.by_key.len() >= MAX_NAMES && !self.by_peer.contains_key(&from) => {
                return Err(RegistryError::Full)
            }
            None => Registered::New,
        };
        if let Some(journal) = &mut self.journal {
            journal
                .append(&Bind {
                    name: record.name.clone(),
                    record: hex::encode(record.encode()),
                })
                .map_err(|e| {
                    RegistryError::Refused(format!("the registry cannot store it: {e}"))
                })?;
        }
        self.bind(record);
        if let Err(e) = self.compact() {
            tracing::warn!("cannot compact the registry journal: {e}");
        }
        Ok(outcome)
    }

    /// The record of whoever holds `name` (any case).
    pub fn owner(&self, name: &str) -> Option<&NameRecord> {
        self.by_key.get(&name_key(name))
    }

    /// The record of the name `peer` holds.
    pub fn name_of(&self, peer: &PeerId) -> Option<&NameRecord> {
        self.by_peer.get(peer).and_then(|key| self.by_key.get(key))
    }

    /// How many names are registered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no name is registered.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Binds the record's name to its peer, freeing the peer's previous name.
    fn bind(&mut self, record: NameRecord) {
        let key = name_key(&record.name);
        match self.by_key.get(&key) {
            Some(held) if held.peer != record.peer => return,
            Some(_) => self.superseded += 1,
            None => {}
        }
        if let Some(old) = self.by_peer.insert(record.peer, key.clone()) {
            if old != key {
                self.by_key.remove(&old);
                self.superseded += 1;
            }
        }
        self.by_key.insert(key, record);
    }

    /// Rewrites the journal once most of its lines are superseded.
    fn compact(&mut self) -> io::Result<()> {
        if self.superseded < 256 || self.superseded < self.by_key.len() {
            return Ok(());
        }
        if let Some(journal) = &mut self.journal {
            journal.rewrite(self.by_key.values().map(|r| Bind {
                name: r.name.clone(),
                record: hex::encode(r.encode()),
            }))?;
        }
        self.superseded = 0;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use std::io::Write;

    fn key(seed: u8) -> Keypair {
        Keypair::ed25519_from_bytes([seed; 32]).unwrap()
    }

    fn claim(key: &Keypair, name: &str, issued_ms: u64) -> NameRecord {
        NameRecord::sign(key, name, issued_ms).unwrap()
    }

    #[test]
    fn first_come_first_served_and_the_owner_logs_in() {
        let (alice, mallory) = (key(1), key(2));
        let (a, m) = (alice.public().to_peer_id(), mallory.public().to_peer_id());
        let mut r = Registry::in_memory();
        assert_eq!(
            r.register(a, claim(&alice, "alice", 1)),
            Ok(Registered::New)
        );
        assert_eq!(
            r.register(a, claim(&alice, "alice", 2)),
            Ok(Registered::Login)
        );
        assert_eq!(
            r.register(m, claim(&mallory, "ALICE", 3)),
            Err(RegistryError::Taken {
                name: "ALICE".into(),
                owner: a.to_bytes()
            })
        );
        assert!(matches!(
            r.register(m, claim(&alice, "alice", 3)),
            Err(RegistryError::Refused(_))
        ));
        assert!(matches!(
            r.register(a, claim(&alice, "alice", now_ms() + 3_600_000)),
            Err(RegistryError::Refused(_))
        ));
        assert_eq!(r.owner("Alice").unwrap().peer, a);
    }

    #[test]
    fn a_rename_frees_the_old_name() {
        let (alice, bob) = (key(1), key(2));
        let (a, b) = (alice.public().to_peer_id(), bob.public().to_peer_id());
        let mut r = Registry::in_memory();
        r.register(a, claim(&alice, "alice", 1)).unwrap();
        r.register(a, claim(&alice, "alicia", 2)).unwrap();
        assert_eq!(r.name_of(&a).unwrap().name, "alicia");
        assert!(r.owner("alice").is_none());
        assert_eq!(r.register(b, claim(&bob, "alice", 3)), Ok(Registered::New));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn registrations_survive_a_restart_and_a_torn_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.jsonl");
        let (alice, bob, carol) = (key(1), key(2), key(3));
        let a = alice.public().to_peer_id();
        let b = bob.public().to_peer_id();
        {
            let mut r = Registry::open(&path).unwrap();
            r.register(a, claim(&alice, "alice", 1)).unwrap();
            r.register(b, claim(&bob, "bob", 1)).unwrap();
            r.register(b, claim(&bob, "robert", 2)).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"name\":\"carol\",\"rec")
            .unwrap();
        let mut r = Registry::open(&path).unwrap();
        assert_eq!(r.owner("alice").unwrap().peer, a);
        assert_eq!(r.owner("robert").unwrap().peer, b);
        assert!(r.owner("bob").is_none());
        let c = carol.public().to_peer_id();
        assert!(matches!(
            r.register(c, claim(&carol, "alice", 5)),
            Err(RegistryError::Taken { .. })
        ));
        r.register(c, claim(&carol, "carol", 5)).unwrap();
        drop(r);
        assert_eq!(Registry::open(&path).unwrap().len(), 3);
    }

    #[test]
    fn a_long_journal_is_compacted_without_losing_names() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.jsonl");
        let alice = key(1);
        let a = alice.public().to_peer_id();
        let mut r = Registry::open(&path).unwrap();
        for i in 0..600u64 {
            r.register(a, claim(&alice, &format!("n{}", i % 3), i + 1))
                .unwrap();
        }
        drop(r);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 300, "{lines} lines");
        let r = Registry::open(&path).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r.name_of(&a).unwrap().name, "n2");
    }
}
