//! The bootstrap's mailbox: sealed messages for offline users, across restarts of everyone.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use ipm_node::{store::history::History, Event};
use libp2p::identity::Keypair;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waits_sealed_at_the_bootstrap_until_its_recipient_connects() {
    let boot_dir = tempfile::tempdir().unwrap();
    let boot_key = Keypair::generate_ed25519();
    let bootstrap = spawn_bootstrap_in(boot_key.clone(), boot_dir.path()).await;
    let boot_id = bootstrap.client.peer_id();

    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (alice_key, bob_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let mut alice = start_user(
        alice_key.clone(),
        "alice",
        alice_dir.path(),
        &bootstrap.addr,
    )
    .await;
    let bob_id = bob_key.public().to_peer_id();

    // Bob has never been online together with alice: the message is queued, then sealed
    // into the bootstrap's mailbox.
    let outcome = alice
        .client
        .send_direct(bob_id, "see you at the station".into())
        .await
        .unwrap();
    assert!(!outcome.delivered);
    next_event(&mut alice.events, |e| match e {
        Event::Queued {
            id, at: Some(at), ..
        } if *id == outcome.id && *at == boot_id => Some(()),
        _ => None,
    })
    .await;
    // The bootstrap stores only what it cannot read.
    let stored = std::fs::read_to_string(boot_dir.path().join("mailbox.jsonl")).unwrap();
    assert!(!stored.contains("station"));

    // Alice leaves, the bootstrap restarts, then bob connects for the first time.
    alice.stop().await;
    bootstrap.stop().await;
    let bootstrap = spawn_bootstrap_in(boot_key, boot_dir.path()).await;
    let mut bob = start_user(bob_key, "bob", bob_dir.path(), &bootstrap.addr).await;
    let (from, text) = next_event(&mut bob.events, |e| match e {
        Event::Direct { id, from, text, .. } if *id == outcome.id => {
            Some((from.clone(), text.clone()))
        }
        _ => None,
    })
    .await;
    // Bob never met alice: until her name record is checked she is shown as alice#xxxx.
    assert!(from.starts_with("alice"), "{from}");
    assert_eq!(text, "see you at the station");

    // Alice comes back: her outbox still holds the message and delivers it directly; bob
    // acknowledges it without showing it twice.
    let mut alice = start_user(alice_key, "alice", alice_dir.path(), &bootstrap.addr).await;
    next_event(&mut alice.events, |e| match e {
        Event::Delivered { id, .. } if *id == outcome.id => Some(()),
        _ => None,
    })
    .await;
    let next = alice
        .client
        .send_direct(bob_id, "on my way".into())
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Direct { id, .. } if *id == outcome.id => panic!("shown twice"),
        Event::Direct { id, .. } if *id == next.id => Some(()),
        _ => None,
    })
    .await;
    let log = History::read_last(
        &bob.history_dir(),
        &ipm_node::store::history::direct_log(&alice.client.peer_id()),
        10,
    )
    .unwrap();
    let texts: Vec<&str> = log.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, vec!["see you at the station", "on my way"]);
}
