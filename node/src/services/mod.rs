//! What only a bootstrap serves: the mailbox for offline users, the name registry with its
//! directory of who is online, the forwarding of the rooms its peers share, and the archive
//! of their last lines for members catching up. A node gets these parts once, when it is
//! built as a bootstrap; a user's node has none of them.

pub mod address_budget;
pub mod forwarding;
pub mod mailbox_service;
pub mod mailbox_store;
pub mod name_registry;
pub mod registry_service;
pub mod room_archive;

use ipm_protocol::Room;
use libp2p::{Multiaddr, PeerId};

use crate::logic::service_budgets::ServiceLimits;
use crate::{
    net::addresses::{is_loopback, is_relayed},
    store::{data_dir::DataDir, OpenError},
};
use forwarding::{ForwardLimits, Origin, RoomDemand};
use mailbox_service::MailboxService;
use registry_service::RegistryService;
use room_archive::{ArchiveLimits, RoomArchive};

/// Everything a bootstrap serves beside what every node does.
#[derive(Debug)]
pub struct BootstrapServices {
    /// Sealed messages for offline users.
    pub mailbox: MailboxService,
    /// Names and who is online.
    pub registry: RegistryService,
    /// Which rooms are forwarded for peers that only know this bootstrap.
    pub forwarding: RoomDemand,
    /// The last signed lines of the rooms it forwards, for members catching up.
    pub archive: RoomArchive,
}

impl BootstrapServices {
    /// Services kept in memory only, with budgets `limits`.
    pub fn in_memory(limits: ServiceLimits) -> Self {
        Self {
            mailbox: MailboxService::in_memory(limits.mailbox),
            registry: RegistryService::in_memory(limits.new_names_per_address_per_hour),
            forwarding: RoomDemand::new(ForwardLimits::default()),
            archive: RoomArchive::in_memory(ArchiveLimits::default()),
        }
    }

    /// Opens the mailbox and registry journals of `dir` at `now_ms`, with budgets `limits`.
    pub fn open(dir: &DataDir, now_ms: u64, limits: ServiceLimits) -> Result<Self, OpenError> {
        Ok(Self {
            mailbox: MailboxService::open(&dir.mailbox(), now_ms, limits.mailbox)
                .map_err(OpenError::at(&dir.mailbox()))?,
            registry: RegistryService::open(
                &dir.registry(),
                now_ms,
                limits.new_names_per_address_per_hour,
            )
            .map_err(OpenError::at(&dir.registry()))?,
            forwarding: RoomDemand::new(ForwardLimits::default()),
            archive: RoomArchive::open(&dir.archive(), now_ms, ArchiveLimits::default())
                .map_err(OpenError::at(&dir.archive()))?,
        })
    }

    /// Whether a bootstrap tells peers it is reachable at `addr`, one of its listen
    /// addresses: it is deployed to be reachable where it listens, at a loopback address only
    /// when it was told to listen there (`listen`), not as one interface of 0.0.0.0, and
    /// never through a relay.
    pub fn advertises(&self, addr: &Multiaddr, listen: &[Multiaddr]) -> bool {
        let explicit_loopback = listen.iter().any(is_loopback);
        !is_relayed(addr) && (!is_loopback(addr) || explicit_loopback)
    }

    /// `peer` (from `origin`) subscribed to `topic`: the room to join so that peers which
    /// only know this bootstrap hear each other, if any. `joined`: the rooms this node is in.
    pub fn room_to_forward(
        &mut self,
        peer: PeerId,
        origin: Origin,
        topic: &str,
        joined: &std::collections::BTreeSet<Room>,
    ) -> Option<Room> {
        let room = Room::from_topic(topic).ok()?;
        let already = joined.contains(&room);
        self.forwarding.subscribed(peer, origin, room, already)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bootstrap_forwards_ipm_rooms_two_peers_share() {
        let mut services = BootstrapServices::in_memory(ServiceLimits::default());
        let joined = std::collections::BTreeSet::from([Room::Lobby]);
        let topic = Room::interest("rust").expect("a tag").topic();
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let a = Origin::Ip("192.0.2.1".parse().expect("an address"));
        let b = Origin::Ip("198.51.100.2".parse().expect("an address"));
        assert_eq!(services.room_to_forward(alice, a, &topic, &joined), None);
        assert!(services.room_to_forward(bob, b, &topic, &joined).is_some());
        let lobby = Room::Lobby.topic();
        assert_eq!(services.room_to_forward(alice, a, &lobby, &joined), None);
        assert_eq!(services.room_to_forward(bob, b, &lobby, &joined), None);
        assert_eq!(
            services.room_to_forward(alice, a, "not an ipm topic", &joined),
            None
        );
    }

    #[test]
    fn a_bootstrap_advertises_where_it_listens_but_loopback_only_when_told() {
        let services = BootstrapServices::in_memory(ServiceLimits::default());
        let addr = |s: &str| s.parse::<Multiaddr>().expect("an address");
        let any = [addr("/ip4/0.0.0.0/tcp/7433")];
        assert!(services.advertises(&addr("/ip4/192.0.2.7/tcp/7433"), &any));
        assert!(!services.advertises(&addr("/ip4/127.0.0.1/tcp/7433"), &any));
        let loopback = [addr("/ip4/127.0.0.1/tcp/7433")];
        assert!(services.advertises(&addr("/ip4/127.0.0.1/tcp/7433"), &loopback));
        let relayed = addr("/ip4/192.0.2.7/tcp/7433/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit");
        assert!(!services.advertises(&relayed, &any));
    }
}
