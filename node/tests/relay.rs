//! Peers that cannot reach each other directly talk through the bootstrap's relay.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use ipm_node::{client::OfferTarget, Event};
use libp2p::identity::Keypair;
use sha2::{Digest, Sha256};
use support::*;

/// A node behind a NAT: it listens nowhere and reaches out to the bootstrap only.
async fn spawn_unreachable(
    name: &str,
    dir: &std::path::Path,
    bootstrap: &libp2p::Multiaddr,
) -> TestNode {
    let mut config = user_config(name, dir, bootstrap);
    config.listen = Vec::new();
    let (client, event_loop) = ipm_node::start(Keypair::generate_ed25519(), config).unwrap();
    let mut events = client.events();
    let task = tokio::spawn(event_loop.run());
    client.dial(bootstrap.clone()).await.unwrap();
    // Its only address is the relayed one.
    let addr = next_event(&mut events, |e| match e {
        Event::Listening { addr } if ipm_node::net::addresses::is_relayed(addr) => {
            Some(addr.clone())
        }
        _ => None,
    })
    .await;
    TestNode {
        client,
        events,
        addr,
        key: Keypair::generate_ed25519(),
        dir: dir.to_path_buf(),
        task,
        tmp: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_peers_exchange_messages_and_files_through_the_relay() {
    ipm_node::logging::init("warn");
    let bootstrap = spawn_bootstrap().await;
    let alice_dir = tempfile::tempdir().unwrap();
    let bob_dir = tempfile::tempdir().unwrap();
    let alice = spawn_unreachable("alice", alice_dir.path(), &bootstrap.addr).await;
    let mut bob = spawn_unreachable("bob", bob_dir.path(), &bootstrap.addr).await;
    let bob_id = bob.client.peer_id();

    let outcome = alice
        .client
        .send_direct(bob_id, "through the relay".into())
        .await
        .unwrap();
    let text = next_event(&mut bob.events, |e| match e {
        Event::Direct { id, text, .. } if *id == outcome.id => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(text, "through the relay");
    let status = alice.client.status().await.unwrap();
    let to_bob = status.peers.iter().find(|p| p.peer == bob_id).unwrap();
    // The first connection went through the relay (hole punching may add a direct one).
    assert!(
        to_bob
            .addrs
            .iter()
            .any(ipm_node::net::addresses::is_relayed),
        "{:?}",
        to_bob.addrs
    );

    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    let src = alice_dir.path().join("relayed.bin");
    std::fs::write(&src, &data).unwrap();
    let id = alice
        .client
        .offer_file(OfferTarget::Peer(bob_id), src)
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::FileOffer { transfer, .. } if *transfer == id => Some(()),
        _ => None,
    })
    .await;
    bob.client.accept(&id.to_string()).await.unwrap();
    let sha = next_event(&mut bob.events, |e| match e {
        Event::FileReceived {
            transfer, sha256, ..
        } if *transfer == id => Some(sha256.clone()),
        Event::FileFailed { reason, .. } => panic!("{reason}"),
        _ => None,
    })
    .await;
    assert_eq!(sha, hex::encode(Sha256::digest(&data)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_offered_first_thing_finds_an_unreachable_peer_through_the_dht() {
    ipm_node::logging::init("warn");
    let bootstrap = spawn_bootstrap().await;
    let alice_dir = tempfile::tempdir().unwrap();
    let bob_dir = tempfile::tempdir().unwrap();
    let alice = spawn_unreachable("alice", alice_dir.path(), &bootstrap.addr).await;
    let mut bob = spawn_unreachable("bob", bob_dir.path(), &bootstrap.addr).await;
    let bob_id = bob.client.peer_id();

    // Nothing else was sent before: alice knows no address of bob's yet.
    let src = alice_dir.path().join("first.bin");
    std::fs::write(&src, b"the first thing alice sends bob").unwrap();
    let id = alice
        .client
        .offer_file(OfferTarget::Peer(bob_id), src)
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::FileOffer { transfer, .. } if *transfer == id => Some(()),
        _ => None,
    })
    .await;
}

#[test]
fn loopback_addresses_of_peers_on_other_hosts_are_not_dialled() {
    let addr = |s: &str| s.parse::<libp2p::Multiaddr>().unwrap();
    let worth = ipm_node::net::addresses::worth_dialling;
    // Seen by the peer at a LAN address: its loopback addresses would reach this host.
    let seen_on_lan = addr("/ip4/10.77.1.2/tcp/4001");
    assert!(!worth(&addr("/ip4/127.0.0.1/tcp/4001"), &seen_on_lan));
    assert!(!worth(&addr("/ip6/::1/udp/4001/quic-v1"), &seen_on_lan));
    assert!(worth(&addr("/ip4/10.77.2.3/tcp/4001"), &seen_on_lan));
    assert!(worth(
        &addr("/ip4/10.77.2.2/tcp/7433/p2p/12D3KooWQnr4ZwNxnVmyEzGMw9X3bhYVtcMkycmc6bGtagL4SF9k/p2p-circuit"),
        &seen_on_lan
    ));
    // Seen at a loopback address: both run on this host, so its loopback addresses work.
    assert!(worth(
        &addr("/ip4/127.0.0.1/tcp/4001"),
        &addr("/ip4/127.0.0.1/tcp/50000")
    ));
}
