//! Shared helpers for the in-process tests: spawn nodes on loopback and wait for events.
//! `procs` holds the helpers for tests of the real binaries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod procs;

use std::{future::Future, io::Write, time::Duration};

use ipm_node::{Client, Config, Event, Role};
use libp2p::{identity::Keypair, Multiaddr};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

/// Longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestNode {
    pub client: Client,
    pub events: broadcast::Receiver<Event>,
    pub addr: Multiaddr,
    pub key: Keypair,
    pub dir: std::path::PathBuf,
    pub task: tokio::task::JoinHandle<()>,
    /// The temporary data dir this node owns, removed when the node is dropped.
    pub tmp: Option<tempfile::TempDir>,
}

impl TestNode {
    /// The folder of conversation logs.
    pub fn history_dir(&self) -> std::path::PathBuf {
        self.dir.join("history")
    }

    /// Stops the node and waits until its loop has ended.
    pub async fn stop(self) {
        self.client.shutdown().await;
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// Starts a node with `config` and waits until it listens.
pub async fn spawn(config: Config) -> TestNode {
    spawn_with_key(Keypair::generate_ed25519(), config).await
}

/// Starts a node with a given key (to restart "the same" node) and waits until it listens.
/// A node without a data dir gets an empty temporary folder to read history from.
pub async fn spawn_with_key(key: Keypair, config: Config) -> TestNode {
    let (dir, tmp) = match config.data_dir.as_ref() {
        Some(d) => (d.root().to_path_buf(), None),
        None => {
            let tmp = tempfile::tempdir().unwrap();
            (tmp.path().to_path_buf(), Some(tmp))
        }
    };
    let (client, event_loop) = ipm_node::start(key.clone(), config).unwrap();
    let mut events = client.events();
    let task = tokio::spawn(event_loop.run());
    let addr = next_event(&mut events, |e| match e {
        Event::Listening { addr } => Some(addr.clone()),
        _ => None,
    })
    .await;
    TestNode {
        client,
        events,
        addr,
        key,
        dir,
        task,
        tmp,
    }
}

pub async fn spawn_bootstrap() -> TestNode {
    spawn(bootstrap_config()).await
}

/// The settings of a bootstrap in tests.
pub fn bootstrap_config() -> Config {
    Config {
        role: Role::Bootstrap,
        target_peers: 0,
        max_peers: Config::bootstrap().max_peers,
        use_relay: false,
        ..Config::for_tests("bootstrap")
    }
}

/// A bootstrap keeping its mailbox in `dir` (restart it with the same key and dir).
pub async fn spawn_bootstrap_in(key: Keypair, dir: &std::path::Path) -> TestNode {
    let config = Config {
        data_dir: Some(ipm_node::store::data_dir::DataDir::open(dir).unwrap()),
        ..bootstrap_config()
    };
    spawn_with_key(key, config).await
}

/// Settings of a user node keeping its state in `dir`, joining through `bootstrap`.
pub fn user_config(name: &str, dir: &std::path::Path, bootstrap: &Multiaddr) -> Config {
    let mut config = Config::for_tests(name);
    config.bootstrap = vec![bootstrap.clone()];
    config.data_dir = Some(ipm_node::store::data_dir::DataDir::open(dir).unwrap());
    config
}

/// A user node with its own temporary data dir, joined to the overlay through `bootstrap`.
pub async fn spawn_user(name: &str, bootstrap: &Multiaddr) -> TestNode {
    spawn_user_with(Config::for_tests(name), bootstrap).await
}

/// A user node started from `config` with its own temporary data dir, joined to the overlay
/// through `bootstrap`.
pub async fn spawn_user_with(mut config: Config, bootstrap: &Multiaddr) -> TestNode {
    let tmp = tempfile::tempdir().unwrap();
    config.bootstrap = vec![bootstrap.clone()];
    config.data_dir = Some(ipm_node::store::data_dir::DataDir::open(tmp.path()).unwrap());
    let mut node = spawn_with_key(Keypair::generate_ed25519(), config).await;
    node.client.dial(bootstrap.clone()).await.unwrap();
    node.tmp = Some(tmp);
    node
}

/// Starts (or restarts) a user node with `key` and data dir `dir`.
pub async fn start_user(
    key: Keypair,
    name: &str,
    dir: &std::path::Path,
    bootstrap: &Multiaddr,
) -> TestNode {
    let node = spawn_with_key(key, user_config(name, dir, bootstrap)).await;
    node.client.dial(bootstrap.clone()).await.unwrap();
    node
}

/// Waits (bounded by [`WAIT`]) for the first event `pick` accepts.
pub async fn next_event<T>(
    events: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("the awaited event did not come in time")
}

/// Re-checks `condition` whenever the node reports something (or every 50 ms) until it holds.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many peers `client` sees in `room`.
pub async fn members(client: &Client, room: &ipm_protocol::Room) -> usize {
    let status = client.status().await.unwrap();
    status
        .rooms
        .iter()
        .find(|r| &r.room == room)
        .map_or(0, |r| r.members.len())
}

/// Waits until `client` lists the online user `peer` shown as `name`: its presence arrived
/// and, for a plain name, the DHT confirmed the name is registered to it.
pub async fn wait_for_user(client: &Client, peer: libp2p::PeerId, name: &str) {
    wait_until(&format!("{peer} shown as {name}"), || async {
        let people = client.people().await.unwrap();
        people
            .users
            .iter()
            .any(|u| u.peer == peer && u.name == name)
    })
    .await;
}

/// Writes `len` bytes that do not compress to `path`, block by block; their SHA-256, hex.
pub fn write_big(path: &std::path::Path, len: usize) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n;
    }
    file.flush().unwrap();
    hex::encode(hasher.finalize())
}
