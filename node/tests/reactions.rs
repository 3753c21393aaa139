//! Replies, reactions, edits and deletions of room lines and private messages between
//! in-process nodes, and a forger's edit that is refused and never shown.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use ipm_node::{
    client::Conversation,
    logic::edits::{Ref, RefError},
    Event, NodeError,
};
use ipm_protocol::{encode_gossip, Change, ChatMessage, Gossip, MessageId, Op, Room};
use raw_peer::RawPeer;
use support::*;

fn prefix(id: &MessageId) -> Ref {
    Ref::Prefix(id.to_string()[..6].to_owned())
}

fn lobby() -> (Conversation, bool) {
    (Conversation::Room(Room::Lobby), true)
}

/// Alice and bob in the lobby, each seeing the other.
async fn alice_and_bob(bootstrap: &TestNode) -> (TestNode, TestNode) {
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let bob = spawn_user("bob", &bootstrap.addr).await;
    for node in [&alice, &bob] {
        wait_until("lobby membership", || async {
            members(&node.client, &Room::Lobby).await >= 1
        })
        .await;
    }
    wait_for_user(&bob.client, alice.client.peer_id(), "alice").await;
    wait_for_user(&alice.client, bob.client.peer_id(), "bob").await;
    (alice, bob)
}

/// Publishes `text` from `from` until `to` shows it (the mesh may still be forming).
async fn line_seen(from: &TestNode, to: &mut TestNode, text: &str) -> MessageId {
    let sent = from.client.publish(Room::Lobby, text.into()).await.unwrap();
    next_event(&mut to.events, |e| match e {
        Event::Message { id, .. } if *id == sent.id => Some(()),
        _ => None,
    })
    .await;
    sent.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_lines_are_answered_reacted_to_edited_and_deleted() {
    let bootstrap = spawn_bootstrap().await;
    let (mut alice, mut bob) = alice_and_bob(&bootstrap).await;
    let lunch = line_seen(&alice, &mut bob, "lunch at noon?").await;
    let alice_id = alice.client.peer_id();

    // Bob answers by the reference shown next to the line.
    let reply = bob
        .client
        .change(lobby(), prefix(&lunch), Op::Reply, "yes!".into())
        .await
        .unwrap();
    assert_eq!(reply.target, lunch);
    next_event(&mut alice.events, |e| match e {
        Event::Message {
            id, reply_to, text, ..
        } if *id == reply.id => {
            assert_eq!(*reply_to, Some(lunch));
            assert_eq!(text, "yes!");
            Some(())
        }
        _ => None,
    })
    .await;

    // Bob reacts to alice's line, alice to the newest line: bob's reply.
    let thumbs = bob
        .client
        .change(
            lobby(),
            prefix(&lunch),
            Op::React("👍".into()),
            String::new(),
        )
        .await
        .unwrap();
    next_event(&mut alice.events, |e| match e {
        Event::Reaction {
            target, emoji, id, ..
        } if *id == thumbs.id => {
            assert_eq!((*target, emoji.as_str()), (lunch, "👍"));
            Some(())
        }
        _ => None,
    })
    .await;
    alice
        .client
        .change(lobby(), Ref::Last, Op::React("❤".into()), String::new())
        .await
        .unwrap();

    // Only the author edits: bob may not touch alice's line, alice may.
    let refused = bob
        .client
        .change(
            lobby(),
            prefix(&lunch),
            Op::Edit("free lunch".into()),
            String::new(),
        )
        .await;
    assert!(
        matches!(refused, Err(NodeError::Ref(RefError::NotYours(_)))),
        "{refused:?}"
    );
    let edit = alice
        .client
        .change(
            lobby(),
            Ref::Last,
            Op::Edit("lunch at one?".into()),
            String::new(),
        )
        .await
        .unwrap();
    assert_eq!(edit.target, lunch, "last is alice's own newest line");
    next_event(&mut bob.events, |e| match e {
        Event::Edited {
            target, text, peer, ..
        } if *target == lunch => {
            assert_eq!((text.as_str(), *peer), ("lunch at one?", alice_id));
            Some(())
        }
        _ => None,
    })
    .await;

    // Both logs fold into the same current state.
    for node in [&alice, &bob] {
        wait_until("the reactions in the history", || async {
            let lines = node
                .client
                .lines(Conversation::Room(Room::Lobby), 10)
                .await
                .unwrap();
            lines.len() == 2 && !lines[0].reactions.is_empty() && !lines[1].reactions.is_empty()
        })
        .await;
        let lines = node
            .client
            .lines(Conversation::Room(Room::Lobby), 10)
            .await
            .unwrap();
        assert_eq!(lines[0].text, "lunch at one?");
        assert!(lines[0].edited);
        assert_eq!(lines[0].reactions_text(), "👍 1");
        assert_eq!(lines[1].reactions_text(), "❤ 1");
        let quote = lines[1].reply_to.as_ref().unwrap();
        assert_eq!(quote.text, "lunch at one?");
        assert_eq!(lines[1].text, "yes!");
    }

    // Alice withdraws her line.
    alice
        .client
        .change(lobby(), prefix(&lunch), Op::Delete, String::new())
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Deleted { target, .. } if *target == lunch => Some(()),
        _ => None,
    })
    .await;
    let lines = bob
        .client
        .lines(Conversation::Room(Room::Lobby), 10)
        .await
        .unwrap();
    assert!(lines[0].deleted && lines[0].text.is_empty());
    // The log only grew: the first text is still in it.
    let log =
        ipm_node::store::history::History::read_last(&bob.history_dir(), "lobby", 50).unwrap();
    assert!(log.iter().any(|e| e.text == "lunch at noon?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_edit_of_another_authors_line_is_refused_and_never_shown() {
    let bootstrap = spawn_bootstrap().await;
    let (alice, mut bob) = alice_and_bob(&bootstrap).await;
    let line = line_seen(&alice, &mut bob, "meet at the station").await;

    // Mallory, a peer of its own key, claims alice's name and sends an edit and a deletion
    // of her line, then a plain line of its own on the same connection.
    let mallory = RawPeer::connected_to(bob.addr.clone(), bob.client.peer_id()).await;
    mallory.subscribe(&Room::Lobby.topic()).await;
    wait_until("bob to see mallory in the lobby", || async {
        members(&bob.client, &Room::Lobby).await >= 2
    })
    .await;
    let forged = |op: Op| {
        let mut chat = ChatMessage::new("alice", "(edited) meet at the docks", None);
        chat.re = Some(Change::new(line, &op));
        encode_gossip(&Gossip::Chat(chat))
    };
    let topic = Room::Lobby.topic();
    let edit = forged(Op::Edit("meet at the docks".into()));
    // Mallory's first message goes out once it has seen bob's subscription.
    wait_until("mallory to see bob in the lobby", || async {
        mallory.publish(&topic, edit.clone()).await.is_ok()
    })
    .await;
    mallory.publish(&topic, forged(Op::Delete)).await.unwrap();
    let sentinel = ChatMessage::new("mallory", "just saying hi", None);
    mallory
        .publish(&topic, encode_gossip(&Gossip::Chat(sentinel.clone())))
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Edited { .. } | Event::Deleted { .. } => panic!("bob showed a forged change: {e:?}"),
        Event::Message { id, .. } if *id == sentinel.id => Some(()),
        _ => None,
    })
    .await;
    let lines = bob
        .client
        .lines(Conversation::Room(Room::Lobby), 10)
        .await
        .unwrap();
    assert_eq!(lines[0].text, "meet at the station");
    assert!(!lines[0].edited && !lines[0].deleted);
    let log =
        ipm_node::store::history::History::read_last(&bob.history_dir(), "lobby", 50).unwrap();
    assert!(
        log.iter().all(|e| !e.text.contains("docks")),
        "the forged change is not even logged: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_are_answered_reacted_to_edited_and_deleted() {
    let bootstrap = spawn_bootstrap().await;
    let (mut alice, mut bob) = alice_and_bob(&bootstrap).await;
    let bob_id = bob.client.peer_id();
    let alice_id = alice.client.peer_id();
    let sent = alice
        .client
        .send_direct(bob_id, "are you coming?".into())
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Direct { id, .. } if *id == sent.id => Some(()),
        _ => None,
    })
    .await;

    // A reference typed without a user, found in no room line, names the private message.
    let reply = bob
        .client
        .change(lobby(), prefix(&sent.id), Op::Reply, "on my way".into())
        .await
        .unwrap();
    assert_eq!(reply.conversation, Conversation::Direct(alice_id));
    next_event(&mut alice.events, |e| match e {
        Event::Direct { id, reply_to, .. } if *id == reply.id => {
            assert_eq!(*reply_to, Some(sent.id));
            Some(())
        }
        _ => None,
    })
    .await;
    let dm = (Conversation::Direct(alice_id), false);
    bob.client
        .change(
            dm.clone(),
            prefix(&sent.id),
            Op::React("👍".into()),
            String::new(),
        )
        .await
        .unwrap();
    // Bob's reply is his newest own line: he fixes it, then withdraws it.
    let edit = bob
        .client
        .change(
            dm.clone(),
            Ref::Last,
            Op::Edit("on my way, 5 min".into()),
            String::new(),
        )
        .await
        .unwrap();
    assert_eq!(edit.target, reply.id);
    next_event(&mut alice.events, |e| match e {
        Event::Edited { target, text, .. } if *target == reply.id => {
            assert_eq!(text, "on my way, 5 min");
            Some(())
        }
        _ => None,
    })
    .await;
    bob.client
        .change(dm, Ref::Last, Op::Delete, String::new())
        .await
        .unwrap();
    next_event(&mut alice.events, |e| match e {
        Event::Deleted { target, .. } if *target == reply.id => Some(()),
        _ => None,
    })
    .await;
    let lines = alice
        .client
        .lines(Conversation::Direct(bob_id), 10)
        .await
        .unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].reactions_text(), "👍 1");
    assert!(lines[0].delivered, "alice's message left her outbox");
    assert!(lines[1].deleted);
    // Alice may not withdraw bob's line.
    let refused = alice
        .client
        .change(
            (Conversation::Direct(bob_id), false),
            prefix(&reply.id),
            Op::Delete,
            String::new(),
        )
        .await;
    assert!(matches!(
        refused,
        Err(NodeError::Ref(RefError::NotYours(_)))
    ));
}
