//! Logs go to stderr through `tracing`; `RUST_LOG` overrides the default level.

/// The default where stdout is for a person (the prompt, the bootstrap's addresses):
/// warnings and errors only. Kademlia's own warnings are left out: it warns that it
/// "failed to trigger bootstrap: no known peers" at the start of every first node of a
/// network (a bootstrap, a lone node) and again every refresh while it is alone, and that
/// replication found no closest peers in a small network; neither is a fault, and the DHT's
/// upkeep is ipm's own (`logic::dht_upkeep`). `RUST_LOG=warn` shows them.
pub const QUIET: &str = "warn,libp2p_kad::behaviour=error";

/// Starts logging to stderr at `default` unless `RUST_LOG` says otherwise.
pub fn init(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
