//! What the node knows about other peers: claimed names, agents, connections.

use std::collections::{HashMap, HashSet, VecDeque};

use libp2p::{Multiaddr, PeerId};

/// Facts about one peer.
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    /// The last name the peer used in a signed message.
    pub name: Option<String>,
    /// Its identify agent string.
    pub agent: Option<String>,
    /// Addresses of its open connections.
    pub connections: Vec<Multiaddr>,
}

/// Everyone this node has heard of.
#[derive(Debug, Default)]
pub struct Directory {
    peers: HashMap<PeerId, PeerInfo>,
}

/// The last four characters of a peer id, used to tell apart users with the same name.
pub fn short_id(peer: &PeerId) -> String {
    let s = peer.to_base58();
    s[s.len().saturating_sub(4)..].to_owned()
}

impl Directory {
    /// Records that `peer` signed a message as `name`.
    pub fn observe_name(&mut self, peer: PeerId, name: &str) {
        let info = self.peers.entry(peer).or_default();
        if info.name.as_deref() != Some(name) {
            info.name = Some(name.to_owned());
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

    /// How `peer` is shown: its name when no other known peer uses it, `name#xxxx`
    /// when the name is shared, and `#xxxx` when no name is known.
    pub fn display_name(&self, peer: &PeerId) -> String {
        match self.peers.get(peer).and_then(|i| i.name.as_deref()) {
            Some(name) => {
                let shared = self
                    .peers
                    .iter()
                    .any(|(p, i)| p != peer && i.name.as_deref() == Some(name));
                if shared {
                    format!("{name}#{}", short_id(peer))
                } else {
                    name.to_owned()
                }
            }
            None => format!("#{}", short_id(peer)),
        }
    }
}

impl Directory {
    /// The peer a user string names: a peer id, a unique name, or `name#xxxx`.
    pub fn resolve(&self, query: &str) -> Result<PeerId, String> {
        let query = query.trim();
        if let Ok(peer) = query.parse::<PeerId>() {
            return Ok(peer);
        }
        let (name, suffix) = match query.split_once('#') {
            Some((name, suffix)) => (name, Some(suffix)),
            None => (query, None),
        };
        let mut matches: Vec<&PeerId> = self
            .peers
            .iter()
            .filter(|(p, i)| {
                (name.is_empty() || i.name.as_deref() == Some(name))
                    && suffix.is_none_or(|s| short_id(p) == s)
            })
            .map(|(p, _)| p)
            .collect();
        matches.sort();
        match matches.as_slice() {
            [one] => Ok(**one),
            [] => Err(format!(
                "nobody called '{query}' is known yet: use their peer id, or wait until they show up"
            )),
            several => Err(format!(
                "several users are called '{name}': say which with {}",
                several
                    .iter()
                    .map(|p| format!("{name}#{}", short_id(p)))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        }
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shared_names_get_a_suffix() {
        let mut d = Directory::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        d.observe_name(a, "bob");
        assert_eq!(d.display_name(&a), "bob");
        d.observe_name(b, "bob");
        assert_eq!(d.display_name(&a), format!("bob#{}", short_id(&a)));
        assert_eq!(d.display_name(&b), format!("bob#{}", short_id(&b)));
        let c = PeerId::random();
        assert_eq!(d.display_name(&c), format!("#{}", short_id(&c)));
    }

    #[test]
    fn users_resolve_by_peer_id_name_or_suffix() {
        let mut d = Directory::default();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        d.observe_name(a, "alice");
        d.observe_name(b, "bob");
        d.observe_name(c, "bob");
        assert_eq!(d.resolve("alice"), Ok(a));
        assert_eq!(d.resolve(&a.to_string()), Ok(a));
        assert_eq!(d.resolve(&format!("bob#{}", short_id(&c))), Ok(c));
        let err = d.resolve("bob").unwrap_err();
        assert!(err.contains("several users"), "{err}");
        assert!(d.resolve("zed").unwrap_err().contains("nobody called"));
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
