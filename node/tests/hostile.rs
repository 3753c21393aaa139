//! Hostile peers: a raw libp2p peer (real TCP, Noise, Yamux) sends malformed, oversized,
//! forged, replayed and endless input on every ipm protocol. The node stays up, keeps
//! answering, keeps its memory bounded, writes nothing outside its downloads folder, cuts the
//! spammer off, and its honest peers keep chatting.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::time::{Duration, Instant};

use ipm_node::{Config, Event};
use ipm_protocol::{
    encode, encode_gossip, limits, ChatMessage, DirectMessage, DirectRequest, FileOffer,
    FileRequest, FileResponse, Gossip, Room, TransferId,
};
use libp2p::PeerId;
use raw_peer::{Proto, RawEvent, RawPeer};
use sha2::Digest;
use support::*;

const LOBBY: &str = "/ipm/1/lobby";

/// CBOR envelopes and raw bytes no ipm decoder may accept, each small enough to send.
fn malformed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("not CBOR", b"hello, is this ipm?".to_vec()),
        // { "v": 99, "body": null }
        (
            "unknown version",
            vec![
                0xa2, 0x61, b'v', 0x18, 99, 0x64, b'b', b'o', b'd', b'y', 0xf6,
            ],
        ),
        // { "v": 1, "body": <byte string declaring 2^64-1 bytes> }
        (
            "absurd byte-string length",
            vec![
                0xa2, 0x61, b'v', 0x01, 0x64, b'b', b'o', b'd', b'y', 0x5b, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff,
            ],
        ),
        // { "v": 1, "body": <array declaring 2^32-1 items> }
        (
            "absurd array length",
            vec![
                0xa2, 0x61, b'v', 0x01, 0x64, b'b', b'o', b'd', b'y', 0x9a, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
        // A map nested deeper than any decoder should follow.
        ("deep nesting", vec![0x81; 3000]),
    ]
}

fn max_request(proto: Proto) -> usize {
    match proto {
        Proto::Direct => limits::MAX_DIRECT_REQUEST_LEN,
        Proto::File => limits::MAX_FILE_REQUEST_LEN,
        Proto::Mailbox => limits::MAX_MAILBOX_REQUEST_LEN,
        Proto::Registry => limits::MAX_REGISTRY_REQUEST_LEN,
        Proto::History => limits::MAX_HISTORY_REQUEST_LEN,
    }
}

/// Whether a raw request got nothing back: the stream was reset, or closed without a byte.
fn no_answer(answer: &Result<Vec<u8>, String>) -> bool {
    answer.as_ref().map_or(true, Vec::is_empty)
}

/// The last four characters of a peer id, as names are disambiguated on screen.
fn short(peer: &PeerId) -> String {
    let s = peer.to_base58();
    s[s.len() - 4..].to_owned()
}

/// Resident memory of this test process, in KiB (Linux `/proc/self/status`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Starts a raw peer (a fresh key) connected to `victim`.
async fn raw_peer_connected_to(victim: &TestNode) -> RawPeer {
    RawPeer::connected_to(victim.addr.clone(), victim.client.peer_id()).await
}

/// A private message from `from` to `to` is acknowledged.
async fn assert_delivers(from: &TestNode, to: &TestNode, text: &str) {
    let outcome = tokio::time::timeout(
        WAIT,
        from.client.send_direct(to.client.peer_id(), text.into()),
    )
    .await
    .expect("the private message got no answer in time")
    .unwrap();
    assert!(outcome.delivered, "{text:?} was not delivered");
}

/// `sender` publishes in the lobby and `receiver` shows it.
async fn assert_chats(sender: &TestNode, receiver: &mut TestNode, text: &str) {
    let sent = sender
        .client
        .publish(Room::Lobby, text.into())
        .await
        .unwrap();
    next_event(&mut receiver.events, |e| match e {
        Event::Message { id, .. } if *id == sent.id => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_on_every_protocol_get_no_answer_and_change_nothing() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let bob = spawn_user("bob", &bootstrap.addr).await;
    let raw = raw_peer_connected_to(&alice).await;
    raw.dial(bootstrap.addr.clone()).await;

    // The bootstrap serves all three protocols; a user node serves private messages and files.
    let victims = [
        (alice.client.peer_id(), vec![Proto::Direct, Proto::File]),
        (bootstrap.client.peer_id(), Proto::ALL.to_vec()),
    ];
    for (victim, protos) in &victims {
        for proto in protos {
            let mut inputs = malformed_inputs();
            inputs.push((
                "one byte over the limit",
                vec![0xa2; max_request(*proto) + 1],
            ));
            inputs.push(("eight MiB", vec![0; 8 << 20]));
            for (what, bytes) in inputs {
                let answer = raw.request(*victim, *proto, bytes).await;
                assert!(
                    no_answer(&answer),
                    "{proto:?} answered {what}: {answer:?} (expected the stream to be dropped)"
                );
            }
        }
    }
    // A user node does not serve mailboxes at all.
    let answer = raw
        .request(
            alice.client.peer_id(),
            Proto::Mailbox,
            encode(&DirectRequest::Message(DirectMessage::new("x", "y"))),
        )
        .await;
    assert!(no_answer(&answer), "{answer:?}");

    // A well-formed private message with a forged name still arrives, under the raw peer's
    // own identity: a name on the wire is a claim, the peer id is who sent it.
    let mut alice = alice;
    let forged = DirectMessage::new("bob", "it is me, bob");
    let answer = raw
        .request(
            alice.client.peer_id(),
            Proto::Direct,
            encode(&DirectRequest::Message(forged.clone())),
        )
        .await
        .expect("a valid private message is answered");
    assert!(!answer.is_empty());
    let (from, peer) = next_event(&mut alice.events, |e| match e {
        Event::Direct { id, from, peer, .. } if *id == forged.id => Some((from.clone(), *peer)),
        _ => None,
    })
    .await;
    assert_eq!(peer, raw.peer_id);
    assert_eq!(from, format!("bob#{}", short(&raw.peer_id)));

    // Both victims are up and answer honest peers.
    assert_delivers(&bob, &alice, "still there?").await;
    assert_delivers(&alice, &bob, "yes").await;
    bootstrap.client.status().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_file_offers_are_sanitised_bounded_and_never_write_outside_downloads() {
    let bootstrap = spawn_bootstrap().await;
    let mut config = Config::for_tests("alice");
    config.auto_accept = true;
    let mut alice = spawn_user_with(config, &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let raw = raw_peer_connected_to(&alice).await;
    raw.dial(bob.addr.clone()).await;

    let outside = tempfile::tempdir().unwrap();
    let absolute = outside.path().join("absolute-target");
    let offer = |name: &str, size: u64| FileOffer {
        transfer: TransferId::random(),
        from_name: "mallory".into(),
        name: name.into(),
        size,
        sha256: [0; 32],
        folder: None,
    };
    // An absurd declared size is refused by the decoder: no answer, no offer shown.
    let huge = offer("huge.bin", 1 << 63);
    let answer = raw
        .request(
            alice.client.peer_id(),
            Proto::File,
            encode(&FileRequest::Offer(huge.clone())),
        )
        .await;
    assert!(no_answer(&answer), "{answer:?}");

    // Names that try to leave the downloads folder; the raw peer really serves the files.
    let content = b"you have been pwned\n".to_vec();
    let sha256: [u8; 32] = sha2::Sha256::digest(&content).into();
    let mut served = Vec::new();
    for name in [absolute.display().to_string(), "../../escaped".to_string()] {
        let o = FileOffer {
            sha256,
            ..offer(&name, content.len() as u64)
        };
        raw.serve(o.transfer, content.clone());
        served.push(o.transfer);
        let answer = raw
            .request(
                alice.client.peer_id(),
                Proto::File,
                encode(&FileRequest::Offer(o)),
            )
            .await
            .unwrap();
        let response: FileResponse =
            ipm_protocol::decode(&answer, limits::MAX_FILE_RESPONSE_LEN).unwrap();
        assert!(matches!(response, FileResponse::Noted), "{response:?}");
    }
    // Names with nothing usable left are refused.
    for name in ["..", "/", "../.."] {
        let answer = raw
            .request(
                alice.client.peer_id(),
                Proto::File,
                encode(&FileRequest::Offer(offer(name, 10))),
            )
            .await
            .unwrap();
        let response: FileResponse =
            ipm_protocol::decode(&answer, limits::MAX_FILE_RESPONSE_LEN).unwrap();
        assert!(
            matches!(response, FileResponse::Error(_)),
            "{name}: {response:?}"
        );
    }
    // Every offer alice shows has a plain name, the absurd size never shows, and the files
    // auto-accepted land in the downloads folder.
    let mut received = Vec::new();
    next_event(&mut alice.events, |e| {
        match e {
            Event::FileOffer { transfer, name, .. } => {
                assert_ne!(*transfer, huge.transfer, "an offer of 2^63 bytes was shown");
                assert!(
                    !name.contains('/') && !name.contains('\\') && !name.starts_with('.'),
                    "unsafe file name shown: {name:?}"
                );
            }
            Event::FileReceived { transfer, path, .. } if served.contains(transfer) => {
                received.push(path.clone())
            }
            Event::FileFailed { transfer, reason } if served.contains(transfer) => {
                panic!("download failed: {reason}")
            }
            _ => {}
        }
        (received.len() == served.len()).then_some(())
    })
    .await;
    let downloads = alice.dir.join("downloads").canonicalize().unwrap();
    for path in &received {
        let path = path.canonicalize().unwrap();
        assert_eq!(
            path.parent(),
            Some(downloads.as_path()),
            "{}",
            path.display()
        );
        assert_eq!(std::fs::read(&path).unwrap(), content);
    }
    let mut names: Vec<String> = received
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["absolute-target", "escaped"]);
    assert!(
        !absolute.exists(),
        "an absolute file name escaped the downloads folder"
    );
    assert!(!alice.dir.parent().unwrap().join("escaped").exists());
    assert!(!alice.dir.join("escaped").exists());

    // Pending offers are bounded per sender: bob (who does not auto-accept) notes the first
    // ones and refuses the rest.
    let mut noted = 0;
    let mut refused = 0;
    for i in 0..limits::MAX_PENDING_OFFERS_PER_PEER + 4 {
        let answer = raw
            .request(
                bob.client.peer_id(),
                Proto::File,
                encode(&FileRequest::Offer(offer(&format!("spam{i}.txt"), 10))),
            )
            .await
            .unwrap();
        match ipm_protocol::decode(&answer, limits::MAX_FILE_RESPONSE_LEN).unwrap() {
            FileResponse::Noted => noted += 1,
            FileResponse::Error(reason) => {
                assert!(reason.contains("too many offers"), "{reason}");
                refused += 1
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(noted, limits::MAX_PENDING_OFFERS_PER_PEER);
    assert_eq!(refused, 4);
    let pending = bob.client.transfers().await.unwrap();
    assert_eq!(pending.len(), limits::MAX_PENDING_OFFERS_PER_PEER);

    // Honest chat goes on.
    assert_chats(&alice, &mut bob, "files are fine here").await;
    assert_delivers(&bob, &alice, "and private messages too").await;
}

/// Waits until the raw peer is in `victim`'s lobby mesh: `victim` publishes until the raw
/// peer hears it.
async fn raw_hears_lobby_of(raw: &mut RawPeer, victim: &TestNode) {
    raw.subscribe(LOBBY).await;
    let victim_id = victim.client.peer_id();
    let deadline = Instant::now() + WAIT;
    loop {
        victim
            .client
            .publish(Room::Lobby, "anyone?".into())
            .await
            .unwrap();
        let heard = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                if let Some(RawEvent::Gossip { source, .. }) = raw.events.recv().await {
                    if source == Some(victim_id) {
                        return;
                    }
                }
            }
        })
        .await;
        if heard.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the raw peer never heard the lobby"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_room_messages_are_shown_once_under_the_true_sender() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let mut raw = raw_peer_connected_to(&bob).await;
    raw_hears_lobby_of(&mut raw, &bob).await;

    // A message claiming to be from alice.
    let forged = ChatMessage::new("alice", "send me your password", None);
    let bytes = encode_gossip(&Gossip::Chat(forged.clone()));
    raw.publish(LOBBY, bytes.clone()).await.unwrap();
    // Replayed as it is (a new gossipsub message carrying the same ipm message).
    raw.publish(LOBBY, bytes).await.unwrap();
    // alice's own message, captured and re-published by the raw peer.
    let honest = alice
        .client
        .publish(Room::Lobby, "hello bob".into())
        .await
        .unwrap();
    let captured = raw
        .next_event(|e| match e {
            RawEvent::Gossip { data, .. } => match ipm_protocol::decode_gossip(data) {
                Ok(Gossip::Chat(c)) if c.id == honest.id => Some(data.clone()),
                _ => None,
            },
            _ => None,
        })
        .await;
    raw.publish(LOBBY, captured).await.unwrap();
    let sentinel = ChatMessage::new("mallory", "last one", None);
    raw.publish(LOBBY, encode_gossip(&Gossip::Chat(sentinel.clone())))
        .await
        .unwrap();

    let (mut forged_seen, mut honest_seen) = (Vec::new(), 0);
    next_event(&mut bob.events, |e| match e {
        Event::Message { id, from, peer, .. } => {
            if *id == forged.id {
                forged_seen.push((from.clone(), *peer));
            }
            if *id == honest.id {
                honest_seen += 1;
                assert_eq!(
                    *peer,
                    alice.client.peer_id(),
                    "a replay was shown as alice's"
                );
            }
            (*id == sentinel.id).then_some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(
        forged_seen,
        vec![(format!("alice#{}", short(&raw.peer_id)), raw.peer_id)],
        "the forged message must show once, under the raw peer's identity"
    );
    assert!(honest_seen <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lobby_spammer_is_rejected_graylisted_and_cut_off_while_honest_users_keep_chatting() {
    let bootstrap = spawn_bootstrap().await;
    let mut alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let mut garbage = raw_peer_connected_to(&bob).await;
    raw_hears_lobby_of(&mut garbage, &bob).await;
    let mut flooder = raw_peer_connected_to(&bob).await;
    raw_hears_lobby_of(&mut flooder, &bob).await;

    // Invalid payloads: rejected, each one lowers the sender's score.
    for (_, bytes) in malformed_inputs()
        .into_iter()
        .filter(|(_, b)| b.len() < 1000)
    {
        let _ = garbage.publish(LOBBY, bytes).await;
    }
    let oversized = vec![0u8; limits::MAX_GOSSIP_LEN + 10];
    let _ = garbage.publish(LOBBY, oversized).await;
    let bob_id = bob.client.peer_id();
    garbage
        .next_event(|e| matches!(e, RawEvent::Disconnected(p) if *p == bob_id).then_some(()))
        .await;
    // Coming back does not help: the score is kept and the peer is cut off again.
    garbage.dial(bob.addr.clone()).await;
    garbage
        .next_event(|e| matches!(e, RawEvent::Disconnected(p) if *p == bob_id).then_some(()))
        .await;

    // Valid messages, far beyond the author's budget: only about a burst is shown, and the
    // flooder is cut off too.
    let started = Instant::now();
    let mut ids = std::collections::HashSet::new();
    for i in 0..200 {
        let chat = ChatMessage::new("flooder", &format!("buy now {i}"), None);
        ids.insert(chat.id);
        if flooder
            .publish(LOBBY, encode_gossip(&Gossip::Chat(chat)))
            .await
            .is_err()
        {
            break;
        }
    }
    flooder
        .next_event(|e| matches!(e, RawEvent::Disconnected(p) if *p == bob_id).then_some(()))
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    // Honest users still chat both ways; by the time bob shows alice's line he has handled
    // everything the flooder sent before it was cut off.
    let sent = alice
        .client
        .publish(Room::Lobby, "is it quiet again?".into())
        .await
        .unwrap();
    let mut shown = 0;
    next_event(&mut bob.events, |e| match e {
        Event::Message { id, .. } if ids.contains(id) => {
            shown += 1;
            None
        }
        Event::Message { id, .. } if *id == sent.id => Some(()),
        _ => None,
    })
    .await;
    assert_chats(&bob, &mut alice, "yes").await;
    let budget = limits::ROOM_MESSAGE_BURST as f64 + limits::ROOM_MESSAGES_PER_SEC as f64 * elapsed;
    assert!(
        (shown as f64) <= budget + 1.0,
        "{shown} flood messages shown, budget {budget:.0}"
    );
    assert!(
        shown >= limits::ROOM_MESSAGE_BURST as usize / 2,
        "only {shown} messages shown: the budget should let a burst through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_floods_and_stalled_peers_leave_the_node_responsive_with_bounded_memory() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let mut raw = raw_peer_connected_to(&alice).await;
    raw_hears_lobby_of(&mut raw, &alice).await;
    let victim = alice.client.peer_id();
    let before = rss_kib();

    // Streams that are opened, half written and never finished nor read (slow-loris), far
    // more than a connection may hold.
    for proto in [Proto::Direct, Proto::File] {
        for _ in 0..300 {
            raw.stall(victim, proto, vec![0xa2, 0x61]);
        }
    }
    // A flood of stream opens with small invalid requests, and a few oversized ones.
    for i in 0..3000 {
        let proto = if i % 2 == 0 {
            Proto::Direct
        } else {
            Proto::File
        };
        raw.fire(victim, proto, b"garbage".to_vec());
    }
    for _ in 0..16 {
        raw.fire(victim, Proto::Direct, vec![0; 1 << 20]);
    }
    // And then the raw peer stops reading altogether while alice keeps talking in the lobby.
    let thaw = raw.freeze();
    for i in 0..20 {
        assert_chats(&alice, &mut bob, &format!("talking over the noise {i}")).await;
    }
    assert_delivers(&bob, &alice, "can you hear me?").await;
    assert_delivers(&alice, &bob, "loud and clear").await;
    alice.client.status().await.unwrap();
    drop(thaw);

    // Everything ran in this process: the nodes, the raw peer and its buffers. A node that
    // buffered what the flood declared (16 MiB requests, hundreds of endless streams) would
    // grow by gigabytes; the bound leaves room for allocator slack and the raw peer's own
    // queues.
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 256,
        "memory grew by {grown_mib} MiB under the flood"
    );
}
