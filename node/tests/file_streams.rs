//! Files over `/ipm/file/2` between real processes: a download survives the `kill -9` of its
//! receiver and then of its sender, resuming from the partial file each time; and nodes
//! speaking only `/ipm/file/1` (the previous release) still exchange files with new ones.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::path::{Path, PathBuf};

use ipm_node::{client::OfferTarget, Config, Event};
use sha2::{Digest, Sha256};
use support::procs::*;
use support::*;

fn field(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn wait_json(
    proc: &Proc,
    what: &str,
    mut pick: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    proc.wait_line(what, |line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        pick(&value).then_some(value)
    })
}

/// Waits for a progress report of `id` strictly between 0 and `size`: the file is on its
/// way. A finished or failed transfer fails the test.
fn wait_midway(proc: &Proc, id: &str, size: u64) -> u64 {
    let v = wait_json(proc, "progress of the download", |v| {
        if v["transfer"] == id && (v["event"] == "file_received" || v["event"] == "file_failed") {
            panic!("the transfer ended before it could be cut: {v}");
        }
        v["event"] == "file_progress"
            && v["transfer"] == id
            && v["bytes"].as_u64().is_some_and(|b| b > 0 && b < size)
    });
    v["bytes"].as_u64().unwrap_or_default()
}

fn part_len(dir: &Path, id: &str) -> u64 {
    let part: PathBuf = dir.join("downloads/.partial").join(format!("{id}.part"));
    std::fs::metadata(part).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_streamed_download_survives_the_kill_9_of_its_receiver_and_of_its_sender() {
    let tmp = tempfile::tempdir().unwrap();
    let (_bootstrap, addr) = start_bootstrap(&tmp.path().join("bootstrap"));
    let (alice_dir, bob_dir) = (tmp.path().join("alice"), tmp.path().join("bob"));
    let mut alice = start_node("alice", &alice_dir, &addr);
    let mut bob = start_node("bob", &bob_dir, &addr);
    let bob_id = peer_id(&bob_dir);
    // Large enough to be still on its way at the first progress reports (every 250 ms).
    let size: u64 = 512 * 1024 * 1024;
    let src = tmp.path().join("disk.img");
    let sha = write_big(&src, size as usize);

    let out = ctl_ok(&alice_dir, &["/send-file", &bob_id, src.to_str().unwrap()]);
    assert!(out.contains("offered"), "{out}");
    let offer = wait_json(&bob, "the file offer", |v| v["event"] == "file_offer");
    let id = field(&offer, "transfer");
    ctl_ok(&bob_dir, &["/accept", &id]);

    // The receiver dies mid-transfer; what it wrote stays, and its restart resumes there.
    wait_midway(&bob, &id, size);
    bob.kill9();
    let kept = part_len(&bob_dir, &id);
    assert!(kept > 0 && kept < size, "{kept} bytes kept");
    bob = start_node("bob", &bob_dir, &addr);
    let resumed = wait_json(&bob, "the resumed download", |v| {
        v["event"] == "file_progress" && v["transfer"] == id
    });
    assert!(
        resumed["bytes"].as_u64().unwrap_or_default() >= kept,
        "resumed at {resumed}, had {kept}"
    );

    // Then the sender dies mid-transfer; the receiver waits, and goes on once it is back.
    let before = wait_midway(&bob, &id, size);
    alice.kill9();
    let kept = part_len(&bob_dir, &id);
    assert!(
        kept >= before && kept < size,
        "{kept} bytes kept, {before} reported"
    );
    alice = start_node("alice", &alice_dir, &addr);
    let done = bob.wait_line_within(
        std::time::Duration::from_secs(180),
        "the received file",
        |line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["transfer"] == id && (v["event"] == "file_received" || v["event"] == "file_failed"))
                .then_some(v)
        },
    );
    assert_eq!(done["event"], "file_received", "{done}");
    assert_eq!(field(&done, "sha256"), sha);
    let got = PathBuf::from(field(&done, "path"));
    assert_eq!(std::fs::metadata(&got).unwrap().len(), size);
    assert!(got.starts_with(bob_dir.join("downloads")));
    assert_eq!(part_len(&bob_dir, &id), 0, "the partial file is gone");
    drop(alice);
}

async fn offer_and_fetch(from: &TestNode, to: &mut TestNode, path: &Path) -> (PathBuf, String) {
    let id = from
        .client
        .offer_file(OfferTarget::Peer(to.client.peer_id()), path.to_owned())
        .await
        .unwrap();
    next_event(&mut to.events, |e| match e {
        Event::FileOffer { transfer, .. } if *transfer == id => Some(()),
        _ => None,
    })
    .await;
    to.client.accept(&id.to_string()).await.unwrap();
    next_event(&mut to.events, |e| match e {
        Event::FileReceived {
            transfer,
            path,
            sha256,
            ..
        } if *transfer == id => Some((path.clone(), sha256.clone())),
        Event::FileFailed { transfer, reason } if *transfer == id => {
            panic!("transfer failed: {reason}")
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_the_previous_release_still_send_and_receive_files() {
    let bootstrap = spawn_bootstrap().await;
    let mut old = Config::for_tests("old");
    old.file_streams = false;
    let mut old = spawn_user_with(old, &bootstrap.addr).await;
    let mut new = spawn_user("new", &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 13 % 251) as u8).collect();
    let path = src.path().join("minutes.txt");
    std::fs::write(&path, &data).unwrap();
    let sha = hex::encode(Sha256::digest(&data));

    // A new node asks the old one for a stream, is told it is not spoken, and pulls chunks.
    let (got, got_sha) = offer_and_fetch(&old, &mut new, &path).await;
    assert_eq!(got_sha, sha);
    assert_eq!(std::fs::read(got).unwrap(), data);
    // The old node pulls chunks from the new one, which still serves them.
    let (got, got_sha) = offer_and_fetch(&new, &mut old, &path).await;
    assert_eq!(got_sha, sha);
    assert_eq!(std::fs::read(got).unwrap(), data);
}

/// Reads what a node answers on a raw file stream, up to `max` bytes, until it closes it.
async fn answer_of(stream: &mut libp2p::Stream, max: u64) -> Vec<u8> {
    use futures::AsyncReadExt;
    let mut got = Vec::new();
    let mut limited = stream.take(max);
    // An error is a reset stream: closed as well.
    let _ = tokio::time::timeout(WAIT, limited.read_to_end(&mut got))
        .await
        .expect("the node neither answered nor closed the stream");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_file_streams_are_refused_bounded_and_block_nobody() {
    use futures::AsyncWriteExt;
    use ipm_protocol::file_stream::{StreamAnswer, StreamRequest, MAX_STREAM_HEADER_LEN};
    use raw_peer::RawPeer;

    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let mut bob = spawn_user("bob", &bootstrap.addr).await;
    let raw = RawPeer::connected_to(alice.addr.clone(), alice.client.peer_id()).await;
    let protocol = libp2p::StreamProtocol::new("/ipm/file/2");
    let alice_id = alice.client.peer_id();
    let mut control = raw.streams.clone();

    // A header announcing 65 535 bytes: refused before anything is read or allocated.
    let mut stream = control
        .open_stream(alice_id, protocol.clone())
        .await
        .unwrap();
    stream.write_all(&[0xff, 0xff]).await.unwrap();
    stream.write_all(&[0u8; 4096]).await.unwrap();
    let _ = stream.flush().await;
    assert!(answer_of(&mut stream, 1 << 20).await.is_empty());

    // A transfer that does not exist, or is not the asker's: a refusal, and no bytes.
    let mut stream = control
        .open_stream(alice_id, protocol.clone())
        .await
        .unwrap();
    let request = ipm_protocol::encode(&StreamRequest {
        transfer: ipm_protocol::TransferId::random(),
        offset: 0,
        end: None,
    });
    stream
        .write_all(&(request.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&request).await.unwrap();
    stream.flush().await.unwrap();
    let got = answer_of(&mut stream, 1 << 20).await;
    assert!(
        got.len() >= 2 && got.len() <= 2 + MAX_STREAM_HEADER_LEN,
        "{got:?}"
    );
    let answer: StreamAnswer = ipm_protocol::decode(&got[2..], MAX_STREAM_HEADER_LEN).unwrap();
    assert_eq!(answer, StreamAnswer::Error("no such transfer".into()));

    // Streams opened and left silent hold no more than their peer's few places: a file
    // alice sends bob meanwhile arrives.
    let mut silent = Vec::new();
    for _ in 0..40 {
        if let Ok(stream) = control.open_stream(alice_id, protocol.clone()).await {
            silent.push(stream);
        }
    }
    let src = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..2_000_003u32).map(|i| (i * 7 % 241) as u8).collect();
    let path = src.path().join("slides.pdf");
    std::fs::write(&path, &data).unwrap();
    let (got, sha) = offer_and_fetch(&alice, &mut bob, &path).await;
    assert_eq!(sha, hex::encode(Sha256::digest(&data)));
    assert_eq!(std::fs::read(got).unwrap(), data);
    drop(silent);
}
