//! The bootstrap's answers on `/ipm/registry/1`: register (or log in) a name, say who holds
//! a name, and list the logged-in users connected now (the directory).

use std::{collections::BTreeMap, io, path::Path};

use libp2p::PeerId;
use tracing::{debug, info};

use ipm_protocol::{
    limits::MAX_ONLINE_LISTED, NameRecord, RegistryError, RegistryRequest, RegistryResponse,
    SignedName,
};

use super::name_registry::{Registered, Registry};

/// The registry a bootstrap serves, and who is logged in and connected.
#[derive(Debug, Default)]
pub struct RegistryService {
    names: Registry,
    online: BTreeMap<PeerId, NameRecord>,
}

impl RegistryService {
    /// A registry kept in memory only.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Opens the registry journal at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            names: Registry::open(path)?,
            online: BTreeMap::new(),
        })
    }

    /// The answer to `peer`'s request.
    pub fn serve(&mut self, peer: PeerId, request: RegistryRequest) -> RegistryResponse {
        match request {
            RegistryRequest::Register(signed) => match signed.verify() {
                Ok(record) => match self.names.register(peer, record.clone()) {
                    Ok(outcome) => {
                        info!(%peer, name = %record.name, ?outcome, "name registered");
                        self.online.insert(peer, record);
                        RegistryResponse::Registered {
                            new: outcome == Registered::New,
                        }
                    }
                    Err(e) => {
                        debug!(%peer, "registration refused: {e}");
                        RegistryResponse::Refused(e)
                    }
                },
                Err(e) => RegistryResponse::Refused(RegistryError::Refused(e.to_string())),
            },
            RegistryRequest::Lookup { name } => {
                RegistryResponse::Owner(self.names.owner(&name).map(SignedName::new))
            }
            RegistryRequest::Online { max } => {
                let max = usize::from(max).min(MAX_ONLINE_LISTED);
                let others = self.online.iter().filter(|(p, _)| **p != peer);
                let users: Vec<SignedName> = others
                    .clone()
                    .take(max)
                    .map(|(_, r)| SignedName::new(r))
                    .collect();
                let more = others.count() > users.len();
                RegistryResponse::Online { users, more }
            }
        }
    }

    /// Ends `peer`'s session (it disconnected or said goodbye); whether it had one.
    pub fn log_out(&mut self, peer: &PeerId) -> bool {
        self.online.remove(peer).is_some()
    }

    /// How many names are registered.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// How many users are logged in and connected.
    pub fn online(&self) -> usize {
        self.online.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn register(service: &mut RegistryService, key: &Keypair, name: &str) -> RegistryResponse {
        let record = NameRecord::sign(key, name, 1).expect("a valid name");
        let peer = key.public().to_peer_id();
        service.serve(peer, RegistryRequest::Register(SignedName::new(&record)))
    }

    #[test]
    fn first_come_first_served_and_the_directory_lists_the_others() {
        let mut service = RegistryService::in_memory();
        let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        assert_eq!(
            register(&mut service, &alice, "alice"),
            RegistryResponse::Registered { new: true }
        );
        assert_eq!(
            register(&mut service, &alice, "alice"),
            RegistryResponse::Registered { new: false }
        );
        assert!(matches!(
            register(&mut service, &bob, "Alice"),
            RegistryResponse::Refused(_)
        ));
        register(&mut service, &bob, "bob");
        let alice_peer = alice.public().to_peer_id();
        match service.serve(alice_peer, RegistryRequest::Online { max: 10 }) {
            RegistryResponse::Online { users, more } => {
                assert_eq!(users.len(), 1);
                assert_eq!(users[0].name, "bob");
                assert!(!more);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(service.log_out(&bob.public().to_peer_id()));
        assert_eq!(service.online(), 1);
        assert_eq!(service.names(), 2);
    }
}
