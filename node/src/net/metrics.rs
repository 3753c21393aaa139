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

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, registry: Arc<Mutex<Registry>>) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut head = vec![0u8; 4096];
            let n = match stream.read(&mut head).await {
                Ok(n) => n,
                Err(_) => return,
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
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
