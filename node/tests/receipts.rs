//! Read receipts and typing notices between in-process nodes: a receipt only once a
//! frontend showed the message, none when either side turned receipts off.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use ipm_node::{client::Conversation, Config, Event};
use ipm_protocol::{MessageId, Room};
use support::*;

/// Two users named `names` with the given receipt settings, each seeing the other.
async fn pair(bootstrap: &TestNode, names: [&str; 2], receipts: [bool; 2]) -> (TestNode, TestNode) {
    let mut a = Config::for_tests(names[0]);
    a.receipts = receipts[0];
    let mut b = Config::for_tests(names[1]);
    b.receipts = receipts[1];
    let alice = spawn_user_with(a, &bootstrap.addr).await;
    let bob = spawn_user_with(b, &bootstrap.addr).await;
    wait_for_user(&bob.client, alice.client.peer_id(), names[0]).await;
    wait_for_user(&alice.client, bob.client.peer_id(), names[1]).await;
    (alice, bob)
}

async fn direct(from: &TestNode, to: &mut TestNode, text: &str) -> MessageId {
    let sent = from
        .client
        .send_direct(to.client.peer_id(), text.into())
        .await
        .unwrap();
    next_event(&mut to.events, |e| match e {
        Event::Direct { id, .. } if *id == sent.id => Some(()),
        _ => None,
    })
    .await;
    sent.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_read_once_shown_not_when_received() {
    let bootstrap = spawn_bootstrap().await;
    let (mut alice, mut bob) = pair(&bootstrap, ["alice", "bob"], [true, true]).await;
    let alice_id = alice.client.peer_id();
    let bob_id = bob.client.peer_id();
    // Bob's node received the first message but no frontend showed it.
    let first = direct(&alice, &mut bob, "received only").await;
    let second = direct(&alice, &mut bob, "shown").await;
    bob.client
        .shown(Conversation::Direct(alice_id), Some(second))
        .await;
    let read = next_event(&mut alice.events, |e| match e {
        Event::Read { id, by, .. } => Some((*id, *by)),
        _ => None,
    })
    .await;
    assert_eq!(
        read,
        (second, bob_id),
        "the first read receipt is for the shown message"
    );
    let lines = alice
        .client
        .lines(Conversation::Direct(bob_id), 10)
        .await
        .unwrap();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].delivered && !lines[0].read, "{:?}", lines[0]);
    assert!(lines[1].read);
    assert_eq!(lines[0].entry.id, first.to_string());

    // Typing reaches a peer that asked for notices.
    bob.client.typing(alice_id).await;
    next_event(&mut alice.events, |e| match e {
        Event::Typing { peer, .. } if *peer == bob_id => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_receipts_a_node_neither_asks_for_nor_sends_them() {
    let bootstrap = spawn_bootstrap().await;
    // Alice turned receipts off: her messages do not ask, bob's node sends none.
    let (mut alice, mut bob) = pair(&bootstrap, ["alice", "bob"], [false, true]).await;
    let alice_id = alice.client.peer_id();
    let id = direct(&alice, &mut bob, "no receipts please").await;
    bob.client
        .shown(Conversation::Direct(alice_id), Some(id))
        .await;
    bob.client.typing(alice_id).await;
    // Bob then writes in the lobby; alice sees that line but no receipt or typing before it.
    let sent = loop {
        let sent = bob
            .client
            .publish(Room::Lobby, "after".into())
            .await
            .unwrap();
        if sent.peers > 0 {
            break sent;
        }
        wait_until("lobby peers", || async {
            members(&bob.client, &Room::Lobby).await > 0
        })
        .await;
    };
    next_event(&mut alice.events, |e| match e {
        Event::Read { .. } | Event::Typing { .. } => panic!("alice got a notice: {e:?}"),
        Event::Message { id, .. } if *id == sent.id => Some(()),
        _ => None,
    })
    .await;
    let lines = alice
        .client
        .lines(Conversation::Direct(bob.client.peer_id()), 10)
        .await
        .unwrap();
    assert!(lines[0].delivered && !lines[0].read);

    // Bob turned them off: alice asks, bob's node still sends nothing.
    let (mut alice, mut bob) = pair(&bootstrap, ["carol", "dave"], [true, false]).await;
    let alice_id = alice.client.peer_id();
    let id = direct(&alice, &mut bob, "ask anyway").await;
    bob.client
        .shown(Conversation::Direct(alice_id), Some(id))
        .await;
    let reply = bob
        .client
        .send_direct(alice_id, "sent after showing yours".into())
        .await
        .unwrap();
    next_event(&mut alice.events, |e| match e {
        Event::Read { .. } => panic!("bob's node sent a receipt"),
        Event::Direct { id, .. } if *id == reply.id => Some(()),
        _ => None,
    })
    .await;
}
