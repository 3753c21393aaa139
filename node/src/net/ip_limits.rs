//! Per-address connection limits: how many inbound connections one IP address and one
//! network (an IPv4 /24, an IPv6 /64) may have in the handshakes and established, a
//! reserve of handshake slots for addresses the node already had a working connection
//! with, and the share of the connection budget kept for the node's own dials. The counts
//! and decisions are [`AddressBudget`]; [`IpLimits`] feeds it the swarm's connections.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::IpAddr,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use ipm_protocol::limits;
use libp2p::{
    core::{transport::PortUse, ConnectedPoint, Endpoint},
    swarm::{
        behaviour::{ConnectionEstablished, ListenFailure},
        dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour,
        THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};
use tracing::debug;

use super::addresses::ip_of;
use crate::config::AddressLimits;

/// How many addresses of working connections are remembered.
const KNOWN_CAPACITY: usize = 4096;

/// How long an address counts as known after its last working connection.
const KNOWN_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// Why an inbound connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Every handshake slot is taken.
    #[error("too many connections in the handshakes")]
    PendingFull,
    /// The free handshake slots are kept for addresses the node knows.
    #[error("the last handshake slots are kept for known addresses")]
    ReservedForKnown,
    /// The address has its share of handshakes.
    #[error("too many handshakes from one address")]
    PendingPerIp,
    /// The network has its share of handshakes.
    #[error("too many handshakes from one network")]
    PendingPerNetwork,
    /// Inbound connections have their share of the connection budget.
    #[error("too many inbound connections")]
    InboundFull,
    /// The address has its share of established connections.
    #[error("too many connections from one address")]
    EstablishedPerIp,
    /// The network has its share of established connections.
    #[error("too many connections from one network")]
    EstablishedPerNetwork,
}

/// The network an address belongs to for the limits: its /24 (IPv4) or /64 (IPv6).
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(IpAddr::V4(v4)),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The address an IPv4-mapped IPv6 address stands for, or the address itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Connections counted per address and per network.
#[derive(Debug, Default)]
struct Tally {
    by_id: HashMap<ConnectionId, Option<IpAddr>>,
    by_ip: HashMap<IpAddr, u32>,
    by_network: HashMap<IpAddr, u32>,
}

impl Tally {
    fn len(&self) -> u32 {
        u32::try_from(self.by_id.len()).unwrap_or(u32::MAX)
    }

    fn of_ip(&self, ip: IpAddr) -> u32 {
        self.by_ip.get(&ip).copied().unwrap_or(0)
    }

    fn of_network(&self, ip: IpAddr) -> u32 {
        self.by_network.get(&network_of(ip)).copied().unwrap_or(0)
    }

    /// Counts `id`, against `ip` and its network when it has one.
    fn add(&mut self, id: ConnectionId, ip: Option<IpAddr>) {
        if self.by_id.insert(id, ip).is_some() {
            return;
        }
        if let Some(ip) = ip {
            *self.by_ip.entry(ip).or_default() += 1;
            *self.by_network.entry(network_of(ip)).or_default() += 1;
        }
    }

    fn remove(&mut self, id: ConnectionId) -> bool {
        let Some(ip) = self.by_id.remove(&id) else {
            return false;
        };
        if let Some(ip) = ip {
            for (map, key) in [
                (&mut self.by_ip, ip),
                (&mut self.by_network, network_of(ip)),
            ] {
                if let Some(count) = map.get_mut(&key) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        map.remove(&key);
                    }
                }
            }
        }
        true
    }
}

/// The inbound connections of a node counted by address, and whether one more may come.
#[derive(Debug)]
pub struct AddressBudget {
    limits: AddressLimits,
    max_pending: u32,
    reserved_for_known: u32,
    max_inbound: u32,
    pending: Tally,
    established: Tally,
    /// Addresses of working connections, with when they were last seen.
    known: HashMap<IpAddr, Instant>,
}

impl AddressBudget {
    /// A budget with `limits` for a node keeping at most `max_connections` connections.
    pub fn new(limits: AddressLimits, max_connections: u32) -> Self {
        Self {
            limits,
            max_pending: limits::MAX_PENDING_INCOMING,
            reserved_for_known: limits::PENDING_RESERVED_FOR_KNOWN,
            max_inbound: (max_connections.saturating_mul(limits::INBOUND_EIGHTHS) / 8).max(1),
            pending: Tally::default(),
            established: Tally::default(),
            known: HashMap::new(),
        }
    }

    /// The address `ip` is counted under: `None` when it is exempt from the per-address
    /// limits (loopback, when so configured).
    fn limited(&self, ip: Option<IpAddr>) -> Option<IpAddr> {
        self.limits.counted(canonical(ip?))
    }

    fn is_known(&self, ip: IpAddr, now: Instant) -> bool {
        self.known
            .get(&ip)
            .is_some_and(|seen| now.saturating_duration_since(*seen) < KNOWN_FOR)
    }

    /// A connection from `ip` (`None`: no IP, e.g. relayed) starts its handshakes.
    pub fn pending(
        &mut self,
        id: ConnectionId,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let limited = self.limited(ip);
        if self.pending.len() >= self.max_pending {
            return Err(Refusal::PendingFull);
        }
        if let Some(ip) = limited {
            if self.pending.len() >= self.max_pending.saturating_sub(self.reserved_for_known)
                && !self.is_known(ip, now)
            {
                return Err(Refusal::ReservedForKnown);
            }
            if self.pending.of_ip(ip) >= self.limits.pending_per_ip {
                return Err(Refusal::PendingPerIp);
            }
            if self.pending.of_network(ip) >= self.limits.pending_per_network {
                return Err(Refusal::PendingPerNetwork);
            }
        }
        self.pending.add(id, limited);
        Ok(())
    }

    /// An inbound connection from `ip` finished its handshakes: whether it may stay.
    pub fn established(&mut self, id: ConnectionId, ip: Option<IpAddr>) -> Result<(), Refusal> {
        self.pending.remove(id);
        let limited = self.limited(ip);
        if self.established.len() >= self.max_inbound {
            return Err(Refusal::InboundFull);
        }
        if let Some(ip) = limited {
            if self.established.of_ip(ip) >= self.limits.established_per_ip {
                return Err(Refusal::EstablishedPerIp);
            }
            if self.established.of_network(ip) >= self.limits.established_per_network {
                return Err(Refusal::EstablishedPerNetwork);
            }
        }
        self.established.add(id, limited);
        Ok(())
    }

    /// A connection to or from `ip` works (both sides finished the handshakes and every
    /// part of the node took it): its address counts as known.
    pub fn working(&mut self, ip: Option<IpAddr>, now: Instant) {
        let Some(ip) = ip.map(canonical) else { return };
        if !self.known.contains_key(&ip) && self.known.len() >= KNOWN_CAPACITY {
            self.known
                .retain(|_, seen| now.saturating_duration_since(*seen) < KNOWN_FOR);
            if self.known.len() >= KNOWN_CAPACITY {
                if let Some(oldest) = self.known.iter().min_by_key(|(_, s)| **s).map(|(a, _)| *a) {
                    self.known.remove(&oldest);
                }
            }
        }
        self.known.insert(ip, now);
    }

    /// Connection `id` failed or closed: it no longer counts.
    pub fn gone(&mut self, id: ConnectionId) {
        if !self.pending.remove(id) {
            self.established.remove(id);
        }
    }

    /// How many inbound connections are in the handshakes.
    pub fn pending_count(&self) -> u32 {
        self.pending.len()
    }

    /// How many inbound connections are established.
    pub fn inbound_count(&self) -> u32 {
        self.established.len()
    }
}

/// The behaviour that applies an [`AddressBudget`] to the swarm's inbound connections. It
/// speaks no protocol: its handler is libp2p's dummy.
#[derive(Debug)]
pub struct IpLimits {
    budget: AddressBudget,
}

impl IpLimits {
    /// Limits `limits` for a node keeping at most `max_connections` connections.
    pub fn new(limits: AddressLimits, max_connections: u32) -> Self {
        Self {
            budget: AddressBudget::new(limits, max_connections),
        }
    }

    fn deny(refusal: Refusal, remote: &Multiaddr) -> ConnectionDenied {
        debug!(%remote, "inbound connection refused: {refusal}");
        ConnectionDenied::new(refusal)
    }
}

impl NetworkBehaviour for IpLimits {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.budget
            .pending(connection_id, ip_of(remote), Instant::now())
            .map_err(|r| Self::deny(r, remote))
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.budget
            .established(connection_id, ip_of(remote))
            .map_err(|r| Self::deny(r, remote))?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { endpoint, .. }) => {
                let addr = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                self.budget.working(ip_of(addr), Instant::now());
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.budget.gone(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("an address"))
    }

    fn strict() -> AddressLimits {
        AddressLimits {
            loopback_exempt: false,
            ..AddressLimits::default()
        }
    }

    struct Ids(usize);
    impl Ids {
        fn next(&mut self) -> ConnectionId {
            self.0 += 1;
            ConnectionId::new_unchecked(self.0)
        }
    }

    #[test]
    fn one_address_holds_only_its_share_of_the_handshakes() {
        let now = Instant::now();
        let mut ids = Ids(0);
        let mut budget = AddressBudget::new(strict(), 4096);
        for _ in 0..limits::MAX_PENDING_PER_IP {
            budget
                .pending(ids.next(), ip("198.51.100.7"), now)
                .expect("admitted");
        }
        for _ in 0..300 {
            assert_eq!(
                budget.pending(ids.next(), ip("198.51.100.7"), now),
                Err(Refusal::PendingPerIp)
            );
        }
        assert_eq!(budget.pending_count(), limits::MAX_PENDING_PER_IP);
        // A newcomer elsewhere still gets in.
        budget
            .pending(ids.next(), ip("203.0.113.9"), now)
            .expect("admitted");
    }

    #[test]
    fn one_network_holds_only_its_share_and_ipv6_counts_by_64() {
        let now = Instant::now();
        let mut ids = Ids(0);
        let mut budget = AddressBudget::new(strict(), 4096);
        let mut admitted = 0;
        for host in 1..=200u8 {
            if budget
                .pending(ids.next(), ip(&format!("198.51.100.{host}")), now)
                .is_ok()
            {
                admitted += 1;
            }
        }
        assert_eq!(admitted, limits::MAX_PENDING_PER_NETWORK);
        let mut admitted = 0;
        for host in 1..=200u16 {
            if budget
                .pending(ids.next(), ip(&format!("2001:db8:0:1::{host:x}")), now)
                .is_ok()
            {
                admitted += 1;
            }
        }
        assert_eq!(admitted, limits::MAX_PENDING_PER_NETWORK);
        budget
            .pending(ids.next(), ip("2001:db8:0:2::1"), now)
            .expect("admitted");
        // An IPv4-mapped address counts as the IPv4 one.
        assert_eq!(
            budget.pending(ids.next(), ip("::ffff:198.51.100.250"), now),
            Err(Refusal::PendingPerNetwork)
        );
    }

    #[test]
    fn the_last_handshake_slots_are_kept_for_known_addresses() {
        let now = Instant::now();
        let mut ids = Ids(0);
        let mut budget = AddressBudget::new(strict(), 4096);
        budget.working(ip("192.0.2.1"), now);
        // Strangers from many networks fill the open slots.
        let open = limits::MAX_PENDING_INCOMING - limits::PENDING_RESERVED_FOR_KNOWN;
        let mut net = 0u32;
        while budget.pending_count() < open {
            net += 1;
            let stranger = IpAddr::V4((0x0a00_0000 + (net << 8) + 1).into());
            budget
                .pending(ids.next(), Some(stranger), now)
                .expect("admitted");
        }
        assert_eq!(
            budget.pending(ids.next(), ip("203.0.113.9"), now),
            Err(Refusal::ReservedForKnown)
        );
        budget
            .pending(ids.next(), ip("192.0.2.1"), now)
            .expect("admitted");
        // Once known long ago, an address is a stranger again.
        let later = now + KNOWN_FOR;
        assert_eq!(
            budget.pending(ids.next(), ip("192.0.2.1"), later),
            Err(Refusal::ReservedForKnown)
        );
    }

    #[test]
    fn slots_come_back_when_connections_fail_or_close() {
        let now = Instant::now();
        let mut ids = Ids(0);
        let mut budget = AddressBudget::new(strict(), 4096);
        let held: Vec<_> = (0..limits::MAX_PENDING_PER_IP)
            .map(|_| ids.next())
            .collect();
        for id in &held {
            budget
                .pending(*id, ip("198.51.100.7"), now)
                .expect("admitted");
        }
        budget.gone(held[0]);
        let id = ids.next();
        budget
            .pending(id, ip("198.51.100.7"), now)
            .expect("admitted");
        budget
            .established(id, ip("198.51.100.7"))
            .expect("admitted");
        assert_eq!(budget.inbound_count(), 1);
        budget.gone(id);
        assert_eq!(budget.inbound_count(), 0);
        assert_eq!(budget.pending_count(), limits::MAX_PENDING_PER_IP - 1);
        // Failures of connections never counted change nothing.
        budget.gone(ids.next());
        assert_eq!(budget.pending_count(), limits::MAX_PENDING_PER_IP - 1);
    }

    #[test]
    fn inbound_connections_leave_an_eighth_of_the_budget_to_own_dials() {
        let mut ids = Ids(0);
        let mut budget = AddressBudget::new(AddressLimits::default(), 16);
        let mut admitted = 0;
        for _ in 0..40 {
            let id = ids.next();
            if budget.established(id, ip("127.0.0.1")).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 14);
    }

    #[test]
    fn established_connections_are_bounded_per_address_unless_loopback_is_exempt() {
        let mut ids = Ids(0);
        let mut budget = AddressBudget::new(strict(), 4096);
        let admitted = (0..200)
            .filter(|_| budget.established(ids.next(), ip("127.0.0.1")).is_ok())
            .count();
        assert_eq!(admitted, limits::MAX_ESTABLISHED_PER_IP as usize);
        let mut budget = AddressBudget::new(AddressLimits::default(), 4096);
        let admitted = (0..200)
            .filter(|_| budget.established(ids.next(), ip("127.0.0.1")).is_ok())
            .count();
        assert_eq!(admitted, 200);
    }
}
