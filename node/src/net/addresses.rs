//! Addresses: whether one goes through a relay or a loopback interface, the peer id it ends
//! with, the address a connection is shown under, and why a dial failed, in one line.

use std::net::IpAddr;

use libp2p::{core::ConnectedPoint, multiaddr::Protocol, swarm::DialError, Multiaddr, PeerId};

/// One short line saying why a dial failed: the innermost cause of each attempt.
pub fn dial_reason(error: &DialError) -> String {
    let mut reasons: Vec<String> = match error {
        DialError::Transport(attempts) => attempts
            .iter()
            .map(|(_, e)| innermost(e).to_string())
            .collect(),
        other => vec![innermost(other).to_string()],
    };
    reasons.dedup();
    reasons
        .join("; ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn innermost<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> &'a (dyn std::error::Error + 'static) {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current
}

/// Whether an address goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether a listen address a peer announced is worth dialling from this node, which the
/// peer sees at `seen_as`. A loopback address means something only on the peer's own host,
/// to a node it sees at a loopback address: anywhere else dialling it reaches a process of
/// this host (often this very node), and that wrong peer fails the whole dial.
pub fn worth_dialling(addr: &Multiaddr, seen_as: &Multiaddr) -> bool {
    !is_loopback(addr) || is_loopback(seen_as)
}

/// The peer id at the end of an address, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The address a connection is shown under; an inbound relayed connection is shown under
/// the relay circuit it came through.
pub fn remote_addr(endpoint: &ConnectedPoint) -> Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address.clone(),
        ConnectedPoint::Listener { local_addr, .. } if is_relayed(local_addr) => local_addr.clone(),
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
    }
}

/// The IP address a direct connection's address names; `None` for a relayed one (its
/// address names the relay, not the peer) or one without an IP.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    if is_relayed(addr) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// Whether an address is on a loopback interface.
pub fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}
