//! Private messages: the round trip to a connected peer (send to ack), and first contact with
//! a peer the sender was never connected to (DHT lookup, dial, send, ack).

use std::time::{Duration, Instant};

use ipm_node::{client::DirectOutcome, Config};
use libp2p::PeerId;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

use super::{
    fanout::Overlay,
    nodes::{self, loopback_tcp, user_config, Node},
    report::opt,
    settings::Settings,
    stats::percentile_ms,
};

/// Longest one private message may take before it counts as failed.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Sends one private message from `from` to `to` and returns the time until its ack.
async fn timed_send(from: &Node, to: PeerId, text: String) -> Result<Duration, String> {
    let started = Instant::now();
    let outcome: DirectOutcome = from
        .client
        .send_direct(to, text)
        .await
        .map_err(|e| e.to_string())?;
    if outcome.delivered {
        return Ok(started.elapsed());
    }
    // Reported as queued (the node's wait is shorter than ACK_WAIT): the ack still counts
    // when it comes, timed by the sender's Delivered event.
    let deadline = started + ACK_WAIT;
    loop {
        if let Some(at) = from.log.lock().unwrap().delivered.get(&outcome.id) {
            return Ok(at.saturating_duration_since(started));
        }
        if Instant::now() > deadline {
            return Err(format!("no ack within {}s", ACK_WAIT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Round trips between two connected nodes of `overlay`, then first contacts from newcomers
/// to members they were never connected to.
pub async fn measure(overlay: &Overlay, settings: &Settings) -> Value {
    let nodes = &overlay.nodes;
    println!("\n== private messages in a {}-node overlay", nodes.len());

    // Round trip: node 0 and a peer it is connected to.
    let sender = &nodes[0];
    let connected: Vec<PeerId> = sender
        .client
        .status()
        .await
        .map(|s| s.peers.iter().map(|p| p.peer).collect())
        .unwrap_or_default();
    let target = match nodes[1..].iter().find(|n| connected.contains(&n.peer())) {
        Some(node) => node.peer(),
        None => {
            let node = &nodes[1];
            let _ = sender
                .client
                .dial_within(node.addr.clone(), Duration::from_secs(10))
                .await;
            node.peer()
        }
    };
    for i in 0..5 {
        let _ = timed_send(sender, target, format!("warm-up {i}")).await;
    }
    let mut rtts = Vec::with_capacity(settings.direct_messages);
    let mut rtt_failures = 0usize;
    for i in 0..settings.direct_messages {
        match timed_send(sender, target, format!("round trip {i}")).await {
            Ok(rtt) => rtts.push(rtt),
            Err(e) => {
                rtt_failures += 1;
                eprintln!("private message failed: {e}");
            }
        }
    }

    // First contact: a newcomer joins through the bootstrap and, as soon as it is connected
    // to it, messages a member it has never been connected to. Its start-up discovery runs at
    // the same time; once over (about a second here), a newcomer is connected to nearly every
    // member of an overlay this size and has no strangers left, so each newcomer makes one
    // first contact and leaves.
    let mut rng = StdRng::seed_from_u64(42);
    let mut contacts = Vec::with_capacity(settings.first_contacts);
    let mut contact_failures = 0usize;
    let mut strangers_seen = Vec::new();
    for i in 0..settings.first_contacts {
        let config = Config {
            bootstrap: vec![overlay.bootstrap.addr.clone()],
            ..user_config(&format!("newcomer{i}"), loopback_tcp())
        };
        let newcomer = nodes::spawn(config).await;
        let _ = newcomer
            .client
            .dial_within(overlay.bootstrap.addr.clone(), Duration::from_secs(10))
            .await;
        let strangers: Vec<&Node> = nodes
            .iter()
            .filter(|n| {
                !newcomer
                    .log
                    .lock()
                    .unwrap()
                    .ever_connected
                    .contains(&n.peer())
                    && !n
                        .log
                        .lock()
                        .unwrap()
                        .ever_connected
                        .contains(&newcomer.peer())
            })
            .collect();
        strangers_seen.push(strangers.len());
        if !strangers.is_empty() {
            let to = strangers[rng.gen_range(0..strangers.len())].peer();
            match timed_send(&newcomer, to, format!("hello stranger {i}")).await {
                Ok(took) => contacts.push(took),
                Err(e) => {
                    contact_failures += 1;
                    eprintln!("first contact failed: {e}");
                }
            }
        }
        newcomer.stop().await;
    }

    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    let rtt_p50 = percentile_ms(&rtts, 50.0);
    let rtt_p99 = percentile_ms(&rtts, 99.0);
    let fc_p50 = percentile_ms(&contacts, 50.0);
    let fc_p95 = percentile_ms(&contacts, 95.0);
    let fc_max = percentile_ms(&contacts, 100.0);
    println!(
        "  round trip (connected): p50 {} ms, p99 {} ms over {} messages",
        ms(rtt_p50),
        ms(rtt_p99),
        rtts.len()
    );
    println!(
        "  first contact: p50 {} ms, p95 {} ms, max {} ms over {} strangers ({} failed)",
        ms(fc_p50),
        ms(fc_p95),
        ms(fc_max),
        contacts.len(),
        contact_failures
    );
    json!({
        "overlay_nodes": nodes.len(),
        "rtt_p50_ms": opt(rtt_p50, 2),
        "rtt_p99_ms": opt(rtt_p99, 2),
        "rtt_max_ms": opt(percentile_ms(&rtts, 100.0), 2),
        "rtt_messages": rtts.len(),
        "rtt_failures": rtt_failures,
        "first_contact_p50_ms": opt(fc_p50, 1),
        "first_contact_p95_ms": opt(fc_p95, 1),
        "first_contact_max_ms": opt(fc_max, 1),
        "first_contacts": contacts.len(),
        "first_contact_failures": contact_failures,
        "strangers_at_first_message": strangers_seen,
    })
}
