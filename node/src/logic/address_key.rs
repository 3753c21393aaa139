//! The unit a budget per network address is kept for: fresh keys cost nothing, an address
//! costs something. IPv4 addresses count one by one, IPv6 ones by /64 (what one host or home
//! is usually given), peers without a direct address share one budget, and a peer on an
//! address exempt from the per-address limits (loopback, by default) has its own.

use std::net::{IpAddr, Ipv6Addr};

use libp2p::PeerId;

/// The unit an address budget is kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressKey {
    /// One IPv4 address.
    V4([u8; 4]),
    /// One IPv6 /64 network.
    V6([u8; 8]),
    /// Every peer whose address is not known (reached only through a relay).
    Unknown,
    /// One peer on an address exempt from the per-address limits: every local process
    /// shares the loopback address, which no remote peer can send from.
    Exempt(PeerId),
}

impl AddressKey {
    /// The budget `ip` counts against.
    pub fn of(ip: Option<IpAddr>) -> Self {
        match ip {
            Some(IpAddr::V4(v4)) => Self::V4(v4.octets()),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => Self::V6(prefix_64(&v6)),
            },
            None => Self::Unknown,
        }
    }

    /// The budget of `peer` coming from `ip`; with `loopback_exempt`, a peer on loopback
    /// has a budget of its own.
    pub fn of_peer(peer: PeerId, ip: Option<IpAddr>, loopback_exempt: bool) -> Self {
        match ip {
            Some(ip) if loopback_exempt && ip.is_loopback() => Self::Exempt(peer),
            ip => Self::of(ip),
        }
    }
}

fn prefix_64(v6: &Ipv6Addr) -> [u8; 8] {
    let octets = v6.octets();
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&octets[..8]);
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("an address");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("an address");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("an address");
        assert_eq!(AddressKey::of(Some(a)), AddressKey::of(Some(b)));
        assert_ne!(AddressKey::of(Some(a)), AddressKey::of(Some(c)));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("an address");
        let v4: IpAddr = "192.0.2.7".parse().expect("an address");
        assert_eq!(AddressKey::of(Some(mapped)), AddressKey::of(Some(v4)));
        assert_eq!(AddressKey::of(None), AddressKey::Unknown);
    }

    #[test]
    fn loopback_peers_have_a_budget_each_while_loopback_is_exempt() {
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let loopback: IpAddr = "127.0.0.1".parse().expect("an address");
        let remote: IpAddr = "192.0.2.1".parse().expect("an address");
        let exempt = true;
        assert_ne!(
            AddressKey::of_peer(alice, Some(loopback), exempt),
            AddressKey::of_peer(bob, Some(loopback), exempt)
        );
        assert_eq!(
            AddressKey::of_peer(alice, Some(remote), exempt),
            AddressKey::of_peer(bob, Some(remote), exempt)
        );
        let counted = false;
        assert_eq!(
            AddressKey::of_peer(alice, Some(loopback), counted),
            AddressKey::of_peer(bob, Some(loopback), counted)
        );
    }
}
