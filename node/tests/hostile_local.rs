//! Attacks on what a node keeps on the user's machine: file descriptors (a crowd of fresh
//! keys, each its own conversation), disk space (offers larger than the disk, partial files
//! of failed downloads), the ctl socket (another local user) and the terminal (control
//! characters in peer text). Real nodes on loopback, a raw libp2p peer, real processes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::path::Path;

use futures::{stream, StreamExt};
use ipm_node::{
    store::history::{direct_log, History, MAX_OPEN},
    ui::{ctl, session::Session},
    Config, Event,
};
use ipm_protocol::{
    encode, limits, DirectMessage, DirectRequest, FileOffer, FileRequest, FileResponse, TransferId,
};
use raw_peer::{Proto, RawPeer};
use sha2::Digest;
use support::*;

/// Descriptors of this process open on files inside `dir` (Linux `/proc/self/fd`).
fn descriptors_in(dir: &Path) -> usize {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .count()
}

/// Starts a raw peer (a fresh key) connected to `victim`.
async fn raw_peer_connected_to(victim: &TestNode) -> RawPeer {
    RawPeer::connected_to(victim.addr.clone(), victim.client.peer_id()).await
}

/// How many one-line conversations the crowd opens.
const CROWD: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_one_line_conversations_from_fresh_keys_keep_descriptors_bounded() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let victim = alice.client.peer_id();
    let alice = &alice;
    // Each sender is a fresh key that says one line and leaves; a few at a time.
    let senders: Vec<libp2p::PeerId> = stream::iter(0..CROWD)
        .map(|i| async move {
            let raw = raw_peer_connected_to(alice).await;
            let message = DirectMessage::new(&format!("crowd{i}"), "hi");
            let answer = raw
                .request(
                    victim,
                    Proto::Direct,
                    encode(&DirectRequest::Message(message)),
                )
                .await
                .expect("a private message is answered");
            assert!(!answer.is_empty());
            raw.peer_id
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let history = alice.history_dir();
    let open = descriptors_in(&history);
    println!(
        "{CROWD} conversations from fresh keys: {open} descriptors open in the history folder"
    );
    assert!(
        open <= MAX_OPEN,
        "{open} history files open after {CROWD} conversations"
    );
    // Nothing received is lost: every conversation holds its line.
    for peer in &senders {
        let entries = History::read_last(&history, &direct_log(peer), 10).unwrap();
        assert_eq!(entries.len(), 1, "the line from {peer} is missing");
        assert_eq!(entries[0].text, "hi");
    }
    // The node still answers.
    alice.client.status().await.unwrap();
}

/// An offer of `size` bytes from the raw peer, its file served as `data`.
fn offer(name: &str, size: u64, sha256: [u8; 32]) -> FileOffer {
    FileOffer {
        transfer: TransferId::random(),
        from_name: "mallory".into(),
        name: name.into(),
        size,
        sha256,
        folder: None,
    }
}

async fn send_offer(raw: &RawPeer, victim: &TestNode, offer: &FileOffer) -> FileResponse {
    let answer = raw
        .request(
            victim.client.peer_id(),
            Proto::File,
            encode(&FileRequest::Offer(offer.clone())),
        )
        .await
        .unwrap();
    ipm_protocol::decode(&answer, limits::MAX_FILE_RESPONSE_LEN).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_larger_than_the_free_disk_is_refused_with_a_clear_reason() {
    let bootstrap = spawn_bootstrap().await;
    let mut config = Config::for_tests("alice");
    config.auto_accept = true;
    let alice = spawn_user_with(config, &bootstrap.addr).await;
    let free = ipm_node::store::data_dir::free_space(&alice.dir).unwrap();
    assert!(
        free < limits::MAX_FILE_SIZE,
        "this disk has more than 1 TiB free"
    );
    let raw = raw_peer_connected_to(&alice).await;
    let huge = offer("disk-filler.bin", limits::MAX_FILE_SIZE, [0; 32]);
    let response = send_offer(&raw, &alice, &huge).await;
    println!("a 1 TiB offer with {free} bytes free: {response:?}");
    assert!(
        matches!(&response, FileResponse::Error(reason) if reason == "not enough disk space for this file"),
        "{response:?}"
    );
    // Nothing was recorded or started, and a small file is still welcome.
    let transfers = alice.client.transfers().await.unwrap();
    assert!(
        transfers.iter().all(|t| t.id != huge.transfer),
        "{transfers:?}"
    );
    let small = offer("small.txt", 3, sha2::Sha256::digest(b"abc").into());
    raw.serve(small.transfer, b"abc".to_vec());
    assert!(matches!(
        send_offer(&raw, &alice, &small).await,
        FileResponse::Noted
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_download_leaves_no_partial_file_and_can_be_rejected() {
    let bootstrap = spawn_bootstrap().await;
    let mut alice = spawn_user("alice", &bootstrap.addr).await;
    let raw = raw_peer_connected_to(&alice).await;
    // A file of two chunks whose sender serves only the first: the download fails with
    // a quarter of a MiB already written.
    let chunk = ipm_node::net::download::CHUNK_LEN as usize;
    let content: Vec<u8> = (0..2 * chunk).map(|i| (i % 251) as u8).collect();
    let o = offer(
        "half.bin",
        content.len() as u64,
        sha2::Sha256::digest(&content).into(),
    );
    raw.serve(o.transfer, content[..chunk].to_vec());
    assert!(matches!(
        send_offer(&raw, &alice, &o).await,
        FileResponse::Noted
    ));
    let typed = o.transfer.to_string();
    alice.client.accept(&typed).await.unwrap();
    let reason = next_event(&mut alice.events, |e| match e {
        Event::FileFailed { transfer, reason } if *transfer == o.transfer => Some(reason.clone()),
        _ => None,
    })
    .await;
    println!("the download failed: {reason}");
    let part = alice
        .dir
        .join("downloads/.partial")
        .join(format!("{}.part", o.transfer));
    wait_until("the partial file is removed", || {
        let part = part.clone();
        async move { !part.exists() }
    })
    .await;
    // The failed transfer can be cleared from the list of pending work.
    let rejected = alice.client.reject(&typed).await.unwrap();
    assert!(matches!(
        rejected.state,
        ipm_node::store::transfers::State::Rejected
    ));
}

/// Set by the parent test for the child it runs as another user.
const CTL_CHILD_SOCKET: &str = "IPM_TEST_CTL_SOCKET";

/// Run as another user by the test below: sends one ctl command, prints the answer.
/// Without the variable it does nothing.
#[tokio::test]
async fn ctl_client_run_as_another_user() {
    let Ok(socket) = std::env::var(CTL_CHILD_SOCKET) else {
        return;
    };
    let socket = std::path::PathBuf::from(socket);
    match ctl::send(&socket, socket.parent().unwrap(), "/status").await {
        Ok(reply) => println!("CTL-REPLY ok={} output={}", reply.ok, reply.output),
        Err(e) => println!("CTL-ERROR {e}"),
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_from_another_user_is_refused() {
    use std::os::unix::{fs::PermissionsExt, process::CommandExt};
    // Another user exists only where the tests can switch to it (they run as root here).
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if uid.ok() != Some(0) {
        println!("not root: cannot run a client as another user");
        return;
    }
    let alice = spawn(Config::for_tests("alice")).await;
    let folder = tempfile::tempdir().unwrap();
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let socket = folder.path().join("ipm.sock");
    let server = ctl::CtlServer::bind(&socket).await.unwrap();
    // Even a socket others may write (a careless umask, a shared folder) admits only its
    // owner.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (quit, _quit_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(server.serve(Session::new(alice.client.clone()), quit));

    // The same user is served.
    let mine = ctl::send(&socket, folder.path(), "/status").await.unwrap();
    assert!(mine.ok, "{}", mine.output);

    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ctl_client_run_as_another_user", "--nocapture"])
        .env(CTL_CHILD_SOCKET, &socket)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout);
    println!("the client run as uid 65534 got: {out}");
    assert!(child.status.success(), "{out}");
    assert!(
        out.contains(&format!("CTL-REPLY ok=false output={}", ctl::REFUSED_USER)),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_from_peers_never_reach_the_terminal_through_ctl() {
    let bootstrap = spawn_bootstrap().await;
    let alice = spawn_user("alice", &bootstrap.addr).await;
    let folder = tempfile::tempdir().unwrap();
    let socket = folder.path().join("ipm.sock");
    let server = ctl::CtlServer::bind(&socket).await.unwrap();
    let (quit, _quit_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(server.serve(Session::new(alice.client.clone()), quit));

    // A raw peer says something that would clear the screen and retitle the terminal,
    // and offers a file whose refusal reason does the same.
    let raw = raw_peer_connected_to(&alice).await;
    let escape = "\u{1b}[2J\u{1b}]0;pwned\u{7}";
    let message = DirectMessage::new("mallory", &format!("hello{escape}"));
    raw.request(
        alice.client.peer_id(),
        Proto::Direct,
        encode(&DirectRequest::Message(message)),
    )
    .await
    .unwrap();
    let shown = ctl::send(&socket, folder.path(), &format!("/history {}", raw.peer_id))
        .await
        .unwrap();
    println!("/history over ctl: {:?}", shown.output);
    assert!(shown.ok, "{}", shown.output);
    assert!(shown.output.contains("hello"), "{}", shown.output);
    assert!(!shown.output.contains('\u{1b}'), "{:?}", shown.output);
    assert!(!shown.output.contains('\u{7}'), "{:?}", shown.output);
}
