//! File transfer between in-process nodes: offers, accept, verify, resume, corruption,
//! sharing with a room.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::path::{Path, PathBuf};

use ipm_node::{client::OfferTarget, Event};
use ipm_protocol::{Room, TransferId};
use libp2p::identity::Keypair;
use sha2::{Digest, Sha256};
use support::*;

fn write_file(dir: &Path, name: &str, len: usize) -> (PathBuf, String) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, hex::encode(Sha256::digest(&data)))
}

async fn offer_of(node: &mut TestNode) -> (TransferId, String) {
    next_event(&mut node.events, |e| match e {
        Event::FileOffer { transfer, name, .. } => Some((*transfer, name.clone())),
        _ => None,
    })
    .await
}

async fn received(node: &mut TestNode, want: TransferId) -> (PathBuf, String) {
    next_event(&mut node.events, |e| match e {
        Event::FileReceived {
            transfer,
            path,
            sha256,
            ..
        } if *transfer == want => Some((path.clone(), sha256.clone())),
        Event::FileFailed { transfer, reason } if *transfer == want => {
            panic!("transfer failed: {reason}")
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_file_arrives_with_the_same_sha256_and_never_overwrites() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();

    // The second round offers other bytes under the same name: they go beside the first.
    for round in 0..2 {
        let (path, sha) = write_file(src.path(), ".holiday photos.bin", 3 * 1024 * 1024 + round);
        let id = alice
            .client
            .offer_file(OfferTarget::Peer(bob.client.peer_id()), path.clone())
            .await
            .unwrap();
        let (offered, name) = offer_of(&mut bob).await;
        assert_eq!(offered, id);
        assert_eq!(name, "holiday photos.bin", "no hidden files");
        bob.client.accept(&id.to_string()[..8]).await.unwrap();
        let (got, got_sha) = received(&mut bob, id).await;
        assert_eq!(got_sha, sha);
        assert_eq!(
            hex::encode(Sha256::digest(std::fs::read(&got).unwrap())),
            sha
        );
        let expected = if round == 0 {
            "holiday photos.bin"
        } else {
            "holiday photos (1).bin"
        };
        assert_eq!(got.file_name().unwrap().to_str().unwrap(), expected);
        assert!(got.starts_with(bob.dir.join("downloads")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_after_the_offer_is_detected_and_not_kept() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();
    let (path, _) = write_file(src.path(), "report.pdf", 600_000);
    let id = alice
        .client
        .offer_file(OfferTarget::Peer(bob.client.peer_id()), path.clone())
        .await
        .unwrap();
    offer_of(&mut bob).await;
    // One byte changes on the sender's disk: same size, different content.
    let mut data = std::fs::read(&path).unwrap();
    data[300_000] ^= 0x55;
    std::fs::write(&path, &data).unwrap();
    bob.client.accept(&id.to_string()).await.unwrap();
    let reason = next_event(&mut bob.events, |e| match e {
        Event::FileFailed { transfer, reason } if *transfer == id => Some(reason.clone()),
        Event::FileReceived { .. } => panic!("a corrupted file was accepted"),
        _ => None,
    })
    .await;
    assert!(reason.contains("sha256 mismatch"), "{reason}");
    let downloads = bob.dir.join("downloads");
    assert!(!downloads.join("report.pdf").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_by_the_recipients_restart_resumes_from_disk() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let bob_dir = tempfile::tempdir().unwrap();
    let bob_key = Keypair::generate_ed25519();
    let mut bob = start_user(bob_key.clone(), "bob", bob_dir.path(), &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();
    // Big enough that the download is still running well after its first progress report
    // (every 250 ms), even where loopback moves a few Gbit/s: bob is stopped then.
    let size = 256 * 1024 * 1024;
    let (path, sha) = write_file(src.path(), "big.iso", size);
    let id = alice
        .client
        .offer_file(OfferTarget::Peer(bob.client.peer_id()), path)
        .await
        .unwrap();
    offer_of(&mut bob).await;
    bob.client.accept(&id.to_string()).await.unwrap();
    let part = bob_dir
        .path()
        .join("downloads/.partial")
        .join(format!("{id}.part"));
    // Stop bob once part of the file is on disk.
    next_event(&mut bob.events, |e| match e {
        Event::FileProgress { bytes, .. } if *bytes > 0 && (*bytes as usize) < size => Some(()),
        Event::FileReceived { .. } => panic!("finished before the restart"),
        _ => None,
    })
    .await;
    bob.stop().await;
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && (kept as usize) < size, "{kept} bytes kept");

    let mut bob = start_user(bob_key, "bob", bob_dir.path(), &bootstrap.addr).await;
    let first = next_event(&mut bob.events, |e| match e {
        Event::FileProgress {
            transfer, bytes, ..
        } if *transfer == id => Some(*bytes),
        _ => None,
    })
    .await;
    assert!(first >= kept, "resumed at {first}, had {kept}");
    let (_, got_sha) = received(&mut bob, id).await;
    assert_eq!(got_sha, sha);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_shared_in_a_room_can_be_fetched_by_anyone_there() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    wait_until("the bootstrap to see the lobby", || async {
        members(&bootstrap.client, &Room::Lobby).await >= 2
    })
    .await;
    wait_until("alice to see the lobby", || async {
        members(&alice.client, &Room::Lobby).await >= 1
    })
    .await;
    let src = tempfile::tempdir().unwrap();
    let (path, sha) = write_file(src.path(), "notes.txt", 70_000);
    let id = alice
        .client
        .offer_file(OfferTarget::Room(Room::Lobby), path)
        .await
        .unwrap();
    let (offered, name) = offer_of(&mut bob).await;
    assert_eq!((offered, name.as_str()), (id, "notes.txt"));
    bob.client.accept(&id.to_string()).await.unwrap();
    let (_, got_sha) = received(&mut bob, id).await;
    assert_eq!(got_sha, sha);
}

/// The JSON event of `line`, when it is one named `event`.
fn json_event(line: &str, event: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v["event"] == event).then_some(v)
}

/// Whether `line` is the event of a file sent whole.
fn sent_whole(line: &str) -> bool {
    json_event(line, "file_sending").is_some_and(|v| v["bytes"] == v["size"])
}

#[test]
fn a_sharer_sees_who_gets_its_file_and_how_it_stands_and_a_second_get_says_already_received() {
    use support::procs::*;
    let tmp = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = start_bootstrap(&tmp.path().join("bootstrap"));
    let [a, c] = ["alice", "carol"].map(|n| tmp.path().join(n));
    let alice = start_node("alice", &a, &addr);
    let carol = start_node("carol", &c, &addr);
    for (dir, other) in [(&a, "carol"), (&c, "alice")] {
        wait_for_output(dir, &["/status"], &format!("{other} in the lobby"), |s| {
            s.lines()
                .any(|l| l.starts_with("members of lobby:") && l.contains(other))
        });
    }
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let (path, _) = write_file(&src, "big.bin", 3 * 1024 * 1024);
    let path = path.to_str().unwrap();

    ctl_ok(&a, &["/share", path]);
    let offered = |proc: &Proc, not: &str| {
        proc.wait_line("the share", |line| {
            json_event(line, "file_offer")
                .and_then(|v| v["transfer"].as_str().map(str::to_owned))
                .filter(|id| id != not)
        })
    };
    let id = offered(&carol, "");
    ctl_ok(&c, &["/get", &id]);
    carol.wait_event("the file", |v| v["event"] == "file_received");

    // Alice is told who is getting what, then that it was sent whole, once each.
    let getting = alice.wait_line("carol getting the file", |line| {
        assert!(!sent_whole(line), "sent whole before getting: {line}");
        json_event(line, "file_getting")
    });
    assert_eq!(
        (getting["by"].as_str(), getting["name"].as_str()),
        (Some("carol"), Some("big.bin"))
    );
    let whole = alice.wait_line("the file sent whole", |line| {
        assert!(json_event(line, "file_getting").is_none(), "{line}");
        sent_whole(line).then(|| line.to_owned())
    });
    assert!(
        whole.contains(&id) && whole.contains("\"to_name\":\"carol\""),
        "{whole}"
    );
    // Its state follows: sent, not offered.
    let rows = ctl_ok(&a, &["/transfers"]);
    let row = rows.lines().find(|l| l.contains("big.bin")).unwrap();
    assert!(row.trim_end().ends_with("sent"), "{rows}");

    // Nothing more of it comes before carol's next line.
    ctl_ok(&c, &["thanks"]);
    alice.wait_line("carol's thanks", |line| {
        assert!(
            !sent_whole(line) && json_event(line, "file_getting").is_none(),
            "told again: {line}"
        );
        json_event(line, "message")
            .filter(|v| v["text"] == "thanks")
            .map(|_| ())
    });

    // Shared again: carol's /get says the file is there already, and writes no copy.
    ctl_ok(&a, &["/share", path]);
    let again = offered(&carol, &id);
    let out = ctl(&c, &["/get", &again]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("already received: "), "{said}");
    assert!(said.contains("big.bin"), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "{said}");
    let downloads: Vec<_> = std::fs::read_dir(c.join("downloads"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(downloads, ["big.bin"]);
}
