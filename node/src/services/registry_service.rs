//! The bootstrap's answers on `/ipm/registry/1`: register (or log in) a name, say who holds
//! a name, and list the logged-in users connected now (the directory).

use std::{collections::BTreeMap, io, path::Path};

use libp2p::{identity::Keypair, PeerId};
use tracing::{debug, info, warn};

use ipm_protocol::{
    limits::MAX_ONLINE_LISTED, name_ticket::NameTicket, NameRecord, RegistryError, RegistryRequest,
    RegistryResponse, SignedName,
};

use super::address_budget::{AddressKey, WindowCounter};
use super::name_registry::{Registered, Registry};

use crate::logic::registry_client::TICKET_LIFE_MS;
pub use crate::logic::service_budgets::NEW_NAMES_PER_ADDRESS_PER_HOUR;
const HOUR_MS: u64 = 60 * 60 * 1000;

/// The registry a bootstrap serves, and who is logged in and connected.
#[derive(Debug)]
pub struct RegistryService {
    names: Registry,
    online: BTreeMap<PeerId, NameRecord>,
    new_names: WindowCounter,
}

impl RegistryService {
    /// A registry kept in memory only, letting an address take `new_names_per_hour`.
    pub fn in_memory(new_names_per_hour: u32) -> Self {
        Self::with(Registry::in_memory(), new_names_per_hour)
    }

    /// Opens the registry journal at `path` at `now_ms`.
    pub fn open(path: &Path, now_ms: u64, new_names_per_hour: u32) -> io::Result<Self> {
        Ok(Self::with(
            Registry::open(path, now_ms)?,
            new_names_per_hour,
        ))
    }

    fn with(names: Registry, new_names_per_hour: u32) -> Self {
        Self {
            names,
            online: BTreeMap::new(),
            new_names: WindowCounter::new(new_names_per_hour, HOUR_MS),
        }
    }

    /// The answer at `now_ms` to `peer`'s request, whose new names count against the budget
    /// of `address`; a registration's ticket is signed with `issuer`, the bootstrap's key.
    pub fn serve(
        &mut self,
        peer: PeerId,
        address: AddressKey,
        request: RegistryRequest,
        now_ms: u64,
        issuer: &Keypair,
    ) -> RegistryResponse {
        match request {
            RegistryRequest::Register(signed) => match signed.verify() {
                Ok(record) => match self.register(peer, address, record.clone(), now_ms) {
                    Ok(outcome) => {
                        info!(%peer, name = %record.name, ?outcome, "name registered");
                        let expires = now_ms.saturating_add(TICKET_LIFE_MS);
                        let ticket = NameTicket::issue(issuer, &record, expires)
                            .map_err(|e| warn!("cannot issue a name ticket: {e}"))
                            .ok();
                        self.online.insert(peer, record);
                        RegistryResponse::Registered {
                            new: outcome == Registered::New,
                            ticket,
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
                RegistryResponse::Owner(self.names.owner(&name, now_ms).map(SignedName::new))
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

    /// Registers `record` for `peer`; a new name counts against the budget of `address`.
    fn register(
        &mut self,
        peer: PeerId,
        address: AddressKey,
        record: NameRecord,
        now_ms: u64,
    ) -> Result<Registered, RegistryError> {
        let may_add = self.new_names.allows(address, now_ms);
        let outcome = self.names.register(peer, record, now_ms, may_add)?;
        if outcome == Registered::New {
            self.new_names.count(address, now_ms);
        }
        Ok(outcome)
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

    const T: u64 = 1_000_000_000;

    /// The bootstrap's key, the one its tickets are signed with.
    fn issuer() -> &'static Keypair {
        static KEY: std::sync::OnceLock<Keypair> = std::sync::OnceLock::new();
        KEY.get_or_init(Keypair::generate_ed25519)
    }

    /// Whether `answer` registers (`new`) or logs in `key` with a ticket that holds.
    fn registered(answer: RegistryResponse, key: &Keypair, new: bool) -> bool {
        let registry = issuer().public().to_peer_id();
        match answer {
            RegistryResponse::Registered {
                new: was_new,
                ticket: Some(ticket),
            } => {
                was_new == new
                    && ticket
                        .verify(&[registry], &key.public().to_peer_id(), T)
                        .is_ok()
            }
            _ => false,
        }
    }

    fn register_from(
        service: &mut RegistryService,
        ip: &str,
        key: &Keypair,
        name: &str,
    ) -> RegistryResponse {
        let record = NameRecord::sign(key, name, 1).expect("a valid name");
        let peer = key.public().to_peer_id();
        let address = AddressKey::of(ip.parse().ok());
        service.serve(
            peer,
            address,
            RegistryRequest::Register(SignedName::new(&record)),
            T,
            issuer(),
        )
    }

    fn register(service: &mut RegistryService, key: &Keypair, name: &str) -> RegistryResponse {
        register_from(service, "192.0.2.1", key, name)
    }

    #[test]
    fn first_come_first_served_and_the_directory_lists_the_others() {
        let mut service = RegistryService::in_memory(NEW_NAMES_PER_ADDRESS_PER_HOUR);
        let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        assert!(registered(
            register(&mut service, &alice, "alice"),
            &alice,
            true
        ));
        assert!(registered(
            register(&mut service, &alice, "alice"),
            &alice,
            false
        ));
        assert!(matches!(
            register(&mut service, &bob, "Alice"),
            RegistryResponse::Refused(_)
        ));
        register(&mut service, &bob, "bob");
        let alice_peer = alice.public().to_peer_id();
        match service.serve(
            alice_peer,
            AddressKey::Unknown,
            RegistryRequest::Online { max: 10 },
            T,
            issuer(),
        ) {
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

    #[test]
    fn one_address_registers_a_few_new_names_an_hour_whatever_its_keys() {
        let mut service = RegistryService::in_memory(3);
        let squatter = "198.51.100.7";
        let mut refused = 0;
        for i in 0..10 {
            let key = Keypair::generate_ed25519();
            if matches!(
                register_from(&mut service, squatter, &key, &format!("name{i}")),
                RegistryResponse::Refused(_)
            ) {
                refused += 1;
            }
        }
        assert_eq!((service.names(), refused), (3, 7));
        // Another address is not affected, and a holder still logs in from the squatter's.
        let alice = Keypair::generate_ed25519();
        assert!(registered(
            register_from(&mut service, "203.0.113.9", &alice, "alice"),
            &alice,
            true
        ));
        assert!(registered(
            register_from(&mut service, squatter, &alice, "alice"),
            &alice,
            false
        ));
    }
}
