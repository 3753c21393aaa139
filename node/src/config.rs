//! Network settings of one node, independent of where they came from (flags, env, tests).

use std::time::Duration;

use ipm_protocol::Position;
use libp2p::Multiaddr;

use crate::logic::service_budgets::ServiceLimits;
use crate::store::data_dir::DataDir;

/// What a node is for: a user's node, or the optional bootstrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A user's node.
    Node,
    /// The bootstrap: relay server, always-on lobby participant.
    Bootstrap,
}

/// Everything the network layer needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// Display name announced with every message.
    pub name: String,
    /// Where history, the outbox, transfers, downloads, settings and contacts are kept (a
    /// bootstrap keeps its mailbox there); `None` keeps everything in memory and refuses
    /// file transfers (tests, benchmarks).
    pub data_dir: Option<DataDir>,
    /// Accept every offered file without asking.
    pub auto_accept: bool,
    /// How long `/msg` waits for the recipient's ack before reporting "queued".
    pub direct_wait: Duration,
    /// Longest pause between two delivery attempts to an unreachable peer.
    pub max_retry: Duration,
    /// Whether the node asks its bootstraps for a relay reservation, so that peers which
    /// cannot reach it directly still can through the bootstrap.
    pub use_relay: bool,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Bootstrap nodes dialled at start and used to join the DHT.
    pub bootstrap: Vec<Multiaddr>,
    /// Whether LAN discovery runs.
    pub mdns: bool,
    /// Whether private messages ask for read receipts and typing notices, and the node
    /// sends them to peers that ask (`--no-receipts` turns both off).
    pub receipts: bool,
    /// User node or bootstrap.
    pub role: Role,
    /// Gossipsub heartbeat: short in tests, one second in real use.
    pub heartbeat: Duration,
    /// The gossipsub mesh of each room: how many peers each line is forwarded to, and
    /// whether the node's own lines go to every subscribed peer.
    pub gossip: GossipSettings,
    /// The low watermark: below this many connected peers the node walks the DHT and dials
    /// what it finds (0: never, as on a bootstrap).
    pub target_peers: usize,
    /// The high watermark: the most peers the node stays connected to. At it, a newcomer
    /// takes the place of the least useful peer (in no gossipsub mesh, not a bootstrap, not
    /// dialled by the user, nothing in flight, past `peer_grace`) or is refused; bootstraps,
    /// peers the user dials and peers with a request in flight are always let in, and the
    /// surplus they make is trimmed once possible (see `logic::connection_budget`).
    pub max_peers: usize,
    /// How many peers above `max_peers` are let in while their grace lasts, so that a
    /// connection a DHT lookup or a newcomer opened is not refused after its handshake; the
    /// node trims back to `max_peers` once they are past their grace. `max_peers` plus this
    /// is the most peers a node connects to, but for protected ones.
    pub peer_burst: usize,
    /// How long a connection is left alone after it opened or was last used before it may
    /// be closed to make room: long enough for gossipsub to graft it into a mesh, and for a
    /// conversation to go on without redialling.
    pub peer_grace: Duration,
    /// Hard cap on established connections.
    pub max_connections: u32,
    /// How often the node walks the DHT to discover more peers, at most (only while it has
    /// fewer than `target_peers`).
    pub discovery_interval: Duration,
    /// How long an unused connection stays open.
    pub idle_timeout: Duration,
    /// The own position, for location groups and distances.
    pub position: Option<Position>,
    /// The own interests (normalised tags), joined by `/join-interest`.
    pub interests: Vec<String>,
    /// How often the node announces its presence (name, rooms, coarse location, away text).
    pub presence_interval: Duration,
    /// How long a peer may stay silent before it counts as offline.
    pub presence_timeout: Duration,
    /// How many inbound connections one address or network may hold.
    pub address_limits: AddressLimits,
    /// A bootstrap's budgets for its mailbox and registry (per address, per recipient, in
    /// all).
    pub service_limits: ServiceLimits,
    /// Whether files move over one stream per download (`/ipm/file/2`), in both
    /// directions. Off, the node speaks only the chunk requests of `/ipm/file/1`, as the
    /// previous release did (to test that both still understand each other).
    pub file_streams: bool,
}

/// The gossipsub mesh of every room (see `net::behaviour`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GossipSettings {
    /// Below this many mesh peers in a room the node grafts more (`mesh_n_low`).
    pub mesh_low: usize,
    /// The mesh size a heartbeat grafts or prunes towards (`mesh_n`).
    pub mesh: usize,
    /// Above this many mesh peers the node prunes back to `mesh` (`mesh_n_high`).
    pub mesh_high: usize,
    /// Whether the node's own lines go to every subscribed peer it is connected to rather
    /// than to its mesh only (`flood_publish`).
    pub flood_publish: bool,
    /// Messages of at least this many bytes make the node tell its mesh peers it has them
    /// (IDONTWANT), so that they do not send it another copy (`idontwant_message_size_threshold`).
    pub idontwant_min_bytes: usize,
}

impl Default for GossipSettings {
    /// A mesh of 4 (3 to 6): over links of tens of milliseconds a line crosses most mesh
    /// links both ways before either end hears of the other's copy, so a node receives about
    /// its mesh size less two copies of each line (docs/performance.md, "Scale"); 4 keeps that near 2.
    /// IDONTWANT only from 1000 bytes on, gossipsub's own default: the notice reaches a mesh
    /// peer no sooner than a copy would, so for short lines it saved no copies and cost a
    /// frame to every mesh peer.
    fn default() -> Self {
        Self {
            mesh_low: 3,
            mesh: 4,
            mesh_high: 6,
            flood_publish: true,
            idontwant_min_bytes: 1000,
        }
    }
}

/// How many inbound connections one IP address and one network (IPv4 /24, IPv6 /64) may
/// hold, in the handshakes and established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressLimits {
    /// Connections from this host (loopback) are counted only in the totals: every
    /// process on the machine shares one address, and no remote peer can send from it.
    pub loopback_exempt: bool,
    /// Most connections of one address in the handshakes.
    pub pending_per_ip: u32,
    /// Most connections of one network in the handshakes.
    pub pending_per_network: u32,
    /// Most established connections of one address.
    pub established_per_ip: u32,
    /// Most established connections of one network.
    pub established_per_network: u32,
}

impl AddressLimits {
    /// The address `ip` counts under for the per-address limits and budgets; `None` when it
    /// is exempt (loopback, when so configured).
    pub fn counted(&self, ip: std::net::IpAddr) -> Option<std::net::IpAddr> {
        (!(self.loopback_exempt && ip.is_loopback())).then_some(ip)
    }
}

impl Default for AddressLimits {
    fn default() -> Self {
        use ipm_protocol::limits;
        Self {
            loopback_exempt: true,
            pending_per_ip: limits::MAX_PENDING_PER_IP,
            pending_per_network: limits::MAX_PENDING_PER_NETWORK,
            established_per_ip: limits::MAX_ESTABLISHED_PER_IP,
            established_per_network: limits::MAX_ESTABLISHED_PER_NETWORK,
        }
    }
}

impl Config {
    /// Settings for a user's node with the given name.
    pub fn node(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            data_dir: None,
            auto_accept: false,
            direct_wait: Duration::from_secs(5),
            max_retry: Duration::from_secs(60),
            use_relay: true,
            listen: default_listen(0),
            bootstrap: Vec::new(),
            mdns: true,
            receipts: true,
            role: Role::Node,
            heartbeat: Duration::from_secs(1),
            gossip: GossipSettings::default(),
            // Gossipsub keeps meshes of 4 (3..6) in each of the lobby and presence, so 12
            // peers let both meshes at their most form from different peers.
            target_peers: 12,
            // The lobby's and presence's meshes at their most from different peers (12), 6
            // more peers to gossip to (`gossip_lazy`), the bootstrap, and 5 for lookups and
            // newcomers.
            max_peers: 24,
            // A join's DHT lookups reach 20 peers at a time (Kademlia's k); a third of them
            // fit above the high mark, the rest reuse connections already open.
            peer_burst: 8,
            peer_grace: Duration::from_secs(20),
            max_connections: 256,
            discovery_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            position: None,
            interests: Vec::new(),
            presence_interval: Duration::from_secs(10),
            presence_timeout: Duration::from_secs(30),
            address_limits: AddressLimits::default(),
            service_limits: ServiceLimits::default(),
            file_streams: true,
        }
    }

    /// Settings for a bootstrap node.
    pub fn bootstrap() -> Self {
        Self {
            role: Role::Bootstrap,
            mdns: false,
            receipts: true,
            use_relay: false,
            target_peers: 0,
            // Every user connects to the bootstrap: as many peers as connections fit,
            // leaving 96 of them for peers holding a second one (TCP and QUIC).
            max_peers: 4000,
            peer_burst: 0,
            max_connections: 4096,
            ..Self::node("bootstrap")
        }
    }

    /// Settings for fast in-process tests: loopback TCP, short heartbeat, no mDNS.
    pub fn for_tests(name: impl Into<String>) -> Self {
        Self {
            listen: vec![loopback_tcp()],
            mdns: false,
            receipts: true,
            heartbeat: Duration::from_millis(100),
            discovery_interval: Duration::from_secs(2),
            direct_wait: Duration::from_secs(2),
            max_retry: Duration::from_secs(2),
            presence_interval: Duration::from_millis(200),
            presence_timeout: Duration::from_secs(3),
            ..Self::node(name)
        }
    }
}

/// TCP and QUIC on every interface at `port` (0 = any free port).
pub fn default_listen(port: u16) -> Vec<Multiaddr> {
    let tcp = format!("/ip4/0.0.0.0/tcp/{port}");
    let quic = format!("/ip4/0.0.0.0/udp/{port}/quic-v1");
    [tcp, quic].iter().filter_map(|s| s.parse().ok()).collect()
}

/// TCP on 127.0.0.1 at a free port.
pub fn loopback_tcp() -> Multiaddr {
    Multiaddr::from(std::net::Ipv4Addr::LOCALHOST).with(libp2p::multiaddr::Protocol::Tcp(0))
}
