//! The loop's side of `/ipm/file/2` (see `net::file_stream`): starts the server of file
//! streams, checks each stream's request against the transfer table and says what kind of
//! upload it is and which address it counts under (see `logic::upload_slots`), gives
//! downloads the opener of their streams, and tells the user who is getting which of its
//! files (see `logic::sending`). The bytes never pass through the loop.

use std::time::Instant;

use libp2p::PeerId;
use tokio::sync::oneshot;
use tracing::warn;

use ipm_protocol::TransferId;

use super::{files::Internal, EventLoop};
use crate::{
    event::Event,
    logic::{address_key::AddressKey, sending, upload_slots::UploadClass},
    net::download::{FetchError, Opened},
    net::file_stream::{self, Grant, Granted},
    store::transfers::{Direction, State},
};

/// What opening one file stream gives, as a download task awaits it.
type OpenStream = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Opened<libp2p::Stream>, FetchError>> + Send>,
>;

impl EventLoop {
    /// Accepts the file streams peers open, unless the node speaks only `/ipm/file/1`.
    pub(super) fn serve_file_streams(&mut self) {
        if !self.config.file_streams {
            return;
        }
        let mut control = self.swarm.behaviour().stream.new_control();
        let incoming = match control.accept(file_stream::PROTOCOL) {
            Ok(incoming) => incoming,
            Err(e) => {
                warn!("cannot serve file streams: {e}");
                return;
            }
        };
        let internal = self.internal_tx.clone();
        let authorize = move |peer: PeerId, transfer: TransferId| {
            let internal = internal.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let ask = Internal::AuthorizeStream {
                    peer,
                    transfer,
                    reply,
                };
                if internal.send(ask).await.is_err() {
                    return Err("the node is stopping".to_owned());
                }
                answer
                    .await
                    .unwrap_or_else(|_| Err("the node is stopping".to_owned()))
            }
        };
        let busy = self.internal_tx.clone();
        // Reports come at most every 250 ms per stream: each keeps the recipient's
        // connection from being trimmed while the file goes out. The loop tells the user;
        // a progress report may be dropped when the loop is busy, the end never.
        let report = move |to, transfer, bytes, size| {
            let sent = Internal::Sent {
                peer: to,
                transfer,
                bytes,
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) if bytes >= size => {
                    let internal = busy.clone();
                    runtime.spawn(async move {
                        let _ = internal.send(sent).await;
                    });
                }
                _ => {
                    let _ = busy.try_send(sent);
                }
            }
            let _ = busy.try_send(Internal::Streaming(to));
        };
        let server = tokio::spawn(file_stream::serve_all(incoming, authorize, report));
        self.files.stream_server = Some(server);
    }

    /// Whether `peer` may stream `transfer`: the file, its offered size, the kind of upload
    /// and the peer's address, or why not.
    pub(super) fn authorize_stream(&mut self, peer: PeerId, transfer: TransferId) -> Granted {
        let (path, size) = self.stream_source(peer, transfer)?;
        // Files offered to this peer alone, and anything a contact fetches, may use the
        // places room shares never hold; keys are free, so shares count per address.
        let contact = self.directory.contacts.petname(&peer).is_some();
        let class = match contact || self.offered_to(peer, transfer) {
            true => UploadClass::Direct,
            false => UploadClass::Shared,
        };
        let ip = self.swarm.behaviour().peer_manager.remote_ip(&peer);
        let address = AddressKey::of_peer(peer, ip, self.config.address_limits.loopback_exempt);
        Ok(Grant {
            path,
            size,
            class,
            address,
        })
    }

    /// Whether `transfer` (a file, or a part of a folder) was offered to `peer` alone.
    fn offered_to(&self, peer: PeerId, transfer: TransferId) -> bool {
        let to_peer = |t: &crate::store::transfers::Transfer| {
            t.direction == Direction::Outgoing && t.peer == Some(peer)
        };
        if let Some(t) = self.store.transfers.get(&transfer) {
            return to_peer(t);
        }
        // A folder's parts share the first 12 bytes of its id.
        let prefix = &transfer.as_bytes()[..12];
        self.store
            .transfers
            .list()
            .into_iter()
            .any(|(id, t)| t.offer.folder.is_some() && id.as_bytes()[..12] == *prefix && to_peer(t))
    }

    /// The file `peer` may stream as `transfer` and its offered size, or why not. A stream
    /// counts as one file request in the peer's budget.
    fn stream_source(&mut self, peer: PeerId, transfer: TransferId) -> file_stream::Authorized {
        // A folder's files are bounded by the stream slots, not counted as requests: a
        // folder of many small files would run the budget dry.
        if let Some(Ok(part)) = self.folder_part(peer, transfer) {
            return Ok(part);
        }
        let now = Instant::now();
        let manager = &mut self.swarm.behaviour_mut().peer_manager;
        manager.used(peer, now);
        if !manager.request(peer, "file", now) {
            return Err("too many requests".into());
        }
        if let Some(refused) = self.folder_part(peer, transfer) {
            return refused;
        }
        match self.store.transfers.get(&transfer) {
            Some(t) if t.serves(&peer) && !matches!(t.state, State::Rejected) => t
                .source
                .clone()
                .map(|source| (source, t.offer.size))
                .ok_or_else(|| "no such transfer".to_owned()),
            _ => Err("no such transfer".into()),
        }
    }

    /// `peer` has `bytes` of transfer id `id` (a file or a folder's part this node offered)
    /// now: the user is told who is getting what, how far, and what was sent whole, and
    /// the transfer's state follows (sending, then sent).
    pub(super) fn report_sent(&mut self, peer: PeerId, id: TransferId, bytes: u64) {
        let Some(part) = self.sent_part(id) else {
            return;
        };
        let actions = self
            .files
            .sending
            .report(Instant::now(), peer, &part, bytes);
        for action in actions {
            match action {
                sending::Action::Getting {
                    transfer,
                    peer,
                    name,
                } => {
                    self.set_outgoing_state(transfer, State::Sending);
                    let by = self.directory.display_name(&peer);
                    self.emit(Event::FileGetting {
                        transfer,
                        peer,
                        by,
                        name,
                    });
                }
                sending::Action::Progress {
                    transfer,
                    peer,
                    name,
                    bytes,
                    size,
                } => {
                    let to_name = self.directory.display_name(&peer);
                    self.emit(Event::FileSending {
                        transfer,
                        to: peer,
                        bytes,
                        size,
                        name,
                        to_name,
                    });
                }
                sending::Action::FolderFileSent {
                    transfer,
                    peer,
                    path,
                    size,
                } => {
                    let to_name = self.directory.display_name(&peer);
                    self.emit(Event::FolderFileSent {
                        transfer,
                        to: peer,
                        to_name,
                        path,
                        size,
                    });
                }
                sending::Action::Sent {
                    transfer,
                    peer,
                    name,
                    size,
                } => {
                    self.set_outgoing_state(transfer, State::Sent);
                    let to_name = self.directory.display_name(&peer);
                    self.emit(Event::FileSending {
                        transfer,
                        to: peer,
                        bytes: size,
                        size,
                        name,
                        to_name,
                    });
                }
            }
        }
    }

    /// Moves outgoing transfer `id` to `state`, unless it is there or was rejected.
    fn set_outgoing_state(&mut self, id: TransferId, state: State) {
        let Some(t) = self.store.transfers.get(&id) else {
            return;
        };
        if t.state == state || t.state == State::Rejected {
            return;
        }
        if let Err(e) = self.store.transfers.set_state(&id, state) {
            warn!(%id, "cannot save the transfer's state: {e}");
        }
    }

    /// What a download of `transfer` from `peer` opens its streams with: `(offset, len)` to
    /// a stream of those bytes, or "unsupported" on a node speaking only `/ipm/file/1`.
    pub(super) fn stream_opener(
        &self,
        peer: PeerId,
        transfer: TransferId,
    ) -> impl FnMut(u64, u64) -> OpenStream + Send + 'static {
        let control = self
            .config
            .file_streams
            .then(|| self.swarm.behaviour().stream.new_control());
        let internal = self.internal_tx.clone();
        move |offset, len| {
            let control = control.clone();
            let internal = internal.clone();
            Box::pin(async move {
                let Some(mut control) = control else {
                    return Ok(Opened::Unsupported);
                };
                let opened = file_stream::open(&mut control, peer, transfer, offset, len).await;
                if matches!(opened, Err(FetchError::Retry(_))) {
                    let _ = internal.try_send(Internal::SenderUnreachable(peer));
                }
                opened
            })
        }
    }
}
