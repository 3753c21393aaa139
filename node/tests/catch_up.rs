//! Catching up on rooms after being away (`/ipm/history/1`): from the bootstrap's archive
//! after a restart, for a newcomer, and never a line a hostile store forged or altered.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::collections::HashSet;

use ipm_node::{store::data_dir::DataDir, store::history::History, Config, Event};
use ipm_protocol::{
    decode_gossip, encode, encode_gossip, sign_chat, ArchivedLine, ChatMessage, Gossip,
    HistoryResponse, Room,
};
use libp2p::identity::Keypair;
use raw_peer::RawPeer;
use serde_bytes::ByteBuf;
use support::procs::*;
use support::*;

/// What a node printed after starting again: the marker's count, the room lines that
/// followed it, and the private messages.
#[derive(Debug, Default)]
struct Seen {
    caught_up: Option<u64>,
    first_visit: Option<bool>,
    lines: Vec<String>,
    direct: Vec<String>,
}

/// Reads `proc`'s JSON events until the marker, `lines` room lines after it and `direct`
/// private messages came.
fn read_catch_up(proc: &Proc, lines: usize, direct: usize) -> Seen {
    let mut seen = Seen::default();
    proc.wait_line("the lines missed", |line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        match v["event"].as_str()? {
            "caught_up" if v["room"] == "lobby" => {
                assert!(seen.caught_up.is_none(), "a second marker: {line}");
                seen.caught_up = v["count"].as_u64();
                seen.first_visit = v["first_visit"].as_bool();
            }
            "message" => {
                assert!(seen.caught_up.is_some(), "a line before the marker: {line}");
                seen.lines.push(v["text"].as_str()?.to_owned());
            }
            "direct" => seen.direct.push(v["text"].as_str()?.to_owned()),
            _ => {}
        }
        (seen.lines.len() >= lines && seen.direct.len() >= direct).then_some(())
    });
    seen
}

#[test]
fn a_member_back_from_a_kill_and_a_newcomer_catch_up_on_the_lobby() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (boot_dir, alice_dir, bob_dir, carol_dir) = (
        dirs[0].path(),
        dirs[1].path(),
        dirs[2].path(),
        dirs[3].path(),
    );
    let (bootstrap, boot) = start_bootstrap(boot_dir);
    let _alice = start_node("alice", alice_dir, &boot);
    let mut bob = start_node("bob", bob_dir, &boot);
    wait_for_users(alice_dir, &["bob"]);
    ctl_ok(alice_dir, &["before bob left"]);
    // A first start has nothing to catch up on, and says nothing about being away.
    bob.wait_event("the last line before the kill", |v| {
        assert_ne!(v["event"], "caught_up", "a marker on a first start: {v}");
        v["text"] == "before bob left"
    });
    bob.kill9();

    let said: Vec<String> = (0..20).map(|i| format!("note {i:02} :wave:")).collect();
    for line in &said {
        ctl_ok(alice_dir, &[line]);
    }
    for text in ["first secret", "second secret"] {
        ctl_ok(alice_dir, &["/msg", "bob", text]);
    }
    let shown: Vec<String> = said.iter().map(|l| l.replace(":wave:", "👋")).collect();

    let bob = start_node("bob", bob_dir, &boot);
    let seen = read_catch_up(&bob, 20, 2);
    assert_eq!(seen.caught_up, Some(20), "{seen:?}");
    assert_eq!(seen.first_visit, Some(false), "bob was away: {seen:?}");
    assert_eq!(seen.lines, shown, "each line once, in order");
    assert_eq!(seen.direct, ["first secret", "second secret"]);
    // The lines are in bob's log like any others, each once.
    let history = ctl_ok(bob_dir, &["/history", "lobby", "100"]);
    for line in &shown {
        assert_eq!(history.matches(line.as_str()).count(), 1, "{history}");
    }
    assert_eq!(history.matches("before bob left").count(), 1, "{history}");

    // The bootstrap restarts: its archive is on disk. Carol was never here: she gets the
    // same lines, and the one bob had seen before.
    drop(bootstrap);
    let (_bootstrap, boot) = start_bootstrap(boot_dir);
    let carol = start_node("carol", carol_dir, &boot);
    let seen = read_catch_up(&carol, 21, 0);
    assert_eq!(seen.caught_up, Some(21), "{seen:?}");
    assert_eq!(
        seen.first_visit,
        Some(true),
        "carol was never here: {seen:?}"
    );
    assert_eq!(seen.lines[0], "before bob left");
    assert_eq!(seen.lines[1..], shown[..]);
}

/// A signed lobby line of `key`, as a store keeps it.
fn archived(key: &Keypair, text: &str) -> ArchivedLine {
    let chat = ChatMessage::new("dave", text, None);
    ArchivedLine {
        author: ByteBuf::from(key.public().to_peer_id().to_bytes()),
        ts: ipm_protocol::now_ms() - 60_000,
        data: ByteBuf::from(sign_chat(key, &Room::Lobby.topic(), chat).unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_cannot_forge_or_alter_a_line() {
    let (dave, mallory) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let good = archived(&dave, "the real line");
    // Mallory's line, claimed as dave's.
    let mut forged = archived(&mallory, "forged line");
    forged.author = good.author.clone();
    // Dave's line, its text changed.
    let mut altered = archived(&dave, "pay alice");
    let Gossip::Chat(mut chat) = decode_gossip(&altered.data).unwrap() else {
        panic!("a chat line")
    };
    chat.text = "pay mallory".into();
    altered.data = ByteBuf::from(encode_gossip(&Gossip::Chat(chat)));
    let answer = HistoryResponse::Lines(vec![forged, good, altered]);

    let tmp = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests("carol");
    config.data_dir = Some(DataDir::open(tmp.path()).unwrap());
    let mut carol = spawn(config).await;
    // The store is the only member carol finds in the lobby.
    let store = RawPeer::start().await;
    store.serve_history(encode(&answer));
    store.subscribe(&Room::Lobby.topic()).await;
    store.dial(carol.addr.clone()).await;

    let count = next_event(&mut carol.events, |e| match e {
        Event::CaughtUp { room, count, .. } if *room == Room::Lobby => Some(*count),
        _ => None,
    })
    .await;
    assert_eq!(count, 1);
    let text = next_event(&mut carol.events, |e| match e {
        Event::Message { text, .. } => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(text, "the real line");
    let logged: HashSet<String> = History::read_last(&carol.history_dir(), "lobby", 10)
        .unwrap()
        .into_iter()
        .map(|e| e.text)
        .collect();
    assert_eq!(logged, HashSet::from(["the real line".to_owned()]));
}

/// A user node keeping its state in `dir`, with no bootstrap.
fn member_config(name: &str, dir: &std::path::Path) -> Config {
    let mut config = Config::for_tests(name);
    config.data_dir = Some(DataDir::open(dir).unwrap());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bootstrap_a_member_answers_from_its_log() {
    let rust = Room::interest("rust").unwrap();
    let (alice_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice = spawn(member_config("alice", alice_dir.path())).await;
    let bob_key = Keypair::generate_ed25519();
    let mut bob = spawn_with_key(bob_key.clone(), member_config("bob", bob_dir.path())).await;
    alice.client.join(rust.clone()).await.unwrap();
    bob.client.join(rust.clone()).await.unwrap();
    bob.client.dial(alice.addr.clone()).await.unwrap();
    wait_until("alice and bob share the room", || async {
        members(&alice.client, &rust).await > 0 && members(&bob.client, &rust).await > 0
    })
    .await;
    alice
        .client
        .publish(rust.clone(), "one".into())
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::Message { text, .. } if text == "one" => Some(()),
        _ => None,
    })
    .await;
    bob.stop().await;
    next_event(&mut alice.events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    for text in ["two", "three"] {
        alice
            .client
            .publish(rust.clone(), text.into())
            .await
            .unwrap();
    }

    let mut bob = spawn_with_key(bob_key, member_config("bob", bob_dir.path())).await;
    bob.client.join(rust.clone()).await.unwrap();
    bob.client.dial(alice.addr.clone()).await.unwrap();
    let count = next_event(&mut bob.events, |e| match e {
        Event::CaughtUp { room, count, .. } if *room == rust => Some(*count),
        _ => None,
    })
    .await;
    assert_eq!(count, 2);
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let text = next_event(&mut bob.events, |e| match e {
            Event::Message { text, room, .. } if *room == rust => Some(text.clone()),
            _ => None,
        })
        .await;
        texts.push(text);
    }
    assert_eq!(texts, ["two", "three"]);
}
