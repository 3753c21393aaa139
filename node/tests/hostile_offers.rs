//! File offers under attack, with real nodes: fresh keys on one address send every offer each
//! key may, and a friend's real offer, and an honest stranger's from another address, are
//! still taken at once.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use ipm_node::{client::OfferTarget, store::data_dir::DataDir, Config, Event};
use ipm_protocol::{decode, encode, limits, FileOffer, FileRequest, FileResponse, TransferId};
use raw_peer::{Proto, RawPeer};
use support::*;

/// Fresh keys the attacker uses, all on one address.
const KEYS: usize = 40;

/// Offers `count` junk files to `victim`; returns how many it noted.
async fn offer_junk(raw: &RawPeer, victim: &TestNode, count: usize) -> usize {
    let mut noted = 0;
    for i in 0..count {
        let offer = FileOffer {
            transfer: TransferId::random(),
            from_name: "mallory".into(),
            name: format!("junk{i}.bin"),
            size: 10,
            sha256: [0; 32],
            folder: None,
        };
        let Ok(answer) = raw
            .request(
                victim.client.peer_id(),
                Proto::File,
                encode(&FileRequest::Offer(offer)),
            )
            .await
        else {
            continue;
        };
        if let Ok(FileResponse::Noted) = decode(&answer, limits::MAX_FILE_RESPONSE_LEN) {
            noted += 1;
        }
    }
    noted
}

/// Offers a small file from `from` to `to` and waits until `to` shows it.
async fn offer_is_shown(from: &TestNode, to: &mut TestNode, name: &str) -> bool {
    let path = from.dir.join(name);
    std::fs::write(&path, b"the real thing").unwrap();
    from.client
        .offer_file(OfferTarget::Peer(to.client.peer_id()), path)
        .await
        .unwrap();
    let sender = from.client.peer_id();
    tokio::time::timeout(WAIT, async {
        loop {
            match to.events.recv().await {
                Ok(Event::FileOffer { peer, name: n, .. }) if peer == sender && n == name => {
                    return true
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_offers_from_fresh_keys_on_one_address_leave_room_for_friends_and_strangers() {
    let bob_dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests("bob");
    config.data_dir = Some(DataDir::open(bob_dir.path()).unwrap());
    // Every process here is on loopback: count it as an address, as a remote one would be.
    config.address_limits.loopback_exempt = false;
    let mut bob = spawn(config).await;
    let alice = spawn(Config::for_tests("alice")).await;
    let carol = spawn(Config::for_tests("carol")).await;
    bob.client
        .add_contact("alice".into(), alice.client.peer_id(), None)
        .await
        .unwrap();

    // The attack: every key sends every offer one key may, all from 127.0.0.2.
    let mut noted = 0;
    for _ in 0..KEYS {
        let raw = RawPeer::dialled_by("127.0.0.2", &bob.client).await;
        noted += offer_junk(&raw, &bob, limits::MAX_PENDING_OFFERS_PER_PEER).await;
    }
    let sent = KEYS * limits::MAX_PENDING_OFFERS_PER_PEER;
    println!("junk offers noted: {noted} of {sent} from {KEYS} keys on one address");

    // A friend's offer and an honest stranger's, from another address, are still taken.
    alice.client.dial(bob.addr.clone()).await.unwrap();
    carol.client.dial(bob.addr.clone()).await.unwrap();
    let friend = offer_is_shown(&alice, &mut bob, "from-alice.txt").await;
    let stranger = offer_is_shown(&carol, &mut bob, "from-carol.txt").await;
    println!("the friend's offer taken: {friend}; an honest stranger's taken: {stranger}");
    assert!(friend, "a contact's offer must always be taken");
    assert!(
        stranger,
        "a stranger on another address must not pay for the attacker"
    );
    assert!(
        noted <= ipm_node::logic::offers::MAX_PENDING_PER_ADDRESS,
        "one address held {noted} places"
    );
}
