//! The driver of the file-offer machine (`logic::offers`): sends offers and declines,
//! saves the transfer table, runs the download tasks and serves chunks to downloaders.

use std::{
    collections::HashMap,
    future::Future,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::Instant,
};

use libp2p::{
    gossipsub::{IdentTopic, MessageAcceptance},
    request_response::{self, OutboundRequestId, ResponseChannel},
    PeerId,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tracing::{debug, warn};

use ipm_protocol::{encode_gossip, FileOffer, FileRequest, FileResponse, Gossip, Room, TransferId};

use super::EventLoop;
use crate::net::exchange::{exchange, Exchange};
use crate::{
    client::{FileError, NodeError, OfferTarget, TransferView},
    config::Config,
    event::Event,
    logic::address_key::AddressKey,
    logic::offers::{
        Action, Input, Known, NewOffer, OfferError, Offers, Policy, Refusal, TransferError,
    },
    logic::sending::Sending,
    net::download::{self, FetchError, Job},
    net::multi_download,
    store::transfers::{Direction, State, Transfer},
};

/// Why an incoming offer was not kept, as its sender is told.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// The machine would not keep it.
    #[error(transparent)]
    Offer(Refusal),
    /// Saving it failed.
    #[error("cannot save the offer: {0}")]
    Save(#[source] std::io::Error),
}

/// One of the offer machine's answers to a typed transfer id (`accept`, `reject`).
type Answer = fn(&mut Offers, Known<'_>, &str) -> Result<(TransferId, Vec<Action>), TransferError>;

/// What an outbound file request was for.
#[derive(Debug)]
enum Outbound {
    Offer(TransferId),
    Chunk(oneshot::Sender<Result<Vec<u8>, FetchError>>),
    Decline,
}

/// File-transfer bookkeeping of the loop: the offer machine, the file requests in flight
/// and the running download tasks.
#[derive(Debug)]
pub(crate) struct Files {
    pub(super) offers: Offers,
    outbound: HashMap<OutboundRequestId, Outbound>,
    downloads: HashMap<TransferId, JoinHandle<()>>,
    /// The task serving `/ipm/file/2` streams.
    pub(super) stream_server: Option<JoinHandle<()>>,
    /// What the user is told as peers fetch its files.
    pub(super) sending: Sending,
}

impl Files {
    /// File bookkeeping deciding by `config`; `can_download` when the node has a data dir.
    pub(crate) fn new(config: &Config, can_download: bool) -> Self {
        Self {
            offers: Offers::new(Policy::new(
                config.max_retry,
                config.auto_accept,
                can_download,
            )),
            outbound: HashMap::new(),
            downloads: HashMap::new(),
            stream_server: None,
            sending: Sending::new(),
        }
    }

    /// Stops every running download; the `.part` files stay for the next run.
    pub(crate) fn stop_downloads(&mut self) {
        for (_, task) in self.downloads.drain() {
            task.abort();
        }
        if let Some(server) = self.stream_server.take() {
            server.abort();
        }
    }
}

/// Messages from the node's own tasks (downloads, file reads) back to the loop.
#[derive(Debug)]
pub(crate) enum Internal {
    /// A download wants one chunk from its sender.
    FetchChunk {
        peer: PeerId,
        transfer: TransferId,
        offset: u64,
        len: u32,
        reply: oneshot::Sender<Result<Vec<u8>, FetchError>>,
    },
    /// A download ended.
    DownloadFinished {
        transfer: TransferId,
        result: Result<PathBuf, String>,
    },
    /// A chunk asked for by a peer was read from disk.
    ChunkRead {
        channel: libp2p::request_response::ResponseChannel<FileResponse>,
        response: FileResponse,
    },
    /// A peer opened a file stream for `transfer`: may it have the file?
    AuthorizeStream {
        peer: PeerId,
        transfer: TransferId,
        reply: oneshot::Sender<crate::net::file_stream::Granted>,
    },
    /// A download could not reach its sender over a stream: look it up again.
    SenderUnreachable(PeerId),
    /// Bytes of a file moved to or from `peer` just now (at most once a second per
    /// transfer): its connection is busy and must not be trimmed.
    Streaming(PeerId),
    /// A stream sent `peer` bytes of `transfer` (an offered file or a folder's part): it
    /// has `bytes` of it now.
    Sent {
        peer: PeerId,
        transfer: TransferId,
        bytes: u64,
    },
}

/// Least time between two [`Internal::Streaming`] reports of one transfer.
pub(super) const STREAMING_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl EventLoop {
    pub(super) fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::FetchChunk {
                peer,
                transfer,
                offset,
                len,
                reply,
            } => self.fetch_chunk(peer, transfer, offset, len, reply),
            Internal::DownloadFinished { transfer, result } => {
                self.download_finished(transfer, result)
            }
            Internal::AuthorizeStream {
                peer,
                transfer,
                reply,
            } => {
                let _ = reply.send(self.authorize_stream(peer, transfer));
            }
            Internal::SenderUnreachable(peer) => self.look_up(peer),
            Internal::Sent {
                peer,
                transfer,
                bytes,
            } => self.report_sent(peer, transfer, bytes),
            Internal::Streaming(peer) => {
                let now = std::time::Instant::now();
                self.swarm.behaviour_mut().peer_manager.used(peer, now);
            }
            Internal::ChunkRead { channel, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .file
                    .send_response(channel, response);
            }
        }
    }

    /// `/send-file` and `/share`: records the offer, then sends it to the peer or the room.
    pub(super) fn offer_file(
        &mut self,
        target: OfferTarget,
        source: PathBuf,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<TransferId, NodeError> {
        let in_room = matches!(&target, OfferTarget::Room(room) if self.rooms.contains(room));
        let new = NewOffer {
            source,
            size,
            sha256,
            target: target.clone(),
            in_room,
            local_peer: self.local_peer_id(),
            from_name: self.config.name.clone(),
            transfer: TransferId::random(),
            now_ms: ipm_protocol::now_ms(),
        };
        let transfer = self.files.offers.offer(new).map_err(|e| match e {
            OfferError::UnusableName(path) => NodeError::File(FileError::NoFileName { path }),
            OfferError::ToSelf => NodeError::File(FileError::ToSelf),
            OfferError::NotInRoom(room) => NodeError::NotInRoom(room),
        })?;
        let offer = transfer.offer.clone();
        self.store
            .transfers
            .insert(transfer)
            .map_err(|e| NodeError::File(FileError::Save(e)))?;
        let id = offer.transfer;
        self.send_or_share(target, offer);
        Ok(id)
    }

    /// Sends `offer` (of a file or a folder) to its peer, or shares it in its room.
    pub(super) fn send_or_share(&mut self, target: OfferTarget, offer: FileOffer) {
        match target {
            OfferTarget::Peer(peer) => self.send_offer(peer, offer),
            OfferTarget::Room(room) => {
                self.intake.insert(offer.transfer);
                let topic = IdentTopic::new(room.topic());
                let bytes = encode_gossip(&Gossip::FileOffer(offer));
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                    debug!("share not published yet: {e:?}");
                }
            }
        }
    }

    pub(super) fn send_offer(&mut self, peer: PeerId, offer: FileOffer) {
        let id = offer.transfer;
        let request_id = self
            .swarm
            .behaviour_mut()
            .file
            .send_request(&peer, FileRequest::Offer(offer));
        let manager = &mut self.swarm.behaviour_mut().peer_manager;
        manager.request_sent(peer, "file", request_id);
        self.files.outbound.insert(request_id, Outbound::Offer(id));
    }

    /// Feeds `input` to the offer machine and carries out what it decides.
    fn drive_offers(&mut self, now: Instant, input: Input) {
        let free_space = self.download_room();
        let known = Known {
            transfers: &self.store.transfers,
            directory: &self.directory,
            free_space,
            exists: Path::exists,
        };
        let actions = self.files.offers.handle(now, known, input);
        if let Err(e) = self.carry_out_offers(actions) {
            warn!("{e}");
        }
    }

    /// Carries out the offer machine's actions in order. Saving a new offer is the one
    /// that can stop the rest: its error is returned.
    fn carry_out_offers(&mut self, actions: Vec<Action>) -> Result<(), std::io::Error> {
        for action in actions {
            match action {
                Action::SendOffer { peer, offer } => self.send_offer(peer, offer),
                Action::LookUp(peer) => self.look_up(peer),
                Action::Record(transfer) => {
                    self.store.transfers.insert(transfer)?;
                }
                Action::Save { transfer, state } => self.save_state(&transfer, state),
                Action::Fail { transfer, reason } => self.transfer_failed(transfer, reason),
                Action::StartDownload { transfer, peer } => self.spawn_download(transfer, peer),
                Action::StopDownload(id) => {
                    if let Some(task) = self.files.downloads.remove(&id) {
                        task.abort();
                    }
                    if let Some(job) = self.store.transfers.get(&id).and_then(|t| self.job(t)) {
                        let _ = std::fs::remove_file(job.part_path());
                        let _ = std::fs::remove_file(multi_download::piece_map_path(&job));
                    }
                    self.discard_folder(&id);
                }
                Action::SendDecline { peer, transfer } => {
                    let request_id = self
                        .swarm
                        .behaviour_mut()
                        .file
                        .send_request(&peer, FileRequest::Decline { transfer });
                    self.files.outbound.insert(request_id, Outbound::Decline);
                }
                Action::Tell(event) => self.emit(self.folder_event(event)),
            }
        }
        Ok(())
    }

    /// The DHT found `peer` or it connected: sends it the offers that could not reach it.
    /// Another dial failure puts them back to wait, still under their first deadline.
    pub(super) fn resend_offers(&mut self, peer: PeerId) {
        self.drive_offers(Instant::now(), Input::PeerReachable(peer));
    }

    /// Looks up again, with a growing pause, the peers that offers are waiting for; fails
    /// the offers whose peer stayed out of reach for [`crate::logic::offers::OFFER_REACH`].
    pub(super) fn retry_offer_lookups(&mut self, now: Instant) {
        self.drive_offers(now, Input::Tick);
    }

    /// A file shared in a room: remembered so `/get` can fetch it.
    pub(super) fn on_shared_file(
        &mut self,
        source: PeerId,
        room: Room,
        offer: FileOffer,
    ) -> MessageAcceptance {
        // Only an unusable offer is invalid; one this node cannot keep (sender blocked, too
        // many waiting) is still passed on to the room.
        match self.remember_offer(source, Some(room.to_string()), offer) {
            Err(Refused::Offer(Refusal::UnusableName)) => {
                debug!(peer = %source, "rejecting a shared file without a usable name");
                MessageAcceptance::Reject
            }
            Err(reason) => {
                debug!(peer = %source, "not keeping shared file: {reason}");
                MessageAcceptance::Accept
            }
            Ok(()) => MessageAcceptance::Accept,
        }
    }

    /// Records an incoming offer and tells the user; a sanitised name replaces the sender's.
    fn remember_offer(
        &mut self,
        peer: PeerId,
        room: Option<String>,
        offer: FileOffer,
    ) -> Result<(), Refused> {
        let free_space = self.download_room();
        let known = Known {
            transfers: &self.store.transfers,
            directory: &self.directory,
            free_space,
            exists: Path::exists,
        };
        let now_ms = ipm_protocol::now_ms();
        let ip = self.swarm.behaviour().peer_manager.remote_ip(&peer);
        let address = AddressKey::of_peer(peer, ip, self.config.address_limits.loopback_exempt);
        let actions = self
            .files
            .offers
            .on_offer(known, peer, address, room, offer, now_ms)
            .map_err(Refused::Offer)?;
        self.carry_out_offers(actions).map_err(Refused::Save)
    }

    /// `/accept` and `/get`.
    pub(super) fn accept(&mut self, query: &str) -> Result<TransferView, NodeError> {
        self.answer_offer(query, Offers::accept)
    }

    /// `/reject`: declines an offer or stops a download (its partial file is removed).
    pub(super) fn reject(&mut self, query: &str) -> Result<TransferView, NodeError> {
        self.answer_offer(query, Offers::reject)
    }

    /// The user's answer to the transfer `query` names: the machine's `answer` decides what
    /// it does, and the transfer is shown as it is afterwards.
    fn answer_offer(&mut self, query: &str, answer: Answer) -> Result<TransferView, NodeError> {
        let free_space = self.download_room();
        let known = Known {
            transfers: &self.store.transfers,
            directory: &self.directory,
            free_space,
            exists: Path::exists,
        };
        let (id, actions) =
            answer(&mut self.files.offers, known, query).map_err(FileError::Transfer)?;
        self.carry_out_offers(actions).map_err(FileError::Save)?;
        self.transfer_view(id)
            .ok_or(NodeError::File(FileError::Transfer(
                TransferError::Vanished,
            )))
    }

    /// Bytes free for new downloads: the free space of the downloads folder minus what the
    /// running downloads still need (`None` without a downloads folder or when unknown).
    fn download_room(&self) -> Option<u64> {
        let downloads = self.store.downloads.as_ref()?;
        let free = crate::store::data_dir::free_space(downloads).ok()?;
        let owed: u64 = self
            .store
            .transfers
            .downloading()
            .filter(|(id, _)| self.files.downloads.contains_key(id))
            .map(|(_, t)| {
                let have = self
                    .job(t)
                    .map_or(0, |job| multi_download::bytes_kept(&job));
                t.offer.size.saturating_sub(have)
            })
            .sum();
        Some(free.saturating_sub(owed))
    }

    /// Removes the partial files of transfers that are not downloading (left by a crash
    /// between a failure and its clean-up, or by an older ipm that kept them).
    fn remove_stale_parts(&self) {
        let Some(downloads) = &self.store.downloads else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(downloads.join(".partial")) else {
            return;
        };
        let live: std::collections::HashSet<String> = self
            .store
            .transfers
            .downloading()
            .map(|(id, _)| id.to_string())
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A partial file, and the piece map of a download from several members.
            let id = name
                .strip_suffix(".part")
                .or_else(|| name.strip_suffix(".pieces"));
            if id.is_some_and(|id| !live.contains(id)) {
                debug!(file = %name, "removing a stale partial download");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn save_state(&mut self, id: &TransferId, state: State) {
        if let Err(e) = self.store.transfers.set_state(id, state) {
            self.emit(Event::Error {
                message: format!("cannot save transfer {id}: {e}"),
            });
        }
    }

    fn job(&self, transfer: &Transfer) -> Option<Job> {
        let downloads = self.store.downloads.clone()?;
        Some(Job {
            transfer: transfer.offer.transfer,
            size: transfer.offer.size,
            sha256: transfer.offer.sha256,
            name: transfer.offer.name.clone(),
            downloads,
        })
    }

    /// Runs the download task of transfer `id` from `peer`.
    fn spawn_download(&mut self, id: TransferId, peer: PeerId) {
        if let Some(task) = self.spawn_folder_download(id, peer) {
            self.files.downloads.insert(id, task);
            return;
        }
        let Some(job) = self.store.transfers.get(&id).and_then(|t| self.job(t)) else {
            warn!(%id, "no download started: no transfer or no data dir");
            return;
        };
        if let Some(task) = self.spawn_multi_source(job.clone()) {
            self.files.downloads.insert(id, task);
            return;
        }
        let open = self.stream_opener(peer, id);
        let fetcher = self.internal_tx.clone();
        let fetch = move |offset: u64, len: u32| ask_chunk(fetcher.clone(), peer, id, offset, len);
        let busy = self.internal_tx.clone();
        let mut reported: Option<std::time::Instant> = None;
        let keep_busy = move |_| {
            if reported.is_none_or(|at| at.elapsed() >= STREAMING_REPORT_EVERY) {
                reported = Some(std::time::Instant::now());
                let _ = busy.try_send(Internal::Streaming(peer));
            }
        };
        let task = self.download_task(id, job.size, keep_busy, move |progress| async move {
            download::run(&job, fetch, open, progress).await
        });
        self.files.downloads.insert(id, task);
    }

    /// Runs the download of transfer `id` (`size` bytes) as a task: `run` is given the
    /// progress callback, which hands each count to `also` and reports it as
    /// `file_progress`; the result comes back as [`Internal::DownloadFinished`].
    pub(super) fn download_task<R, Fut>(
        &self,
        id: TransferId,
        size: u64,
        mut also: impl FnMut(u64) + Send + 'static,
        run: R,
    ) -> JoinHandle<()>
    where
        R: FnOnce(Box<dyn FnMut(u64) + Send>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<PathBuf, String>> + Send,
    {
        let internal = self.internal_tx.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            let progress = Box::new(move |bytes| {
                also(bytes);
                let _ = events.send(Event::FileProgress {
                    transfer: id,
                    bytes,
                    size,
                });
            });
            let result = run(progress).await;
            let _ = internal
                .send(Internal::DownloadFinished {
                    transfer: id,
                    result,
                })
                .await;
        })
    }

    /// Restarts the downloads that were running when the node stopped, and removes the
    /// partial files no download will use.
    pub(super) fn resume_downloads(&mut self) {
        self.remove_stale_parts();
        self.remove_stale_folders();
        for id in self.store.transfers.unfinished_downloads() {
            let free_space = self.download_room();
            let known = Known {
                transfers: &self.store.transfers,
                directory: &self.directory,
                free_space,
                exists: Path::exists,
            };
            let started = self.files.offers.start(known, id);
            match started {
                Ok(actions) => {
                    if let Err(e) = self.carry_out_offers(actions) {
                        warn!(%id, "cannot resume download: {e}");
                    }
                }
                Err(e) => warn!(%id, "cannot resume download: {e}"),
            }
        }
    }

    pub(super) fn fetch_chunk(
        &mut self,
        peer: PeerId,
        transfer: TransferId,
        offset: u64,
        len: u32,
        reply: oneshot::Sender<Result<Vec<u8>, FetchError>>,
    ) {
        let request_id = self.swarm.behaviour_mut().file.send_request(
            &peer,
            FileRequest::Chunk {
                transfer,
                offset,
                len,
            },
        );
        let manager = &mut self.swarm.behaviour_mut().peer_manager;
        manager.request_sent(peer, "file", request_id);
        self.files
            .outbound
            .insert(request_id, Outbound::Chunk(reply));
    }

    pub(super) fn download_finished(&mut self, id: TransferId, result: Result<PathBuf, String>) {
        self.files.downloads.remove(&id);
        self.drive_offers(
            Instant::now(),
            Input::DownloadEnded {
                transfer: id,
                result,
            },
        );
    }

    pub(super) fn on_file_event(
        &mut self,
        event: request_response::Event<FileRequest, FileResponse>,
    ) {
        match exchange("file", event) {
            Exchange::Request {
                peer,
                request,
                channel,
            } => self.on_file_request(peer, request, channel),
            Exchange::Response {
                peer,
                request_id,
                response,
            } => match self.files.outbound.remove(&request_id) {
                Some(Outbound::Chunk(reply)) => {
                    let _ = reply.send(match response {
                        FileResponse::Chunk(data) => Ok(data),
                        FileResponse::Error(reason) => Err(FetchError::Fatal(format!(
                            "{} refused: {reason}",
                            self.directory.display_name(&peer)
                        ))),
                        FileResponse::Noted => {
                            Err(FetchError::Fatal("the sender sent no data".into()))
                        }
                    });
                }
                Some(Outbound::Offer(transfer)) => {
                    let refusal = match response {
                        FileResponse::Error(reason) => Some(reason),
                        FileResponse::Noted | FileResponse::Chunk(_) => None,
                    };
                    self.drive_offers(Instant::now(), Input::OfferAnswered { transfer, refusal });
                }
                Some(Outbound::Decline) | None => {}
            },
            Exchange::Failed {
                peer,
                request_id,
                error,
            } => match self.files.outbound.remove(&request_id) {
                Some(Outbound::Chunk(reply)) => {
                    if matches!(error, request_response::OutboundFailure::DialFailure) {
                        self.look_up(peer);
                    }
                    let _ = reply.send(Err(FetchError::Retry(error.to_string())));
                }
                Some(Outbound::Offer(transfer)) => {
                    // A peer this node has no address for yet (on another network, only
                    // reachable through a relay) may be found through the DHT.
                    let input = Input::OfferFailed {
                        peer,
                        transfer,
                        dial_failure: matches!(
                            error,
                            request_response::OutboundFailure::DialFailure
                        ),
                        error: error.to_string(),
                    };
                    self.drive_offers(Instant::now(), input);
                }
                Some(Outbound::Decline) | None => {}
            },
            Exchange::Done => {}
        }
    }

    /// Records and reports that transfer `id` failed.
    fn transfer_failed(&mut self, id: TransferId, reason: String) {
        self.save_state(
            &id,
            State::Failed {
                reason: reason.clone(),
            },
        );
        self.emit(Event::FileFailed {
            transfer: id,
            reason,
        });
    }

    fn on_file_request(
        &mut self,
        peer: PeerId,
        request: FileRequest,
        channel: ResponseChannel<FileResponse>,
    ) {
        if let FileRequest::Chunk {
            transfer,
            offset,
            len,
        } = request
        {
            if let Some(found) = self.folder_part(peer, transfer) {
                if found.is_ok() {
                    self.report_sent(peer, transfer, offset.saturating_add(len.into()));
                }
                return self.serve_folder_chunk(channel, found, offset, len);
            }
        }
        let response = match request {
            FileRequest::Offer(offer) => {
                self.observe_name(peer, &offer.from_name);
                match self.remember_offer(peer, None, offer) {
                    Ok(()) => FileResponse::Noted,
                    Err(reason) => FileResponse::Error(reason.to_string()),
                }
            }
            FileRequest::Decline { transfer } => {
                self.drive_offers(Instant::now(), Input::Declined { peer, transfer });
                FileResponse::Noted
            }
            FileRequest::Chunk {
                transfer,
                offset,
                len,
            } => match self.store.transfers.get(&transfer) {
                Some(t) if t.serves(&peer) && !matches!(t.state, State::Rejected) => {
                    let (Some(source), size) = (t.source.clone(), t.offer.size) else {
                        return;
                    };
                    self.report_sent(peer, transfer, offset.saturating_add(len.into()));
                    let internal = self.internal_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let response = read_chunk(&source, size, offset, len);
                        let _ = internal.blocking_send(Internal::ChunkRead { channel, response });
                    });
                    return;
                }
                _ => FileResponse::Error("no such transfer".into()),
            },
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .file
            .send_response(channel, response);
    }

    fn transfer_view(&self, id: TransferId) -> Option<TransferView> {
        let t = self.store.transfers.get(&id)?;
        Some(self.view(id, t))
    }

    fn view(&self, id: TransferId, t: &Transfer) -> TransferView {
        if let Some(folder) = self.folder_view(id, t) {
            return folder;
        }
        let with = match (&t.room, t.peer) {
            (Some(room), _) if t.direction == Direction::Outgoing => room.clone(),
            (_, Some(peer)) => self.directory.display_name(&peer),
            _ => String::new(),
        };
        let bytes = match (&t.state, t.direction) {
            (State::Done { .. } | State::Sent, _) => t.offer.size,
            (State::Downloading | State::Failed { .. }, Direction::Incoming) => self
                .job(t)
                .map_or(0, |job| multi_download::bytes_kept(&job)),
            _ => 0,
        };
        TransferView {
            id,
            direction: t.direction,
            with,
            name: t.offer.name.clone(),
            size: t.offer.size,
            bytes,
            source: t.source.clone(),
            peer: t.peer,
            state: t.state.clone(),
        }
    }

    /// `/transfers`.
    pub(super) fn transfer_views(&self) -> Vec<TransferView> {
        self.store
            .transfers
            .list()
            .into_iter()
            .map(|(id, t)| self.view(id, t))
            .collect()
    }
}

/// Reads `len` bytes at `offset` of an offered file, checking it still has its offered size.
pub(super) fn read_chunk(path: &Path, size: u64, offset: u64, len: u32) -> FileResponse {
    let read = || -> std::io::Result<FileResponse> {
        let mut file = std::fs::File::open(path)?;
        if file.metadata()?.len() != size {
            return Ok(FileResponse::Error(
                "the file changed since it was offered".into(),
            ));
        }
        if offset >= size {
            return Ok(FileResponse::Error(
                "offset beyond the end of the file".into(),
            ));
        }
        let want = u64::from(len).min(size - offset) as usize;
        let mut data = vec![0u8; want];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut data)?;
        Ok(FileResponse::Chunk(data))
    };
    read().unwrap_or_else(|e| FileResponse::Error(format!("cannot read the file: {e}")))
}

/// Asks the event loop for `len` bytes at `offset` of `transfer` from `peer` over
/// `/ipm/file/1`: the chunk path of every download (one sender, folders, several sources).
pub(super) async fn ask_chunk(
    internal: tokio::sync::mpsc::Sender<Internal>,
    peer: PeerId,
    transfer: TransferId,
    offset: u64,
    len: u32,
) -> Result<Vec<u8>, FetchError> {
    let stopping = || FetchError::Fatal("the node is stopping".into());
    let (reply, answer) = oneshot::channel();
    let ask = Internal::FetchChunk {
        peer,
        transfer,
        offset,
        len,
        reply,
    };
    if internal.send(ask).await.is_err() {
        return Err(stopping());
    }
    answer.await.unwrap_or_else(|_| Err(stopping()))
}
