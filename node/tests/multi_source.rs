//! A file several members share in a room: `/get` pulls pieces from each of them at once,
//! and the file still arrives whole, with the offered SHA-256, when one of them leaves half
//! way.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use ipm_node::{client::OfferTarget, Event};
use ipm_protocol::{Room, TransferId};
use sha2::{Digest, Sha256};
use support::*;

/// Waits for the offer of a shared file from `from`.
async fn shared_offer(node: &mut TestNode, from: libp2p::PeerId) -> TransferId {
    next_event(&mut node.events, |e| match e {
        Event::FileOffer {
            transfer,
            peer,
            room: Some(_),
            ..
        } if *peer == from => Some(*transfer),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_source_get_survives_one_source_vanishing_half_way() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let bob = spawn_user("bob", &bootstrap.addr).await;
    let mut carol = spawn_user("carol", &bootstrap.addr).await;
    wait_until("the bootstrap to see the lobby", || async {
        members(&bootstrap.client, &Room::Lobby).await >= 3
    })
    .await;
    for node in [&alice, &bob] {
        wait_until("the sharers to see the lobby", || async {
            members(&node.client, &Room::Lobby).await >= 1
        })
        .await;
    }
    // Large enough to be well short of half way at the first progress report (every
    // 250 ms): on loopback a download runs at over 1 GB/s here.
    let size: u64 = 1024 * 1024 * 1024;
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("film.mkv");
    let sha = write_big(&path, size as usize);

    // Alice and Bob both share the same file in the lobby.
    alice
        .client
        .offer_file(OfferTarget::Room(Room::Lobby), path.clone())
        .await
        .unwrap();
    let from_alice = shared_offer(&mut carol, alice.client.peer_id()).await;
    bob.client
        .offer_file(OfferTarget::Room(Room::Lobby), path.clone())
        .await
        .unwrap();
    shared_offer(&mut carol, bob.client.peer_id()).await;

    // Carol fetches Alice's announcement; Alice leaves before half of the file is there.
    carol.client.accept(&from_alice.to_string()).await.unwrap();
    let at = next_event(&mut carol.events, |e| match e {
        Event::FileProgress {
            transfer, bytes, ..
        } if *transfer == from_alice && *bytes > 0 => Some(*bytes),
        Event::FileReceived { transfer, .. } | Event::FileFailed { transfer, .. }
            if *transfer == from_alice =>
        {
            panic!("the download ended before a source could leave: {e:?}")
        }
        _ => None,
    })
    .await;
    assert!(
        at < size / 2,
        "{at} of {size} bytes before the first report: too fast to cut half way"
    );
    alice.stop().await;

    // What Alice was to send comes from Bob: the file arrives whole.
    let outcome = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match carol.events.recv().await {
                Ok(Event::FileReceived {
                    transfer,
                    path,
                    sha256,
                    size: got,
                }) if transfer == from_alice => return Ok((path, sha256, got)),
                Ok(Event::FileFailed { transfer, reason }) if transfer == from_alice => {
                    return Err(reason)
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("the file did not arrive within 120 s after a source left");
    let (got, got_sha, got_size) = outcome.unwrap();
    assert_eq!(got_sha, sha);
    assert_eq!(got_size, size);
    assert_eq!(std::fs::metadata(&got).unwrap().len(), size);
    let mut file = std::fs::File::open(&got).unwrap();
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).unwrap();
    assert_eq!(hex::encode(hasher.finalize()), sha, "the bytes on disk");
    let partial = carol.dir.join("downloads/.partial");
    let left: Vec<_> = std::fs::read_dir(&partial)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in .partial: {left:?}");
    drop(bob);
}
