//! ipm node library: the libp2p overlay behind the `ipm` prompt, daemon and ctl client.
//!
//! [`start`] builds a node from a key and a [`Config`] and returns a [`Client`] handle plus the
//! [`EventLoop`] to spawn. Frontends only ever talk to the `Client`.
//!
//! # Layout
//!
//! - [`client`]: the cloneable handle frontends drive a node with, its requests and answers.
//! - [`event`]: what a node reports to its frontends, and its JSON form.
//! - [`config`]: a node's settings, wherever they came from.
//! - [`event_loop`]: owns the swarm; turns swarm events and `Client` requests into inputs of
//!   the machines in `logic` and carries out what they decide. Nothing else does I/O for it.
//! - [`logic`]: the decisions, without I/O: private-message delivery, mail pickup, the
//!   registry client, file offers, gossip intake, presence, the peer policy, names, the
//!   location group, rate limits and retry pauses. Time and random draws are arguments.
//! - [`net`]: libp2p: the composed behaviour, the peer manager, the swarm, the wire codec,
//!   scoring, metrics, addresses and the download tasks.
//! - [`store`]: what a node keeps in its data dir: history, outbox, transfers, contacts,
//!   settings, the identity key, append-only journals.
//! - [`services`]: what only a bootstrap serves: mailbox, name registry, directory, room
//!   forwarding; built once, when the node is a bootstrap.
//! - [`ui`]: the command grammar and executor shared by the prompt, piped stdin and
//!   `ipm ctl`, and how events are rendered.
//! - [`web`]: the local web UI (`--web`): the embedded page, its token, Host and Origin
//!   checks, and the socket carrying events out and commands in; a frontend like `ui`.
//! - [`program`], [`logging`]: what both binaries share around their work.

pub mod client;
pub mod config;
pub mod event;
pub mod event_loop;
pub mod logging;
pub mod logic;
pub mod net;
pub mod program;
pub mod services;
pub mod store;
pub mod ui;
pub mod web;

pub use client::{Client, NodeError};
pub use config::{Config, GossipSettings, Role};
pub use event::Event;
pub use event_loop::EventLoop;
pub use logging::shutdown_signal;

use std::sync::PoisonError;

use libp2p::identity::Keypair;
use tokio::sync::{broadcast, mpsc};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The swarm could not be built.
    #[error(transparent)]
    Swarm(#[from] net::swarm::SwarmError),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: libp2p::Multiaddr,
        /// Why.
        #[source]
        source: libp2p::TransportError<std::io::Error>,
    },
    /// A file of the data dir could not be opened.
    #[error(transparent)]
    DataDir(#[from] store::OpenError),
    /// The contacts file could not be read.
    #[error("cannot read contacts: {0}")]
    Contacts(#[source] std::io::Error),
}

/// How many events a slow frontend may fall behind before it misses some.
const EVENT_BUFFER: usize = 4096;

/// Builds a node; spawn the returned loop with `tokio::spawn(event_loop.run())`.
pub fn start(key: Keypair, config: Config) -> Result<(Client, EventLoop), StartError> {
    let peer = key.public().to_peer_id();
    let (store, services) = match (&config.data_dir, config.role) {
        (None, Role::Node) => (store::NodeStore::in_memory(), None),
        (None, Role::Bootstrap) => (
            store::NodeStore::in_memory(),
            Some(services::BootstrapServices::in_memory(
                config.service_limits,
            )),
        ),
        (Some(dir), Role::Node) => (store::NodeStore::open(dir)?, None),
        (Some(dir), Role::Bootstrap) => (
            store::NodeStore::in_memory(),
            Some(services::BootstrapServices::open(
                dir,
                ipm_protocol::now_ms(),
                config.service_limits,
            )?),
        ),
    };
    let contacts = match &config.data_dir {
        Some(dir) => {
            store::contacts::ContactBook::load(&dir.contacts()).map_err(StartError::Contacts)?
        }
        None => store::contacts::ContactBook::default(),
    };
    // Names not found are looked up again after a second (or a presence interval, if
    // shorter), then less and less often.
    let recheck = config
        .presence_interval
        .min(std::time::Duration::from_secs(1));
    let mut directory =
        logic::directory::Directory::new(logic::names::NameBook::new(recheck), contacts);
    if let Some(dir) = &config.data_dir {
        // A cache: a damaged file costs names shown a little later, not the start.
        match store::heard_names::HeardNames::load(&dir.heard_names()) {
            Ok(book) => directory.remember(&book, std::time::Instant::now()),
            Err(e) => tracing::warn!("names heard before are forgotten: {e}"),
        }
    }
    let metrics = net::metrics::Metrics::new();
    let mut swarm = {
        let registry = metrics.registry();
        let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
        net::swarm::build(key.clone(), &config, &mut registry)?
    };
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|source| StartError::Listen {
                addr: addr.clone(),
                source,
            })?;
    }
    let (request_tx, request_rx) = mpsc::channel(256);
    let (event_tx, _) = broadcast::channel(EVENT_BUFFER);
    let client = Client::new(request_tx, event_tx.clone(), peer, metrics.registry());
    client.remember_current(&event_loop::remembered(&config).current);
    let event_loop = EventLoop::new(event_loop::Parts {
        swarm,
        key,
        requests: request_rx,
        events: event_tx,
        config,
        store,
        services,
        directory,
        metrics,
    });
    Ok((client, event_loop))
}
