//! Mailboxes, the driver: carries out what `logic::mail_pickup` decides (a node deposits
//! sealed messages for offline peers at its bootstraps and fetches its own), seals and opens
//! them; a bootstrap keeps them (see `crate::services::mailbox_service`).

use libp2p::{
    request_response::{self, OutboundRequestId, ResponseChannel},
    PeerId,
};
use tracing::{debug, warn};

use ipm_protocol::{
    limits::{MAX_DIRECT_REQUEST_LEN, MAX_FETCH, MAX_MAILBOX_TTL_MS},
    DirectRequest, MailboxRequest, MailboxResponse, MessageId, Sealed,
};

use super::EventLoop;
use crate::net::addresses::peer_of;
use crate::net::exchange::{exchange, Exchange};
use crate::{
    event::Event,
    logic::mail_pickup::{Action, Input},
    store::sealed,
};

/// What an outbound mailbox request was for.
#[derive(Debug)]
pub(crate) enum MailboxCall {
    Deposit { id: MessageId, bootstrap: PeerId },
    Fetch,
    Ack,
}

impl EventLoop {
    /// The bootstraps this node is connected to.
    pub(super) fn connected_bootstraps(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .config
            .bootstrap
            .iter()
            .filter_map(peer_of)
            .filter(|p| self.swarm.is_connected(p))
            .collect();
        peers.sort();
        peers.dedup();
        peers
    }

    /// Deposits a sealed copy of waiting message `id` at every connected bootstrap (once
    /// per bootstrap).
    pub(super) fn deposit(&mut self, id: MessageId) {
        let bootstraps = self.connected_bootstraps();
        self.pick_up(Input::Queued { id, bootstraps });
    }

    /// On connecting to a bootstrap: hand it what waits for others, fetch what waits for us.
    pub(super) fn on_bootstrap_connected(&mut self, bootstrap: PeerId) {
        let queued = self.direct.queued();
        self.pick_up(Input::BootstrapConnected { bootstrap, queued });
    }

    /// Fetches mail from every connected bootstrap (run from time to time).
    pub(super) fn poll_mailboxes(&mut self) {
        let bootstraps = self.connected_bootstraps();
        self.pick_up(Input::Poll { bootstraps });
        if let Some(services) = &mut self.services {
            let now = ipm_protocol::now_ms();
            if let Err(e) = services.mailbox.expire(now) {
                warn!("cannot expire mailbox messages: {e}");
            }
        }
    }

    /// One step of the mailbox client, and what it asks for.
    fn pick_up(&mut self, input: Input) {
        for action in self.mail_pickup.handle(input) {
            match action {
                Action::Deposit { id, bootstrap } => self.deposit_at(id, bootstrap),
                Action::Fetch { bootstrap } => self.fetch_mail(bootstrap),
                Action::Ack { bootstrap, ids } => {
                    let request_id = self
                        .swarm
                        .behaviour_mut()
                        .mailbox
                        .send_request(&bootstrap, MailboxRequest::Ack { ids });
                    self.mailbox_calls.insert(request_id, MailboxCall::Ack);
                }
                Action::ReportStored { id, bootstrap } => {
                    if let Some(pending) = self.store.outbox.get(&id) {
                        let to = pending.to;
                        let name = self.directory.display_name(&to);
                        self.emit(Event::Queued {
                            id,
                            to,
                            name,
                            at: Some(bootstrap),
                        });
                    }
                }
            }
        }
    }

    /// Seals waiting message `id` for its recipient and deposits it at `bootstrap`.
    fn deposit_at(&mut self, id: MessageId, bootstrap: PeerId) {
        let Some(pending) = self.store.outbox.get(&id) else {
            return;
        };
        let to = pending.to;
        let bytes = ipm_protocol::encode(&DirectRequest::Message(pending.message.clone()));
        let sealed = match sealed::seal(&self.key, &to, &bytes) {
            Ok(sealed) => sealed,
            Err(e) => {
                debug!(%to, "not depositing: {e}");
                return;
            }
        };
        let request = MailboxRequest::Deposit {
            to: to.to_bytes(),
            message: Sealed { id, sealed },
            ttl_ms: MAX_MAILBOX_TTL_MS,
        };
        let request_id = self
            .swarm
            .behaviour_mut()
            .mailbox
            .send_request(&bootstrap, request);
        self.mailbox_calls
            .insert(request_id, MailboxCall::Deposit { id, bootstrap });
    }

    /// Asks a bootstrap for the messages waiting for this node.
    fn fetch_mail(&mut self, bootstrap: PeerId) {
        let max = u16::try_from(MAX_FETCH).unwrap_or(u16::MAX);
        let request_id = self
            .swarm
            .behaviour_mut()
            .mailbox
            .send_request(&bootstrap, MailboxRequest::Fetch { max });
        self.mailbox_calls.insert(request_id, MailboxCall::Fetch);
    }

    pub(super) fn on_mailbox_event(
        &mut self,
        event: request_response::Event<MailboxRequest, MailboxResponse>,
    ) {
        match exchange("mailbox", event) {
            Exchange::Request {
                peer,
                request,
                channel,
            } => self.serve_mailbox(peer, request, channel),
            Exchange::Response {
                peer,
                request_id,
                response,
            } => self.on_mailbox_response(peer, request_id, response),
            Exchange::Failed {
                peer,
                request_id,
                error,
            } => {
                if let Some(MailboxCall::Deposit { id, bootstrap }) =
                    self.mailbox_calls.remove(&request_id)
                {
                    self.pick_up(Input::DepositFailed { id, bootstrap });
                }
                debug!(%peer, "mailbox request failed: {error}");
            }
            Exchange::Done => {}
        }
    }

    fn on_mailbox_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: MailboxResponse,
    ) {
        match (self.mailbox_calls.remove(&request_id), response) {
            (Some(MailboxCall::Deposit { id, bootstrap }), MailboxResponse::Stored) => {
                self.pick_up(Input::Stored { id, bootstrap });
            }
            (Some(MailboxCall::Deposit { id, bootstrap }), MailboxResponse::Refused(reason)) => {
                debug!(%bootstrap, %id, "mailbox refused the message: {reason}");
            }
            (Some(MailboxCall::Fetch), MailboxResponse::Messages { messages, more }) => {
                // Only what is safely logged (or can never be opened) is acknowledged; the
                // rest stays at the bootstrap and is fetched again at the next poll.
                let ids: Vec<MessageId> = messages
                    .into_iter()
                    .filter_map(|message| {
                        let id = message.id;
                        self.open_mail(message).then_some(id)
                    })
                    .collect();
                let more = more && !ids.is_empty();
                self.pick_up(Input::Fetched {
                    bootstrap: peer,
                    ids,
                    more,
                });
            }
            (call, response) => debug!(%peer, ?call, ?response, "unexpected mailbox answer"),
        }
    }

    /// Opens one sealed message and delivers it like a direct one (duplicates dropped);
    /// false when it could not be logged and must stay at the bootstrap.
    fn open_mail(&mut self, message: Sealed) -> bool {
        let (sender, bytes) = match sealed::open(&self.key, &message.sealed) {
            Ok(opened) => opened,
            Err(e) => {
                debug!("dropping mailbox message {}: {e}", message.id);
                return true;
            }
        };
        match ipm_protocol::decode::<DirectRequest>(&bytes, MAX_DIRECT_REQUEST_LEN) {
            Ok(DirectRequest::Message(direct)) if direct.id == message.id => {
                self.metrics.count_received("mailbox");
                self.receive_direct(sender, direct)
            }
            Ok(_) => {
                debug!(
                    "dropping mailbox message {}: its id does not match",
                    message.id
                );
                true
            }
            Err(e) => {
                debug!("dropping mailbox message {}: {e}", message.id);
                true
            }
        }
    }

    /// The bootstrap's side: keep, hand over, forget; a user's node keeps no mailbox.
    fn serve_mailbox(
        &mut self,
        peer: PeerId,
        request: MailboxRequest,
        channel: ResponseChannel<MailboxResponse>,
    ) {
        let ip = self.swarm.behaviour().peer_manager.remote_ip(&peer);
        let response = match &mut self.services {
            Some(services) => {
                let response = services
                    .mailbox
                    .serve(peer, ip, request, ipm_protocol::now_ms());
                self.metrics
                    .mailbox
                    .set(i64::try_from(services.mailbox.len()).unwrap_or(i64::MAX));
                response
            }
            None => MailboxResponse::Refused("this node keeps no mailbox".into()),
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .mailbox
            .send_response(channel, response);
    }
}
