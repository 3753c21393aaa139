//! The connection budget in real overlays: nodes that all find each other stay at or below
//! their high watermark and still hear every lobby line; a node at its high mark refuses
//! newcomers it has no room for but lets in the peers the user dials; and a file transfer
//! in flight with a peer outside every mesh is not cut when the sender trims.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::{collections::HashSet, path::Path, time::Duration};

use ipm_node::{
    client::{Kind, OfferTarget, Status},
    store::{data_dir::DataDir, transfers::State},
    Config, Event, GossipSettings,
};
use ipm_protocol::Room;
use libp2p::PeerId;
use support::*;

/// Peers a node keeps, not counting connections it is closing.
fn kept(status: &Status) -> usize {
    status.connections.by_kind.iter().map(|(_, n)| n).sum()
}

fn count(status: &Status, kind: Kind) -> usize {
    status
        .connections
        .by_kind
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, n)| *n)
}

fn kind_of(status: &Status, peer: PeerId) -> Option<Kind> {
    status.peers.iter().find(|p| p.peer == peer).map(|p| p.kind)
}

/// Test settings with presence at a pace many nodes in one process keep up with.
fn quiet(name: &str) -> Config {
    Config {
        presence_interval: Duration::from_secs(2),
        presence_timeout: Duration::from_secs(10),
        ..Config::for_tests(name)
    }
}

const MEMBERS: usize = 20;
const LOW: usize = 4;
const HIGH: usize = 8;
/// Peers let in above the high mark for their grace.
const BURST: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_nodes_that_find_each_other_stay_at_the_high_mark_and_hear_every_line() {
    let bootstrap = spawn_bootstrap().await;
    let mut nodes = Vec::new();
    for i in 0..MEMBERS {
        let config = Config {
            target_peers: LOW,
            max_peers: HIGH,
            peer_burst: BURST,
            peer_grace: Duration::from_secs(2),
            ..quiet(&format!("member{i}"))
        };
        nodes.push(spawn_user_with(config, &bootstrap.addr).await);
    }
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.client.peer_id()).collect();

    // Every node hears of every other (presence crosses the overlay), and none ever keeps
    // more peers than its high mark and burst meanwhile.
    let most = std::cell::Cell::new(0);
    wait_longer("every member to see every other online", || async {
        {
            let mut all = true;
            for node in &nodes {
                let status = node.client.status().await.unwrap();
                most.set(most.get().max(kept(&status)));
                assert!(
                    kept(&status) <= HIGH + BURST,
                    "{} peers kept",
                    kept(&status)
                );
                let online: HashSet<PeerId> = node
                    .client
                    .people()
                    .await
                    .unwrap()
                    .users
                    .iter()
                    .map(|u| u.peer)
                    .collect();
                all &= ids
                    .iter()
                    .all(|p| *p == node.client.peer_id() || online.contains(p));
            }
            all
        }
    })
    .await;

    let mut sent = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let line = node
            .client
            .publish(Room::Lobby, format!("line {i}"))
            .await
            .unwrap();
        sent.push(line.id);
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let mut missing: HashSet<_> = sent
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| *id)
            .collect();
        // Bounded, with room for 21 nodes in one process on a busy machine.
        tokio::time::timeout(WAIT * 3, async {
            while !missing.is_empty() {
                match node.events.recv().await {
                    Ok(Event::Message { id, .. }) => {
                        missing.remove(&id);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("event stream ended: {e}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("member{i} missed {} lines", missing.len()));
    }
    for node in &nodes {
        let status = node.client.status().await.unwrap();
        assert!(
            kept(&status) <= HIGH + BURST,
            "{} peers kept",
            kept(&status)
        );
        assert_eq!(count(&status, Kind::Bootstrap), 1);
    }
    let most = most.get();
    assert!(
        most > LOW,
        "the overlay never needed trimming ({most} peers at most)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_high_mark_a_newcomer_is_refused_but_a_peer_the_user_dials_is_let_in() {
    let hub = spawn(Config {
        target_peers: 0,
        max_peers: 3,
        // No burst: the high mark is the most peers the hub lets in.
        peer_burst: 0,
        // No peer may be pushed out during the test.
        peer_grace: WAIT * 3,
        ..quiet("hub")
    })
    .await;
    let mut spokes = Vec::new();
    for i in 0..5 {
        spokes.push(
            spawn(Config {
                target_peers: 0,
                ..quiet(&format!("spoke{i}"))
            })
            .await,
        );
    }
    for spoke in &spokes[..3] {
        spoke.client.dial(hub.addr.clone()).await.unwrap();
    }
    wait_until("the hub to keep three spokes", || async {
        kept(&hub.client.status().await.unwrap()) == 3
    })
    .await;

    // The fourth is refused once its handshake is done: it sees the hub hang up.
    let hub_id = hub.client.peer_id();
    let fourth = &mut spokes[3];
    let _ = fourth.client.dial(hub.addr.clone()).await;
    next_event(&mut fourth.events, |e| match e {
        Event::Disconnected { peer } if *peer == hub_id => Some(()),
        _ => None,
    })
    .await;
    let status = hub.client.status().await.unwrap();
    assert_eq!(kept(&status), 3);
    assert!(kind_of(&status, fourth.client.peer_id()).is_none());

    // The user's own dial goes beyond the high mark, and nobody is cut for it while every
    // peer is within its grace period.
    let fifth = spokes[4].client.peer_id();
    hub.client.dial(spokes[4].addr.clone()).await.unwrap();
    let status = hub.client.status().await.unwrap();
    assert_eq!(kind_of(&status, fifth), Some(Kind::User));
    assert_eq!(kept(&status), 4);
}

/// Bytes of the transferred file: many chunks, so the transfer is still running when the
/// sender trims.
const FILE_LEN: usize = 32 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_transfer_in_flight_to_a_peer_outside_every_mesh_is_not_cut() {
    // Peers that fill the sender's meshes in both the lobby and presence up to gossipsub's
    // `mesh_n_high`, so that later peers are in no mesh of the sender.
    let mesh_high = GossipSettings::default().mesh_high;
    let work = tempfile::tempdir().unwrap();
    let in_dir = |name: &str, config: Config| Config {
        data_dir: Some(DataDir::open(work.path().join(name)).unwrap()),
        ..config
    };
    // The sender's gossipsub heartbeat never comes, so its meshes change only when peers
    // graft it; with the spokes grafted first, the receiver is refused a place.
    let sender = spawn(in_dir(
        "sender",
        Config {
            heartbeat: Duration::from_secs(3600),
            target_peers: 0,
            max_peers: mesh_high + 2,
            peer_grace: Duration::ZERO,
            ..quiet("sender")
        },
    ))
    .await;
    let sender_id = sender.client.peer_id();
    let plain = |name: &str| Config {
        target_peers: 0,
        ..quiet(name)
    };
    let mut spokes = Vec::new();
    for i in 0..mesh_high {
        let spoke = spawn(plain(&format!("spoke{i}"))).await;
        spoke.client.dial(sender.addr.clone()).await.unwrap();
        spokes.push(spoke);
    }
    wait_until("the spokes to fill the sender's meshes", || async {
        count(&sender.client.status().await.unwrap(), Kind::Mesh) == mesh_high
    })
    .await;

    let mut receiver = spawn(in_dir(
        "receiver",
        Config {
            auto_accept: true,
            heartbeat: Duration::from_secs(3600),
            ..plain("receiver")
        },
    ))
    .await;
    let mut idle = spawn(plain("idle")).await;
    receiver.client.dial(sender.addr.clone()).await.unwrap();
    idle.client.dial(sender.addr.clone()).await.unwrap();
    let receiver_id = receiver.client.peer_id();
    let idle_id = idle.client.peer_id();
    wait_until(
        "the receiver and the idle peer to be outside every mesh",
        || async {
            let status = sender.client.status().await.unwrap();
            kind_of(&status, receiver_id) == Some(Kind::Inbound)
                && kind_of(&status, idle_id) == Some(Kind::Inbound)
        },
    )
    .await;

    let path = write_file(work.path(), "big.bin", FILE_LEN);
    let transfer = sender
        .client
        .offer_file(OfferTarget::Peer(receiver_id), path)
        .await
        .unwrap();
    next_event(&mut receiver.events, |e| match e {
        Event::FileProgress { transfer: t, .. } if *t == transfer => Some(()),
        _ => None,
    })
    .await;

    // Two peers the user dials push the sender two above its high mark: it trims the two
    // least useful peers it may close. The idle one goes; the receiver must not.
    let mut users = Vec::new();
    for name in ["user1", "user2"] {
        let user = spawn(plain(name)).await;
        sender.client.dial(user.addr.clone()).await.unwrap();
        users.push(user);
    }
    next_event(&mut idle.events, |e| match e {
        Event::Disconnected { peer } if *peer == sender_id => Some(()),
        _ => None,
    })
    .await;
    let running = receiver.client.transfers().await.unwrap();
    assert!(
        running
            .iter()
            .any(|t| t.id == transfer && matches!(t.state, State::Downloading)),
        "the transfer ended before the sender trimmed: make the file larger"
    );
    let status = sender.client.status().await.unwrap();
    assert_eq!(kind_of(&status, receiver_id), Some(Kind::Inbound));

    // The file arrives without the receiver ever having to connect to the sender again: its
    // connection was not cut while chunks were outstanding (once the last chunk is served,
    // the sender may close it while the receiver checks and moves the file).
    loop {
        // Each step waits for the next progress report, so a slow machine only takes longer.
        let received = next_event(&mut receiver.events, |e| match e {
            Event::FileReceived { transfer: t, .. } if *t == transfer => Some(true),
            Event::FileProgress { transfer: t, .. } if *t == transfer => Some(false),
            Event::FileFailed {
                transfer: t,
                reason,
            } if *t == transfer => {
                panic!("transfer failed: {reason}")
            }
            Event::Connected { peer, .. } if *peer == sender_id => {
                panic!("the sender cut the transfer: the receiver connected again")
            }
            _ => None,
        })
        .await;
        if received {
            break;
        }
    }
}

/// Like `wait_until`, with room for 21 nodes starting on a busy machine.
async fn wait_longer<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_file(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    path
}
