//! Lobby chat across an overlay of in-process nodes over loopback TCP.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::HashSet;

use ipm_node::{store::history::History, Event};
use ipm_protocol::Room;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_message_reaches_every_node_that_only_knows_the_bootstrap() {
    let bootstrap = spawn_bootstrap().await;
    let mut nodes = Vec::new();
    for i in 0..6 {
        nodes.push(spawn_user(&format!("user{i}"), &bootstrap.addr).await);
    }
    // The overlay has formed: the bootstrap knows every node is in the lobby, and every
    // node knows someone who is.
    wait_until("the bootstrap to see the whole lobby", || async {
        members(&bootstrap.client, &Room::Lobby).await >= nodes.len()
    })
    .await;
    for node in &nodes {
        wait_until("lobby membership", || async {
            members(&node.client, &Room::Lobby).await >= 1
        })
        .await;
    }
    let user0 = nodes[0].client.peer_id();
    for node in nodes.iter().skip(1) {
        wait_for_user(&node.client, user0, "user0").await;
    }
    let sent = nodes[0]
        .client
        .publish(Room::Lobby, "hello overlay".into())
        .await
        .unwrap();
    for node in nodes.iter_mut().skip(1) {
        let (from, text) = next_event(&mut node.events, |e| match e {
            Event::Message { id, from, text, .. } if *id == sent.id => {
                Some((from.clone(), text.clone()))
            }
            _ => None,
        })
        .await;
        assert_eq!(from, "user0");
        assert_eq!(text, "hello overlay");
    }
    // Every receiver logged it; the sender logged its own line.
    for node in &nodes {
        let log = History::read_last(&node.history_dir(), "lobby", 10).unwrap();
        assert!(log
            .iter()
            .any(|e| e.id == sent.id.to_string() && e.text == "hello overlay"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_sending_the_same_words_both_arrive() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let bob = spawn_user("bob", &bootstrap.addr).await;
    let mut carol = spawn_user("carol", &bootstrap.addr).await;
    wait_until("the bootstrap to see the whole lobby", || async {
        members(&bootstrap.client, &Room::Lobby).await >= 3
    })
    .await;
    for node in [&alice, &bob, &carol] {
        wait_until("lobby membership", || async {
            members(&node.client, &Room::Lobby).await >= 1
        })
        .await;
    }
    wait_for_user(&carol.client, alice.client.peer_id(), "alice").await;
    wait_for_user(&carol.client, bob.client.peer_id(), "bob").await;
    let a = alice
        .client
        .publish(Room::Lobby, "same words".into())
        .await
        .unwrap();
    let b = bob
        .client
        .publish(Room::Lobby, "same words".into())
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        let (id, from) = next_event(&mut carol.events, |e| match e {
            Event::Message { id, from, text, .. } if text == "same words" => {
                Some((*id, from.clone()))
            }
            _ => None,
        })
        .await;
        seen.insert((id, from));
    }
    let froms: HashSet<String> = seen.into_iter().map(|(_, f)| f).collect();
    assert_eq!(froms, HashSet::from(["alice".to_owned(), "bob".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_message_reaches_only_members_of_that_room() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let mut carol = spawn_user("carol", &bootstrap.addr).await;
    wait_until("the bootstrap to see the whole lobby", || async {
        members(&bootstrap.client, &Room::Lobby).await >= 3
    })
    .await;
    let rust = Room::parse("interest:rust").unwrap();
    alice.client.join(rust.clone()).await.unwrap();
    bob.client.join(rust.clone()).await.unwrap();
    wait_until("bob in alice's view of the room", || async {
        members(&alice.client, &rust).await >= 1
    })
    .await;
    let sent = alice
        .client
        .publish(rust.clone(), "borrowck".into())
        .await
        .unwrap();
    let room = next_event(&mut bob.events, |e| match e {
        Event::Message { id, room, .. } if *id == sent.id => Some(room.clone()),
        _ => None,
    })
    .await;
    assert_eq!(room, rust);
    // Carol hears the lobby line sent after it, and never the room line.
    let lobby = alice
        .client
        .publish(Room::Lobby, "after".into())
        .await
        .unwrap();
    next_event(&mut carol.events, |e| match e {
        Event::Message { id, .. } if *id == lobby.id => Some(()),
        Event::Message { id, .. } if *id == sent.id => panic!("carol got a room she never joined"),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_node_does() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    wait_until("lobby membership", || async {
        members(&alice.client, &Room::Lobby).await >= 1
    })
    .await;
    alice
        .client
        .publish(Room::Lobby, "counted".into())
        .await
        .unwrap();
    let listener = ipm_node::net::metrics::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(ipm_node::net::metrics::serve(
        listener,
        alice.client.metrics(),
    ));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains(r#"ipm_messages_sent_total{kind="room"} 1"#),
        "{body}"
    );
    assert!(
        body.contains("ipm_libp2p_swarm_connections_established"),
        "{body}"
    );
}
