//! Contacts (the user's own petnames for peers) and blocked peers, kept in `contacts.json`.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::Path,
};

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::store::data_dir::{read_json, write_atomic};

/// Largest contacts file accepted.
const MAX_CONTACTS_FILE: u64 = 1024 * 1024;

/// One contact: the peer a petname stands for, and where it was last reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The peer.
    pub peer: PeerId,
    /// An address given with `/contacts add`, dialled to find the peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<Multiaddr>,
}

/// Why a contact could not be added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    /// The petname is already given to another peer.
    #[error("'{name}' is already the contact {peer}: /contacts remove {name} first")]
    NameInUse {
        /// The petname.
        name: String,
        /// The peer it stands for.
        peer: PeerId,
    },
}

/// Every contact and blocked peer of this node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactBook {
    /// Petname -> contact.
    #[serde(default)]
    contacts: BTreeMap<String, Contact>,
    /// Peers whose messages are dropped.
    #[serde(default)]
    blocked: BTreeSet<PeerId>,
}

impl ContactBook {
    /// Reads `path`; a missing file is an empty book.
    pub fn load(path: &Path) -> io::Result<Self> {
        let book: ContactBook = read_json(path, MAX_CONTACTS_FILE, "contacts")?.unwrap_or_default();
        match book
            .contacts
            .keys()
            .find(|n| ipm_protocol::validate_name(n).is_err())
        {
            Some(bad) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} holds a bad petname {bad:?}", path.display()),
            )),
            None => Ok(book),
        }
    }

    /// Writes the book to `path` atomically.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_atomic(path, &json, true)
    }

    /// Gives `peer` the petname `name` (checked by the caller), replacing the
    /// peer's earlier petname; returns that earlier petname.
    pub fn add(
        &mut self,
        name: &str,
        peer: PeerId,
        addr: Option<Multiaddr>,
    ) -> Result<Option<String>, ContactError> {
        if let Some(held) = self.contacts.get(name) {
            if held.peer != peer {
                return Err(ContactError::NameInUse {
                    name: name.to_owned(),
                    peer: held.peer,
                });
            }
        }
        let previous = self.petname(&peer).map(str::to_owned);
        let addr = addr.or_else(|| {
            previous
                .as_ref()
                .and_then(|p| self.contacts.get(p))
                .and_then(|c| c.addr.clone())
        });
        if let Some(p) = &previous {
            self.contacts.remove(p);
        }
        self.contacts
            .insert(name.to_owned(), Contact { peer, addr });
        Ok(previous.filter(|p| p != name))
    }

    /// Removes the contact `name`; returns its peer.
    pub fn remove(&mut self, name: &str) -> Option<PeerId> {
        self.contacts.remove(name).map(|c| c.peer)
    }

    /// The petname of `peer`, if it is a contact.
    pub fn petname(&self, peer: &PeerId) -> Option<&str> {
        self.contacts
            .iter()
            .find(|(_, c)| c.peer == *peer)
            .map(|(n, _)| n.as_str())
    }

    /// The contact called `name`.
    pub fn get(&self, name: &str) -> Option<&Contact> {
        self.contacts.get(name)
    }

    /// Every contact, by petname.
    pub fn contacts(&self) -> impl Iterator<Item = (&str, &Contact)> {
        self.contacts.iter().map(|(n, c)| (n.as_str(), c))
    }

    /// Blocks `peer`; true when it was not blocked before.
    pub fn block(&mut self, peer: PeerId) -> bool {
        self.blocked.insert(peer)
    }

    /// Unblocks `peer`; true when it was blocked.
    pub fn unblock(&mut self, peer: &PeerId) -> bool {
        self.blocked.remove(peer)
    }

    /// Whether messages from `peer` are dropped.
    pub fn is_blocked(&self, peer: &PeerId) -> bool {
        self.blocked.contains(peer)
    }

    /// Every blocked peer.
    pub fn blocked(&self) -> impl Iterator<Item = &PeerId> {
        self.blocked.iter()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn contacts_and_blocks_survive_a_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("contacts.json");
        assert_eq!(ContactBook::load(&path).unwrap(), ContactBook::default());
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut book = ContactBook::default();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        assert_eq!(book.add("ally", a, Some(addr.clone())), Ok(None));
        assert!(book.block(b));
        assert!(!book.block(b));
        book.save(&path).unwrap();
        let back = ContactBook::load(&path).unwrap();
        assert_eq!(back, book);
        assert_eq!(back.petname(&a), Some("ally"));
        assert_eq!(back.get("ally").unwrap().addr, Some(addr));
        assert!(back.is_blocked(&b));
    }

    #[test]
    fn one_petname_per_peer_and_one_peer_per_petname() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut book = ContactBook::default();
        book.add("ally", a, None).unwrap();
        assert_eq!(
            book.add("ally", b, None),
            Err(ContactError::NameInUse {
                name: "ally".into(),
                peer: a
            })
        );
        assert_eq!(book.add("al", a, None), Ok(Some("ally".into())));
        assert_eq!(book.petname(&a), Some("al"));
        assert!(book.get("ally").is_none());
        assert_eq!(book.remove("al"), Some(a));
        assert_eq!(book.remove("al"), None);
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("contacts.json");
        std::fs::write(&path, "{not json").unwrap();
        let err = ContactBook::load(&path).unwrap_err().to_string();
        assert!(err.contains("is not valid contacts"), "{err}");
        let peer = PeerId::random();
        std::fs::write(
            &path,
            format!(r#"{{"contacts": {{"a b": {{"peer": "{peer}"}}}}}}"#),
        )
        .unwrap();
        let err = ContactBook::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad petname"), "{err}");
    }
}
