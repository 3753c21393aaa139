//! Hostile folders at scale: a raw libp2p peer offers "0 B" folders whose empty files each
//! sit at the end of a deep chain of folders of their own (1000 files, 31 000 folders), or
//! in a trie whose shared prefixes keep the manifest short, to a node that takes direct
//! offers at once (`auto_accept`). The node refuses each before making any of its folders
//! and tells the user why, while a friend's honest nested folder is still taken.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/raw_peer.rs"]
mod raw_peer;
mod support;

use std::path::{Path, PathBuf};

use ipm_node::{client::OfferTarget, Config, Event};
use ipm_protocol::{
    encode,
    folder::{entry_id, manifest_id, FolderSummary, Manifest, ManifestEntry, FILE_KIND},
    limits, FileOffer, FileRequest, FileResponse, TransferId,
};
use raw_peer::{Proto, RawPeer};
use sha2::{Digest, Sha256};
use support::*;

/// Empty files in a hostile folder.
const FILES: usize = 1000;

/// A folder offer from the raw peer: its manifest lists `paths`, each an empty file, and
/// the raw peer serves the manifest and the files over `/ipm/file/1` chunks.
fn serve_empty_files(raw: &RawPeer, name: &str, paths: &[String]) -> FileOffer {
    let empty: [u8; 32] = Sha256::digest(b"").into();
    let manifest = Manifest {
        entries: paths
            .iter()
            .map(|path| ManifestEntry {
                path: path.clone(),
                size: 0,
                sha256: empty,
                kind: FILE_KIND.into(),
            })
            .collect(),
    };
    let bytes = encode(&manifest);
    let id = TransferId::random();
    raw.serve(manifest_id(&id), bytes.clone());
    for i in 0..paths.len() {
        raw.serve(entry_id(&id, i as u32), Vec::new());
    }
    FileOffer {
        transfer: id,
        from_name: "mallory".into(),
        name: name.into(),
        size: 0,
        sha256: Sha256::digest(&bytes).into(),
        folder: Some(FolderSummary {
            files: paths.len() as u32,
            manifest_len: bytes.len() as u32,
        }),
    }
}

/// Each file at the end of its own chain of 31 folders: the deepest path a manifest may
/// hold, 31 000 folders in all.
fn own_chains() -> Vec<String> {
    let chain = vec!["d"; limits::MAX_FOLDER_DEPTH - 2].join("/");
    (0..FILES).map(|i| format!("c{i}/{chain}/f")).collect()
}

/// The files at the leaves of a binary trie ten levels deep (its 2022 folders shared), each
/// below a chain of 21 folders of its own: 23 022 folders.
fn shared_prefixes() -> Vec<String> {
    let tail = vec!["x"; limits::MAX_FOLDER_DEPTH - 11].join("/");
    (0..FILES)
        .map(|i| {
            let bits: Vec<String> = (0..10).map(|b| ((i >> b) & 1).to_string()).collect();
            format!("{}/{tail}/f", bits.join("/"))
        })
        .collect()
}

/// Every folder under `root`, `root` itself left out.
fn folders_under(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                count += 1;
                stack.push(entry.path());
            }
        }
    }
    count
}

/// Offers `offer` from the raw peer; the victim's answer.
async fn offered(raw: &RawPeer, victim: &TestNode, offer: &FileOffer) -> FileResponse {
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

/// How folder `want` ended: why it failed, or where it was received.
async fn folder_end(node: &mut TestNode, want: TransferId) -> Result<PathBuf, String> {
    next_event(&mut node.events, |e| match e {
        Event::FileFailed { transfer, reason } if *transfer == want => Some(Err(reason.clone())),
        Event::FolderReceived { transfer, path, .. } if *transfer == want => Some(Ok(path.clone())),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_empty_files_in_deep_folders_is_refused_before_any_folder_is_made() {
    let bootstrap = spawn_bootstrap().await;
    let mut config = Config::for_tests("alice");
    config.auto_accept = true;
    let mut victim = spawn_user_with(config, &bootstrap.addr).await;
    let raw = RawPeer::connected_to(victim.addr.clone(), victim.client.peer_id()).await;
    let downloads = victim.dir.join("downloads");

    for (shape, paths) in [
        ("own chains", own_chains()),
        ("shared prefixes", shared_prefixes()),
    ] {
        let offer = serve_empty_files(&raw, "nothing", &paths);
        let answer = offered(&raw, &victim, &offer).await;
        assert_eq!(answer, FileResponse::Noted, "{shape}");
        let end = folder_end(&mut victim, offer.transfer).await;
        // The staging folder of a refused folder goes with everything in it.
        let staging = downloads
            .join(".partial")
            .join(format!("{}.folder", offer.transfer));
        wait_until("the staging folder to go", || async { !staging.exists() }).await;
        let made = folders_under(&downloads);
        println!("{shape}: {end:?}; folders under downloads: {made}");
        let reason = end.expect_err("a folder of 1000 empty files in deep folders was taken");
        assert!(
            reason.contains("folders") && !reason.contains('\n'),
            "{shape}: {reason}"
        );
        // Nothing but the `.partial` folder itself.
        assert!(made <= 1, "{shape}: {made} folders were made");
    }

    // A friend's honest nested folder still arrives, taken at once.
    let bob = spawn_user("bob", &bootstrap.addr).await;
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("holiday");
    let honest: [(&str, &[u8]); 4] = [
        ("cover.jpg", b"a cover"),
        ("2026/summer/notes.txt", b"sand, sun"),
        ("2026/winter/empty.txt", b""),
        ("2026/winter/deep/er/still.txt", b"fine"),
    ];
    for (path, data) in honest {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let id = bob
        .client
        .offer_file(OfferTarget::Peer(victim.client.peer_id()), root)
        .await
        .unwrap();
    let path = folder_end(&mut victim, id)
        .await
        .expect("the honest folder failed");
    assert_eq!(path, downloads.join("holiday"));
    for (name, data) in honest {
        assert_eq!(std::fs::read(path.join(name)).unwrap(), data, "{name}");
    }
    println!(
        "honest folder received; folders under downloads: {}",
        folders_under(&downloads)
    );
}
