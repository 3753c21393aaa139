//! Rooms and people across in-process nodes over loopback TCP: location groups with real
//! coordinates, interest groups, presence, registered names, contacts, blocks, away, mDNS.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use ipm_node::{
    store::contacts::ContactBook,
    store::data_dir::DataDir,
    store::settings::Settings,
    ui::session::{Session, SessionError},
    Client, Config, Event, NodeError,
};
use ipm_protocol::{Position, Room};
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use support::*;

const PARIS: (f64, f64) = (48.8566, 2.3522);
/// 3 km east of PARIS.
const PARIS_EAST: (f64, f64) = (48.8566, 2.3931);
/// About 390 km from PARIS.
const LYON: (f64, f64) = (45.7640, 4.8357);
/// 14.5 km east of PARIS, in the cell east of PARIS's.
const DAVE: (f64, f64) = (48.8566, 2.55);
/// In PARIS's cell, 7 km from DAVE.
const GINA: (f64, f64) = (48.8566, 2.455);

fn at((lat, lon): (f64, f64)) -> Position {
    Position::new(lat, lon).unwrap()
}

/// A user node at `position` with `interests`, and a session on it.
async fn user(
    name: &str,
    position: Option<Position>,
    interests: &[&str],
    bootstrap: &Multiaddr,
) -> (TestNode, Session) {
    let mut config = Config::for_tests(name);
    config.position = position;
    config.interests = interests.iter().map(|s| s.to_string()).collect();
    let node = spawn_user_with(config, bootstrap).await;
    let session = session(&node);
    (node, session)
}

fn session(node: &TestNode) -> Session {
    Session::new(node.client.clone())
}

async fn run(session: &Session, line: &str) -> String {
    match session.run_line(line).await {
        Ok(outcome) => outcome.describe(),
        Err(e) => panic!("{line}: {e}"),
    }
}

/// Waits until `client` sees `peer` online and in its location group, and someone listens
/// to its own cell.
async fn wait_in_group(client: &Client, peer: PeerId) {
    wait_until("a neighbour in the location group", || async {
        let people = client.people().await.unwrap();
        people.me.group_peers >= 1 && people.users.iter().any(|u| u.peer == peer && u.in_group)
    })
    .await;
}

/// Waits for a message with `text` and returns `(room, from, distance)`.
async fn message(node: &mut TestNode, text: &str) -> (Room, String, Option<f64>) {
    let text = text.to_owned();
    next_event(&mut node.events, |e| match e {
        Event::Message {
            room,
            from,
            text: t,
            distance_km,
            ..
        } if *t == text => Some((room.clone(), from.clone(), *distance_km)),
        _ => None,
    })
    .await
}

/// Waits for the lobby line `after` and fails if `never` shows up first.
async fn hears_after_but_never(node: &mut TestNode, after: &str, never: &str) {
    next_event(&mut node.events, |e| match e {
        Event::Message { text, .. } if text == never => panic!("{never:?} reached this node"),
        Event::Message { text, .. } if text == after => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_group_reaches_neighbours_within_the_radius_but_not_lyon() {
    let bootstrap = spawn_bootstrap().await;
    let (alice, alice_s) = user("alice", Some(at(PARIS)), &[], &bootstrap.addr).await;
    let (mut bob, bob_s) = user("bob", Some(at(PARIS_EAST)), &[], &bootstrap.addr).await;
    let (mut carol, carol_s) = user("carol", Some(at(LYON)), &[], &bootstrap.addr).await;
    // Dave is 14.5 km east of alice, in a neighbouring cell: he listens to her cell but she
    // is beyond his 10 km radius. Gina, in alice's cell, is 7 km from dave.
    let (mut dave, dave_s) = user("dave", Some(at(DAVE)), &[], &bootstrap.addr).await;
    let (gina, gina_s) = user("gina", Some(at(GINA)), &[], &bootstrap.addr).await;
    for s in [&alice_s, &bob_s, &carol_s, &dave_s, &gina_s] {
        let out = run(s, "/join-geo 10").await;
        assert!(out.contains("joined the location group"), "{out}");
    }
    let alice_group = alice.client.people().await.unwrap().me.group.unwrap();
    assert_eq!(alice_group.own_cell(), "u09t");
    assert_eq!(at(GINA).geohash(4), "u09t");
    let dave_group = dave.client.people().await.unwrap().me.group.unwrap();
    assert!(dave_group.cells().contains(&"u09t".to_owned()));
    assert_ne!(dave_group.own_cell(), "u09t");
    assert!(at(PARIS).distance_km(&at(DAVE)) > 14.0);
    wait_in_group(&alice.client, bob.client.peer_id()).await;
    wait_in_group(&bob.client, alice.client.peer_id()).await;
    wait_for_user(&bob.client, alice.client.peer_id(), "alice").await;
    wait_in_group(&gina.client, dave.client.peer_id()).await;
    wait_in_group(&dave.client, gina.client.peer_id()).await;

    let out = run(&alice_s, "bonjour :wave:").await;
    assert!(out.contains("to geo:u09t"), "{out}");
    let (room, from, distance) = message(&mut bob, "bonjour 👋").await;
    assert_eq!(from, "alice");
    let d = distance.unwrap();
    assert!((d - 3.0).abs() < 1.0, "{d}");
    assert_eq!(
        room,
        bob.client.people().await.unwrap().me.group.unwrap().room()
    );
    // Dave hears gina's line in the same cell, never alice's.
    run(&gina_s, "tout près").await;
    next_event(&mut dave.events, |e| match e {
        Event::Message { text, .. } if text == "bonjour 👋" => panic!("dave heard alice"),
        Event::Message {
            text, distance_km, ..
        } if text == "tout près" => {
            let d = distance_km.unwrap();
            assert!((d - 7.0).abs() < 1.0, "{d}");
            Some(())
        }
        _ => None,
    })
    .await;

    run(&alice_s, "/join lobby").await;
    run(&alice_s, "after").await;
    hears_after_but_never(&mut carol, "after", "bonjour 👋").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_on_both_sides_of_a_cell_border_hears_each_other() {
    let bootstrap = spawn_bootstrap().await;
    // The eastern border of cell u09t (precision 4 is 0.3515625 degrees wide).
    let border = Position::from_geohash("u09t").unwrap().lon + 0.3515625 / 2.0;
    let west = at((48.8566, border - 0.0015));
    let east = at((48.8566, border + 0.0015));
    assert_ne!(west.geohash(4), east.geohash(4));
    let (mut eve, eve_s) = user("eve", Some(west), &[], &bootstrap.addr).await;
    let (frank, frank_s) = user("frank", Some(east), &[], &bootstrap.addr).await;
    run(&eve_s, "/join-geo 10").await;
    run(&frank_s, "/join-geo 10").await;
    wait_in_group(&frank.client, eve.client.peer_id()).await;
    wait_in_group(&eve.client, frank.client.peer_id()).await;
    run(&frank_s, "across the border").await;
    let (room, _, distance) = message(&mut eve, "across the border").await;
    assert_eq!(room, Room::Geo(west.geohash(4)));
    assert!(distance.unwrap() < 1.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interest_group_line_reaches_only_shared_interests() {
    let bootstrap = spawn_bootstrap().await;
    let (alice, alice_s) = user("alice", None, &["rust"], &bootstrap.addr).await;
    let (mut bob, bob_s) = user("bob", None, &["rust"], &bootstrap.addr).await;
    let (mut carol, carol_s) = user("carol", None, &["chess"], &bootstrap.addr).await;
    for s in [&alice_s, &bob_s, &carol_s] {
        let out = run(s, "/join-interest").await;
        assert!(out.contains("is now the current room"), "{out}");
    }
    assert_eq!(
        alice_s.current_room().unwrap(),
        Room::Interest("rust".into())
    );
    assert_eq!(
        carol_s.current_room().unwrap(),
        Room::Interest("chess".into())
    );
    let rust = Room::Interest("rust".into());
    wait_until("bob in alice's interest room", || async {
        members(&alice.client, &rust).await >= 1
    })
    .await;
    wait_for_user(&bob.client, alice.client.peer_id(), "alice").await;
    run(&alice_s, "borrowck").await;
    let (room, from, _) = message(&mut bob, "borrowck").await;
    assert_eq!((room, from.as_str()), (rust.clone(), "alice"));

    wait_until("bob among the members in /status", || async {
        run(&alice_s, "/status")
            .await
            .contains("members of interest:rust: bob")
    })
    .await;
    let status = run(&alice_s, "/status").await;
    assert!(status.contains("current room: interest:rust"), "{status}");
    assert!(status.contains("interests: rust"), "{status}");

    // A new interest is normalised, remembered and joined.
    let out = run(&carol_s, "/join-interest Board Games").await;
    assert!(out.contains("joined interest:board-games"), "{out}");
    let people = carol.client.people().await.unwrap();
    assert_eq!(people.me.interests, ["chess", "board-games"]);

    run(&alice_s, "/join lobby").await;
    run(&alice_s, "after").await;
    hears_after_but_never(&mut carol, "after", "borrowck").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_lists_online_users_with_rooms_distances_and_away_texts() {
    let bootstrap = spawn_bootstrap().await;
    let (alice, alice_s) = user("alice", Some(at(PARIS)), &[], &bootstrap.addr).await;
    let (bob, bob_s) = user("bob", Some(at(PARIS_EAST)), &["rust"], &bootstrap.addr).await;
    let (carol, _carol_s) = user("carol", Some(at(LYON)), &[], &bootstrap.addr).await;
    run(&bob_s, "/join-interest").await;
    run(&bob_s, "/away lunch").await;
    wait_for_user(&alice.client, bob.client.peer_id(), "bob").await;
    wait_for_user(&alice.client, carol.client.peer_id(), "carol").await;
    wait_until("bob's rooms and away text", || async {
        let people = alice.client.people().await.unwrap();
        people.users.iter().any(|u| {
            u.name == "bob"
                && u.rooms.contains(&Room::Interest("rust".into()))
                && u.away.as_deref() == Some("lunch")
        })
    })
    .await;
    let people = alice.client.people().await.unwrap();
    let carol_d = people
        .users
        .iter()
        .find(|u| u.name == "carol")
        .and_then(|u| u.distance_km)
        .unwrap();
    assert!((carol_d - 392.0).abs() < 5.0, "{carol_d}");
    let text = run(&alice_s, "/list-users").await;
    let bob_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("bob "))
        .unwrap();
    assert!(
        bob_line.contains(&bob.client.peer_id().to_string()),
        "{text}"
    );
    assert!(bob_line.contains(" km"), "{text}");
    assert!(bob_line.contains("interest:rust"), "{text}");
    assert!(bob_line.contains("(away: lunch)"), "{text}");
    assert!(text.contains("carol "), "{text}");
    assert!(text.contains("alice (you)"), "{text}");

    run(&bob_s, "/back").await;
    wait_until("bob is back", || async {
        let people = alice.client.people().await.unwrap();
        people
            .users
            .iter()
            .any(|u| u.name == "bob" && u.away.is_none())
    })
    .await;

    let geo = run(&alice_s, "/list-geo").await;
    assert!(geo.contains("latitude:  48.85660"), "{geo}");
    assert!(geo.contains("longitude: 2.35220"), "{geo}");
    assert!(geo.contains("geohash:   u09tvw"), "{geo}");
    assert!(geo.contains("radius:    none"), "{geo}");
    run(&alice_s, "/join-geo 10").await;
    let geo = run(&alice_s, "/list-geo").await;
    assert!(geo.contains("radius:    10.0 km"), "{geo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_users_drop_out() {
    let bootstrap = spawn_bootstrap().await;
    let (mut alice, _) = user("alice", None, &[], &bootstrap.addr).await;
    let (carol, _) = user("carol", None, &[], &bootstrap.addr).await;
    let carol_id = carol.client.peer_id();
    let name = next_event(&mut alice.events, |e| match e {
        Event::UserOnline { peer, name } if *peer == carol_id => Some(name.clone()),
        _ => None,
    })
    .await;
    assert_eq!(name, "carol", "reported once her name record was found");
    carol.client.shutdown().await;
    next_event(&mut alice.events, |e| match e {
        Event::UserOffline { peer, .. } if *peer == carol_id => Some(()),
        _ => None,
    })
    .await;
    let people = alice.client.people().await.unwrap();
    assert!(people.users.iter().all(|u| u.peer != carol_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_bob_is_shown_with_a_suffix_never_as_the_registered_bob() {
    let bootstrap = spawn_bootstrap().await;
    let (mut alice, alice_s) = user("alice", None, &[], &bootstrap.addr).await;
    let (bob, _) = user("bob", None, &[], &bootstrap.addr).await;
    let bob_id = bob.client.peer_id();
    wait_for_user(&alice.client, bob_id, "bob").await;
    wait_until("bob's claim", || async {
        let people = bob.client.people().await.unwrap();
        people.me.claim == ipm_node::client::people::ClaimStatus::Registered
    })
    .await;

    let (mut fake, fake_s) = user("bob", None, &[], &bootstrap.addr).await;
    let fake_id = fake.client.peer_id();
    let warning = next_event(&mut fake.events, |e| match e {
        Event::Error { message } if message.contains("is registered to another peer") => {
            Some(message.clone())
        }
        _ => None,
    })
    .await;
    assert!(warning.contains(&bob_id.to_string()), "{warning}");
    let suffixed = format!("bob#{}", ipm_node::logic::directory::short_id(&fake_id));
    wait_for_user(&alice.client, fake_id, &suffixed).await;
    let people = alice.client.people().await.unwrap();
    assert_eq!(
        people.users.iter().filter(|u| u.name == "bob").count(),
        1,
        "only the registered bob is shown as bob"
    );
    assert_eq!(alice.client.resolve_user("bob").await.unwrap(), bob_id);
    assert_eq!(alice.client.resolve_user(&suffixed).await.unwrap(), fake_id);

    wait_until("fake bob in the lobby", || async {
        members(&fake.client, &Room::Lobby).await >= 1
    })
    .await;
    run(&fake_s, "i am bob").await;
    let (_, from, _) = message(&mut alice, "i am bob").await;
    assert_eq!(from, suffixed);
    let status = run(&fake_s, "/status").await;
    assert!(status.contains("bob is registered to"), "{status}");
    drop(alice_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_contacts_are_kept_across_a_restart() {
    let bootstrap = spawn_bootstrap().await;
    let data = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let alice_config = || {
        let mut config = Config::for_tests("alice");
        config.data_dir = Some(DataDir::open(data.path()).unwrap());
        config.bootstrap = vec![bootstrap.addr.clone()];
        config
    };
    let mut alice = spawn_with_key(key.clone(), alice_config()).await;
    alice.client.dial(bootstrap.addr.clone()).await.unwrap();
    let alice_s = session(&alice);
    let (bob, bob_s) = user("bob", None, &[], &bootstrap.addr).await;
    let (carol, carol_s) = user("carol", None, &[], &bootstrap.addr).await;
    let (bob_id, carol_id) = (bob.client.peer_id(), carol.client.peer_id());
    wait_for_user(&alice.client, bob_id, "bob").await;
    wait_for_user(&alice.client, carol_id, "carol").await;

    let out = run(&alice_s, "/block bob").await;
    assert!(out.contains("blocked bob"), "{out}");
    let out = run(&alice_s, "/contacts add buddy carol").await;
    assert!(out.contains("added buddy"), "{out}");
    wait_for_user(&alice.client, carol_id, "buddy").await;
    for node in [&bob, &carol] {
        wait_until("lobby membership", || async {
            members(&node.client, &Room::Lobby).await >= 1
        })
        .await;
    }
    run(&bob_s, "from a blocked user").await;
    run(&carol_s, "from a contact").await;
    let (_, from, _) = next_event(&mut alice.events, |e| match e {
        Event::Message { text, .. } if text == "from a blocked user" => {
            panic!("a blocked user's line was shown")
        }
        Event::Message {
            text, from, room, ..
        } if text == "from a contact" => Some((room.clone(), from.clone(), ())),
        _ => None,
    })
    .await;
    assert_eq!(from, "buddy");
    let contacts = run(&alice_s, "/contacts").await;
    assert!(
        contacts.contains("buddy") && contacts.contains("online"),
        "{contacts}"
    );
    assert!(contacts.contains("blocked:"), "{contacts}");

    // The files hold them, and a restarted node still applies them.
    let book = ContactBook::load(&data.path().join("contacts.json")).unwrap();
    assert!(book.is_blocked(&bob_id));
    assert_eq!(book.petname(&carol_id), Some("buddy"));
    alice.client.shutdown().await;
    let alice = spawn_with_key(key, alice_config()).await;
    let people = alice.client.people().await.unwrap();
    assert!(people.blocked.iter().any(|(_, p)| *p == bob_id));
    assert!(people
        .contacts
        .iter()
        .any(|c| c.name == "buddy" && c.peer == carol_id));
    assert_eq!(alice.client.resolve_user("buddy").await.unwrap(), carol_id);
    let again = Session::new(alice.client.clone());
    let err = again.run_line("/unblock buddy").await.unwrap_err();
    assert!(
        matches!(&err, SessionError::NotBlocked { user, peer } if user == "buddy" && *peer == carol_id),
        "{err}"
    );
    let out = run(&again, &format!("/unblock {bob_id}")).await;
    assert!(out.contains("unblocked"), "{out}");
    let out = run(&again, "/contacts remove buddy").await;
    assert!(out.contains("removed buddy"), "{out}");
    assert!(ContactBook::load(&data.path().join("contacts.json"))
        .unwrap()
        .petname(&carol_id)
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_and_interests_are_remembered_in_the_settings() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests("alice");
    config.data_dir = Some(DataDir::open(data.path()).unwrap());
    let node = spawn(config).await;
    let s = session(&node);
    let out = run(&s, "/geo 48.8566, 2.3522").await;
    assert!(out.contains("others see the cell u09tvw"), "{out}");
    run(&s, "/join-interest rust").await;
    let settings = Settings::load(&data.path().join("settings.json")).unwrap();
    assert_eq!(settings.position, Some(at(PARIS)));
    assert_eq!(settings.interests, ["rust"]);
    // Moving while in the location group moves the group.
    run(&s, "/join-geo 10").await;
    let out = run(&s, "/geo 45.7640,4.8357").await;
    assert!(
        out.contains("the location group moved to geo:u05k"),
        "{out}"
    );
    assert_eq!(s.current().to_string(), "geo:u05k (10.0 km)");
    let out = run(&s, "/geo off").await;
    assert!(out.contains("left the location group"), "{out}");
    assert_eq!(s.current_room().unwrap(), Room::Lobby);
    let err = s.run_line("/join-geo 5").await.unwrap_err();
    assert!(
        matches!(err, SessionError::Node(NodeError::NoPosition)),
        "{err}"
    );
    assert_eq!(
        Settings::load(&data.path().join("settings.json"))
            .unwrap()
            .position,
        None
    );
}

/// Needs a multicast-capable interface (mDNS answers travel over it and loop back to this
/// host); the nodes listen on every interface, as they do by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdns_peers_find_each_other_without_a_bootstrap() {
    let lan = |name: &str| {
        let mut config = Config::for_tests(name);
        config.mdns = true;
        config.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
        config
    };
    let alice = spawn(lan("alice")).await;
    let mut bob = spawn(lan("bob")).await;
    let alice_id = alice.client.peer_id();
    next_event(&mut bob.events, |e| match e {
        Event::Connected { peer, .. } if *peer == alice_id => Some(()),
        _ => None,
    })
    .await;
    wait_until("lobby membership", || async {
        members(&alice.client, &Room::Lobby).await >= 1
    })
    .await;
    alice
        .client
        .publish(Room::Lobby, "hello over the LAN".into())
        .await
        .unwrap();
    message(&mut bob, "hello over the LAN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_group_and_current_room_come_back_and_a_leave_is_for_good() {
    let data = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = Config::for_tests("alice");
        config.data_dir = Some(DataDir::open(data.path()).unwrap());
        config.position = Some(at(PARIS));
        config
    };
    let node = spawn(config()).await;
    let s = session(&node);
    run(&s, "/join-interest rust").await;
    run(&s, "/join-geo 25").await;
    let out = run(&s, "/leave lobby").await;
    assert_eq!(out, "left lobby");
    node.stop().await;

    let node = spawn(config()).await;
    let s = session(&node);
    assert_eq!(s.current().to_string(), "geo:u09 (25.0 km)");
    let rooms = run(&s, "/rooms").await;
    assert!(rooms.contains("  interest:rust (0 others)"), "{rooms}");
    assert!(rooms.contains("* location group"), "{rooms}");
    assert!(
        !rooms.contains("lobby"),
        "the lobby was left for good: {rooms}"
    );
    run(&s, "/join interest:rust").await;
    node.stop().await;

    let node = spawn(config()).await;
    let s = session(&node);
    assert_eq!(s.current_room().unwrap(), Room::Interest("rust".into()));
    // Leaving the current room moves to a room still joined, or says there is none.
    run(&s, "/leave geo").await;
    let out = run(&s, "/leave interest:rust").await;
    assert_eq!(
        out,
        "left interest:rust; you are in no room now: /join lobby, /join interest:<tag> or /join-geo"
    );
    let err = s.run_line("hello?").await.unwrap_err().describe();
    assert_eq!(
        err,
        "you are in no room: /join lobby, /join interest:<tag> or /join-geo first"
    );
    let out = run(&s, "/join lobby").await;
    assert!(out.contains("joined lobby"), "{out}");
    let out = run(&s, "/join interest:rust").await;
    assert!(out.contains("joined interest:rust"), "{out}");
    let out = run(&s, "/leave interest:rust").await;
    assert_eq!(out, "left interest:rust; current room is now lobby");
    // Leaving the location group does not make a room current that is not joined.
    run(&s, "/join-geo 25").await;
    assert_eq!(run(&s, "/leave lobby").await, "left lobby");
    let out = run(&s, "/leave geo").await;
    assert_eq!(
        out,
        "left the location group; you are in no room now: /join lobby, /join interest:<tag> or /join-geo"
    );
}

/// Bob, killed with kill -9 and started again with the same flags, is back in the interest
/// room he joined: a line said there reaches him without a new /join.
#[test]
fn a_joined_room_survives_kill_9() {
    use support::procs::*;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (boot_dir, alice_dir, bob_dir) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    let (_bootstrap, boot) = start_bootstrap(boot_dir);
    let _alice = start_node("alice", alice_dir, &boot);
    let mut bob = start_node("bob", bob_dir, &boot);
    for dir in [alice_dir, bob_dir] {
        let out = ctl_ok(dir, &["/join", "interest:rust"]);
        assert!(out.contains("joined interest:rust"), "{out}");
    }
    // The bootstrap forwards the room but is nobody: one other person is in it.
    wait_for_output(alice_dir, &["/rooms"], "bob in interest:rust", |out| {
        out.contains("* interest:rust (1 other)")
    });
    bob.kill9();

    let bob = start_node("bob", bob_dir, &boot);
    let rooms = ctl_ok(bob_dir, &["/rooms"]);
    assert!(rooms.contains("* interest:rust"), "{rooms}");
    wait_for_output(alice_dir, &["/rooms"], "bob back in interest:rust", |out| {
        out.contains("* interest:rust (1 other)")
    });
    // The room's mesh forms again in a heartbeat or two: alice asks until bob hears her.
    let heard = (0..20).any(|i| {
        let text = format!("anyone into rust? {i}");
        ctl_ok(alice_dir, &[&text]);
        bob.try_wait_line_within(std::time::Duration::from_secs(2), |line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["event"] == "message"
                && v["room"] == "interest:rust"
                && v["text"].as_str()?.starts_with("anyone into rust?"))
            .then_some(())
        })
        .is_some()
    });
    assert!(
        heard,
        "bob never heard alice in interest:rust after his restart"
    );
}
