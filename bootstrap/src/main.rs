//! `ipm-bootstrap`: the optional well-known entry point of an ipm overlay.
//!
//! It serves the Kademlia DHT, relays circuits for peers that cannot reach each other, and
//! forwards every room so that nodes which only know the bootstrap still hear each other.
//!
//! On stdout it prints what an operator needs: its peer id, the services it runs, and each
//! address to give to nodes (with its `/p2p/` part). Logs go to stderr, warnings and errors
//! only unless `RUST_LOG` asks for more. A closed stdout stops it quietly.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Parser;
use libp2p::Multiaddr;

use ipm_node::{
    config,
    program::{self, OutputError},
    store::data_dir::DataDir,
    store::identity,
    Config, Event,
};

/// Port the bootstrap listens on unless told otherwise (TCP and QUIC).
const DEFAULT_PORT: u16 = 7433;

/// What a bootstrap serves besides what every node does, as its operator reads it.
const SERVICES: &str = "services: Kademlia DHT, name registry, mailbox for offline users, \
                        relay, room forwarding, room archive for catch-up";

const EXAMPLES: &str = "\
Examples:
  ipm-bootstrap
      TCP and QUIC on port 7433; prints the addresses to give to nodes
  ipm-bootstrap --listen /ip4/0.0.0.0/tcp/7433 --data-dir /var/lib/ipm
      TCP only; identity, names, mailbox and archive in /var/lib/ipm
  ipm --bootstrap /ip4/203.0.113.7/tcp/7433/p2p/12D3KooW...
      a node joining through it

RUST_LOG=info (or debug) shows more than warnings and errors on stderr.";

/// ipm-bootstrap: entry point, DHT server and relay for an ipm overlay.
///
/// Prints the addresses to give to nodes: ipm --bootstrap <address>.
#[derive(Debug, Parser)]
#[command(name = "ipm-bootstrap", version, after_help = EXAMPLES, max_term_width = 80)]
struct Cli {
    /// Where the bootstrap's identity, names, mailbox and room archive live
    /// [default: the platform's data folder].
    #[arg(long, env = "IPM_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on; repeat for several
    /// [default: TCP and QUIC on all interfaces, port 7433].
    #[arg(long, env = "IPM_LISTEN", value_name = "MADDR", value_delimiter = ',')]
    listen: Vec<Multiaddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9100); the figures
    /// are public to whoever reaches ADDR.
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
    ipm_node::logging::init(ipm_node::logging::QUIET);
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
    let root = data_dir.root().to_path_buf();
    config.data_dir = Some(data_dir);
    let metrics_listener = match cli.metrics {
        Some(addr) => Some((
            addr,
            ipm_node::net::metrics::bind(addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?,
        )),
        None => None,
    };
    let (client, event_loop) = ipm_node::start(key, config)?;
    let mut events = client.events();
    let node = tokio::spawn(event_loop.run());

    let mut header = vec![
        format!(
            "ipm-bootstrap {} peer id {}",
            env!("CARGO_PKG_VERSION"),
            client.peer_id()
        ),
        SERVICES.to_owned(),
        format!("data dir {}", root.display()),
    ];
    if let Some((addr, listener)) = metrics_listener {
        header.push(format!("metrics on http://{addr}/metrics"));
        tokio::spawn(ipm_node::net::metrics::serve(listener, client.metrics()));
    }
    header.push("nodes join with: ipm --bootstrap <one of the addresses below>".into());
    let printer = tokio::spawn(async move {
        for line in header {
            program::print_line(&line)?;
        }
        while let Ok(event) = events.recv().await {
            match event {
                Event::Listening { addr } => program::print_line(&format!("listening on {addr}"))?,
                Event::Connected { peer, addr } => tracing::debug!(%peer, %addr, "peer connected"),
                Event::Disconnected { peer } => tracing::debug!(%peer, "peer disconnected"),
                Event::Error { message } => tracing::warn!("{message}"),
                _ => {}
            }
        }
        Ok::<(), OutputError>(())
    });
    let stopped = tokio::select! {
        _ = ipm_node::shutdown_signal() => Ok(()),
        // Its stdout's reader went away (or the node stopped): stop as on a signal.
        printed = printer => printed.unwrap_or(Ok(())),
    };
    tracing::info!("shutting down");
    client.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), node).await;
    Ok(stopped?)
}
