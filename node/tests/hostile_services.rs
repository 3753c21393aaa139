//! Attacks on what a bootstrap serves and on private messages, played with real nodes and raw
//! libp2p peers (real TCP, Noise, Yamux) holding fresh keys: a private message pre-empted by a
//! copy with a stolen id, a mailbox filled by many cheap keys, a squatter registering many
//! names from one address, and a name that only looks like one already held.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use ipm_node::Event;
use ipm_protocol::{decode, encode, limits, DirectMessage, DirectRequest, DirectResponse};
use raw_peer::{Proto, RawEvent, RawPeer};
use support::*;

/// Starts a raw peer connected to `victim`.
async fn raw_peer_connected_to(victim: &TestNode) -> RawPeer {
    let mut raw = RawPeer::start().await;
    raw.dial(victim.addr.clone()).await;
    let peer = victim.client.peer_id();
    raw.next_event(|e| matches!(e, RawEvent::Connected(p) if *p == peer).then_some(()))
        .await;
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_with_a_stolen_id_from_another_sender_does_not_suppress_the_real_message() {
    let bootstrap = spawn_bootstrap().await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let mallory = raw_peer_connected_to(&bob).await;
    let alice = raw_peer_connected_to(&bob).await;
    let bob_id = bob.client.peer_id();

    // Mallory saw the id of Alice's message (a bootstrap sees the ids of sealed messages)
    // and sends a message of its own with that id first.
    let real = DirectMessage::new("alice", "the real message");
    let fake = DirectMessage {
        text: "nothing to see".into(),
        ..real.clone()
    };
    let answer = mallory
        .request(bob_id, Proto::Direct, encode(&DirectRequest::Message(fake)))
        .await
        .unwrap();
    assert!(!answer.is_empty());

    let answer = alice
        .request(
            bob_id,
            Proto::Direct,
            encode(&DirectRequest::Message(real.clone())),
        )
        .await
        .expect("the real message is answered");
    let response: DirectResponse = decode(&answer, limits::MAX_DIRECT_RESPONSE_LEN).unwrap();
    assert_eq!(response, DirectResponse::Delivered { id: real.id });
    let alice_id = alice.peer_id;
    let text = next_event(&mut bob.events, |e| match e {
        Event::Direct { id, peer, text, .. } if *id == real.id && *peer == alice_id => {
            Some(text.clone())
        }
        _ => None,
    })
    .await;
    assert_eq!(text, "the real message");

    // And it is in Bob's history, under Alice.
    let log = std::fs::read_dir(bob.history_dir())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(log.contains("the real message"), "{log}");
}
