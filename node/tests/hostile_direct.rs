//! Private messages under attack, with real nodes: fresh keys on one address each send every
//! private message one key may; the victim takes in about one address's worth, and a friend's
//! message and an honest stranger's from another address are still delivered at once.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::time::Instant;

use ipm_node::{store::data_dir::DataDir, Config};
use ipm_protocol::{decode, encode, limits, DirectMessage, DirectRequest, DirectResponse};
use raw_peer::{Proto, RawPeer};
use support::*;

/// Fresh keys the attacker uses, all on one address.
const KEYS: usize = 40;
/// Private messages each key sends.
const EACH: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_from_fresh_keys_on_one_address_leave_room_for_friends_and_strangers() {
    let bob_dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests("bob");
    config.data_dir = Some(DataDir::open(bob_dir.path()).unwrap());
    // Every process here is on loopback: count it as an address, as a remote one would be.
    config.address_limits.loopback_exempt = false;
    let bob = spawn(config).await;
    let alice = spawn(Config::for_tests("alice")).await;
    let carol = spawn(Config::for_tests("carol")).await;
    bob.client
        .add_contact("alice".into(), alice.client.peer_id(), None)
        .await
        .unwrap();

    // The attack: every key sends its messages from 127.0.0.2, one after another.
    let started = Instant::now();
    let mut delivered = 0;
    for k in 0..KEYS {
        let raw = RawPeer::dialled_by("127.0.0.2", &bob.client).await;
        for i in 0..EACH {
            let message = DirectMessage::new(&format!("key{k}"), &format!("junk {i}"));
            let Ok(answer) = raw
                .request(
                    bob.client.peer_id(),
                    Proto::Direct,
                    encode(&DirectRequest::Message(message)),
                )
                .await
            else {
                continue;
            };
            if let Ok(DirectResponse::Delivered { .. }) =
                decode(&answer, limits::MAX_DIRECT_RESPONSE_LEN)
            {
                delivered += 1;
            }
        }
    }
    let took = started.elapsed();
    println!(
        "junk private messages taken in: {delivered} of {} from {KEYS} keys on one address in {took:.1?}",
        KEYS * EACH
    );

    // A friend's message and an honest stranger's, from another address, are delivered.
    alice.client.dial(bob.addr.clone()).await.unwrap();
    carol.client.dial(bob.addr.clone()).await.unwrap();
    let bob_peer = bob.client.peer_id();
    let friend = alice
        .client
        .send_direct(bob_peer, "are you there?".into())
        .await
        .unwrap();
    let stranger = carol
        .client
        .send_direct(bob_peer, "hello, we met at the meetup".into())
        .await
        .unwrap();
    println!(
        "the friend's message delivered: {}; an honest stranger's: {}",
        friend.delivered, stranger.delivered
    );
    assert!(friend.delivered, "a contact's message must get through");
    assert!(
        stranger.delivered,
        "a stranger on another address must not pay for the attacker"
    );
    let allowed = limits::STRANGER_DIRECT_BURST as f64
        + limits::STRANGER_DIRECT_PER_SEC as f64 * took.as_secs_f64()
        + 1.0;
    assert!(
        (delivered as f64) <= allowed,
        "one address got {delivered} messages in, more than {allowed:.0}"
    );
}
