//! ipm node library: the libp2p overlay behind the `ipm` prompt, daemon and ctl client.
//!
//! [`start`] builds a node from a key and a [`Config`] and returns a [`Client`] handle plus the
//! [`EventLoop`] to spawn. Frontends only ever talk to the `Client`.

pub mod backoff;
pub mod behaviour;
pub mod client;
pub mod codec;
pub mod commands;
pub mod config;
pub mod contacts;
pub mod ctl;
pub mod data_dir;
pub mod download;
pub mod emoji;
pub mod event;
pub mod event_loop;
pub mod geo_group;
pub mod history;
pub mod identity;
pub mod journal;
pub mod logging;
pub mod login;
pub mod mailbox;
pub mod metrics;
pub mod names;
pub mod outbox;
pub mod peers;
pub mod people;
pub mod presence;
pub mod program;
pub mod progress;
pub mod prompt;
pub mod rate_limit;
pub mod registry;
pub mod render;
pub mod scoring;
pub mod sealed;
pub mod session;
pub mod settings;
pub mod swarm;
pub mod transfers;

pub use client::{Client, NodeError};
pub use config::{Config, Role};
pub use event::Event;
pub use event_loop::EventLoop;
pub use logging::shutdown_signal;

use libp2p::identity::Keypair;
use tokio::sync::{broadcast, mpsc};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The swarm could not be built.
    #[error(transparent)]
    Swarm(#[from] swarm::SwarmError),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A file of the data dir could not be opened.
    #[error("cannot open {path}: {source}")]
    DataDir {
        /// The file or folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The contacts file could not be read.
    #[error("cannot read contacts: {0}")]
    Contacts(std::io::Error),
}

/// How many events a slow frontend may fall behind before it misses some.
const EVENT_BUFFER: usize = 4096;

/// Builds a node; spawn the returned loop with `tokio::spawn(event_loop.run())`.
pub fn start(key: Keypair, config: Config) -> Result<(Client, EventLoop), StartError> {
    let peer = key.public().to_peer_id();
    let state = event_loop::State::open(config.data_dir.as_ref(), config.role)?;
    let contacts = match &config.data_dir {
        Some(dir) => contacts::ContactBook::load(&dir.contacts()).map_err(StartError::Contacts)?,
        None => contacts::ContactBook::default(),
    };
    // Names not found are looked up again after a second (or a presence interval, if
    // shorter), then less and less often.
    let recheck = config
        .presence_interval
        .min(std::time::Duration::from_secs(1));
    let directory = peers::Directory::new(names::NameBook::new(recheck), contacts);
    let mut swarm = swarm::build(key.clone(), &config)?;
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| StartError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
    }
    let (request_tx, request_rx) = mpsc::channel(256);
    let (event_tx, _) = broadcast::channel(EVENT_BUFFER);
    let metrics = metrics::Metrics::new();
    let client = Client::new(request_tx, event_tx.clone(), peer, metrics.registry());
    let event_loop = EventLoop::new(event_loop::Parts {
        swarm,
        key,
        requests: request_rx,
        events: event_tx,
        config,
        state,
        directory,
        metrics,
    });
    Ok((client, event_loop))
}
