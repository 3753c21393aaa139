//! Unread counts per room and private conversation: they grow with lines of others, go
//! to zero when a frontend shows the conversation, and survive a restart.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use ipm_node::{client::conversation::Unread, client::Conversation, Event};
use ipm_protocol::Room;
use libp2p::identity::Keypair;
use support::*;

fn count(unread: &[Unread], conversation: &Conversation) -> usize {
    unread
        .iter()
        .find(|u| &u.conversation == conversation)
        .map_or(0, |u| u.count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_move_with_lines_and_looks_and_survive_a_restart() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let tmp = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let mut bob = start_user(key.clone(), "bob", tmp.path(), &bootstrap.addr).await;
    wait_for_user(&bob.client, alice.client.peer_id(), "alice").await;
    wait_until("lobby peers", || async {
        members(&alice.client, &Room::Lobby).await > 0
            && members(&bob.client, &Room::Lobby).await > 0
    })
    .await;
    let lobby = Conversation::Room(Room::Lobby);
    let with_alice = Conversation::Direct(alice.client.peer_id());

    for text in ["one", "two", "three"] {
        let sent = alice
            .client
            .publish(Room::Lobby, text.into())
            .await
            .unwrap();
        next_event(&mut bob.events, |e| match e {
            Event::Message { id, .. } if *id == sent.id => Some(()),
            _ => None,
        })
        .await;
    }
    let dm = alice
        .client
        .send_direct(bob.client.peer_id(), "psst".into())
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Direct { id, .. } if *id == dm.id => Some(()),
        _ => None,
    })
    .await;
    // Bob's own line is not unread to him.
    bob.client
        .publish(Room::Lobby, "mine".into())
        .await
        .unwrap();
    let unread = bob.client.unread().await.unwrap();
    assert_eq!(count(&unread, &lobby), 3, "{unread:?}");
    assert_eq!(count(&unread, &with_alice), 1, "{unread:?}");

    // Bob looks at the lobby; a later line counts from there.
    bob.client.shown(lobby.clone(), None).await;
    assert_eq!(count(&bob.client.unread().await.unwrap(), &lobby), 0);
    let sent = alice
        .client
        .publish(Room::Lobby, "four".into())
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Message { id, .. } if *id == sent.id => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(count(&bob.client.unread().await.unwrap(), &lobby), 1);

    // After a restart the counts are the same.
    bob.stop().await;
    let bob = start_user(key, "bob", tmp.path(), &bootstrap.addr).await;
    let unread = bob.client.unread().await.unwrap();
    assert_eq!(count(&unread, &lobby), 1, "{unread:?}");
    assert_eq!(count(&unread, &with_alice), 1, "{unread:?}");
    bob.client.shown(with_alice.clone(), None).await;
    assert_eq!(count(&bob.client.unread().await.unwrap(), &with_alice), 0);
}
