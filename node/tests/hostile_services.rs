//! Attacks on what a bootstrap serves and on private messages, played with real nodes and raw
//! libp2p peers (real TCP, Noise, Yamux) holding fresh keys: a private message pre-empted by a
//! copy with a stolen id, a mailbox filled by many cheap keys, a squatter registering many
//! names from one address, and a name that only looks like one already held.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use ipm_node::{client::login::Login, Event};
use ipm_protocol::{
    decode, encode, limits, DirectMessage, DirectRequest, DirectResponse, MailboxRequest,
    MailboxResponse, MessageId, NameRecord, RegistryError, RegistryRequest, RegistryResponse,
    Sealed, SignedName,
};
use libp2p::identity::Keypair;
use raw_peer::{Proto, RawPeer};
use support::*;

/// Starts a raw peer (a fresh key) connected to `victim`.
async fn raw_peer_connected_to(victim: &TestNode) -> RawPeer {
    RawPeer::connected_to(victim.addr.clone(), victim.client.peer_id()).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_keys_at_one_address_cannot_fill_a_recipients_mailbox() {
    let bootstrap = spawn_bootstrap().await;
    let boot_id = bootstrap.client.peer_id();
    let bob_key = Keypair::generate_ed25519();
    let bob_id = bob_key.public().to_peer_id();

    // The flood: fresh keys at 127.0.0.2, each up to its quota of 200 messages, all for Bob
    // (five keys filled his 1000 slots before).
    let mut stored = 0;
    let mut keys = 0;
    let refusal = 'flood: loop {
        assert!(keys < 8, "{keys} keys stored {stored} messages for Bob");
        let raw = RawPeer::dialled_by("127.0.0.2", &bootstrap.client).await;
        keys += 1;
        for _ in 0..limits::MAX_MAILBOX_PER_SENDER {
            let deposit = MailboxRequest::Deposit {
                to: bob_id.to_bytes(),
                message: Sealed {
                    id: MessageId::random(),
                    sealed: vec![0; 64],
                },
                ttl_ms: limits::MAX_MAILBOX_TTL_MS,
            };
            let answer = raw
                .request(boot_id, Proto::Mailbox, encode(&deposit))
                .await
                .unwrap();
            match decode(&answer, limits::MAX_MAILBOX_RESPONSE_LEN).unwrap() {
                MailboxResponse::Stored => stored += 1,
                MailboxResponse::Refused(reason) => break 'flood reason,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    println!("the flood: {keys} keys stored {stored} messages for Bob, then: {refusal}");
    assert!(
        stored <= limits::MAX_MAILBOX_PER_RECIPIENT / 10,
        "{stored} stored"
    );

    // Alice writes to Bob, who is offline: her message waits at the bootstrap...
    let mut alice = spawn_user("alice", &bootstrap.addr).await;
    let outcome = alice
        .client
        .send_direct(bob_id, "hello bob".into())
        .await
        .unwrap();
    assert!(!outcome.delivered);
    next_event(&mut alice.events, |e| match e {
        Event::Queued { id, at, .. } if *id == outcome.id && *at == Some(boot_id) => Some(()),
        _ => None,
    })
    .await;

    // ... and Bob gets it when he comes online.
    let bob_dir = tempfile::tempdir().unwrap();
    let mut bob = start_user(bob_key, "bob", bob_dir.path(), &bootstrap.addr).await;
    let alice_id = alice.client.peer_id();
    let text = next_event(&mut bob.events, |e| match e {
        Event::Direct { peer, text, .. } if *peer == alice_id => Some(text.clone()),
        _ => None,
    })
    .await;
    assert_eq!(text, "hello bob");
}

/// Asks the bootstrap for `name` with the raw peer's key.
async fn register(raw: &RawPeer, bootstrap: &TestNode, name: &str) -> RegistryResponse {
    let record = NameRecord::sign(&raw.key, name, ipm_protocol::now_ms()).unwrap();
    let request = RegistryRequest::Register(SignedName::new(&record));
    let answer = raw
        .request(
            bootstrap.client.peer_id(),
            Proto::Registry,
            encode(&request),
        )
        .await
        .unwrap();
    decode(&answer, limits::MAX_REGISTRY_RESPONSE_LEN).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_with_fresh_keys_at_one_address_takes_only_a_few_names() {
    // The squatter's loopback address counts as a remote one would.
    let mut config = bootstrap_config();
    config.address_limits.loopback_exempt = false;
    let bootstrap = spawn(config).await;
    let common = [
        "anna", "ben", "carla", "david", "emma", "felix", "greta", "hans", "ida", "jonas", "klara",
        "lukas", "mia", "noah", "olga", "paul", "rosa", "sven", "tina", "uwe", "vera", "willi",
        "xenia", "yusuf",
    ];
    let mut taken = Vec::new();
    let mut refused = Vec::new();
    for name in common {
        let raw = RawPeer::dialled_by("127.0.0.2", &bootstrap.client).await;
        match register(&raw, &bootstrap, name).await {
            RegistryResponse::Registered { new: true, .. } => taken.push(name),
            RegistryResponse::Refused(RegistryError::Refused(reason)) => refused.push(reason),
            other => panic!("unexpected {other:?}"),
        }
    }
    println!(
        "the squatter: {} keys at one address took {} names, {} refused ({:?})",
        common.len(),
        taken.len(),
        refused.len(),
        refused.first()
    );
    assert!(taken.len() <= 16, "{} names taken", taken.len());
    assert!(!refused.is_empty());

    // A user at another address is not held back by the squatter's budget.
    let ida = spawn_user("ida", &bootstrap.addr).await;
    let login = tokio::time::timeout(WAIT, ida.client.login_at(bootstrap.client.peer_id()))
        .await
        .unwrap()
        .unwrap();
    if taken.contains(&"ida") {
        assert!(matches!(login, Login::Taken { .. }), "{login:?}");
    } else {
        assert_eq!(login, Login::Registered { new: true });
    }
    let newcomer = spawn_user("zora", &bootstrap.addr).await;
    let login = tokio::time::timeout(WAIT, newcomer.client.login_at(bootstrap.client.peer_id()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login, Login::Registered { new: true });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_only_looks_like_a_held_one_is_refused() {
    let bootstrap = spawn_bootstrap().await;
    let login = |node: &TestNode| {
        let client = node.client.clone();
        let at = bootstrap.client.peer_id();
        async move {
            tokio::time::timeout(WAIT, client.login_at(at))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let alice = spawn_user("alice", &bootstrap.addr).await;
    assert_eq!(login(&alice).await, Login::Registered { new: true });
    // A Cyrillic а among Latin letters, and a capital I for the l.
    for fake in ["аlice", "aIice"] {
        let mallory = spawn_user(fake, &bootstrap.addr).await;
        match login(&mallory).await {
            Login::Refused(reason) => println!("{fake}: {reason}"),
            other => panic!("{fake} got {other:?}"),
        }
        mallory.stop().await;
    }
}
