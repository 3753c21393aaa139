//! The composed libp2p behaviour every ipm node (and the bootstrap) runs.

use std::time::Duration;

use ipm_protocol::limits;
use libp2p::{
    autonat,
    connection_limits::{self, ConnectionLimits},
    dcutr, gossipsub, identify,
    identity::Keypair,
    kad, mdns, memory_connection_limits,
    metrics::Registry,
    ping, relay,
    request_response::{self, ProtocolSupport},
    StreamProtocol,
};

use crate::{
    config::{Config, Role},
    logic::{connection_budget::Watermarks, dht_upkeep, peer_policy::PeerSettings},
    net::scoring,
    net::{addresses::peer_of, ip_limits::IpLimits, peer_manager::PeerManager},
};

use crate::net::codec::CborCodec;

pub use composed::{Behaviour, BehaviourEvent};

/// Kademlia protocol name of the ipm overlay (never the IPFS DHT's).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipm/kad/1");
/// Private messages.
pub const DIRECT_PROTOCOL: StreamProtocol =
    StreamProtocol::new(ipm_protocol::direct::DIRECT_PROTOCOL);
/// File offers and chunks.
pub const FILE_PROTOCOL: StreamProtocol = StreamProtocol::new(ipm_protocol::file::FILE_PROTOCOL);
/// Mailboxes of bootstraps.
pub const MAILBOX_PROTOCOL: StreamProtocol =
    StreamProtocol::new(ipm_protocol::mailbox::MAILBOX_PROTOCOL);
/// Name registries of bootstraps.
pub const REGISTRY_PROTOCOL: StreamProtocol =
    StreamProtocol::new(ipm_protocol::registry::REGISTRY_PROTOCOL);
/// Room catch-up, answered by bootstraps and by room members.
pub const HISTORY_PROTOCOL: StreamProtocol =
    StreamProtocol::new(ipm_protocol::catch_up::HISTORY_PROTOCOL);
/// Identify protocol version string shared by every ipm node.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/ipm/1";

/// Agent string announced over identify: `ipm/<version>`.
pub fn agent_version() -> String {
    format!("ipm/{}", env!("CARGO_PKG_VERSION"))
}

/// The derive macro writes `BehaviourEvent` here, one variant per field documented below.
#[allow(missing_docs)]
mod composed {
    use ipm_protocol::{
        DirectRequest, DirectResponse, FileRequest, FileResponse, HistoryRequest, HistoryResponse,
        MailboxRequest, MailboxResponse, RegistryRequest, RegistryResponse,
    };
    use libp2p::{
        autonat, connection_limits, dcutr, gossipsub, identify, kad, mdns,
        memory_connection_limits, ping, relay, request_response,
        swarm::{behaviour::toggle::Toggle, NetworkBehaviour},
    };

    use crate::{net::codec::CborCodec, net::scoring::SubscriptionFilter};

    /// Every protocol an ipm node speaks, driven by one swarm.
    #[derive(NetworkBehaviour)]
    pub struct Behaviour {
        /// Refuses connections beyond the configured counts.
        pub limits: connection_limits::Behaviour,
        /// Refuses inbound connections beyond what one address or network may hold.
        pub ip_limits: crate::net::ip_limits::IpLimits,
        /// Refuses new connections when the process uses too much memory.
        pub memory: memory_connection_limits::Behaviour,
        /// Dials, keeps and drops peers: the connection budget, redials, the graylist.
        pub peer_manager: crate::net::peer_manager::PeerManager,
        /// Exchanges addresses, agent and supported protocols with every peer.
        pub identify: identify::Behaviour,
        /// Keeps connections alive and measures round trips.
        pub ping: ping::Behaviour,
        /// Peer routing over the ipm DHT.
        pub kad: kad::Behaviour<kad::store::MemoryStore>,
        /// Rooms: lobby, location and interest groups.
        pub gossipsub: gossipsub::Behaviour<gossipsub::IdentityTransform, SubscriptionFilter>,
        /// LAN discovery, off with `--no-mdns`.
        pub mdns: Toggle<mdns::tokio::Behaviour>,
        /// Reaches peers behind NAT through a relay.
        pub relay_client: relay::client::Behaviour,
        /// Serves relay circuits (bootstrap only).
        pub relay_server: Toggle<relay::Behaviour>,
        /// Upgrades relayed connections to direct ones by hole punching.
        pub dcutr: dcutr::Behaviour,
        /// Learns whether this node is reachable from outside, and answers others' probes.
        pub autonat: autonat::Behaviour,
        /// Private messages, `/ipm/direct/1`.
        pub direct: request_response::Behaviour<CborCodec<DirectRequest, DirectResponse>>,
        /// File offers and chunks, `/ipm/file/1`.
        pub file: request_response::Behaviour<CborCodec<FileRequest, FileResponse>>,
        /// Raw streams: one per file download, `/ipm/file/2` (see `net::file_stream`).
        pub stream: libp2p_stream::Behaviour,
        /// Sealed messages for offline users, `/ipm/mailbox/1` (served by bootstraps).
        pub mailbox: request_response::Behaviour<CborCodec<MailboxRequest, MailboxResponse>>,
        /// Name registration, lookups and the online directory, `/ipm/registry/1` (served by
        /// bootstraps).
        pub registry: request_response::Behaviour<CborCodec<RegistryRequest, RegistryResponse>>,
        /// Room catch-up, `/ipm/history/1` (answered by bootstraps and room members).
        pub history: request_response::Behaviour<CborCodec<HistoryRequest, HistoryResponse>>,
    }
}

/// Relay limits of a bootstrap. libp2p's defaults (2 minutes, 128 KiB per circuit) suit
/// hole-punching only; a bootstrap also carries whole conversations and files between peers
/// that can never reach each other directly.
fn relay_server_config() -> relay::Config {
    relay::Config {
        max_reservations: 4096,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(60 * 60),
        max_circuits: 1024,
        max_circuits_per_peer: 32,
        max_circuit_duration: Duration::from_secs(60 * 60),
        max_circuit_bytes: 8 << 30,
        ..relay::Config::default()
    }
}

/// What the peer manager is given: the bootstraps, and the watermarks of a node of this
/// role (a bootstrap looks for no peers of its own).
fn peer_settings(config: &Config) -> PeerSettings {
    let low = match config.role {
        Role::Node => config.target_peers,
        Role::Bootstrap => 0,
    };
    PeerSettings {
        bootstraps: config
            .bootstrap
            .iter()
            .filter_map(|addr| peer_of(addr).map(|peer| (peer, addr.clone())))
            .collect(),
        marks: Watermarks {
            low,
            high: config.max_peers.max(low),
            burst: config.peer_burst,
            grace: config.peer_grace,
            walk_every: config.discovery_interval,
        },
    }
}

/// Why the behaviour could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BehaviourError {
    /// The gossipsub configuration was refused.
    #[error("gossipsub: {0}")]
    Gossipsub(String),
    /// mDNS could not open its socket.
    #[error("mdns: {0}")]
    Mdns(#[from] std::io::Error),
}

impl Behaviour {
    /// Builds the behaviour for `key` with the settings of `config`.
    ///
    /// Gossipsub's metrics (copies received, mesh sizes, IDONTWANT) go to `registry`,
    /// prefixed `gossipsub`.
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        config: &Config,
        registry: &mut Registry,
    ) -> Result<Self, BehaviourError> {
        let peer_id = key.public().to_peer_id();

        let gossipsub_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(config.heartbeat)
            .mesh_n_low(config.gossip.mesh_low)
            .mesh_n(config.gossip.mesh)
            .mesh_n_high(config.gossip.mesh_high)
            .flood_publish(config.gossip.flood_publish)
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(limits::MAX_GOSSIP_LEN + 1024)
            .max_ihave_messages_heartbeat(limits::MAX_IHAVE_MESSAGES)
            .duplicate_cache_time(Duration::from_secs(120))
            .idontwant_message_size_threshold(config.gossip.idontwant_min_bytes)
            .build()
            .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?;
        let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub_config,
            scoring::subscription_filter(),
        )
        .map_err(|e| BehaviourError::Gossipsub(e.to_string()))?
        .with_metrics(
            registry.sub_registry_with_prefix("gossipsub"),
            gossipsub::MetricsConfig::default(),
        );
        gossipsub
            .with_peer_score(scoring::peer_score_params(), scoring::thresholds())
            .map_err(BehaviourError::Gossipsub)?;

        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config.set_query_timeout(Duration::from_secs(30));
        // Only valid name records are stored, and the first claim of a name wins: the event
        // loop checks every inbound record before putting it in the store.
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        // Every periodic bootstrap refreshes all buckets; the ones libp2p-kad starts while the
        // routing table is small are cut after their own-key lookup (`logic::dht_upkeep`).
        kad_config.set_periodic_bootstrap_interval(Some(dht_upkeep::REFRESH_EVERY));
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        // Every ipm node answers DHT queries so that peers can find each other
        // without a bootstrap being online; unreachable entries age out.
        kad.set_mode(Some(kad::Mode::Server));

        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL_VERSION.to_owned(), key.public())
                .with_agent_version(agent_version())
                .with_push_listen_addr_updates(true)
                // Addresses of peers come from Kademlia, which keeps only the usable ones
                // (see `EventLoop::on_identify`); identify's own cache would dial them all.
                .with_cache_size(0),
        );

        let mdns = if config.mdns {
            Some(mdns::tokio::Behaviour::new(
                mdns::Config::default(),
                peer_id,
            )?)
        } else {
            None
        };

        let relay_server = match config.role {
            Role::Bootstrap => {
                let mut relay = relay::Behaviour::new(peer_id, relay_server_config());
                // Serve circuits from the start: a bootstrap is deployed to be reachable.
                relay.set_status(Some(relay::Status::Enable));
                Some(relay)
            }
            Role::Node => None,
        };

        let connection_limits = ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(limits::MAX_CONNECTIONS_PER_PEER));

        Ok(Self {
            limits: connection_limits::Behaviour::new(connection_limits),
            ip_limits: IpLimits::new(config.address_limits.clone(), config.max_connections),
            memory: memory_connection_limits::Behaviour::with_max_percentage(
                limits::MAX_MEMORY_FRACTION,
            ),
            peer_manager: PeerManager::new(peer_id, peer_settings(config)),
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            kad,
            gossipsub,
            mdns: mdns.into(),
            relay_client,
            relay_server: relay_server.into(),
            dcutr: dcutr::Behaviour::new(peer_id),
            autonat: autonat::Behaviour::new(peer_id, autonat::Config::default()),
            direct: request_response::Behaviour::with_codec(
                CborCodec::new(
                    limits::MAX_DIRECT_REQUEST_LEN,
                    limits::MAX_DIRECT_RESPONSE_LEN,
                ),
                [(DIRECT_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(10))
                    .with_max_concurrent_streams(limits::MAX_DIRECT_STREAMS),
            ),
            file: request_response::Behaviour::with_codec(
                CborCodec::new(limits::MAX_FILE_REQUEST_LEN, limits::MAX_FILE_RESPONSE_LEN),
                [(FILE_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(limits::MAX_FILE_STREAMS),
            ),
            stream: libp2p_stream::Behaviour::new(),
            mailbox: request_response::Behaviour::with_codec(
                CborCodec::new(
                    limits::MAX_MAILBOX_REQUEST_LEN,
                    limits::MAX_MAILBOX_RESPONSE_LEN,
                ),
                [(
                    MAILBOX_PROTOCOL,
                    match config.role {
                        Role::Bootstrap => ProtocolSupport::Full,
                        Role::Node => ProtocolSupport::Outbound,
                    },
                )],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(30))
                    .with_max_concurrent_streams(limits::MAX_MAILBOX_STREAMS),
            ),
            registry: request_response::Behaviour::with_codec(
                CborCodec::new(
                    limits::MAX_REGISTRY_REQUEST_LEN,
                    limits::MAX_REGISTRY_RESPONSE_LEN,
                ),
                [(
                    REGISTRY_PROTOCOL,
                    match config.role {
                        Role::Bootstrap => ProtocolSupport::Full,
                        Role::Node => ProtocolSupport::Outbound,
                    },
                )],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            ),
            history: request_response::Behaviour::with_codec(
                CborCodec::new(
                    limits::MAX_HISTORY_REQUEST_LEN,
                    limits::MAX_HISTORY_RESPONSE_LEN,
                ),
                [(HISTORY_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(30))
                    .with_max_concurrent_streams(limits::MAX_HISTORY_STREAMS),
            ),
        })
    }
}
