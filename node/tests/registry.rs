//! The bootstrap's name registry: first come, first served, login after a restart of the node
//! or of the bootstrap, renames, and the directory of users online at the bootstrap.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use ipm_node::{client::login::Login, client::Refusal, Config, Event, NodeError};
use ipm_protocol::RegistryError;
use libp2p::identity::Keypair;
use support::*;

async fn login(node: &TestNode, bootstrap: &TestNode) -> Login {
    tokio::time::timeout(WAIT, node.client.login_at(bootstrap.client.peer_id()))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_is_refused_and_its_owner_logs_in_after_restarts() {
    let boot_dir = tempfile::tempdir().unwrap();
    let boot_key = Keypair::generate_ed25519();
    let bootstrap = spawn_bootstrap_in(boot_key.clone(), boot_dir.path()).await;

    let alice_dir = tempfile::tempdir().unwrap();
    let alice_key = Keypair::generate_ed25519();
    let mut alice = start_user(
        alice_key.clone(),
        "alice",
        alice_dir.path(),
        &bootstrap.addr,
    )
    .await;
    assert_eq!(
        login(&alice, &bootstrap).await,
        Login::Registered { new: true }
    );
    next_event(&mut alice.events, |e| match e {
        Event::Registered { name, at, new } => {
            (name == "alice" && *at == bootstrap.client.peer_id() && *new).then_some(())
        }
        _ => None,
    })
    .await;

    // Another key asking for the name, in any case, is refused.
    let mallory = spawn_user("Alice", &bootstrap.addr).await;
    assert_eq!(
        login(&mallory, &bootstrap).await,
        Login::Taken {
            owner: alice.client.peer_id()
        }
    );
    mallory.stop().await;

    // Alice restarts on the same data dir: a login, not a new registration.
    alice.stop().await;
    let alice = start_user(
        alice_key.clone(),
        "alice",
        alice_dir.path(),
        &bootstrap.addr,
    )
    .await;
    assert_eq!(
        login(&alice, &bootstrap).await,
        Login::Registered { new: false }
    );
    alice.stop().await;

    // The bootstrap restarts on its data dir: the name is still alice's.
    bootstrap.stop().await;
    let bootstrap = spawn_bootstrap_in(boot_key, boot_dir.path()).await;
    let mallory = spawn_user("alice", &bootstrap.addr).await;
    assert_eq!(
        login(&mallory, &bootstrap).await,
        Login::Taken {
            owner: alice_key.public().to_peer_id()
        }
    );
    let alice = start_user(alice_key, "alice", alice_dir.path(), &bootstrap.addr).await;
    assert_eq!(
        login(&alice, &bootstrap).await,
        Login::Registered { new: false }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_to_a_taken_name_is_refused_and_a_rename_frees_the_old_name() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let bob = spawn_user("bob", &bootstrap.addr).await;
    assert_eq!(
        login(&alice, &bootstrap).await,
        Login::Registered { new: true }
    );
    assert_eq!(
        login(&bob, &bootstrap).await,
        Login::Registered { new: true }
    );

    match alice.client.rename("bob".into()).await {
        Err(NodeError::Refused(Refusal::Registry {
            bootstrap: at,
            source,
        })) => {
            assert!(
                matches!(&*source, RegistryError::Taken { name, .. } if name == "bob"),
                "{source}"
            );
            assert_eq!(at, bootstrap.client.peer_id());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(alice.client.people().await.unwrap().me.name, "alice");

    alice.client.rename("alicia".into()).await.unwrap();
    assert_eq!(alice.client.people().await.unwrap().me.name, "alicia");
    // "alice" is free again.
    let carol = spawn_user("alice", &bootstrap.addr).await;
    assert_eq!(
        login(&carol, &bootstrap).await,
        Login::Registered { new: true }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_beyond_gossip_reach_are_listed_from_the_bootstrap_without_a_suffix() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    assert_eq!(
        login(&alice, &bootstrap).await,
        Login::Registered { new: true }
    );

    // Carol forgets every presence announcement at once: gossip never shows her anyone, so
    // whoever she lists comes from the bootstrap's directory.
    let carol_config = Config {
        presence_timeout: Duration::ZERO,
        ..Config::for_tests("carol")
    };
    let carol = spawn_user_with(carol_config, &bootstrap.addr).await;
    assert_eq!(
        login(&carol, &bootstrap).await,
        Login::Registered { new: true }
    );
    let alice_id = alice.client.peer_id();

    let users = carol.client.people().await.unwrap().users;
    assert!(users.iter().all(|u| u.peer != alice_id), "{users:?}");
    carol.client.refresh_online().await.unwrap();
    let users = carol.client.people().await.unwrap().users;
    let listed = users.iter().find(|u| u.peer == alice_id).unwrap();
    assert!(listed.via_bootstrap);
    assert_eq!(
        listed.name, "alice",
        "a registered name has no #xxxx suffix"
    );

    // Leaving the bootstrap logs alice out of its directory.
    alice.stop().await;
    wait_until("alice to leave the bootstrap's directory", || async {
        carol.client.refresh_online().await.unwrap();
        let users = carol.client.people().await.unwrap().users;
        users.iter().all(|u| u.peer != alice_id)
    })
    .await;
}

/// How many requests of `kind` the bootstrap's registry answered, from its metrics.
fn registry_requests(bootstrap: &TestNode, kind: &str) -> u64 {
    let text = ipm_node::net::metrics::render(&bootstrap.client.metrics());
    let line = format!("ipm_registry_requests_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_names_are_confirmed_from_their_tickets_without_asking_the_registry() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let bob = spawn_user("bob", &bootstrap.addr).await;
    for node in [&alice, &bob] {
        assert!(matches!(
            login(node, &bootstrap).await,
            Login::Registered { .. }
        ));
    }
    // Each shows the other by name alone: the ticket in the announcement confirmed it.
    wait_for_user(&bob.client, alice.client.peer_id(), "alice").await;
    wait_for_user(&alice.client, bob.client.peer_id(), "bob").await;
    assert_eq!(registry_requests(&bootstrap, "register"), 2);
    assert_eq!(
        registry_requests(&bootstrap, "lookup"),
        0,
        "nobody had to ask who holds a name"
    );

    // A node that uses another bootstrap does not take these tickets: it asks its own
    // registry who holds the name.
    let other = spawn_bootstrap().await;
    let carol = spawn_user("carol", &other.addr).await;
    carol.client.dial(bootstrap.addr.clone()).await.unwrap();
    wait_until("carol to ask her own registry about a name", || async {
        registry_requests(&other, "lookup") > 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_saved_once_registered_and_a_refused_one_is_told_once_and_never_saved() {
    use ipm_node::store::settings::Settings;
    let bootstrap = spawn_bootstrap().await;
    let saved = |dir: &std::path::Path| Settings::load(&dir.join("settings.json")).unwrap().name;
    let alice_dir = tempfile::tempdir().unwrap();
    let alice = start_user(
        Keypair::generate_ed25519(),
        "alice",
        alice_dir.path(),
        &bootstrap.addr,
    )
    .await;
    assert_eq!(
        login(&alice, &bootstrap).await,
        Login::Registered { new: true }
    );
    wait_until("alice's name saved", || async {
        saved(alice_dir.path()).as_deref() == Some("alice")
    })
    .await;

    // Another key asking for it runs as alice#xxxx, told once.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = start_user(
        Keypair::generate_ed25519(),
        "alice",
        other_dir.path(),
        &bootstrap.addr,
    )
    .await;
    assert_eq!(
        login(&other, &bootstrap).await,
        Login::Taken {
            owner: alice.client.peer_id()
        }
    );
    let me = other.client.peer_id().to_string();
    let suffixed = format!("alice#{}", &me[me.len() - 4..]);
    let told = next_event(&mut other.events, |e| match e {
        Event::Error { message } if message.contains("is taken") => Some(message.clone()),
        _ => None,
    })
    .await;
    assert!(told.contains(&suffixed), "{told}");
    wait_for_user(&alice.client, other.client.peer_id(), &suffixed).await;
    // Its next announcements and the registry's later answers tell nothing more.
    let again = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        loop {
            if let Ok(Event::Error { message }) = other.events.recv().await {
                if message.contains("is taken") {
                    return message;
                }
            }
        }
    })
    .await;
    assert!(again.is_err(), "told twice: {again:?}");
    assert_eq!(
        saved(other_dir.path()),
        None,
        "the refused name is not saved"
    );
}
