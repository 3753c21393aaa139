//! The bootstrap's name registry: first come, first served per name (compared in lowercase),
//! each name bound to the key that signed its record, kept in an append-only journal so a
//! restart (or a crash) loses no registration.
//!
//! A key holds one name. Registering another name frees the previous one; registering the
//! same name again is a login and keeps the newest record.
//!
//! A name not logged in for [`NAME_EXPIRY_MS`] (90 days) is free again: the journal records
//! each name's last login (at most once a day per name). A new name is refused when it mixes
//! scripts (Latin with Cyrillic, ...) or when its confusable skeleton (Unicode UTS #39:
//! `rn` for `m`, `0` for `O`, Cyrillic `а` for Latin `a`, ...) is that of a name another
//! key holds.

use std::{collections::HashMap, io, path::Path};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use unicode_security::{skeleton, MixedScript};

use ipm_protocol::{name_record::name_key, NameRecord, RegistryError, SignedName};

use crate::store::journal::{self, Journal};

/// Most names one registry holds.
pub const MAX_NAMES: usize = 100_000;
/// How long a name stays registered without a login: 90 days.
pub const NAME_EXPIRY_MS: u64 = 90 * DAY_MS;
/// A login is written to the journal at most once a day per name.
const LOGIN_WRITTEN_EVERY_MS: u64 = DAY_MS;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// One journal line: `name` (re)bound to the key that signed `record` (hex of the encoded
/// name record), last logged in at `login_ms` (lines written before logins were recorded
/// have none: they count as logged in when the registry opened).
#[derive(Serialize, Deserialize)]
struct Bind {
    name: String,
    record: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    login_ms: Option<u64>,
}

/// What a successful registration was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registered {
    /// The name was free and is now the requester's.
    New,
    /// The name already was the requester's.
    Login,
}

/// A held name: its newest record and its last login (as journaled).
#[derive(Debug, Clone)]
struct Held {
    record: NameRecord,
    login_ms: u64,
}

/// The UTS #39 skeleton of `name`, case folded: two names with the same skeleton look
/// alike.
pub fn confusable_skeleton(name: &str) -> String {
    let once: String = skeleton(name).collect::<String>().to_lowercase();
    skeleton(&once).collect::<String>().to_lowercase()
}

/// Registered names, by DHT key (lowercase name), the name each key holds, and the names
/// by confusable skeleton.
#[derive(Debug)]
pub struct Registry {
    journal: Option<Journal>,
    by_key: HashMap<Vec<u8>, Held>,
    by_peer: HashMap<PeerId, Vec<u8>>,
    by_skeleton: HashMap<String, Vec<Vec<u8>>>,
    superseded: usize,
    expiry_ms: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            journal: None,
            by_key: HashMap::new(),
            by_peer: HashMap::new(),
            by_skeleton: HashMap::new(),
            superseded: 0,
            expiry_ms: NAME_EXPIRY_MS,
        }
    }
}

impl Registry {
    /// A registry kept only in memory.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the journal at `path` at `now_ms`; lines that are torn or whose record does
    /// not verify are skipped, names whose time ran out are dropped.
    pub fn open(path: &Path, now_ms: u64) -> io::Result<Self> {
        let mut registry = Self::default();
        let mut unrecorded_logins = false;
        for bind in journal::read_all::<Bind>(path)? {
            let Ok(record) = hex::decode(&bind.record) else {
                continue;
            };
            let signed = SignedName {
                name: bind.name,
                record,
            };
            if let Ok(record) = signed.verify() {
                unrecorded_logins |= bind.login_ms.is_none();
                registry.bind(record, bind.login_ms.unwrap_or(now_ms));
            }
        }
        registry.journal = Some(Journal::open(path)?);
        registry.expire(now_ms);
        if unrecorded_logins {
            // Give every name its login time now, so that the grace period runs from the
            // first start that records logins and not from every start.
            registry.rewrite()?;
        } else {
            registry.compact()?;
        }
        Ok(registry)
    }

    /// Registers `record` (already verified) for the peer that sent it, `from`, at `now_ms`;
    /// `may_add` is false when the requester may not take a new name now (its address
    /// registered too many lately).
    pub fn register(
        &mut self,
        from: PeerId,
        record: NameRecord,
        now_ms: u64,
        may_add: bool,
    ) -> Result<Registered, RegistryError> {
        if record.peer != from {
            return Err(RegistryError::Refused(
                "the name record is signed by another key".into(),
            ));
        }
        if record.issued_ms > now_ms.saturating_add(ipm_protocol::limits::MAX_CLOCK_SKEW_MS) {
            return Err(RegistryError::Refused(
                "the name record was issued in the future: check your clock".into(),
            ));
        }
        let key = name_key(&record.name);
        if self
            .by_key
            .get(&key)
            .is_some_and(|held| held.peer_differs(&from) && self.expired(held, now_ms))
        {
            self.unbind(&key);
        }
        let outcome = match self.by_key.get(&key) {
            Some(held) if held.record.peer != from => {
                return Err(RegistryError::Taken {
                    name: record.name,
                    owner: held.record.peer.to_bytes(),
                })
            }
            Some(held)
                if held.record.name == record.name && held.record.issued_ms >= record.issued_ms =>
            {
                // A login with an older or the same record: its time is written once a
                // day.
                if now_ms < held.login_ms.saturating_add(LOGIN_WRITTEN_EVERY_MS) {
                    return Ok(Registered::Login);
                }
                let record = held.record.clone();
                self.write(&record, now_ms)?;
                self.bind(record, now_ms);
                return Ok(Registered::Login);
            }
            Some(_) => Registered::Login,
            None => {
                self.may_take(&from, &record.name, now_ms, may_add)?;
                Registered::New
            }
        };
        self.write(&record, now_ms)?;
        self.bind(record, now_ms);
        if let Err(e) = self.compact() {
            tracing::warn!("cannot compact the registry journal: {e}");
        }
        Ok(outcome)
    }

    /// The record of whoever holds `name` (any case) at `now_ms`.
    pub fn owner(&self, name: &str, now_ms: u64) -> Option<&NameRecord> {
        self.by_key
            .get(&name_key(name))
            .filter(|held| !self.expired(held, now_ms))
            .map(|held| &held.record)
    }

    /// The record of the name `peer` holds.
    pub fn name_of(&self, peer: &PeerId) -> Option<&NameRecord> {
        self.by_peer
            .get(peer)
            .and_then(|key| self.by_key.get(key))
            .map(|held| &held.record)
    }

    /// How many names are registered.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no name is registered.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Frees every name not logged in for the expiry time before `now_ms`; how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let expired: Vec<Vec<u8>> = self
            .by_key
            .iter()
            .filter(|(_, held)| self.expired(held, now_ms))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            self.unbind(key);
        }
        expired.len()
    }

    fn expired(&self, held: &Held, now_ms: u64) -> bool {
        now_ms >= held.login_ms.saturating_add(self.expiry_ms)
    }

    /// Whether `from` may take the free name `name`: a safe name, not confusable with one
    /// another key holds, room in the registry, and its address's budget.
    fn may_take(
        &mut self,
        from: &PeerId,
        name: &str,
        now_ms: u64,
        may_add: bool,
    ) -> Result<(), RegistryError> {
        if !name.is_single_script() {
            return Err(RegistryError::Refused(format!(
                "the name \"{name}\" mixes scripts: use letters of one script"
            )));
        }
        let look_alike = self
            .by_skeleton
            .get(&confusable_skeleton(name))
            .into_iter()
            .flatten()
            .filter_map(|key| self.by_key.get(key))
            .find(|held| held.record.peer != *from && !self.expired(held, now_ms));
        if let Some(held) = look_alike {
            return Err(RegistryError::Refused(format!(
                "the name \"{name}\" looks like \"{}\", registered to another user",
                held.record.name
            )));
        }
        if !may_add {
            return Err(RegistryError::Refused(
                "too many new names from your address lately: try again in an hour".into(),
            ));
        }
        if self.by_key.len() >= MAX_NAMES && !self.by_peer.contains_key(from) {
            self.expire(now_ms);
            if self.by_key.len() >= MAX_NAMES {
                return Err(RegistryError::Full);
            }
        }
        Ok(())
    }

    fn write(&mut self, record: &NameRecord, login_ms: u64) -> Result<(), RegistryError> {
        if let Some(journal) = &mut self.journal {
            journal.append(&bind_line(record, login_ms)).map_err(|e| {
                RegistryError::Refused(format!("the registry cannot store it: {e}"))
            })?;
        }
        Ok(())
    }

    /// Binds the record's name to its peer, freeing the peer's previous name. A name held
    /// by another key is taken over only when that key's time ran out by `login_ms` (as a
    /// journal replay meets it).
    fn bind(&mut self, record: NameRecord, login_ms: u64) {
        let key = name_key(&record.name);
        match self.by_key.get(&key) {
            Some(held) if held.record.peer != record.peer => {
                if !self.expired(held, login_ms) {
                    return;
                }
                self.unbind(&key);
                self.superseded += 1;
            }
            Some(_) => self.superseded += 1,
            None => {}
        }
        if let Some(old) = self.by_peer.insert(record.peer, key.clone()) {
            if old != key {
                self.remove_key(&old);
                self.superseded += 1;
            }
        }
        if !self.by_key.contains_key(&key) {
            self.by_skeleton
                .entry(confusable_skeleton(&record.name))
                .or_default()
                .push(key.clone());
        }
        self.by_key.insert(key, Held { record, login_ms });
    }

    /// Frees the name of DHT key `key`.
    fn unbind(&mut self, key: &[u8]) {
        if let Some(peer) = self.by_key.get(key).map(|held| held.record.peer) {
            if self.by_peer.get(&peer).is_some_and(|k| k == key) {
                self.by_peer.remove(&peer);
            }
        }
        self.remove_key(key);
    }

    fn remove_key(&mut self, key: &[u8]) {
        if let Some(held) = self.by_key.remove(key) {
            let skeleton = confusable_skeleton(&held.record.name);
            if let Some(keys) = self.by_skeleton.get_mut(&skeleton) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    self.by_skeleton.remove(&skeleton);
                }
            }
        }
    }

    /// Rewrites the journal once most of its lines are superseded.
    fn compact(&mut self) -> io::Result<()> {
        if self.superseded < 256 || self.superseded < self.by_key.len() {
            return Ok(());
        }
        self.rewrite()
    }

    fn rewrite(&mut self) -> io::Result<()> {
        if let Some(journal) = &mut self.journal {
            journal.rewrite(
                self.by_key
                    .values()
                    .map(|held| bind_line(&held.record, held.login_ms)),
            )?;
        }
        self.superseded = 0;
        Ok(())
    }
}

impl Held {
    fn peer_differs(&self, peer: &PeerId) -> bool {
        self.record.peer != *peer
    }
}

fn bind_line(record: &NameRecord, login_ms: u64) -> Bind {
    Bind {
        name: record.name.clone(),
        record: hex::encode(record.encode()),
        login_ms: Some(login_ms),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use std::io::Write;

    /// The time of the tests' registrations.
    const T: u64 = 1_000_000_000;

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
            r.register(a, claim(&alice, "alice", 1), T, true),
            Ok(Registered::New)
        );
        assert_eq!(
            r.register(a, claim(&alice, "alice", 2), T, true),
            Ok(Registered::Login)
        );
        assert_eq!(
            r.register(m, claim(&mallory, "ALICE", 3), T, true),
            Err(RegistryError::Taken {
                name: "ALICE".into(),
                owner: a.to_bytes()
            })
        );
        assert!(matches!(
            r.register(m, claim(&alice, "alice", 3), T, true),
            Err(RegistryError::Refused(_))
        ));
        assert!(matches!(
            r.register(a, claim(&alice, "alice", T + 3_600_000), T, true),
            Err(RegistryError::Refused(_))
        ));
        assert_eq!(r.owner("Alice", T).unwrap().peer, a);
    }

    #[test]
    fn a_rename_frees_the_old_name() {
        let (alice, bob) = (key(1), key(2));
        let (a, b) = (alice.public().to_peer_id(), bob.public().to_peer_id());
        let mut r = Registry::in_memory();
        r.register(a, claim(&alice, "alice", 1), T, true).unwrap();
        r.register(a, claim(&alice, "alicia", 2), T, true).unwrap();
        assert_eq!(r.name_of(&a).unwrap().name, "alicia");
        assert!(r.owner("alice", T).is_none());
        assert_eq!(
            r.register(b, claim(&bob, "alice", 3), T, true),
            Ok(Registered::New)
        );
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
            let mut r = Registry::open(&path, T).unwrap();
            r.register(a, claim(&alice, "alice", 1), T, true).unwrap();
            r.register(b, claim(&bob, "bob", 1), T, true).unwrap();
            r.register(b, claim(&bob, "robert", 2), T, true).unwrap();
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"name\":\"carol\",\"rec")
            .unwrap();
        let mut r = Registry::open(&path, T).unwrap();
        assert_eq!(r.owner("alice", T).unwrap().peer, a);
        assert_eq!(r.owner("robert", T).unwrap().peer, b);
        assert!(r.owner("bob", T).is_none());
        let c = carol.public().to_peer_id();
        assert!(matches!(
            r.register(c, claim(&carol, "alice", 5), T, true),
            Err(RegistryError::Taken { .. })
        ));
        r.register(c, claim(&carol, "carol", 5), T, true).unwrap();
        drop(r);
        assert_eq!(Registry::open(&path, T).unwrap().len(), 3);
    }

    #[test]
    fn a_long_journal_is_compacted_without_losing_names() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.jsonl");
        let alice = key(1);
        let a = alice.public().to_peer_id();
        let mut r = Registry::open(&path, T).unwrap();
        for i in 0..600u64 {
            r.register(a, claim(&alice, &format!("n{}", i % 3), i + 1), T, true)
                .unwrap();
        }
        drop(r);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 300, "{lines} lines");
        let r = Registry::open(&path, T).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r.name_of(&a).unwrap().name, "n2");
    }

    #[test]
    fn a_name_not_logged_in_for_90_days_is_free_again_also_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.jsonl");
        let (alice, squatter, bob) = (key(1), key(2), key(3));
        let (a, s, b) = (
            alice.public().to_peer_id(),
            squatter.public().to_peer_id(),
            bob.public().to_peer_id(),
        );
        let mut r = Registry::open(&path, T).unwrap();
        r.register(s, claim(&squatter, "alice", 1), T, true)
            .unwrap();
        r.register(b, claim(&bob, "bob", 1), T, true).unwrap();
        // Bob logs in every 60 days; the squatter never again.
        let later = T + 60 * DAY_MS;
        assert_eq!(
            r.register(b, claim(&bob, "bob", 1), later, true),
            Ok(Registered::Login)
        );
        let expired = T + NAME_EXPIRY_MS;
        assert!(matches!(
            r.register(a, claim(&alice, "alice", 2), expired - 1, true),
            Err(RegistryError::Taken { .. })
        ));
        assert!(r.owner("alice", expired - 1).is_some());
        assert!(r.owner("alice", expired).is_none());
        assert_eq!(
            r.register(a, claim(&alice, "alice", 2), expired, true),
            Ok(Registered::New)
        );
        drop(r);
        let r = Registry::open(&path, expired).unwrap();
        assert_eq!(r.owner("alice", expired).unwrap().peer, a);
        assert_eq!(r.owner("bob", expired).unwrap().peer, b);
        assert!(r.name_of(&s).is_none());
    }

    #[test]
    fn journal_lines_without_a_login_time_count_from_the_first_start() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("registry.jsonl");
        let alice = key(1);
        let a = alice.public().to_peer_id();
        let record = claim(&alice, "alice", 1);
        let line = format!(
            "{{\"name\":\"alice\",\"record\":\"{}\"}}\n",
            hex::encode(record.encode())
        );
        std::fs::write(&path, line).unwrap();
        drop(Registry::open(&path, T).unwrap());
        // Restarting later does not start the grace period over.
        let r = Registry::open(&path, T + NAME_EXPIRY_MS - 1).unwrap();
        assert_eq!(r.owner("alice", T + NAME_EXPIRY_MS - 1).unwrap().peer, a);
        let r = Registry::open(&path, T + NAME_EXPIRY_MS).unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn names_that_look_like_a_held_one_or_mix_scripts_are_refused() {
        let (victim, paypal, mallory) = (key(1), key(2), key(3));
        let (v, p, m) = (
            victim.public().to_peer_id(),
            paypal.public().to_peer_id(),
            mallory.public().to_peer_id(),
        );
        let mut r = Registry::in_memory();
        r.register(v, claim(&victim, "mallory", 1), T, true)
            .unwrap();
        r.register(p, claim(&paypal, "paypal", 1), T, true).unwrap();
        // Cyrillic а in a Latin name, "rn" for "m", digit 0 for o, capital I for l.
        for fake in ["pаypal", "rnallory", "mall0ry", "maIIory"] {
            assert!(
                matches!(
                    r.register(m, claim(&mallory, fake, 2), T, true),
                    Err(RegistryError::Refused(_))
                ),
                "{fake} was taken"
            );
        }
        assert!(r.name_of(&m).is_none());
        // A whole-script look-alike: Cyrillic "сое" against a held Latin "coe".
        r.register(v, claim(&victim, "coe", 3), T, true).unwrap();
        assert!(matches!(
            r.register(m, claim(&mallory, "сое", 4), T, true),
            Err(RegistryError::Refused(_))
        ));
        // Names of one script that look like nobody else's are fine, in any script.
        for name in ["zoë", "日本語", "Дмитрий"] {
            let key = Keypair::generate_ed25519();
            let peer = key.public().to_peer_id();
            assert_eq!(
                r.register(peer, claim(&key, name, 1), T, true),
                Ok(Registered::New),
                "{name}"
            );
        }
        // The holder itself may move to its own look-alike.
        assert_eq!(
            r.register(p, claim(&paypal, "paypaI", 5), T, true),
            Ok(Registered::New)
        );
    }

    #[test]
    fn an_address_out_of_budget_may_log_in_but_not_take_a_new_name() {
        let alice = key(1);
        let a = alice.public().to_peer_id();
        let mut r = Registry::in_memory();
        r.register(a, claim(&alice, "alice", 1), T, true).unwrap();
        assert_eq!(
            r.register(a, claim(&alice, "alice", 2), T, false),
            Ok(Registered::Login)
        );
        assert!(matches!(
            r.register(a, claim(&alice, "alicia", 3), T, false),
            Err(RegistryError::Refused(_))
        ));
        assert_eq!(r.name_of(&a).unwrap().name, "alice");
    }
}
