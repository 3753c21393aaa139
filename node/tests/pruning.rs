//! A node holding more connections than it wants closes the idle ones outside its meshes,
//! and keeps chatting with the peers it kept.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use ipm_node::{Config, Event};
use ipm_protocol::Room;
use support::*;

/// Peers that dial the hub: more than gossipsub keeps in the meshes of its two rooms (the
/// lobby and presence, at most `mesh_n` = 6 each once a mesh overflows).
const SPOKES: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surplus_connections_outside_the_meshes_are_closed() {
    let hub = spawn(Config {
        target_peers: 2,
        max_peers: 4,
        // Long enough for every spoke to connect and subscribe before any is closed.
        peer_grace: Duration::from_secs(4),
        ..quiet("hub")
    })
    .await;
    let mut spokes = Vec::new();
    for i in 0..SPOKES {
        // Spokes look for nobody else, so a closed connection stays closed.
        let spoke = spawn(Config {
            target_peers: 0,
            ..quiet(&format!("spoke{i}"))
        })
        .await;
        spokes.push(spoke);
    }
    let dials = spokes.iter().map(|s| s.client.dial(hub.addr.clone()));
    for dialled in futures::future::join_all(dials).await {
        dialled.unwrap();
    }
    wait_until("the hub to see every spoke in the lobby", || async {
        members(&hub.client, &Room::Lobby).await >= SPOKES
    })
    .await;

    let peers = || async { hub.client.status().await.unwrap().peers.len() };
    wait_until(
        "the hub to close connections outside its meshes",
        || async { peers().await <= 2 * 6 },
    )
    .await;

    // Chat goes on: every spoke hears the hub unless it is closed as surplus meanwhile, and
    // the mesh members (at least `mesh_n_low` = 5 of them) are never closed.
    let sent = hub
        .client
        .publish(Room::Lobby, "still here".into())
        .await
        .unwrap();
    let hub_id = hub.client.peer_id();

    let mut heard = 0;
    for spoke in &mut spokes {
        let got = next_event(&mut spoke.events, |e| match e {
            Event::Message { id, .. } if *id == sent.id => Some(true),
            Event::Disconnected { peer } if *peer == hub_id => Some(false),
            _ => None,
        })
        .await;
        heard += usize::from(got);
    }
    assert!(heard >= 5, "only {heard} spokes heard the hub");
}

/// Test settings with presence at a pace 17 nodes in one process keep up with on a busy
/// machine.
fn quiet(name: &str) -> Config {
    Config {
        presence_interval: Duration::from_secs(2),
        presence_timeout: Duration::from_secs(10),
        ..Config::for_tests(name)
    }
}
