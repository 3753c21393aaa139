//! `/search` over what a node logged: room lines and private messages that arrived from
//! real peers, found by their words, newest first, in every conversation or in one.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use ipm_node::{
    ui::session::{Outcome, Session},
    Event,
};
use ipm_protocol::Room;
use support::*;

async fn answer(session: &Session, line: &str) -> String {
    match session.run_line(line).await {
        Ok(Outcome::Text(text)) => text,
        other => panic!("{line}: {other:?}"),
    }
}

/// `from` says `text` in the lobby; returns once `to` has it.
async fn say(from: &TestNode, to: &mut TestNode, text: &str) {
    let line = from.client.publish(Room::Lobby, text.into()).await.unwrap();
    next_event(&mut to.events, |e| match e {
        Event::Message { id, .. } if *id == line.id => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_and_private_messages_are_found_by_their_words_newest_first() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    wait_until("alice and bob to see each other in the lobby", || async {
        members(&alice.client, &Room::Lobby).await >= 1
            && members(&bob.client, &Room::Lobby).await >= 1
    })
    .await;
    wait_for_user(&bob.client, alice.client.peer_id(), "alice").await;

    say(&alice, &mut bob, "Lunch at noon, anyone?").await;
    say(&alice, &mut bob, "the build is green").await;
    let direct = alice
        .client
        .send_direct(bob.client.peer_id(), "lunch tomorrow instead?".into())
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Direct { id, .. } if *id == direct.id => Some(()),
        _ => None,
    })
    .await;

    let session = Session::new(bob.client.clone());
    let all = answer(&session, "/search LUNCH").await;
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2, "{all}");
    assert!(lines[0].starts_with("[@alice] "), "{all}");
    assert!(
        lines[0].ends_with("alice: lunch tomorrow instead?"),
        "{all}"
    );
    assert!(lines[1].starts_with("[lobby] "), "{all}");
    assert!(lines[1].ends_with("alice: Lunch at noon, anyone?"), "{all}");

    let in_lobby = answer(&session, "/search lunch noon in lobby").await;
    assert_eq!(in_lobby.lines().count(), 1, "{in_lobby}");
    assert!(
        in_lobby.ends_with("alice: Lunch at noon, anyone?"),
        "{in_lobby}"
    );
    let with_alice = answer(&session, "/search lunch in alice").await;
    assert!(
        with_alice.ends_with("alice: lunch tomorrow instead?"),
        "{with_alice}"
    );
    assert_eq!(with_alice.lines().count(), 1, "{with_alice}");

    assert_eq!(
        answer(&session, "/search pizza").await,
        "no line holds pizza"
    );
    let usage = session.run_line("/search").await.unwrap_err().to_string();
    assert!(usage.contains("/search <words>"), "{usage}");
}
