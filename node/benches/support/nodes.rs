//! In-process nodes on loopback, each with a log of what it reported and when.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ipm_node::{store::data_dir::DataDir, Client, Config, Event};
use ipm_protocol::MessageId;
use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId};
use tokio::{sync::broadcast, task::JoinHandle};

/// Longest a node may take to start listening.
const START_WAIT: Duration = Duration::from_secs(20);

/// What a node reported, stamped with the one clock of the bench process.
#[derive(Debug, Default)]
pub struct Log {
    /// Every peer the node was ever connected to, in either direction.
    pub ever_connected: HashSet<PeerId>,
    /// Lobby (and other room) messages: text and when the node reported it.
    pub messages: Vec<(String, Instant)>,
    /// Acknowledged private messages and when the ack was reported.
    pub delivered: HashMap<MessageId, Instant>,
    /// Events this log missed because it fell behind (should stay 0).
    pub lagged: u64,
    /// First connections to a peer (`Connected` events) so far.
    pub connects: u64,
    /// Last connections to a peer closed (`Disconnected` events) so far.
    pub disconnects: u64,
}

impl Log {
    fn record(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::Connected { peer, .. } => {
                self.ever_connected.insert(peer);
                self.connects += 1;
            }
            Event::Disconnected { .. } => self.disconnects += 1,
            Event::Message { text, .. } => self.messages.push((text, now)),
            Event::Delivered { id, .. } => {
                self.delivered.insert(id, now);
            }
            _ => {}
        }
    }
}

/// One running in-process node.
pub struct Node {
    /// Its handle.
    pub client: Client,
    /// Its listen address, with `/p2p/`.
    pub addr: Multiaddr,
    /// What it reported so far.
    pub log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
    recorder: JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Node {
    /// This node's peer id.
    pub fn peer(&self) -> PeerId {
        self.client.peer_id()
    }

    /// Stops the node and waits (briefly) for its loop to end.
    pub async fn stop(self) {
        self.client.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        self.recorder.abort();
    }
}

/// Stops every node, all at once.
pub async fn stop_all(nodes: Vec<Node>) {
    futures::future::join_all(nodes.into_iter().map(Node::stop)).await;
}

/// `/ip4/127.0.0.1/tcp/0`.
pub fn loopback_tcp() -> Multiaddr {
    ipm_node::config::loopback_tcp()
}

/// `/ip4/127.0.0.1/udp/0/quic-v1`.
pub fn loopback_quic() -> Multiaddr {
    Multiaddr::from(std::net::Ipv4Addr::LOCALHOST)
        .with(Protocol::Udp(0))
        .with(Protocol::QuicV1)
}

/// A user's node with the real settings of `ipm` (`Config::node`), listening only on
/// `listen`, without LAN discovery (the bench sends nothing beyond loopback); gossipsub's
/// as [`super::host::gossip_overrides`] leaves them.
pub fn user_config(name: &str, listen: Multiaddr) -> Config {
    let mut config = Config {
        listen: vec![listen],
        mdns: false,
        ..Config::node(name)
    };
    super::host::gossip_overrides(&mut config.gossip);
    config
}

/// The bootstrap's real settings, on loopback TCP.
pub fn bootstrap_config() -> Config {
    Config {
        listen: vec![loopback_tcp()],
        ..Config::bootstrap()
    }
}

/// Starts a node with `config` and waits until it listens.
pub async fn spawn(config: Config) -> Node {
    start(config, None).await
}

/// Starts a node keeping its state in a new temporary data dir under `base` (needed for
/// files: downloads land in it).
pub async fn spawn_with_data_dir(mut config: Config, base: &std::path::Path) -> Node {
    let tmp = tempfile::Builder::new()
        .prefix("ipm-bench-node-")
        .tempdir_in(base)
        .unwrap();
    config.data_dir = Some(DataDir::open(tmp.path()).unwrap());
    start(config, Some(tmp)).await
}

async fn start(config: Config, dir: Option<tempfile::TempDir>) -> Node {
    let (client, event_loop) = ipm_node::start(Keypair::generate_ed25519(), config).unwrap();
    let mut events = client.events();
    let task = tokio::spawn(event_loop.run());
    let log = Arc::new(Mutex::new(Log::default()));
    let addr = tokio::time::timeout(START_WAIT, async {
        loop {
            match events.recv().await {
                Ok(Event::Listening { addr }) => return addr,
                Ok(other) => log.lock().unwrap().record(other),
                Err(broadcast::error::RecvError::Lagged(n)) => log.lock().unwrap().lagged += n,
                Err(broadcast::error::RecvError::Closed) => panic!("a node stopped at start"),
            }
        }
    })
    .await
    .expect("a node did not start listening in time");
    let recorder = tokio::spawn(record(events, log.clone()));
    Node {
        client,
        addr,
        log,
        task,
        recorder,
        _dir: dir,
    }
}

async fn record(mut events: broadcast::Receiver<Event>, log: Arc<Mutex<Log>>) {
    loop {
        match events.recv().await {
            Ok(event) => log.lock().unwrap().record(event),
            Err(broadcast::error::RecvError::Lagged(n)) => log.lock().unwrap().lagged += n,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Waits until `pick` accepts an event of `events`, or `within` has passed.
pub async fn wait_event<T>(
    events: &mut broadcast::Receiver<Event>,
    within: Duration,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return Some(found);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}
