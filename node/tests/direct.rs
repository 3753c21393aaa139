//! Private messages between in-process nodes: delivery, acks, the outbox across restarts.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use ipm_node::{store::history::History, Event};
use libp2p::identity::Keypair;
use support::*;

fn direct_text(event: &Event, want: ipm_protocol::MessageId) -> Option<String> {
    match event {
        Event::Direct { id, text, .. } if *id == want => Some(text.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_message_reaches_only_its_recipient_and_is_acknowledged() {
    let bootstrap = spawn_bootstrap().await;
    let mut alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let mut carol = spawn_user("carol", &bootstrap.addr).await;
    let bob_id = bob.client.peer_id();
    // Bob has checked alice's name, so he shows and logs her plainly as "alice".
    wait_for_user(&bob.client, alice.client.peer_id(), "alice").await;

    let outcome = alice
        .client
        .send_direct(bob_id, "hi bob".into())
        .await
        .unwrap();
    assert!(
        outcome.delivered,
        "bob is online: the ack comes back at once"
    );
    let text = next_event(&mut bob.events, |e| direct_text(e, outcome.id)).await;
    assert_eq!(text, "hi bob");
    next_event(&mut alice.events, |e| match e {
        Event::Delivered { id, to, .. } if *id == outcome.id && *to == bob_id => Some(()),
        _ => None,
    })
    .await;

    // Carol was in the overlay all along and saw nothing of it; a lobby line sent after
    // the private one reaches her first.
    let lobby = bob
        .client
        .publish(ipm_protocol::Room::Lobby, "lobby".into())
        .await;
    if let Ok(lobby) = lobby {
        next_event(&mut carol.events, |e| match e {
            Event::Direct { .. } => panic!("carol received a private message"),
            Event::Message { id, .. } if *id == lobby.id => Some(()),
            _ => None,
        })
        .await;
    }
    assert!(History::conversations(&carol.history_dir())
        .unwrap()
        .iter()
        .all(|c| !c.starts_with("dm-")));

    // Both sides keep the conversation.
    let alice_log = History::read_last(
        &alice.history_dir(),
        &ipm_node::store::history::direct_log(&bob_id),
        10,
    )
    .unwrap();
    assert_eq!(alice_log.len(), 1);
    assert!(alice_log[0].outgoing);
    let bob_log = History::read_last(
        &bob.history_dir(),
        &ipm_node::store::history::direct_log(&alice.client.peer_id()),
        10,
    )
    .unwrap();
    assert_eq!(bob_log[0].text, "hi bob");
    assert_eq!(bob_log[0].from, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_for_an_offline_user_is_queued_then_delivered_exactly_once() {
    let bootstrap = spawn_bootstrap().await;
    let mut alice = spawn_user("alice", &bootstrap.addr).await;
    let bob_dir = tempfile::tempdir().unwrap();
    let bob_key = Keypair::generate_ed25519();
    let bob = start_user(bob_key.clone(), "bob", bob_dir.path(), &bootstrap.addr).await;
    let bob_id = bob.client.peer_id();
    // Alice learns where bob is, then bob goes away.
    alice.client.dial(bob.addr.clone()).await.unwrap();
    bob.stop().await;
    next_event(&mut alice.events, |e| match e {
        Event::Disconnected { peer } if *peer == bob_id => Some(()),
        _ => None,
    })
    .await;

    let outcome = alice
        .client
        .send_direct(bob_id, "later".into())
        .await
        .unwrap();
    assert!(!outcome.delivered);
    next_event(&mut alice.events, |e| match e {
        Event::Queued { id, .. } if *id == outcome.id => Some(()),
        _ => None,
    })
    .await;

    // Bob comes back on another port; alice finds him again through the DHT.
    let mut bob = start_user(bob_key, "bob", bob_dir.path(), &bootstrap.addr).await;
    let text = next_event(&mut bob.events, |e| direct_text(e, outcome.id)).await;
    assert_eq!(text, "later");
    next_event(&mut alice.events, |e| match e {
        Event::Delivered { id, .. } if *id == outcome.id => Some(()),
        _ => None,
    })
    .await;
    // Exactly once: the log holds one copy, and a message sent afterwards is the next event.
    let after = alice
        .client
        .send_direct(bob_id, "after".into())
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Direct { id, .. } if *id == outcome.id => panic!("'later' arrived twice"),
        Event::Direct { id, .. } if *id == after.id => Some(()),
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
    assert_eq!(texts, vec!["later", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_survives_the_senders_restart() {
    let bootstrap = spawn_bootstrap().await;
    let alice_dir = tempfile::tempdir().unwrap();
    let alice_key = Keypair::generate_ed25519();
    let alice = start_user(
        alice_key.clone(),
        "alice",
        alice_dir.path(),
        &bootstrap.addr,
    )
    .await;
    let bob_dir = tempfile::tempdir().unwrap();
    let bob_key = Keypair::generate_ed25519();
    let bob = start_user(bob_key.clone(), "bob", bob_dir.path(), &bootstrap.addr).await;
    let bob_id = bob.client.peer_id();
    bob.stop().await;

    let outcome = alice
        .client
        .send_direct(bob_id, "kept on disk".into())
        .await
        .unwrap();
    assert!(!outcome.delivered);
    alice.stop().await;

    let _alice = start_user(alice_key, "alice", alice_dir.path(), &bootstrap.addr).await;
    let mut bob = start_user(bob_key, "bob", bob_dir.path(), &bootstrap.addr).await;
    let text = next_event(&mut bob.events, |e| direct_text(e, outcome.id)).await;
    assert_eq!(text, "kept on disk");
}
