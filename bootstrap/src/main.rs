//! `ipm-bootstrap`: the optional well-known entry point of an ipm overlay.
//!
//! It serves the Kademlia DHT, relays circuits for peers that cannot reach each other, and
//! forwards every room so that nodes which only know the bootstrap still hear each other.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Parser;
use libp2p::Multiaddr;

use ipm_node::{config, program, store::data_dir::DataDir, store::identity, Config, Event};

/// Port the bootstrap listens on unless told otherwise (TCP and QUIC).
const DEFAULT_PORT: u16 = 7433;

/// ipm-bootstrap: entry point, DHT server and relay for an ipm overlay.
///
/// Prints its full addresses at start; give one to nodes with `ipm --bootstrap <addr>`.
#[derive(Debug, Parser)]
#[command(name = "ipm-bootstrap", version)]
struct Cli {
    /// Where the bootstrap's identity lives [default: the platform's data folder].
    #[arg(long, env = "IPM_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on; repeat for several [default: TCP and QUIC on all interfaces, port 7433].
    #[arg(long, env = "IPM_LISTEN", value_name = "MADDR", value_delimiter = ',')]
    listen: Vec<Multiaddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100; the figures are public to whoever reaches ADDR).
    #[arg(long, env = "IPM_METRICS", value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    match program::parse_args::<Cli>("ipm-bootstrap") {
        Ok(cli) => program::run("ipm-bootstrap", async {
            run(cli).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Err(code) => code,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    ipm_node::logging::init("info");
    let data_dir =
        match &cli.data_dir {
            Some(dir) => DataDir::open(dir)
                .with_context(|| format!("cannot use data dir {}", dir.display()))?,
            None => DataDir::open_default("ipm-bootstrap")
                .context("cannot create the default data dir")?,
        };
    let passphrase = std::env::var("IPM_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty());
    let key = identity::load_or_create(&data_dir.identity_key(), passphrase.as_deref())?;
    let mut config = Config::bootstrap();
    let mut cli = cli;
    cli.listen.retain(|a| !a.is_empty());
    config.listen = if cli.listen.is_empty() {
        config::default_listen(DEFAULT_PORT)
    } else {
        cli.listen
    };
    config.data_dir = Some(data_dir);
    let metrics_listener = match cli.metrics {
        Some(addr) => Some(
            ipm_node::net::metrics::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        ),
        None => None,
    };
    let (client, event_loop) = ipm_node::start(key, config)?;
    if let Some(listener) = metrics_listener {
        tokio::spawn(ipm_node::net::metrics::serve(listener, client.metrics()));
    }
    let mut events = client.events();
    let node = tokio::spawn(event_loop.run());
    println!(
        "ipm-bootstrap {} peer id {}",
        env!("CARGO_PKG_VERSION"),
        client.peer_id()
    );
    let printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                Event::Listening { addr } => println!("listening on {addr}"),
                Event::Connected { peer, addr } => tracing::info!(%peer, %addr, "peer connected"),
                Event::Disconnected { peer } => tracing::info!(%peer, "peer disconnected"),
                Event::Error { message } => tracing::warn!("{message}"),
                _ => {}
            }
        }
    });
    ipm_node::shutdown_signal().await;
    tracing::info!("shutting down");
    client.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), node).await;
    printer.abort();
    Ok(())
}
