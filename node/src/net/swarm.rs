//! Builds the swarm: TCP and QUIC transports, Noise, Yamux, DNS, relay client; inbound TCP
//! handshakes are bounded in time.

use std::time::Duration;

use libp2p::{
    core::{
        muxing::StreamMuxerBox,
        transport::{timeout::TransportTimeout, Boxed},
        upgrade::Version,
    },
    identity::Keypair,
    metrics::Registry,
    noise, tcp, yamux, PeerId, Swarm, Transport,
};

use crate::{config::Config, net::behaviour::Behaviour};

/// Yamux with at most [`ipm_protocol::limits::MAX_STREAMS_PER_CONNECTION`] streams per
/// connection.
fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(ipm_protocol::limits::MAX_STREAMS_PER_CONNECTION);
    config
}

/// How long an inbound TCP connection may take to finish its Noise and Yamux handshakes:
/// a socket that connects and stays silent holds a handshake slot no longer. The node's own
/// dials keep libp2p's ten seconds.
const INBOUND_HANDSHAKE: Duration =
    Duration::from_millis(ipm_protocol::limits::INBOUND_HANDSHAKE_MS);

/// TCP with Noise and Yamux, inbound handshakes bounded by [`INBOUND_HANDSHAKE`].
fn tcp_transport(
    key: &Keypair,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    let upgraded = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux_config())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    Ok(TransportTimeout::with_ingoing_timeout(upgraded, INBOUND_HANDSHAKE).boxed())
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the network: {0}")]
pub struct SwarmError(String);

/// A swarm for `key` running every transport ipm speaks; gossipsub's own metrics go to
/// `registry`.
pub fn build(
    key: Keypair,
    config: &Config,
    registry: &mut Registry,
) -> Result<Swarm<Behaviour>, SwarmError> {
    let err = |e: &dyn std::fmt::Display| SwarmError(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_quic()
        .with_other_transport(tcp_transport)
        .map_err(|e| err(&e))?
        .with_dns()
        .map_err(|e| err(&e))?
        .with_relay_client(noise::Config::new, yamux_config)
        .map_err(|e| err(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, relay_client, config, registry)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}
