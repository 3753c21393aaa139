//! The driver of folder transfers (`logic::folder_plan`): offers a walked folder (its
//! manifest kept in the data dir), serves the manifest and the files of offered folders to
//! the peers that may have them, runs folder downloads (`net::folder_download`) with one
//! progress stream per folder, and clears their staging folders. A folder's offer, accept,
//! reject and end go through the offer machine like a file's.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use libp2p::{request_response::ResponseChannel, PeerId};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use ipm_protocol::{
    folder::{part_of, FolderSummary, Manifest, Part},
    FileResponse, TransferId,
};

use super::{
    files::{ask_chunk, Internal},
    EventLoop,
};
use crate::{
    client::{folder_offer::FolderAsk, FileError, NodeError, OfferTarget, TransferView},
    event::Event,
    logic::{
        folder_plan::{label, served_part, told, Claims, NO_SUCH_TRANSFER},
        offers::{NewOffer, OfferError},
        sending,
    },
    net::{
        download::{FetchError, Job, Opened},
        file_stream::{self, Authorized},
        folder_download::{self, staging_dir, FolderJob},
        multi_download,
    },
    store::{
        folder_source::{load_manifest, manifest_path, save_manifest, FolderError, NoDataDir},
        transfers::{Direction, State, Transfer},
    },
};

/// Manifests of offered folders kept in memory for serving their files.
const MANIFESTS_KEPT: usize = 8;

/// What opening one file stream gives, as a folder download awaits it.
type OpenStream = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Opened<libp2p::Stream>, FetchError>> + Send>,
>;

/// The loop's folder bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Folders {
    /// Offered folders by the first 12 bytes of their id, which every part's id shares.
    offered: Option<HashMap<[u8; 12], TransferId>>,
    /// Manifests of offered folders read back, the most recently used last.
    manifests: Vec<(TransferId, Arc<Manifest>)>,
    /// Bytes of each running folder download, for `/transfers`.
    progress: HashMap<TransferId, Arc<AtomicU64>>,
    /// The room claimed by the folders being made.
    claims: Arc<Mutex<Claims>>,
}

fn prefix(id: &TransferId) -> [u8; 12] {
    let mut out = [0u8; 12];
    out.copy_from_slice(&id.as_bytes()[..12]);
    out
}

impl EventLoop {
    /// `/send-file` and `/share` of a folder: keeps its manifest, records the offer, then
    /// sends it to the peer or the room.
    pub(super) fn offer_folder(&mut self, ask: FolderAsk) {
        let FolderAsk {
            target,
            source,
            walked,
            reply,
        } = ask;
        let _ = reply.send(self.record_folder(target, source, walked));
    }

    fn record_folder(
        &mut self,
        target: OfferTarget,
        source: PathBuf,
        walked: crate::store::folder_source::Walked,
    ) -> Result<TransferId, NodeError> {
        let folder_error = |e: FolderError| NodeError::File(FileError::Folder(e));
        let root = self
            .config
            .data_dir
            .as_ref()
            .map(|d| d.root().to_owned())
            .ok_or(folder_error(NoDataDir.into()))?;
        let in_room = matches!(&target, OfferTarget::Room(room) if self.rooms.contains(room));
        let new = NewOffer {
            source,
            size: walked.manifest.total_size(),
            sha256: Sha256::digest(&walked.bytes).into(),
            target: target.clone(),
            in_room,
            local_peer: self.local_peer_id(),
            from_name: self.config.name.clone(),
            transfer: TransferId::random(),
            now_ms: ipm_protocol::now_ms(),
        };
        let mut transfer = self.files.offers.offer(new).map_err(|e| match e {
            OfferError::UnusableName(path) => NodeError::File(FileError::NoFileName { path }),
            OfferError::ToSelf => NodeError::File(FileError::ToSelf),
            OfferError::NotInRoom(room) => NodeError::NotInRoom(room),
        })?;
        let (Ok(files), Ok(manifest_len)) = (
            u32::try_from(walked.manifest.entries.len()),
            u32::try_from(walked.bytes.len()),
        ) else {
            return Err(folder_error(FolderError::ManifestTooLong {
                path: transfer.source.clone().unwrap_or_default(),
            }));
        };
        transfer.offer.folder = Some(FolderSummary {
            files,
            manifest_len,
        });
        let id = transfer.offer.transfer;
        save_manifest(&manifest_path(&root, &id), &walked.bytes)
            .map_err(|e| folder_error(FolderError::Keep(e)))?;
        let offer = transfer.offer.clone();
        self.store
            .transfers
            .insert(transfer)
            .map_err(|e| NodeError::File(FileError::Save(e)))?;
        self.offered_folders().insert(prefix(&id), id);
        self.remember_manifest(id, Arc::new(walked.manifest));
        self.send_or_share(target, offer);
        Ok(id)
    }

    /// The offered folders by id prefix, read from the transfer table the first time.
    fn offered_folders(&mut self) -> &mut HashMap<[u8; 12], TransferId> {
        let transfers = &self.store.transfers;
        self.folders.offered.get_or_insert_with(|| {
            transfers
                .list()
                .into_iter()
                .filter(|(_, t)| t.direction == Direction::Outgoing && t.offer.folder.is_some())
                .map(|(id, _)| (prefix(&id), id))
                .collect()
        })
    }

    fn remember_manifest(&mut self, id: TransferId, manifest: Arc<Manifest>) {
        let kept = &mut self.folders.manifests;
        kept.retain(|(k, _)| *k != id);
        if kept.len() >= MANIFESTS_KEPT {
            kept.remove(0);
        }
        kept.push((id, manifest));
    }

    /// The manifest of offered folder `id`, from memory or the data dir.
    fn manifest_of(&mut self, id: TransferId) -> Option<Arc<Manifest>> {
        let kept = &self.folders.manifests;
        let manifest = match kept.iter().find(|(k, _)| *k == id) {
            Some((_, m)) => m.clone(),
            None => {
                let root = self.config.data_dir.as_ref()?.root().to_owned();
                match load_manifest(&manifest_path(&root, &id)) {
                    Ok(m) => Arc::new(m),
                    Err(e) => {
                        warn!(%id, "cannot read the manifest of an offered folder: {e}");
                        return None;
                    }
                }
            }
        };
        self.remember_manifest(id, manifest.clone());
        Some(manifest)
    }

    /// What a request of `peer` for transfer `id` names among the offered folders: `None`
    /// when nothing (a plain file, or no transfer), else the file to send and its size, or
    /// the refusal. A folder's file reached through a link is refused.
    pub(super) fn folder_part(&mut self, peer: PeerId, id: TransferId) -> Option<Authorized> {
        let candidate = self.offered_folders().get(&prefix(&id)).copied();
        let (folder, part) = match served_part(&self.store.transfers, &peer, &id, candidate)? {
            Ok(found) => found,
            Err(reason) => return Some(Err(reason)),
        };
        let refused = || Some(Err(NO_SUCH_TRANSFER.to_owned()));
        let root = self.store.transfers.get(&folder)?.source.clone()?;
        let found = match part {
            Part::Manifest => {
                let data = self.config.data_dir.as_ref()?.root().to_owned();
                let len = self
                    .store
                    .transfers
                    .get(&folder)?
                    .offer
                    .folder?
                    .manifest_len;
                (manifest_path(&data, &folder), u64::from(len))
            }
            Part::Entry(i) => {
                let manifest = self.manifest_of(folder)?;
                let Some(entry) = manifest.entries.get(i as usize) else {
                    return refused();
                };
                let path = root.join(&entry.path);
                // The folder was canonical when offered: a file now reached another way
                // (a link put in its place) is not sent.
                if std::fs::canonicalize(&path).ok().as_ref() != Some(&path) {
                    return Some(Err("the file changed since it was offered".into()));
                }
                (path, entry.size)
            }
        };
        self.swarm
            .behaviour_mut()
            .peer_manager
            .used(peer, Instant::now());
        Some(Ok(found))
    }

    /// Answers a chunk request for a part of an offered folder (a recipient whose sender
    /// does not stream).
    pub(super) fn serve_folder_chunk(
        &mut self,
        channel: ResponseChannel<FileResponse>,
        found: Authorized,
        offset: u64,
        len: u32,
    ) {
        match found {
            Ok((source, size)) => {
                let internal = self.internal_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let response = super::files::read_chunk(&source, size, offset, len);
                    let _ = internal.blocking_send(Internal::ChunkRead { channel, response });
                });
            }
            Err(reason) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .file
                    .send_response(channel, FileResponse::Error(reason));
            }
        }
    }

    /// Starts (or resumes) the download of incoming folder `id` from `peer`; `None` when `id`
    /// is not a folder (or there is nowhere to download).
    pub(super) fn spawn_folder_download(
        &mut self,
        id: TransferId,
        peer: PeerId,
    ) -> Option<JoinHandle<()>> {
        let t = self.store.transfers.get(&id)?;
        let summary = t.offer.folder?;
        let job = FolderJob {
            folder: id,
            name: t.offer.name.clone(),
            size: t.offer.size,
            summary,
            manifest_sha256: t.offer.sha256,
            downloads: self.store.downloads.clone()?,
            owed: self.owed_by_others(&id),
            claims: self.folders.claims.clone(),
        };
        let bytes = Arc::new(AtomicU64::new(0));
        self.folders.progress.insert(id, bytes.clone());
        let open_for = self.part_openers(peer);
        let fetcher = self.internal_tx.clone();
        let fetch_for = move |part: TransferId| {
            let internal = fetcher.clone();
            move |offset: u64, len: u32| ask_chunk(internal.clone(), peer, part, offset, len)
        };
        let count = move |done: u64| bytes.store(done, Ordering::Relaxed);
        Some(
            self.download_task(id, job.size, count, move |progress| async move {
                folder_download::run(&job, fetch_for, open_for, progress).await
            }),
        )
    }

    /// Bytes the downloads other than `id` still need: each one's size less what it wrote
    /// (a folder's progress, a file's partial file).
    fn owed_by_others(&self, id: &TransferId) -> u64 {
        let Some(downloads) = &self.store.downloads else {
            return 0;
        };
        self.store
            .transfers
            .downloading()
            .filter(|(other, _)| other != id)
            .map(|(other, t)| {
                let have = match self.folders.progress.get(&other) {
                    Some(bytes) => bytes.load(Ordering::Relaxed),
                    None if t.offer.folder.is_some() => 0,
                    None => multi_download::bytes_kept(&Job {
                        transfer: other,
                        size: t.offer.size,
                        sha256: t.offer.sha256,
                        name: t.offer.name.clone(),
                        downloads: downloads.clone(),
                    }),
                };
                t.offer.size.saturating_sub(have)
            })
            .fold(0u64, u64::saturating_add)
    }

    /// What a folder download from `peer` opens the stream of each part with (see
    /// `event_loop/file_streams.rs`, which does the same for one file).
    fn part_openers(
        &self,
        peer: PeerId,
    ) -> impl Fn(TransferId) -> Box<dyn FnMut(u64, u64) -> OpenStream + Send> + Send + 'static {
        let control = self
            .config
            .file_streams
            .then(|| self.swarm.behaviour().stream.new_control());
        let internal = self.internal_tx.clone();
        move |part| {
            let control = control.clone();
            let internal = internal.clone();
            Box::new(move |offset, len| {
                let control = control.clone();
                let internal = internal.clone();
                Box::pin(async move {
                    let Some(mut control) = control else {
                        return Ok(Opened::Unsupported);
                    };
                    let opened = file_stream::open(&mut control, peer, part, offset, len).await;
                    if matches!(opened, Err(FetchError::Retry(_))) {
                        let _ = internal.try_send(Internal::SenderUnreachable(peer));
                    }
                    opened
                })
            })
        }
    }

    /// Removes what a stopped or failed folder download left in its staging folder.
    pub(super) fn discard_folder(&mut self, id: &TransferId) {
        self.folders.progress.remove(id);
        let Some(downloads) = &self.store.downloads else {
            return;
        };
        let staging = staging_dir(downloads, id);
        tokio::task::spawn_blocking(move || {
            if staging.exists() {
                let _ = std::fs::remove_dir_all(staging);
            }
        });
    }

    /// Removes the staging folders of folder downloads that are not downloading (left by a
    /// crash between a failure and its clean-up).
    pub(super) fn remove_stale_folders(&self) {
        let Some(downloads) = &self.store.downloads else {
            return;
        };
        let live: std::collections::HashSet<String> = self
            .store
            .transfers
            .downloading()
            .map(|(id, _)| format!("{id}.folder"))
            .collect();
        let partial = downloads.join(".partial");
        tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(partial) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".folder") && !live.contains(&name) {
                    debug!(folder = %name, "removing a stale folder download");
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        });
    }

    /// What the bytes sent for transfer id `id` belong to: a file this node offered, or the
    /// manifest or a file of a folder it offered (`None` for anything else).
    pub(super) fn sent_part(&mut self, id: TransferId) -> Option<sending::Part> {
        if let Some(t) = self.store.transfers.get(&id) {
            return (t.direction == Direction::Outgoing && t.offer.folder.is_none()).then(|| {
                sending::Part::File {
                    transfer: id,
                    name: t.offer.name.clone(),
                    size: t.offer.size,
                }
            });
        }
        let folder = self.offered_folders().get(&prefix(&id)).copied()?;
        let part = part_of(&folder, &id)?;
        let t = self.store.transfers.get(&folder)?;
        let summary = t.offer.folder?;
        let (name, total) = (label(&t.offer), t.offer.size);
        match part {
            Part::Manifest => Some(sending::Part::Manifest {
                folder,
                part: id,
                name,
                total,
                size: u64::from(summary.manifest_len),
            }),
            Part::Entry(i) => {
                let manifest = self.manifest_of(folder)?;
                let i = i as usize;
                let entry = manifest.entries.get(i)?;
                let before = manifest.entries[..i]
                    .iter()
                    .fold(0u64, |sum, e| sum.saturating_add(e.size));
                Some(sending::Part::FolderFile {
                    folder,
                    part: id,
                    name,
                    path: entry.path.clone(),
                    total,
                    before,
                    size: entry.size,
                })
            }
        }
    }

    /// How `/transfers` shows a folder (`None` for a file).
    pub(super) fn folder_view(&self, id: TransferId, t: &Transfer) -> Option<TransferView> {
        t.offer.folder?;
        let with = match (&t.room, t.peer) {
            (Some(room), _) if t.direction == Direction::Outgoing => room.clone(),
            (_, Some(peer)) => self.directory.display_name(&peer),
            _ => String::new(),
        };
        let bytes = match &t.state {
            State::Done { .. } | State::Sent => t.offer.size,
            State::Downloading => self
                .folders
                .progress
                .get(&id)
                .map_or(0, |b| b.load(Ordering::Relaxed)),
            _ => 0,
        };
        Some(TransferView {
            id,
            direction: t.direction,
            with,
            name: label(&t.offer),
            size: t.offer.size,
            bytes,
            source: t.source.clone(),
            peer: t.peer,
            state: t.state.clone(),
        })
    }

    /// The event the user is told for `event`: a folder's offer and arrival as a folder's.
    pub(super) fn folder_event(&self, event: Event) -> Event {
        told(event, &self.store.transfers)
    }
}
