//! Catch-up under attack, with real nodes: a key asking a member for a room's lines as fast
//! as it can must not deny newcomers their catch-up, and fresh keys on one address share the
//! answers that address may have.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use ipm_node::{store::data_dir::DataDir, Config, Event};
use ipm_protocol::{decode, encode, limits, HistoryRequest, HistoryResponse, Room};
use raw_peer::{Proto, RawPeer};
use support::*;

/// A user node keeping its state in `dir`, with no bootstrap.
fn member_config(name: &str, dir: &std::path::Path) -> Config {
    let mut config = Config::for_tests(name);
    config.data_dir = Some(DataDir::open(dir).unwrap());
    config
}

/// Asks `victim` for every line of `room` `times` times over; returns how many answers held
/// lines, and their bytes.
async fn ask_over_and_over(
    raw: &RawPeer,
    victim: &TestNode,
    room: &Room,
    times: usize,
) -> (usize, usize) {
    let request = HistoryRequest {
        topic: room.topic(),
        since_ms: 0,
        limit: limits::MAX_CATCH_UP_LINES as u16,
    };
    let (mut answered, mut bytes_in) = (0, 0);
    for _ in 0..times {
        let Ok(bytes) = raw
            .request(victim.client.peer_id(), Proto::History, encode(&request))
            .await
        else {
            continue;
        };
        if let Ok(HistoryResponse::Lines(lines)) =
            decode::<HistoryResponse>(&bytes, limits::MAX_HISTORY_RESPONSE_LEN)
        {
            answered += usize::from(!lines.is_empty());
            bytes_in += bytes.len();
        }
    }
    (answered, bytes_in)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_asking_without_pause_does_not_deny_newcomers_their_catch_up() {
    let rust = Room::interest("rust").unwrap();
    let alice_dir = tempfile::tempdir().unwrap();
    let alice = spawn(member_config("alice", alice_dir.path())).await;
    alice.client.join(rust.clone()).await.unwrap();
    for text in ["one", "two", "three"] {
        alice
            .client
            .publish(rust.clone(), text.into())
            .await
            .unwrap();
    }

    // The flood: one key asks for the room's lines twenty times a second, all along.
    let raw = RawPeer::dialled_by("127.0.0.2", &alice.client).await;
    let alice_id = alice.client.peer_id();
    let topic = rust.topic();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let flood = tokio::spawn(async move {
        let request = encode(&HistoryRequest {
            topic,
            since_ms: 0,
            limit: limits::MAX_CATCH_UP_LINES as u16,
        });
        let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
        let (mut asked, mut answered) = (0, 0);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = every.tick() => {}
            }
            asked += 1;
            let Ok(bytes) = raw.request(alice_id, Proto::History, request.clone()).await else {
                continue;
            };
            if let Ok(HistoryResponse::Lines(lines)) =
                decode::<HistoryResponse>(&bytes, limits::MAX_HISTORY_RESPONSE_LEN)
            {
                answered += usize::from(!lines.is_empty());
            }
        }
        (asked, answered)
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    // Four newcomers, one after the other, each catch up on alice's three lines.
    let mut caught_up = 0;
    for n in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let mut newcomer = spawn(member_config(&format!("new{n}"), dir.path())).await;
        newcomer.client.join(rust.clone()).await.unwrap();
        newcomer.client.dial(alice.addr.clone()).await.unwrap();
        let count = next_event(&mut newcomer.events, |e| match e {
            Event::CaughtUp { room, count, .. } if *room == rust => Some(*count),
            _ => None,
        })
        .await;
        caught_up += usize::from(count == 3);
        newcomer.stop().await;
    }
    let _ = stop.send(());
    let (asked, answered) = flood.await.unwrap();
    println!("the flooding key asked {asked} times and got {answered} answers");
    assert!(answered < asked, "nothing held the flood");
    assert_eq!(caught_up, 4, "newcomers caught up during the flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_keys_on_one_address_share_its_answers_at_a_bootstrap() {
    let rust = Room::Lobby;
    let mut config = bootstrap_config();
    // Every test peer is on loopback: count it as the addresses it is.
    config.address_limits.loopback_exempt = false;
    let bootstrap = spawn(config).await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    wait_until("the bootstrap forwards the room", || async {
        members(&bootstrap.client, &rust).await > 0
    })
    .await;
    let long = "x".repeat(1500);
    for _ in 0..100 {
        alice
            .client
            .publish(rust.clone(), long.clone())
            .await
            .unwrap();
    }

    // Ten fresh keys at 127.0.0.3, each asking for the whole archive ten times.
    let started = std::time::Instant::now();
    let (mut answered, mut bytes) = (0, 0);
    let mut largest = 0;
    for _ in 0..10 {
        let raw = RawPeer::dialled_by("127.0.0.3", &bootstrap.client).await;
        let (a, b) = ask_over_and_over(&raw, &bootstrap, &rust, 10).await;
        largest = largest.max(b.checked_div(a).unwrap_or(0));
        answered += a;
        bytes += b;
    }
    let secs = started.elapsed().as_secs() as usize + 1;
    println!("ten keys on one address got {answered} answers of 100, {bytes} bytes in {secs} s");
    // What one address may have: its credit of 1 MiB, 8 KiB a second after it, and the
    // answer that took it into debt.
    let bound = (1 << 20) + secs * 8 * 1024 + 2 * largest;
    assert!(
        bytes <= bound,
        "{bytes} bytes to one address (bound {bound})"
    );
    assert!(answered < 100, "every question was answered");

    // A key at another address is still answered.
    let other = RawPeer::dialled_by("127.0.0.4", &bootstrap.client).await;
    assert_eq!(ask_over_and_over(&other, &bootstrap, &rust, 1).await.0, 1);
}
