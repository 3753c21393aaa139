//! What the node knows about other peers: claimed and registered names, contacts, blocks,
//! agents, connections; how each peer is shown, and how typed users are found.

use std::collections::{HashMap, HashSet, VecDeque};

use libp2p::{Multiaddr, PeerId};

use crate::{
    logic::names::NameBook,
    store::{
        contacts::ContactBook,
        heard_names::{Heard, HeardNames},
    },
};

/// Facts about one peer.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// The last name the peer used in a signed message or announcement.
    pub name: Option<String>,
    /// Its identify agent string.
    pub agent: Option<String>,
    /// Addresses of its open connections.
    pub connections: Vec<Multiaddr>,
    /// When the name was last heard, in the order names were heard (higher is later).
    heard: u64,
}

/// Why a typed user could not be found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Nothing was typed.
    #[error("no user given: use a name, name#xxxx, a contact or a peer id")]
    Empty,
    /// Nobody known matches.
    #[error("unknown user '{0}': /users lists who is online, /contacts your contacts")]
    Unknown(String),
    /// Several known peers match.
    #[error("'{typed}' could be {}: type one of them", .candidates.join(" or "))]
    Ambiguous {
        /// What was typed.
        typed: String,
        /// How each match is shown (`name#xxxx`).
        candidates: Vec<String>,
    },
}

/// Everyone this node has heard of, and how to show them.
#[derive(Debug)]
pub struct Directory {
    peers: HashMap<PeerId, PeerInfo>,
    /// What the DHT says about names.
    pub names: NameBook,
    /// The user's contacts and blocked peers.
    pub contacts: ContactBook,
    /// How many names were heard (orders [`PeerInfo::heard`]).
    heard: u64,
}

/// The last four characters of a peer id, used to tell apart users with the same name.
pub fn short_id(peer: &PeerId) -> String {
    let s = peer.to_base58();
    s[s.len().saturating_sub(4)..].to_owned()
}

impl Directory {
    /// A directory knowing the user's `contacts`, checking names with `names`.
    pub fn new(names: NameBook, contacts: ContactBook) -> Self {
        Self {
            peers: HashMap::new(),
            names,
            contacts,
            heard: 0,
        }
    }

    /// Takes in the names heard before a restart; a name registered to its peer then is
    /// shown plain until a lookup says otherwise.
    pub fn remember(&mut self, book: &HeardNames, now: std::time::Instant) {
        for (peer, h) in book.iter() {
            let info = self.peers.entry(*peer).or_default();
            if info.name.is_none() {
                info.name = Some(h.name.clone());
                info.heard = h.order;
                self.heard = self.heard.max(h.order);
            }
            if h.registered {
                self.names.remember_owner(&h.name, *peer, now);
            }
        }
    }

    /// The names heard from peers, to keep over a restart.
    pub fn heard_names(&self) -> HeardNames {
        HeardNames::new(self.peers.iter().filter_map(|(peer, info)| {
            let name = info.name.as_ref()?;
            Some((
                *peer,
                Heard {
                    name: name.clone(),
                    registered: self.names.owner_of(name) == Some(*peer),
                    order: info.heard,
                },
            ))
        }))
    }

    /// Records that `peer` signed a message as `name`.
    pub fn observe_name(&mut self, peer: PeerId, name: &str) {
        let info = self.peers.entry(peer).or_default();
        if info.name.as_deref() != Some(name) {
            info.name = Some(name.to_owned());
            self.heard = self.heard.saturating_add(1);
            info.heard = self.heard;
        }
    }

    /// Records the agent a peer announced.
    pub fn observe_agent(&mut self, peer: PeerId, agent: String) {
        self.peers.entry(peer).or_default().agent = Some(agent);
    }

    /// Records a new connection.
    pub fn connected(&mut self, peer: PeerId, addr: Multiaddr) {
        self.peers.entry(peer).or_default().connections.push(addr);
    }

    /// Records a closed connection.
    pub fn disconnected(&mut self, peer: &PeerId, addr: &Multiaddr) {
        if let Some(info) = self.peers.get_mut(peer) {
            if let Some(i) = info.connections.iter().position(|a| a == addr) {
                info.connections.swap_remove(i);
            }
        }
    }

    /// What is known about `peer`.
    pub fn get(&self, peer: &PeerId) -> Option<&PeerInfo> {
        self.peers.get(peer)
    }

    /// The name `peer` last used, if any.
    pub fn name_of(&self, peer: &PeerId) -> Option<&str> {
        self.peers.get(peer).and_then(|i| i.name.as_deref())
    }

    /// Whether messages from `peer` are dropped (`/block`).
    pub fn is_blocked(&self, peer: &PeerId) -> bool {
        self.contacts.is_blocked(peer)
    }

    /// How `peer` is shown:
    /// - a contact by its petname;
    /// - otherwise by its name alone when the DHT record for that name names
    ///   this peer and no contact has that petname;
    /// - otherwise as `name#xxxx` (the last four characters of the peer id),
    ///   or `#xxxx` when no name is known.
    pub fn display_name(&self, peer: &PeerId) -> String {
        if let Some(petname) = self.contacts.petname(peer) {
            return petname.to_owned();
        }
        match self.name_of(peer) {
            Some(name)
                if self.names.owner_of(name) == Some(*peer)
                    && self.contacts.get(name).is_none() =>
            {
                name.to_owned()
            }
            Some(name) => format!("{name}#{}", short_id(peer)),
            None => format!("#{}", short_id(peer)),
        }
    }

    /// How every peer with a known name or a petname is shown now, to show logged lines
    /// under today's names rather than those they were logged with.
    pub fn labels(&self) -> Labels {
        Labels(
            self.known()
                .filter(|p| self.name_of(p).is_some() || self.contacts.petname(p).is_some())
                .map(|p| (p.to_string(), self.display_name(&p)))
                .collect(),
        )
    }

    /// Every peer heard of or kept as a contact.
    fn known(&self) -> impl Iterator<Item = PeerId> + '_ {
        let contacts = self
            .contacts
            .contacts()
            .map(|(_, c)| c.peer)
            .filter(|p| !self.peers.contains_key(p));
        self.peers.keys().copied().chain(contacts)
    }

    /// Finds the peer a user typed: a peer id, a contact's petname, a
    /// registered name, a name only one known peer uses, `name#xxxx` or
    /// `#xxxx`, each also with a leading `@`. The one resolver every command naming a user goes through.
    pub fn resolve_user(&self, typed: &str) -> Result<PeerId, ResolveError> {
        // `@bob`, as `/rooms` names a private conversation, is bob.
        let typed = typed.trim();
        let typed = typed.strip_prefix('@').unwrap_or(typed);
        if typed.is_empty() {
            return Err(ResolveError::Empty);
        }
        if let Ok(peer) = typed.parse::<PeerId>() {
            return Ok(peer);
        }
        let candidates: Vec<PeerId> = match typed.rsplit_once('#') {
            Some((name, suffix)) => self
                .known()
                .filter(|p| short_id(p) == suffix)
                .filter(|p| {
                    name.is_empty()
                        || self.name_of(p) == Some(name)
                        || self.contacts.petname(p) == Some(name)
                })
                .collect(),
            None => {
                if let Some(contact) = self.contacts.get(typed) {
                    return Ok(contact.peer);
                }
                if let Some(owner) = self.names.owner_of(typed) {
                    return Ok(owner);
                }
                self.known()
                    .filter(|p| self.name_of(p) == Some(typed))
                    .collect()
            }
        };
        match candidates.as_slice() {
            [] => Err(ResolveError::Unknown(typed.to_owned())),
            [peer] => Ok(*peer),
            many => {
                let mut shown: Vec<String> = many
                    .iter()
                    .map(|p| {
                        let name = self
                            .contacts
                            .petname(p)
                            .or_else(|| self.name_of(p))
                            .unwrap_or("");
                        format!("{name}#{}", short_id(p))
                    })
                    .collect();
                shown.sort();
                Err(ResolveError::Ambiguous {
                    typed: typed.to_owned(),
                    candidates: shown,
                })
            }
        }
    }
}

/// How peers are shown now ([`Directory::labels`]), by peer id as logs write it.
#[derive(Clone, Debug, Default)]
pub struct Labels(HashMap<String, String>);

impl Labels {
    /// How the author `peer` of a line logged as `logged` is shown: its label now when the
    /// directory knows it, else the name it was logged with.
    pub fn label<'a>(&'a self, peer: &str, logged: &'a str) -> &'a str {
        self.0.get(peer).map_or(logged, String::as_str)
    }
}

/// A bounded set of recently seen message ids, to drop replays.
#[derive(Debug)]
pub struct RecentIds<T> {
    order: VecDeque<T>,
    set: HashSet<T>,
    capacity: usize,
}

impl<T: std::hash::Hash + Eq + Clone> RecentIds<T> {
    /// Remembers at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            order: VecDeque::with_capacity(capacity.min(1024)),
            set: HashSet::new(),
            capacity,
        }
    }

    /// Returns true the first time `id` is seen, false for a repeat.
    pub fn insert(&mut self, id: T) -> bool {
        if !self.set.insert(id.clone()) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Forgets `id`, so that it counts as new the next time.
    pub fn remove(&mut self, id: &T) {
        if self.set.remove(id) {
            self.order.retain(|seen| seen != id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::NameRecord;
    use libp2p::identity::Keypair;
    use std::time::{Duration, Instant};

    fn directory() -> Directory {
        Directory::new(
            NameBook::new(Duration::from_secs(10)),
            ContactBook::default(),
        )
    }

    fn key(seed: u8) -> Keypair {
        Keypair::ed25519_from_bytes([seed; 32]).unwrap()
    }

    /// Makes the DHT say `name` belongs to the owner of `key`.
    fn register(d: &mut Directory, key: &Keypair, name: &str) {
        let record = NameRecord::sign(key, name, 1).unwrap();
        d.names.settle(name, &[record], Instant::now());
    }

    #[test]
    fn only_a_registered_owner_is_shown_by_name_alone() {
        let mut d = directory();
        let (bob, impostor) = (key(1), key(2));
        let (b, i) = (bob.public().to_peer_id(), impostor.public().to_peer_id());
        d.observe_name(b, "bob");
        assert_eq!(
            d.display_name(&b),
            format!("bob#{}", short_id(&b)),
            "not registered yet"
        );
        register(&mut d, &bob, "bob");
        assert_eq!(d.display_name(&b), "bob");
        d.observe_name(i, "bob");
        assert_eq!(d.display_name(&b), "bob");
        assert_eq!(d.display_name(&i), format!("bob#{}", short_id(&i)));
        assert_eq!(d.resolve_user("@bob"), Ok(b), "as /rooms writes it");
        // Logged lines show under the names of now, whatever they were logged as.
        let labels = d.labels();
        assert_eq!(labels.label(&b.to_string(), "bob#xxxx"), "bob");
        assert_eq!(
            labels.label(&i.to_string(), "bob"),
            format!("bob#{}", short_id(&i))
        );
        assert_eq!(labels.label("unknown", "carol#abcd"), "carol#abcd");
        let c = PeerId::random();
        assert_eq!(d.display_name(&c), format!("#{}", short_id(&c)));
    }

    #[test]
    fn names_heard_before_a_restart_resolve_and_show_as_they_did() {
        let mut before = directory();
        let (bob, carol) = (key(1), key(4));
        let (b, c) = (bob.public().to_peer_id(), carol.public().to_peer_id());
        before.observe_name(b, "bob");
        register(&mut before, &bob, "bob");
        before.observe_name(c, "carol");
        before.observe_name(c, "caroline");
        let kept = before.heard_names();
        assert_eq!(kept.len(), 2);
        let mut after = directory();
        after.remember(&kept, Instant::now());
        assert_eq!(after.resolve_user("bob"), Ok(b));
        assert_eq!(
            after.display_name(&b),
            "bob",
            "registered before the restart"
        );
        assert_eq!(after.resolve_user("caroline"), Ok(c), "the name heard last");
        assert_eq!(
            after.display_name(&c),
            format!("caroline#{}", short_id(&c)),
            "never found registered"
        );
        assert!(
            after.names.needs_lookup("bob", Instant::now()),
            "checked again"
        );
        assert_eq!(after.heard_names(), kept, "kept again as it was read");
    }

    #[test]
    fn contacts_are_shown_by_petname_and_shadow_that_name() {
        let mut d = directory();
        let (bob, friend) = (key(1), key(3));
        let (b, f) = (bob.public().to_peer_id(), friend.public().to_peer_id());
        d.observe_name(b, "bob");
        register(&mut d, &bob, "bob");
        d.observe_name(f, "robert");
        d.contacts.add("bob", f, None).unwrap();
        assert_eq!(d.display_name(&f), "bob");
        assert_eq!(d.display_name(&b), format!("bob#{}", short_id(&b)));
        assert_eq!(d.resolve_user("bob"), Ok(f), "the user's own petname wins");
    }

    #[test]
    fn resolve_finds_names_suffixes_contacts_and_peer_ids() {
        let mut d = directory();
        let (bob, other, carol) = (key(1), key(2), key(4));
        let (b, o, c) = (
            bob.public().to_peer_id(),
            other.public().to_peer_id(),
            carol.public().to_peer_id(),
        );
        d.observe_name(b, "bob");
        d.observe_name(o, "bob");
        d.observe_name(c, "carol");
        assert_eq!(
            d.resolve_user("carol"),
            Ok(c),
            "an unregistered but unique name"
        );
        assert_eq!(d.resolve_user(&c.to_string()), Ok(c));
        let stranger = PeerId::random();
        assert_eq!(d.resolve_user(&stranger.to_string()), Ok(stranger));
        match d.resolve_user("bob") {
            Err(ResolveError::Ambiguous { candidates, .. }) => {
                assert_eq!(candidates.len(), 2);
                assert!(candidates.contains(&format!("bob#{}", short_id(&b))));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.resolve_user(&format!("bob#{}", short_id(&o))), Ok(o));
        assert_eq!(d.resolve_user(&format!("#{}", short_id(&c))), Ok(c));
        register(&mut d, &bob, "bob");
        assert_eq!(d.resolve_user("bob"), Ok(b), "the registered owner");
        assert_eq!(
            d.resolve_user("dave"),
            Err(ResolveError::Unknown("dave".into()))
        );
        assert_eq!(
            d.resolve_user("bob#zzzz"),
            Err(ResolveError::Unknown("bob#zzzz".into()))
        );
        assert_eq!(d.resolve_user("  "), Err(ResolveError::Empty));
        // A contact never seen online still resolves by petname and suffix.
        let offline = PeerId::random();
        d.contacts.add("zed", offline, None).unwrap();
        assert_eq!(d.resolve_user("zed"), Ok(offline));
        assert_eq!(
            d.resolve_user(&format!("zed#{}", short_id(&offline))),
            Ok(offline)
        );
        for e in [
            ResolveError::Empty,
            ResolveError::Unknown("x".into()),
            ResolveError::Ambiguous {
                typed: "bob".into(),
                candidates: vec!["bob#aaaa".into(), "bob#bbbb".into()],
            },
        ] {
            assert!(!e.to_string().contains('\n'));
        }
        assert_eq!(
            ResolveError::Ambiguous {
                typed: "bob".into(),
                candidates: vec!["bob#aaaa".into(), "bob#bbbb".into()],
            }
            .to_string(),
            "'bob' could be bob#aaaa or bob#bbbb: type one of them"
        );
    }

    #[test]
    fn blocked_peers_are_reported() {
        let mut d = directory();
        let p = PeerId::random();
        assert!(!d.is_blocked(&p));
        d.contacts.block(p);
        assert!(d.is_blocked(&p));
    }

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut r = RecentIds::new(2);
        assert!(r.insert(1));
        assert!(!r.insert(1));
        assert!(r.insert(2));
        assert!(r.insert(3));
        assert!(r.insert(1), "1 was evicted");
    }
}
