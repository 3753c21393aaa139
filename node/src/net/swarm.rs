//! Builds the swarm: TCP and QUIC transports, Noise, Yamux, DNS, relay client.

use libp2p::{identity::Keypair, noise, tcp, yamux, Swarm};

use crate::{config::Config, net::behaviour::Behaviour};

/// Yamux with at most [`ipm_protocol::limits::MAX_STREAMS_PER_CONNECTION`] streams per
/// connection.
fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(ipm_protocol::limits::MAX_STREAMS_PER_CONNECTION);
    config
}

/// Why the swarm could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the network: {0}")]
pub struct SwarmError(String);

/// A swarm for `key` running every transport ipm speaks.
pub fn build(key: Keypair, config: &Config) -> Result<Swarm<Behaviour>, SwarmError> {
    let err = |e: &dyn std::fmt::Display| SwarmError(e.to_string());
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux_config,
        )
        .map_err(|e| err(&e))?
        .with_quic()
        .with_dns()
        .map_err(|e| err(&e))?
        .with_relay_client(noise::Config::new, yamux_config)
        .map_err(|e| err(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, relay_client, config)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .build();
    Ok(swarm)
}
