//! Prometheus metrics: libp2p's own (connections, gossipsub, Kademlia, identify, ping,
//! relay, hole punching) plus ipm's, served as text on `GET /metrics`.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use libp2p::metrics::{Metrics as Libp2pMetrics, Registry};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tracing::debug;

/// Labels of ipm's message counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `room`, `direct`, `mailbox`; for connections `mesh`, `dht`, `inbound`, `bootstrap`,
    /// `user`.
    pub kind: String,
}

/// Everything a node measures.
pub struct Metrics {
    /// libp2p's recorders.
    pub libp2p: Libp2pMetrics,
    /// Messages received, by kind.
    pub received: Family<KindLabel, Counter>,
    /// Messages sent, by kind.
    pub sent: Family<KindLabel, Counter>,
    /// Private messages waiting in the outbox.
    pub outbox: Gauge,
    /// Sealed messages kept in this bootstrap's mailbox.
    pub mailbox: Gauge,
    /// Names registered at this bootstrap.
    pub registered_names: Gauge,
    /// Users logged in at this bootstrap and connected now.
    pub online_users: Gauge,
    /// Requests this bootstrap's registry answered, by kind: `register`, `lookup`, `online`.
    pub registry_requests: Family<KindLabel, Counter>,
    /// Connected peers by kind: `mesh`, `dht`, `inbound`, `bootstrap`, `user` (see
    /// `logic::connection_budget::Kind`).
    pub connections: Family<KindLabel, Gauge>,
    registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every metric in a new registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ipm");
        let libp2p = Libp2pMetrics::new(&mut registry);
        let received = Family::<KindLabel, Counter>::default();
        let sent = Family::<KindLabel, Counter>::default();
        let outbox = Gauge::default();
        let mailbox = Gauge::default();
        let registered_names = Gauge::default();
        let online_users = Gauge::default();
        let registry_requests = Family::<KindLabel, Counter>::default();
        let connections = Family::<KindLabel, Gauge>::default();
        registry.register("messages_received", "Messages received", received.clone());
        registry.register("messages_sent", "Messages sent", sent.clone());
        registry.register(
            "outbox_messages",
            "Private messages waiting for delivery",
            outbox.clone(),
        );
        registry.register(
            "mailbox_messages",
            "Sealed messages kept for offline users",
            mailbox.clone(),
        );
        registry.register(
            "registered_names",
            "Names registered at this bootstrap",
            registered_names.clone(),
        );
        registry.register(
            "online_users",
            "Users logged in at this bootstrap and connected",
            online_users.clone(),
        );
        registry.register(
            "registry_requests",
            "Requests this bootstrap's registry answered, by kind",
            registry_requests.clone(),
        );
        registry.register(
            "connections",
            "Connected peers by kind: in a gossipsub mesh, dialled by a DHT lookup or \
             discovery, dialled in, bootstraps, dialled by the user",
            connections.clone(),
        );
        Self {
            libp2p,
            received,
            sent,
            outbox,
            mailbox,
            registered_names,
            online_users,
            registry_requests,
            connections,
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// Counts one message of `kind` received.
    pub fn count_received(&self, kind: &str) {
        self.received
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Counts one message of `kind` sent.
    pub fn count_sent(&self, kind: &str) {
        self.sent
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// A handle for [`serve`].
    pub fn registry(&self) -> Arc<Mutex<Registry>> {
        self.registry.clone()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The registry in Prometheus text format.
pub fn render(registry: &Mutex<Registry>) -> String {
    let mut text = String::new();
    let registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        debug!("cannot encode metrics: {e}");
    }
    text
}

/// Opens the metrics port (separately from serving, so a taken port is reported at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// How long the metrics server waits on one connection, and how many it serves at once.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Longest wait for the request.
    pub read: std::time::Duration,
    /// Longest wait for the answer to be taken.
    pub write: std::time::Duration,
    /// Connections served at once; more are closed at once.
    pub connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            read: std::time::Duration::from_secs(5),
            write: std::time::Duration::from_secs(10),
            connections: 32,
        }
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Mutex<Registry>>) -> std::io::Result<()> {
    serve_within(listener, registry, ServerLimits::default()).await
}

/// Serves `GET /metrics` on `listener` within `limits`: a client that sends nothing, or
/// never reads, is cut off, so idle connections cannot pile up.
pub async fn serve_within(
    listener: TcpListener,
    registry: Arc<Mutex<Registry>>,
    limits: ServerLimits,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    loop {
        let (mut stream, _) = listener.accept().await?;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("metrics: too many connections, closing one");
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut head = vec![0u8; 4096];
            let n = match tokio::time::timeout(limits.read, stream.read(&mut head)).await {
                Ok(Ok(n)) => n,
                Ok(Err(_)) | Err(_) => return,
            };
            let request = String::from_utf8_lossy(&head[..n]);
            let (status, body) = if request.starts_with("GET /metrics ") {
                ("200 OK", render(&registry))
            } else {
                ("404 Not Found", "try GET /metrics\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let write = async {
                stream.write_all(response.as_bytes()).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(limits.write, write).await;
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod server_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_silent_client_is_cut_off_and_others_are_still_served() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ServerLimits {
            read: Duration::from_millis(200),
            ..ServerLimits::default()
        };
        let metrics = Metrics::new();
        tokio::spawn(serve_within(listener, metrics.registry(), limits));
        // Connections that never send a byte: each is closed by the server.
        let mut silent = Vec::new();
        for _ in 0..limits.connections {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        for stream in &mut silent {
            let mut buf = [0u8; 16];
            let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
                .await
                .expect("the server kept a silent connection open")
                .unwrap_or(0);
            assert_eq!(n, 0);
        }
        let mut honest = tokio::net::TcpStream::connect(addr).await.unwrap();
        honest
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(20), honest.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    }
}
