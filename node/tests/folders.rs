//! Folders as one transfer between in-process nodes: a nested folder sent and shared, the
//! files of a folder resumed one by one after the recipient's restart, and hostile
//! manifests from a raw peer (paths going up, absolute paths, links, names too long to
//! store) refused without writing anything.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::path::{Path, PathBuf};

use ipm_node::{client::OfferTarget, Event};
use ipm_protocol::{
    encode,
    folder::{entry_id, manifest_id, FolderSummary, Manifest, ManifestEntry, FILE_KIND},
    limits, FileOffer, FileRequest, FileResponse, TransferId,
};
use libp2p::identity::Keypair;
use raw_peer::{Proto, RawPeer};
use sha2::{Digest, Sha256};
use support::*;

fn content(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7) % 253) as u8)
        .collect()
}

/// Writes `files` (relative path, content) under `root`.
fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (path, data) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

/// Every file under `root`, by relative path, with its content.
fn read_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn sorted(files: &[(&str, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = files
        .iter()
        .map(|(p, d)| ((*p).to_owned(), d.clone()))
        .collect();
    out.sort();
    out
}

async fn folder_offer_of(
    node: &mut TestNode,
    want: TransferId,
) -> (String, u64, u32, Option<String>) {
    next_event(&mut node.events, |e| match e {
        Event::FolderOffer {
            transfer,
            name,
            size,
            files,
            room,
            ..
        } if *transfer == want => Some((name.clone(), *size, *files, room.clone())),
        Event::FileOffer { transfer, .. } if *transfer == want => {
            panic!("a folder was offered as a file")
        }
        _ => None,
    })
    .await
}

/// Waits for the end of folder `want`: where it is, and every progress report before it.
async fn folder_received(node: &mut TestNode, want: TransferId) -> (PathBuf, Vec<(u64, u64)>) {
    let mut progress = Vec::new();
    let path = next_event(&mut node.events, |e| match e {
        Event::FileProgress {
            transfer,
            bytes,
            size,
        } if *transfer == want => {
            progress.push((*bytes, *size));
            None
        }
        Event::FolderReceived { transfer, path, .. } if *transfer == want => Some(path.clone()),
        Event::FileFailed { transfer, reason } if *transfer == want => {
            panic!("the folder failed: {reason}")
        }
        _ => None,
    })
    .await;
    (path, progress)
}

fn nested() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("cover.jpg", content(1, 70_000)),
        ("2026/summer/sea.jpg", content(2, 1_500_000)),
        ("2026/summer/notes.txt", b"sand, sun".to_vec()),
        ("2026/winter/empty.txt", Vec::new()),
        (".album", b"hidden, yet part of the folder".to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_folder_arrives_whole_with_one_progress_stream_and_never_overwrites() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("holiday");
    let mut files = nested();

    // Each round changes one file: another folder under the same name goes beside the first.
    for round in 0..2 {
        files[0].1 = content(100 + round, 1000);
        write_tree(&root, &files);
        let total: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
        let id = alice
            .client
            .offer_file(OfferTarget::Peer(bob.client.peer_id()), root.clone())
            .await
            .unwrap();
        let (name, size, count, room) = folder_offer_of(&mut bob, id).await;
        assert_eq!(
            (name.as_str(), size, count, room),
            ("holiday", total, 5, None)
        );
        let listed = bob.client.transfers().await.unwrap();
        assert!(
            listed.iter().any(|t| t.id == id && t.name == "holiday/"),
            "{listed:?}"
        );
        bob.client.accept(&id.to_string()[..8]).await.unwrap();
        let (path, progress) = folder_received(&mut bob, id).await;
        let expected = if round == 0 { "holiday" } else { "holiday (1)" };
        assert_eq!(path, bob.dir.join("downloads").join(expected));
        assert_eq!(read_tree(&path), sorted(&files));
        // One progress stream for the whole folder, never going back, ending full.
        assert!(progress.iter().all(|(_, s)| *s == total), "{progress:?}");
        assert!(
            progress.windows(2).all(|w| w[0].0 <= w[1].0),
            "{progress:?}"
        );
        assert_eq!(progress.last().map(|p| p.0), Some(total));
        let staging = bob
            .dir
            .join("downloads/.partial")
            .join(format!("{id}.folder"));
        assert!(!staging.exists(), "the staging folder is gone");
    }

    // Shared in a room, the folder is fetched with /get.
    files[0].1 = content(200, 1000);
    write_tree(&root, &files);
    let id = alice
        .client
        .offer_file(OfferTarget::Room(ipm_protocol::Room::Lobby), root.clone())
        .await
        .unwrap();
    let (_, _, _, room) = folder_offer_of(&mut bob, id).await;
    assert_eq!(room.as_deref(), Some("lobby"));
    bob.client.accept(&id.to_string()).await.unwrap();
    let (path, _) = folder_received(&mut bob, id).await;
    assert_eq!(path, bob.dir.join("downloads/holiday (2)"));
    assert_eq!(read_tree(&path), sorted(&files));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_resumes_after_the_recipients_restart_without_fetching_complete_files_again() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let bob_dir = tempfile::tempdir().unwrap();
    let bob_key = Keypair::generate_ed25519();
    let mut bob = start_user(bob_key.clone(), "bob", bob_dir.path(), &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("project");
    // Files are fetched in path order: the small ones, then one big enough to be still on
    // its way at the first progress reports (every 250 ms), when bob is stopped.
    let small = vec![
        ("a.txt", content(3, 10_000)),
        ("docs/b.md", content(4, 200_000)),
        ("docs/deep/c.bin", content(5, 3_000_000)),
    ];
    let big_len = 256 * 1024 * 1024;
    write_tree(&root, &small);
    write_tree(&root, &[("zz/big.iso", content(6, big_len))]);
    let small_total: u64 = small.iter().map(|(_, d)| d.len() as u64).sum();
    let total = small_total + big_len as u64;

    let id = alice
        .client
        .offer_file(OfferTarget::Peer(bob.client.peer_id()), root.clone())
        .await
        .unwrap();
    folder_offer_of(&mut bob, id).await;
    bob.client.accept(&id.to_string()).await.unwrap();
    let kept = next_event(&mut bob.events, |e| match e {
        Event::FileProgress {
            transfer, bytes, ..
        } if *transfer == id && *bytes > small_total && *bytes < total => Some(*bytes),
        Event::FolderReceived { .. } => panic!("finished before the restart"),
        _ => None,
    })
    .await;
    bob.stop().await;

    // The small files are complete at bob's: the sender no longer has them, so fetching
    // any of them again would fail the folder.
    std::fs::remove_file(root.join("a.txt")).unwrap();
    std::fs::remove_dir_all(root.join("docs")).unwrap();

    let mut bob = start_user(bob_key, "bob", bob_dir.path(), &bootstrap.addr).await;
    let first = next_event(&mut bob.events, |e| match e {
        Event::FileProgress {
            transfer, bytes, ..
        } if *transfer == id => Some(*bytes),
        _ => None,
    })
    .await;
    assert!(first >= small_total, "resumed at {first}, had {kept}");
    let (path, _) = folder_received(&mut bob, id).await;
    let got = read_tree(&path);
    assert_eq!(got.len(), 4);
    for (name, data) in &small {
        assert!(got.contains(&((*name).to_owned(), data.clone())), "{name}");
    }
    let big = std::fs::read(path.join("zz/big.iso")).unwrap();
    assert_eq!(Sha256::digest(&big), Sha256::digest(content(6, big_len)));
}

/// One file of a folder the raw peer serves: its manifest entry and its bytes.
type Served = (ManifestEntry, Vec<u8>);

/// A folder offer from the raw peer, its manifest and files served over `/ipm/file/1`
/// chunks; `entries` are written as they are, hostile or not.
fn serve_folder(raw: &RawPeer, name: &str, entries: &[Served]) -> FileOffer {
    let manifest = Manifest {
        entries: entries.iter().map(|(e, _)| e.clone()).collect(),
    };
    let bytes = encode(&manifest);
    let id = TransferId::random();
    raw.serve(manifest_id(&id), bytes.clone());
    for (i, (_, data)) in entries.iter().enumerate() {
        raw.serve(entry_id(&id, i as u32), data.clone());
    }
    FileOffer {
        transfer: id,
        from_name: "mallory".into(),
        name: name.into(),
        size: entries.iter().map(|(e, _)| e.size).sum(),
        sha256: Sha256::digest(&bytes).into(),
        folder: Some(FolderSummary {
            files: entries.len() as u32,
            manifest_len: bytes.len() as u32,
        }),
    }
}

fn entry(path: &str, data: &[u8]) -> Served {
    (
        ManifestEntry {
            path: path.into(),
            size: data.len() as u64,
            sha256: Sha256::digest(data).into(),
            kind: FILE_KIND.into(),
        },
        data.to_vec(),
    )
}

async fn offered(raw: &RawPeer, victim: &TestNode, offer: &FileOffer) {
    let answer = raw
        .request(
            victim.client.peer_id(),
            Proto::File,
            encode(&FileRequest::Offer(offer.clone())),
        )
        .await
        .unwrap();
    let answer: FileResponse =
        ipm_protocol::decode(&answer, limits::MAX_FILE_RESPONSE_LEN).unwrap();
    assert_eq!(answer, FileResponse::Noted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_folder_manifests_from_a_raw_peer_are_refused_and_write_nothing() {
    let bootstrap = spawn_bootstrap().await;
    let mut victim = spawn_user("alice", &bootstrap.addr).await;
    let raw = RawPeer::connected_to(victim.addr.clone(), victim.client.peer_id()).await;
    let pwned = b"you have been pwned\n";
    let outside = std::env::temp_dir().join(format!("ipm-pwned-{}", TransferId::random()));
    let long = "n".repeat(300);
    let mut link = entry("shortcut", b"/etc/passwd");
    link.0.kind = "link".into();
    let cases: Vec<(Vec<Served>, &str)> = vec![
        (
            vec![entry("ok.txt", b"fine"), entry("../x", pwned)],
            "a path going up (..)",
        ),
        (vec![entry("a/../../x", pwned)], "a path going up (..)"),
        (
            vec![entry(outside.to_str().unwrap(), pwned)],
            "an absolute path",
        ),
        (
            vec![entry("ok.txt", b"fine"), link],
            "a link (links are never created)",
        ),
        (
            vec![entry(&format!("sub/{long}"), pwned)],
            "a name longer than 255 bytes",
        ),
        (
            vec![entry("same", pwned), entry("same", pwned)],
            "two files with one path",
        ),
    ];
    for (entries, why) in cases {
        let offer = serve_folder(&raw, "loot", &entries);
        offered(&raw, &victim, &offer).await;
        folder_offer_of(&mut victim, offer.transfer).await;
        victim
            .client
            .accept(&offer.transfer.to_string())
            .await
            .unwrap();
        let reason = next_event(&mut victim.events, |e| match e {
            Event::FileFailed { transfer, reason } if *transfer == offer.transfer => {
                Some(reason.clone())
            }
            Event::FolderReceived { .. } => panic!("a hostile folder was received ({why})"),
            _ => None,
        })
        .await;
        println!("refused: {reason}");
        assert!(reason.contains(why), "{why}: {reason}");
    }
    // A manifest that breaks the offer's promise, or is not the one offered.
    let mut liar = serve_folder(&raw, "loot", &[entry("a", b"aa"), entry("b", b"bb")]);
    liar.folder = Some(FolderSummary {
        files: 3,
        ..liar.folder.unwrap()
    });
    let mut swapped = serve_folder(&raw, "loot", &[entry("a", b"aa")]);
    swapped.sha256 = [0; 32];
    for (offer, why) in [
        (liar, "the manifest lists 2 files"),
        (swapped, "sha256 mismatch"),
    ] {
        offered(&raw, &victim, &offer).await;
        victim
            .client
            .accept(&offer.transfer.to_string())
            .await
            .unwrap();
        let reason = next_event(&mut victim.events, |e| match e {
            Event::FileFailed { transfer, reason } if *transfer == offer.transfer => {
                Some(reason.clone())
            }
            _ => None,
        })
        .await;
        assert!(reason.contains(why), "{why}: {reason}");
    }

    // Nothing was written: not outside the downloads folder, not inside it, and the staging
    // folders are gone.
    let downloads = victim.dir.join("downloads");
    assert!(!outside.exists());
    assert!(!victim.dir.join("x").exists() && !downloads.join("x").exists());
    let partial = downloads.join(".partial");
    wait_until("the staging folders to go", || async {
        std::fs::read_dir(&partial).map_or(true, |d| d.count() == 0)
    })
    .await;
    let left: Vec<_> = std::fs::read_dir(&downloads)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".partial")
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The same raw peer's honest nested folder arrives, over chunks (it does not stream).
    let honest = [
        entry("a/b/c.txt", b"deep"),
        entry("a/d.txt", b"shallow"),
        entry("e.bin", &content(7, 600_000)),
    ];
    let offer = serve_folder(&raw, "../../loot", &honest);
    offered(&raw, &victim, &offer).await;
    let (name, ..) = folder_offer_of(&mut victim, offer.transfer).await;
    assert_eq!(
        name, "loot",
        "the folder's own name is cleaned like a file's"
    );
    victim
        .client
        .accept(&offer.transfer.to_string())
        .await
        .unwrap();
    let (path, _) = folder_received(&mut victim, offer.transfer).await;
    assert_eq!(path, downloads.join("loot"));
    let expected: Vec<(&str, Vec<u8>)> = honest
        .iter()
        .map(|(e, d)| (e.path.as_str(), d.clone()))
        .collect();
    assert_eq!(read_tree(&path), sorted(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_asking_for_a_folder_as_one_file_is_told_it_needs_a_newer_ipm() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("box");
    write_tree(&root, &[("one.txt", b"1".to_vec())]);
    let raw = RawPeer::connected_to(alice.addr.clone(), alice.client.peer_id()).await;
    let id = alice
        .client
        .offer_file(OfferTarget::Peer(raw.peer_id), root)
        .await
        .unwrap();
    // An old node shows the offer as a file and asks for its bytes: the sender refuses with
    // the reason, on either protocol.
    let chunk = FileRequest::Chunk {
        transfer: id,
        offset: 0,
        len: 1,
    };
    let answer = raw
        .request(alice.client.peer_id(), Proto::File, encode(&chunk))
        .await
        .unwrap();
    let answer: FileResponse =
        ipm_protocol::decode(&answer, limits::MAX_FILE_RESPONSE_LEN).unwrap();
    assert_eq!(
        answer,
        FileResponse::Error("this is a folder: receiving folders needs a newer ipm".into())
    );
    // A stranger guessing the ids of the folder's parts gets nothing.
    let stranger = RawPeer::connected_to(alice.addr.clone(), alice.client.peer_id()).await;
    let guess = FileRequest::Chunk {
        transfer: manifest_id(&id),
        offset: 0,
        len: 16,
    };
    let answer = stranger
        .request(alice.client.peer_id(), Proto::File, encode(&guess))
        .await
        .unwrap();
    let answer: FileResponse =
        ipm_protocol::decode(&answer, limits::MAX_FILE_RESPONSE_LEN).unwrap();
    assert_eq!(answer, FileResponse::Error("no such transfer".into()));
}

/// `node`'s events up to and including the first `until` accepts (bounded by [`WAIT`]).
async fn events_until(node: &mut TestNode, mut until: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            match node.events.recv().await {
                Ok(event) => {
                    let done = until(&event);
                    seen.push(event);
                    if done {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("the awaited event did not come in time");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_of_a_folder_sees_who_gets_it_each_file_and_the_folder_sent_once() {
    let bootstrap = spawn_bootstrap().await;
    let mut alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("trip");
    let files = [
        ("a.jpg", content(1, 300_000)),
        ("b.jpg", content(2, 200_000)),
        ("notes/c.txt", content(3, 5_000)),
    ];
    write_tree(&root, &files);
    let id = alice
        .client
        .offer_file(OfferTarget::Peer(bob.client.peer_id()), root)
        .await
        .unwrap();
    let state = |list: Vec<ipm_node::client::TransferView>| {
        list.into_iter()
            .find(|t| t.id == id)
            .map(|t| t.state)
            .unwrap()
    };
    use ipm_node::store::transfers::State;
    assert_eq!(
        state(alice.client.transfers().await.unwrap()),
        State::Offered
    );
    folder_offer_of(&mut bob, id).await;
    bob.client.accept(&id.to_string()).await.unwrap();
    folder_received(&mut bob, id).await;
    // Bob says so once he has it: everything alice is told of the folder comes before.
    bob.client
        .send_direct(alice.client.peer_id(), "got it".into())
        .await
        .unwrap();
    let told = events_until(
        &mut alice,
        |e| matches!(e, Event::Direct { text, .. } if text == "got it"),
    )
    .await;
    let getting: Vec<_> = told
        .iter()
        .filter_map(|e| match e {
            Event::FileGetting {
                transfer, by, name, ..
            } => Some((*transfer, by.as_str(), name.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(getting, [(id, "bob", "trip/")]);
    let mut sent_files: Vec<&str> = told
        .iter()
        .filter_map(|e| match e {
            Event::FolderFileSent { transfer, path, .. } if *transfer == id => Some(path.as_str()),
            _ => None,
        })
        .collect();
    sent_files.sort();
    assert_eq!(sent_files, ["trip/a.jpg", "trip/b.jpg", "trip/notes/c.txt"]);
    let whole: Vec<_> = told
        .iter()
        .filter_map(|e| match e {
            Event::FileSending {
                transfer,
                bytes,
                size,
                ..
            } if bytes >= size => Some((*transfer, *size)),
            _ => None,
        })
        .collect();
    assert_eq!(whole, [(id, 505_000)], "one sent-whole, for the folder");
    // Every report names the folder, never one of its parts.
    assert!(told.iter().all(|e| match e {
        Event::FileSending { transfer, .. } => *transfer == id,
        _ => true,
    }));
    assert_eq!(state(alice.client.transfers().await.unwrap()), State::Sent);
}
