//! File offers, serving chunks to downloaders, and the download tasks themselves.

use std::{
    collections::HashMap,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use libp2p::{
    gossipsub::{IdentTopic, MessageAcceptance},
    request_response::{self, OutboundRequestId, ResponseChannel},
    PeerId,
};
use tokio::{sync::oneshot, task::JoinHandle};
use tracing::{debug, warn};

use ipm_protocol::{
    encode_gossip,
    file::sanitize_file_name,
    limits::{MAX_PENDING_OFFERS, MAX_PENDING_OFFERS_PER_PEER},
    FileOffer, FileRequest, FileResponse, Gossip, Room, TransferId,
};

use super::{EventLoop, Internal};
use crate::client::FileError;
use crate::net::exchange::{exchange, Exchange};
use crate::{
    client::{NodeError, OfferTarget, TransferView},
    event::Event,
    net::download::{self, FetchError, Job},
    store::transfers::{Direction, State, Transfer},
};

/// What an outbound file request was for.
#[derive(Debug)]
enum Outbound {
    Offer(TransferId),
    Chunk(oneshot::Sender<Result<Vec<u8>, FetchError>>),
    Decline,
}

/// File-transfer bookkeeping of the loop.
#[derive(Debug, Default)]
pub(crate) struct Files {
    outbound: HashMap<OutboundRequestId, Outbound>,
    downloads: HashMap<TransferId, JoinHandle<()>>,
    /// Offers to peers this node could not dial, sent again once the DHT finds them or
    /// they connect.
    unreached: HashMap<PeerId, Unreached>,
}

/// Offers waiting for a peer that could not be dialled, and when to look it up again.
#[derive(Debug)]
struct Unreached {
    offers: Vec<TransferId>,
    /// After this the offers fail.
    give_up: Instant,
    next_lookup: Instant,
    lookups: u32,
}

/// How long an offer keeps looking for a peer it cannot dial before it fails: a peer
/// behind a relay needs a moment after start to reserve its circuit and publish it.
const OFFER_REACH: Duration = Duration::from_secs(60);

impl Files {
    /// Stops every running download; the `.part` files stay for the next run.
    pub(crate) fn stop_downloads(&mut self) {
        for (_, task) in self.downloads.drain() {
            task.abort();
        }
    }
}

impl EventLoop {
    /// `/send-file` and `/share`: records the offer, then sends it to the peer or the room.
    pub(super) fn offer_file(
        &mut self,
        target: OfferTarget,
        source: PathBuf,
        size: u64,
        sha256: [u8; 32],
    ) -> Result<TransferId, NodeError> {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .and_then(|n| sanitize_file_name(&n))
            .ok_or_else(|| {
                NodeError::File(FileError::NoFileName {
                    path: source.clone(),
                })
            })?;
        let offer = FileOffer {
            transfer: TransferId::random(),
            from_name: self.config.name.clone(),
            name,
            size,
            sha256,
        };
        let (peer, room) = match &target {
            OfferTarget::Peer(peer) if *peer == self.local_peer_id() => {
                return Err(NodeError::File(FileError::ToSelf))
            }
            OfferTarget::Peer(peer) => (Some(*peer), None),
            OfferTarget::Room(room) if !self.rooms.contains(room) => {
                return Err(NodeError::NotInRoom(room.clone()))
            }
            OfferTarget::Room(room) => (None, Some(room.clone())),
        };
        let transfer = Transfer {
            offer: offer.clone(),
            direction: Direction::Outgoing,
            peer,
            room: room.as_ref().map(ToString::to_string),
            source: Some(source),
            state: State::Offered,
            created_ms: ipm_protocol::message::now_ms(),
        };
        self.store
            .transfers
            .insert(transfer)
            .map_err(|e| NodeError::File(FileError::Save(e)))?;
        let id = offer.transfer;
        match (peer, room) {
            (Some(peer), _) => self.send_offer(peer, offer),
            (None, Some(room)) => {
                self.seen.insert(id);
                let topic = IdentTopic::new(room.topic());
                let bytes = encode_gossip(&Gossip::FileOffer(offer));
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                    debug!("share not published yet: {e:?}");
                }
            }
            (None, None) => {}
        }
        Ok(id)
    }

    fn send_offer(&mut self, peer: PeerId, offer: FileOffer) {
        let id = offer.transfer;
        let request_id = self
            .swarm
            .behaviour_mut()
            .file
            .send_request(&peer, FileRequest::Offer(offer));
        self.files.outbound.insert(request_id, Outbound::Offer(id));
    }

    /// The DHT found `peer` or it connected: sends it the offers that could not reach it.
    /// Another dial failure puts them back to wait, still under their first deadline.
    pub(super) fn resend_offers(&mut self, peer: PeerId) {
        let Some(unreached) = self.files.unreached.get_mut(&peer) else {
            return;
        };
        let ids = std::mem::take(&mut unreached.offers);
        for id in ids {
            let offer = match self.store.transfers.get(&id) {
                Some(t) if matches!(t.state, State::Offered) => t.offer.clone(),
                _ => continue,
            };
            self.send_offer(peer, offer);
        }
    }

    /// An offer to `peer` could not be dialled: it waits for a lookup (or the peer) until
    /// [`OFFER_REACH`] after its first failure, then fails.
    fn offer_unreached(&mut self, peer: PeerId, id: TransferId, now: Instant) {
        let unreached = self.files.unreached.entry(peer).or_insert(Unreached {
            offers: Vec::new(),
            give_up: now + OFFER_REACH,
            next_lookup: now,
            lookups: 0,
        });
        if unreached.give_up <= now {
            let name = self.directory.display_name(&peer);
            self.transfer_failed(id, format!("could not reach {name}: no address for it"));
            return;
        }
        unreached.offers.push(id);
        self.retry_offer_lookups(now);
    }

    /// Looks up again, with a growing pause, the peers that offers are waiting for; fails
    /// the offers whose peer stayed out of reach for [`OFFER_REACH`].
    pub(super) fn retry_offer_lookups(&mut self, now: Instant) {
        let mut due = Vec::new();
        let mut expired = Vec::new();
        let max_pause = self.config.max_retry;
        self.files.unreached.retain(|peer, u| {
            if u.give_up <= now {
                expired.extend(u.offers.drain(..).map(|id| (*peer, id)));
                return false;
            }
            if !u.offers.is_empty() && u.next_lookup <= now {
                let pause =
                    crate::logic::backoff::pause(Duration::from_millis(500), u.lookups, max_pause);
                u.next_lookup = now + pause;
                u.lookups += 1;
                due.push(*peer);
            }
            true
        });
        for peer in due {
            self.look_up(peer);
        }
        for (peer, id) in expired {
            let name = self.directory.display_name(&peer);
            self.transfer_failed(id, format!("could not reach {name}: no address for it"));
        }
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
        if sanitize_file_name(&offer.name).is_none() {
            debug!(peer = %source, "rejecting a shared file without a usable name");
            return MessageAcceptance::Reject;
        }
        if let Err(reason) = self.remember_offer(source, Some(room.to_string()), offer) {
            debug!(peer = %source, "not keeping shared file: {reason}");
        }
        MessageAcceptance::Accept
    }

    /// Records an incoming offer and tells the user; a sanitised name replaces the sender's.
    fn remember_offer(
        &mut self,
        peer: PeerId,
        room: Option<String>,
        mut offer: FileOffer,
    ) -> Result<(), String> {
        if self.directory.is_blocked(&peer) {
            return Err("refused".into());
        }
        offer.name = sanitize_file_name(&offer.name).ok_or("the file name is unusable")?;
        if !self.store.transfers.contains(&offer.transfer) {
            let now = ipm_protocol::message::now_ms();
            let (from_peer, all) = self.store.transfers.pending_offers(&peer, now);
            if from_peer >= MAX_PENDING_OFFERS_PER_PEER || all >= MAX_PENDING_OFFERS {
                return Err("too many offers are waiting for an answer".into());
            }
        }
        let direct = room.is_none();
        let transfer = Transfer {
            offer: offer.clone(),
            direction: Direction::Incoming,
            peer: Some(peer),
            room: room.clone(),
            source: None,
            state: State::Offered,
            created_ms: ipm_protocol::message::now_ms(),
        };
        let new = self
            .store
            .transfers
            .insert(transfer)
            .map_err(|e| format!("cannot save the offer: {e}"))?;
        if new {
            self.emit(Event::FileOffer {
                transfer: offer.transfer,
                from: self.directory.display_name(&peer),
                peer,
                name: offer.name.clone(),
                size: offer.size,
                room,
            });
            if direct && self.config.auto_accept {
                let _ = self.start_download(offer.transfer);
            }
        }
        Ok(())
    }

    /// Finds a transfer by its id or a unique prefix of it.
    fn find_transfer(&self, query: &str) -> Result<TransferId, NodeError> {
        let query = query.trim().to_ascii_lowercase();
        if query.len() < 4 {
            return Err(NodeError::File(FileError::ShortId));
        }
        let matches: Vec<TransferId> = self
            .store
            .transfers
            .list()
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| id.to_string().starts_with(&query))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(NodeError::File(FileError::NoSuchTransfer(query))),
            _ => Err(NodeError::File(FileError::Ambiguous(query))),
        }
    }

    /// `/accept` and `/get`.
    pub(super) fn accept(&mut self, query: &str) -> Result<TransferView, NodeError> {
        let id = self.find_transfer(query)?;
        self.start_download(id)?;
        self.transfer_view(id)
            .ok_or_else(|| NodeError::File(FileError::Vanished(id)))
    }

    /// `/reject`: declines an offer or stops a download (its partial file is removed).
    pub(super) fn reject(&mut self, query: &str) -> Result<TransferView, NodeError> {
        let id = self.find_transfer(query)?;
        let transfer = self
            .store
            .transfers
            .get(&id)
            .cloned()
            .ok_or_else(|| NodeError::File(FileError::Vanished(id)))?;
        if transfer.direction != Direction::Incoming
            || !matches!(transfer.state, State::Offered | State::Downloading)
        {
            return Err(NodeError::File(FileError::NotRejectable(id)));
        }
        if let Some(task) = self.files.downloads.remove(&id) {
            task.abort();
        }
        if let Some(job) = self.job(&transfer) {
            let _ = std::fs::remove_file(job.part_path());
        }
        self.save_state(&id, State::Rejected);
        if let (Some(peer), None) = (transfer.peer, &transfer.room) {
            let request_id = self
                .swarm
                .behaviour_mut()
                .file
                .send_request(&peer, FileRequest::Decline { transfer: id });
            self.files.outbound.insert(request_id, Outbound::Decline);
        }
        self.transfer_view(id)
            .ok_or_else(|| NodeError::File(FileError::Vanished(id)))
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

    /// Starts (or resumes) downloading an incoming offer.
    fn start_download(&mut self, id: TransferId) -> Result<(), NodeError> {
        let transfer = self
            .store
            .transfers
            .get(&id)
            .cloned()
            .ok_or_else(|| NodeError::File(FileError::Missing(id)))?;
        if transfer.direction != Direction::Incoming {
            return Err(NodeError::File(FileError::Outgoing(id)));
        }
        match &transfer.state {
            State::Offered | State::Downloading | State::Failed { .. } => {}
            State::Done { path } => {
                return Err(NodeError::File(FileError::AlreadyReceived {
                    path: path.clone(),
                }))
            }
            State::Rejected => return Err(NodeError::File(FileError::Rejected(id))),
        }
        if self.files.downloads.contains_key(&id) {
            return Ok(());
        }
        let (Some(job), Some(peer)) = (self.job(&transfer), transfer.peer) else {
            return Err(NodeError::File(FileError::NoDataDir));
        };
        self.save_state(&id, State::Downloading);
        let internal = self.internal_tx.clone();
        let events = self.events.clone();
        let task = tokio::spawn(async move {
            let fetch = |offset: u64, len: u32| {
                let internal = internal.clone();
                async move {
                    let (reply, answer) = oneshot::channel();
                    let ask = Internal::FetchChunk {
                        peer,
                        transfer: id,
                        offset,
                        len,
                        reply,
                    };
                    if internal.send(ask).await.is_err() {
                        return Err(FetchError::Fatal("the node is stopping".into()));
                    }
                    answer
                        .await
                        .unwrap_or_else(|_| Err(FetchError::Fatal("the node is stopping".into())))
                }
            };
            let size = job.size;
            let progress = |bytes| {
                let _ = events.send(Event::FileProgress {
                    transfer: id,
                    bytes,
                    size,
                });
            };
            let result = download::run(&job, fetch, progress).await;
            let _ = internal
                .send(Internal::DownloadFinished {
                    transfer: id,
                    result,
                })
                .await;
        });
        self.files.downloads.insert(id, task);
        Ok(())
    }

    /// Restarts the downloads that were running when the node stopped.
    pub(super) fn resume_downloads(&mut self) {
        for id in self.store.transfers.unfinished_downloads() {
            if let Err(e) = self.start_download(id) {
                warn!(%id, "cannot resume download: {e}");
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
        self.files
            .outbound
            .insert(request_id, Outbound::Chunk(reply));
    }

    pub(super) fn download_finished(&mut self, id: TransferId, result: Result<PathBuf, String>) {
        self.files.downloads.remove(&id);
        let Some(transfer) = self.store.transfers.get(&id).cloned() else {
            return;
        };
        if transfer.state != State::Downloading {
            return;
        }
        match result {
            Ok(path) => {
                self.save_state(&id, State::Done { path: path.clone() });
                self.emit(Event::FileReceived {
                    transfer: id,
                    path,
                    size: transfer.offer.size,
                    sha256: hex::encode(transfer.offer.sha256),
                });
            }
            Err(reason) => self.transfer_failed(id, reason),
        }
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
                Some(Outbound::Offer(id)) => {
                    if let FileResponse::Error(reason) = response {
                        self.transfer_failed(id, format!("refused: {reason}"));
                    }
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
                Some(Outbound::Offer(id)) => {
                    // A peer this node has no address for yet (on another network, only
                    // reachable through a relay) may be found through the DHT.
                    if matches!(error, request_response::OutboundFailure::DialFailure) {
                        self.offer_unreached(peer, id, Instant::now());
                    } else {
                        let name = self.directory.display_name(&peer);
                        self.transfer_failed(id, format!("could not reach {name}: {error}"));
                    }
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
        let response = match request {
            FileRequest::Offer(offer) => {
                self.observe_name(peer, &offer.from_name);
                match self.remember_offer(peer, None, offer) {
                    Ok(()) => FileResponse::Noted,
                    Err(reason) => FileResponse::Error(reason),
                }
            }
            FileRequest::Decline { transfer } => {
                if let Some(t) = self.store.transfers.get(&transfer) {
                    if t.peer == Some(peer) && t.direction == Direction::Outgoing {
                        let name = self.directory.display_name(&peer);
                        self.save_state(&transfer, State::Rejected);
                        self.emit(Event::FileFailed {
                            transfer,
                            reason: format!("declined by {name}"),
                        });
                    }
                }
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
        let with = match (&t.room, t.peer) {
            (Some(room), _) if t.direction == Direction::Outgoing => room.clone(),
            (_, Some(peer)) => self.directory.display_name(&peer),
            _ => String::new(),
        };
        let bytes = match (&t.state, t.direction) {
            (State::Done { .. }, _) => t.offer.size,
            (State::Downloading | State::Failed { .. }, Direction::Incoming) => self
                .job(t)
                .and_then(|job| std::fs::metadata(job.part_path()).ok())
                .map_or(0, |m| m.len()),
            _ => 0,
        };
        TransferView {
            id,
            direction: t.direction,
            with,
            name: t.offer.name.clone(),
            size: t.offer.size,
            bytes,
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
fn read_chunk(path: &Path, size: u64, offset: u64, len: u32) -> FileResponse {
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
