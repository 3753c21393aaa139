//! Uploads under attack, with real nodes: fresh keys on a few addresses of one network
//! fetching a lobby share over every stream they may open, and reading it slowly, hold no
//! more than each address's and the network's places; a member on another network still
//! gets the share, and a file sent to a friend meanwhile starts at once and arrives whole.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{AsyncReadExt, AsyncWriteExt};
use ipm_node::{client::OfferTarget, logic::upload_slots::UploadLimits, Event};
use ipm_protocol::{
    decode, encode,
    file_stream::{header_len, StreamAnswer, StreamRequest, MAX_STREAM_HEADER_LEN},
    Room, TransferId,
};
use libp2p::{PeerId, Stream, StreamProtocol};
use raw_peer::RawPeer;
use support::*;

/// The attacker's addresses, all in one /24.
const ADDRESSES: [&str; 4] = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
/// Fresh keys the attacker brings on each address.
const KEYS: usize = 4;
/// Streams each key opens: as many as one peer may hold.
const STREAMS_EACH: usize = 8;
/// How fast each attacking stream is read: fast enough never to be idle for long.
const SLOW_READ: usize = 64 * 1024;
/// Longest a friend's file may wait to start, and to arrive whole.
const START_WITHIN: Duration = Duration::from_secs(15);
const ARRIVE_WITHIN: Duration = Duration::from_secs(40);

/// Opens a file stream to `victim` asking for all of `transfer`: the stream when the
/// victim starts sending, `None` when it answers anything else.
async fn ask(raw: &RawPeer, victim: PeerId, transfer: TransferId) -> Option<Stream> {
    let protocol = StreamProtocol::new("/ipm/file/2");
    let mut control = raw.streams.clone();
    let mut stream = tokio::time::timeout(WAIT, control.open_stream(victim, protocol))
        .await
        .ok()?
        .ok()?;
    let request = encode(&StreamRequest {
        transfer,
        offset: 0,
        end: None,
    });
    let len = u16::try_from(request.len()).unwrap();
    stream.write_all(&len.to_be_bytes()).await.ok()?;
    stream.write_all(&request).await.ok()?;
    stream.flush().await.ok()?;
    let answer = tokio::time::timeout(WAIT, async {
        let mut prefix = [0u8; 2];
        stream.read_exact(&mut prefix).await.ok()?;
        let mut bytes = vec![0u8; header_len(prefix).ok()?];
        stream.read_exact(&mut bytes).await.ok()?;
        decode::<StreamAnswer>(&bytes, MAX_STREAM_HEADER_LEN).ok()
    })
    .await
    .expect("the victim neither answered nor closed the stream")?;
    matches!(answer, StreamAnswer::Sending { .. }).then_some(stream)
}

/// Reads `stream` at [`SLOW_READ`] bytes a second until it ends, counting into `read`.
fn read_slowly(mut stream: Stream, read: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_secs(1));
        let mut buf = vec![0u8; SLOW_READ];
        loop {
            pace.tick().await;
            if stream.read_exact(&mut buf).await.is_err() {
                return;
            }
            read.fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_with_many_keys_and_addresses_starve_neither_friends_nor_other_networks() {
    let bootstrap = spawn_bootstrap().await;
    // Every process of the test shares loopback: the victim counts it per address, as it
    // counts remote addresses.
    let mut config = ipm_node::Config::for_tests("alice");
    config.address_limits.loopback_exempt = false;
    let alice = spawn_user_with(config, &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let alice_id = alice.client.peer_id();
    wait_until("alice to see the lobby", || async {
        members(&alice.client, &Room::Lobby).await >= 1
    })
    .await;
    let src = tempfile::tempdir().unwrap();
    let share = src.path().join("conference.mkv");
    write_big(&share, 64 << 20);
    let shared = alice
        .client
        .offer_file(OfferTarget::Room(Room::Lobby), share)
        .await
        .unwrap();

    // The attack: fresh keys on each address ask for the share over every stream they may
    // open, and read what they are sent slowly.
    let read = Arc::new(AtomicU64::new(0));
    let mut attackers = Vec::new();
    let mut readers = Vec::new();
    let mut per_address = Vec::new();
    for ip in ADDRESSES {
        let before = readers.len();
        for _ in 0..KEYS {
            let raw = RawPeer::dialled_by(ip, &alice.client).await;
            for _ in 0..STREAMS_EACH {
                if let Some(stream) = ask(&raw, alice_id, shared).await {
                    readers.push(read_slowly(stream, read.clone()));
                }
            }
            attackers.push(raw);
        }
        per_address.push(readers.len() - before);
    }
    let served = readers.len();
    // A member on another network asks for the share too.
    let member = RawPeer::dialled_by("127.0.1.3", &alice.client).await;
    let member_served = ask(&member, alice_id, shared).await.is_some();

    // Meanwhile alice sends bob a file.
    alice.client.dial(bob.addr.clone()).await.unwrap();
    let direct = src.path().join("minutes.pdf");
    let sha = write_big(&direct, 16 << 20);
    let sent = alice
        .client
        .offer_file(OfferTarget::Peer(bob.client.peer_id()), direct)
        .await
        .unwrap();
    next_event(&mut bob.events, |e| match e {
        Event::FileOffer { transfer, .. } if *transfer == sent => Some(()),
        _ => None,
    })
    .await;
    let accepted = Instant::now();
    bob.client.accept(&sent.to_string()).await.unwrap();
    let mut started = None;
    let arrived = tokio::time::timeout(ARRIVE_WITHIN, async {
        loop {
            match bob.events.recv().await {
                Ok(Event::FileProgress {
                    transfer, bytes, ..
                }) if transfer == sent && bytes > 0 => {
                    started.get_or_insert_with(|| accepted.elapsed());
                }
                Ok(Event::FileReceived {
                    transfer, sha256, ..
                }) if transfer == sent => {
                    started.get_or_insert_with(|| accepted.elapsed());
                    return Ok((accepted.elapsed(), sha256));
                }
                Ok(Event::FileFailed { transfer, reason }) if transfer == sent => {
                    return Err(reason)
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await;

    println!(
        "attacker streams served: {served} of {} asked ({} keys on each of {} addresses of \
         one /24), by address {per_address:?}; a member on another network served: \
         {member_served}; attackers read {} KiB",
        ADDRESSES.len() * KEYS * STREAMS_EACH,
        KEYS,
        ADDRESSES.len(),
        read.load(Ordering::Relaxed) / 1024
    );
    println!(
        "the friend's file started after {:?} and arrived after {:?}",
        started,
        arrived
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref().ok())
            .map(|(at, _)| *at)
    );
    for reader in &readers {
        reader.abort();
    }

    let limits = UploadLimits::node();
    assert!(
        per_address.iter().all(|n| *n <= limits.per_address),
        "attacking streams served by address: {per_address:?}"
    );
    assert!(
        served <= limits.per_network,
        "{served} attacking streams from one network were served"
    );
    assert!(served > 0, "room shares are still served");
    assert!(member_served, "a member on another network was refused");
    let start = started.expect("the friend's file never started");
    assert!(
        start <= START_WITHIN,
        "the friend's file started after {start:?}"
    );
    let (_, got_sha) = arrived
        .expect("the friend's file did not arrive in time")
        .unwrap();
    assert_eq!(got_sha, sha);
    drop(attackers);
}
