//! Hostile networks: sockets that connect to a bootstrap and never finish the handshakes,
//! renewed as they are dropped; inbound Sybils filling a node's connection budget. A
//! newcomer still joins the bootstrap and chats, and a node's own dials still go out.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use ipm_node::{config::AddressLimits, Config, Event, Role};
use ipm_protocol::Room;
use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr};
use raw_peer::{RawEvent, RawPeer};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The TCP socket address of a loopback multiaddr.
fn socket_of(addr: &Multiaddr) -> SocketAddr {
    let mut ip = Ipv4Addr::LOCALHOST;
    let mut port = 0;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = a,
            Protocol::Tcp(p) => port = p,
            _ => {}
        }
    }
    SocketAddr::from((ip, port))
}

/// Sockets from one address that connect, send the start of a multistream header and then
/// nothing, each reopened as soon as the victim drops it.
struct Stall {
    stop: Arc<AtomicBool>,
    /// Sockets connected right now.
    open: Arc<AtomicUsize>,
    /// Sockets connected so far, renewals included.
    opened: Arc<AtomicUsize>,
}

impl Stall {
    fn start(from: Ipv4Addr, target: SocketAddr, sockets: usize) -> Stall {
        let stall = Stall {
            stop: Arc::new(AtomicBool::new(false)),
            open: Arc::new(AtomicUsize::new(0)),
            opened: Arc::new(AtomicUsize::new(0)),
        };
        for _ in 0..sockets {
            let (stop, open, opened) =
                (stall.stop.clone(), stall.open.clone(), stall.opened.clone());
            tokio::spawn(async move {
                let mut first = true;
                while !stop.load(Ordering::Relaxed) {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket.bind(SocketAddr::from((from, 0))).unwrap();
                    if let Ok(mut stream) = socket.connect(target).await {
                        open.fetch_add(1, Ordering::Relaxed);
                        opened.fetch_add(1, Ordering::Relaxed);
                        // Half a multistream header, never finished.
                        let _ = stream.write_all(b"\x13/multistream/1").await;
                        // The first socket of each is closed at a random moment, so that
                        // the slots held never come free together; later ones are held
                        // until the victim drops them.
                        let hold = match first {
                            true => Duration::from_millis(rand::random::<u64>() % 10_000),
                            false => Duration::from_secs(3600),
                        };
                        first = false;
                        let until = tokio::time::Instant::now() + hold;
                        let mut buf = [0u8; 256];
                        loop {
                            tokio::select! {
                                read = stream.read(&mut buf) => match read {
                                    Ok(0) | Err(_) => break,
                                    Ok(_) => {}
                                },
                                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                                    if stop.load(Ordering::Relaxed)
                                        || tokio::time::Instant::now() >= until
                                    {
                                        break;
                                    }
                                }
                            }
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                    }
                    // Pacing between renewals, so the flood does not eat the test machine.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        stall
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A bootstrap applying the per-address limits to loopback too, as it does to every
/// remote address.
async fn strict_bootstrap() -> TestNode {
    spawn(Config {
        role: Role::Bootstrap,
        target_peers: 0,
        use_relay: false,
        address_limits: AddressLimits {
            loopback_exempt: false,
            ..AddressLimits::default()
        },
        ..Config::for_tests("bootstrap")
    })
    .await
}

/// Dials `addr` until it answers: how long that took (`None`: not within [`WAIT`]) and how
/// many dials were refused before.
async fn join(node: &TestNode, addr: &Multiaddr) -> (Option<Duration>, usize) {
    let started = Instant::now();
    let mut refused = 0;
    while started.elapsed() < WAIT {
        if node.client.dial(addr.clone()).await.is_ok() {
            return (Some(started.elapsed()), refused);
        }
        refused += 1;
        // A user retrying after a refusal.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (None, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_joins_a_bootstrap_while_one_address_holds_hundreds_of_stalled_sockets() {
    ipm_node::logging::init("warn");
    const SOCKETS: usize = 300;
    let bootstrap = strict_bootstrap().await;
    let mut alice = spawn_user("alice", &bootstrap.addr).await;
    wait_until("alice in the bootstrap's lobby", || async {
        members(&bootstrap.client, &Room::Lobby).await >= 1
    })
    .await;

    // The attacker's address is in another /24 than the users' 127.0.0.1.
    let stall = Stall::start(
        Ipv4Addr::new(127, 1, 0, 1),
        socket_of(&bootstrap.addr),
        SOCKETS,
    );
    wait_until("every stalled socket to have connected once", || async {
        stall.opened.load(Ordering::Relaxed) >= SOCKETS
    })
    .await;

    let tmp = tempfile::tempdir().unwrap();
    let mut config = user_config("newcomer", tmp.path(), &bootstrap.addr);
    config.address_limits = AddressLimits::default();
    let mut newcomer = spawn_with_key(Keypair::generate_ed25519(), config).await;
    let (took, refused) = join(&newcomer, &bootstrap.addr).await;
    eprintln!(
        "newcomer joined in {took:?} after {refused} refused dials, with {SOCKETS} stalled \
         sockets from one address ({} open, {} opened so far)",
        stall.open.load(Ordering::Relaxed),
        stall.opened.load(Ordering::Relaxed)
    );
    assert!(
        took.is_some(),
        "the newcomer could not reach the bootstrap within {WAIT:?}"
    );

    // And it chats: its lobby line reaches alice, and alice's reaches it.
    wait_until("the newcomer in the bootstrap's lobby", || async {
        members(&newcomer.client, &Room::Lobby).await >= 1
    })
    .await;
    wait_for_user(&alice.client, newcomer.client.peer_id(), "newcomer").await;
    wait_for_user(&newcomer.client, alice.client.peer_id(), "alice").await;
    says(&newcomer, &mut alice, &Room::Lobby, "made it").await;
    says(&alice, &mut newcomer, &Room::Lobby, "welcome").await;
    drop(stall);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_sybils_do_not_starve_a_nodes_own_dials() {
    ipm_node::logging::init("warn");
    const BUDGET: u32 = 16;
    let bootstrap = spawn_bootstrap().await;
    let node = spawn(Config {
        max_connections: BUDGET,
        ..Config::for_tests("victim")
    })
    .await;
    // As many fresh keys as the node has connections dial it.
    let mut sybils = Vec::new();
    for _ in 0..BUDGET {
        let sybil = RawPeer::start().await;
        sybil.dial(node.addr.clone()).await;
        sybils.push(sybil);
    }
    for sybil in &mut sybils {
        sybil
            .next_event(|e| matches!(e, RawEvent::Connected(_)).then_some(()))
            .await;
    }
    let (dialled, refused) = join(&node, &bootstrap.addr).await;
    let status = node.client.status().await.unwrap();
    eprintln!(
        "{} peers connected to a node with a budget of {BUDGET}: own dial in {dialled:?} \
         after {refused} refusals",
        status.peers.len()
    );
    assert!(dialled.is_some(), "the node could not dial its bootstrap");
}

/// A user that reaches nobody but the bootstrap: it listens nowhere and asks for no relay.
async fn spawn_behind_bootstrap(name: &str, bootstrap: &Multiaddr) -> TestNode {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = user_config(name, tmp.path(), bootstrap);
    config.listen = Vec::new();
    config.use_relay = false;
    let key = Keypair::generate_ed25519();
    let (client, event_loop) = ipm_node::start(key.clone(), config).unwrap();
    let events = client.events();
    let task = tokio::spawn(event_loop.run());
    client.dial(bootstrap.clone()).await.unwrap();
    TestNode {
        client,
        events,
        addr: bootstrap.clone(),
        key,
        dir: tmp.path().to_path_buf(),
        task,
        tmp: Some(tmp),
    }
}

/// Publishes `text` in `room` from `from` and waits until `to` shows it.
async fn says(from: &TestNode, to: &mut TestNode, room: &Room, text: &str) {
    let sent = from
        .client
        .publish(room.clone(), text.into())
        .await
        .unwrap();
    let got = next_event(&mut to.events, |e| match e {
        Event::Message { id, text: got, .. } if *id == sent.id => Some(got.clone()),
        _ => None,
    })
    .await;
    assert_eq!(got, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_behind_a_bootstrap_talk_in_a_new_room_while_one_peer_floods_junk_rooms() {
    ipm_node::logging::init("warn");
    const JUNK: usize = 10_000;
    let bootstrap = spawn_bootstrap().await;
    let mut junk = RawPeer::start().await;
    junk.dial(bootstrap.addr.clone()).await;
    junk.next_event(|e| matches!(e, RawEvent::Connected(_)).then_some(()))
        .await;
    let started = Instant::now();
    for i in 0..JUNK {
        junk.subscribe(&Room::interest(&format!("junk{i}")).unwrap().topic())
            .await;
    }
    // Gossipsub reads one peer's subscriptions in order: once the bootstrap sees the junk
    // peer in the lobby, it has read every junk subscription.
    junk.subscribe(&Room::Lobby.topic()).await;
    wait_until("the bootstrap to read the junk subscriptions", || async {
        members(&bootstrap.client, &Room::Lobby).await >= 1
    })
    .await;
    let status = bootstrap.client.status().await.unwrap();
    eprintln!(
        "{JUNK} junk subscriptions read in {:?}; the bootstrap is in {} rooms",
        started.elapsed(),
        status.rooms.len()
    );

    let mut alice = spawn_behind_bootstrap("alice", &bootstrap.addr).await;
    let mut bob = spawn_behind_bootstrap("bob", &bootstrap.addr).await;
    let fresh = Room::interest("fresh").unwrap();
    alice.client.join(fresh.clone()).await.unwrap();
    bob.client.join(fresh.clone()).await.unwrap();
    for user in [&alice, &bob] {
        wait_until("the bootstrap to forward the new room", || async {
            members(&user.client, &fresh).await >= 1
                && members(&user.client, &Room::Lobby).await >= 1
        })
        .await;
    }
    says(&alice, &mut bob, &fresh, "anyone here?").await;
    says(&bob, &mut alice, &fresh, "yes").await;
    says(&alice, &mut bob, &Room::Lobby, "and the lobby still works").await;
    let status = bootstrap.client.status().await.unwrap();
    eprintln!("the bootstrap forwards {} rooms", status.rooms.len());
}
