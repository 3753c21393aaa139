//! Private messages: the outbox, delivery with acks, retries, and dropping duplicates.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use libp2p::{
    request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel},
    PeerId,
};
use tokio::sync::oneshot;
use tracing::debug;

use ipm_protocol::{DirectMessage, DirectRequest, DirectResponse, MessageId};

use super::EventLoop;
use crate::net::exchange::{exchange, Exchange};
use crate::{
    client::{DirectOutcome, NodeError},
    event::Event,
    logic::directory::RecentIds,
    store::history::{direct_log as conversation, Entry, History},
};

/// How many received ids are remembered per run to drop duplicates quickly.
const SEEN_DIRECT: usize = 100_000;
/// How much of a conversation's log is read to learn ids received before a restart.
const SEEN_FROM_HISTORY: usize = 10_000;

type OutcomeReply = oneshot::Sender<Result<DirectOutcome, NodeError>>;

/// Delivery bookkeeping: what is on the wire, who waits for an answer, when to retry.
#[derive(Debug)]
pub(crate) struct Delivery {
    in_flight: HashMap<OutboundRequestId, MessageId>,
    sending: HashSet<MessageId>,
    waiting_user: HashMap<MessageId, (OutcomeReply, Instant)>,
    announced_queued: HashSet<MessageId>,
    retry: HashMap<PeerId, (Instant, u32)>,
    received: RecentIds<MessageId>,
    loaded_history: HashSet<PeerId>,
    auto_replied: HashSet<PeerId>,
}

impl Delivery {
    /// Whether message `id` was reported as queued (it missed its first delivery).
    pub(crate) fn was_queued(&self, id: &MessageId) -> bool {
        self.announced_queued.contains(id)
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            in_flight: HashMap::new(),
            sending: HashSet::new(),
            waiting_user: HashMap::new(),
            announced_queued: HashSet::new(),
            retry: HashMap::new(),
            received: RecentIds::new(SEEN_DIRECT),
            loaded_history: HashSet::new(),
            auto_replied: HashSet::new(),
        }
    }
}

impl EventLoop {
    /// `/msg`: writes the message to the outbox and history, then tries to deliver it.
    pub(super) fn send_direct(&mut self, to: PeerId, text: String, reply: OutcomeReply) {
        let message = DirectMessage::new(&self.config.name, &text);
        let id = message.id;
        match self.enqueue_direct(to, message) {
            Ok(()) => {
                let deadline = Instant::now() + self.config.direct_wait;
                self.direct.waiting_user.insert(id, (reply, deadline));
                self.flush_outbox(to);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Checks `message`, writes it to the outbox and the conversation's log; the caller
    /// then flushes the outbox.
    fn enqueue_direct(&mut self, to: PeerId, message: DirectMessage) -> Result<(), NodeError> {
        if to == self.local_peer_id() {
            return Err(NodeError::SelfMessage);
        }
        let request = DirectRequest::Message(message.clone());
        ipm_protocol::decode::<DirectRequest>(
            &ipm_protocol::encode(&request),
            ipm_protocol::limits::MAX_DIRECT_REQUEST_LEN,
        )
        .map_err(NodeError::InvalidMessage)?;
        self.store
            .outbox
            .add(to, message.clone())
            .map_err(NodeError::Outbox)?;
        let entry = Entry {
            ts: message.sent_ms,
            id: message.id.to_string(),
            from: self.config.name.clone(),
            peer: self.local_peer_id().to_string(),
            text: message.text,
            outgoing: true,
        };
        let name = self.directory.display_name(&to);
        self.record_in(&conversation(&to), &name, &entry);
        self.direct.retry.remove(&to);
        self.metrics.count_sent("direct");
        Ok(())
    }

    /// While away, answers the first private message of each sender with the away text
    /// (never an automatic reply, so two away users do not talk forever).
    fn auto_reply(&mut self, peer: PeerId, incoming: &DirectMessage) {
        let Some(away) = self.away_text().map(str::to_owned) else {
            return;
        };
        if incoming.auto_reply || !self.direct.auto_replied.insert(peer) {
            return;
        }
        let mut reply = DirectMessage::new(&self.config.name, &format!("[away] {away}"));
        reply.auto_reply = true;
        match self.enqueue_direct(peer, reply) {
            Ok(()) => self.flush_outbox(peer),
            Err(e) => debug!(%peer, "no away reply: {e}"),
        }
    }

    /// Forgets who got the away reply (the away text changed).
    pub(super) fn reset_auto_replies(&mut self) {
        self.direct.auto_replied.clear();
    }

    /// Sends every waiting message for `peer` that is not already on the wire. Sending to a
    /// peer that is not connected dials it with the addresses the DHT knows.
    pub(super) fn flush_outbox(&mut self, peer: PeerId) {
        let waiting: Vec<DirectMessage> = self
            .store
            .outbox
            .for_peer(&peer)
            .into_iter()
            .filter(|p| !self.direct.sending.contains(&p.message.id))
            .map(|p| p.message.clone())
            .collect();
        for message in waiting {
            let id = message.id;
            let request_id = self
                .swarm
                .behaviour_mut()
                .direct
                .send_request(&peer, DirectRequest::Message(message));
            self.direct.in_flight.insert(request_id, id);
            self.direct.sending.insert(id);
        }
    }

    /// Reports "queued" for messages whose ack is late, and retries unreachable peers
    /// with a growing pause.
    pub(super) fn retry_deliveries(&mut self, now: Instant) {
        let late: Vec<MessageId> = self
            .direct
            .waiting_user
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.report_queued(id);
        }
        self.metrics
            .outbox
            .set(i64::try_from(self.store.outbox.len()).unwrap_or(i64::MAX));
        for peer in self.store.outbox.recipients() {
            let due = self
                .direct
                .retry
                .get(&peer)
                .is_none_or(|(at, _)| *at <= now);
            let idle = self
                .store
                .outbox
                .for_peer(&peer)
                .iter()
                .any(|p| !self.direct.sending.contains(&p.message.id));
            if due && idle {
                let attempts = self.direct.retry.get(&peer).map_or(0, |(_, n)| *n);
                let pause = crate::logic::backoff::pause(
                    Duration::from_millis(500),
                    attempts,
                    self.config.max_retry,
                );
                self.direct.retry.insert(peer, (now + pause, attempts + 1));
                self.flush_outbox(peer);
            }
        }
    }

    /// Reports every message for `peer` still waiting as queued (its lookup found nothing).
    pub(super) fn report_all_queued(&mut self, peer: PeerId) {
        let ids: Vec<MessageId> = self
            .store
            .outbox
            .for_peer(&peer)
            .iter()
            .map(|p| p.message.id)
            .filter(|id| !self.direct.sending.contains(id))
            .collect();
        for id in ids {
            self.report_queued(id);
        }
    }

    fn report_queued(&mut self, id: MessageId) {
        let Some(pending) = self.store.outbox.get(&id) else {
            return;
        };
        let to = pending.to;
        let name = self.directory.display_name(&to);
        if let Some((reply, _)) = self.direct.waiting_user.remove(&id) {
            let _ = reply.send(Ok(DirectOutcome {
                id,
                name: name.clone(),
                delivered: false,
            }));
        }
        if self.direct.announced_queued.insert(id) {
            self.emit(Event::Queued {
                id,
                to,
                name,
                at: None,
            });
            self.deposit(id);
        }
    }

    pub(super) fn on_direct_event(
        &mut self,
        event: request_response::Event<DirectRequest, DirectResponse>,
    ) {
        match exchange("direct", event) {
            Exchange::Request {
                peer,
                request,
                channel,
            } => self.on_direct_request(peer, request, channel),
            Exchange::Response {
                peer,
                request_id,
                response,
            } => {
                if let Some(id) = self.direct.in_flight.remove(&request_id) {
                    self.direct.sending.remove(&id);
                    self.on_direct_response(peer, id, response);
                }
            }
            Exchange::Failed {
                peer,
                request_id,
                error,
            } => {
                if let Some(id) = self.direct.in_flight.remove(&request_id) {
                    self.direct.sending.remove(&id);
                    debug!(%peer, "private message not delivered yet: {error}");
                    // A peer we have no address for may still be found through the DHT
                    // before the user's wait is over; anything else is queued now.
                    if matches!(error, OutboundFailure::DialFailure) {
                        self.look_up(peer);
                    } else {
                        self.report_queued(id);
                    }
                }
            }
            Exchange::Done => {}
        }
    }

    /// Starts a DHT search for `peer`'s addresses; when it is found the outbox is flushed and
    /// waiting file offers are sent again.
    pub(super) fn look_up(&mut self, peer: PeerId) {
        if self.lookups.values().any(|p| *p == peer) {
            return;
        }
        let query = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
        self.lookups.insert(query, peer);
    }

    fn on_direct_response(&mut self, peer: PeerId, id: MessageId, response: DirectResponse) {
        let name = self.directory.display_name(&peer);
        let refused = match response {
            DirectResponse::Delivered { id: acked } if acked == id => None,
            DirectResponse::Delivered { .. } => Some("acknowledged another message".to_owned()),
            DirectResponse::Refused { reason, .. } => Some(reason),
        };
        if let Err(e) = self.store.outbox.remove(&id) {
            self.emit(Event::Error {
                message: format!("cannot update the outbox: {e}"),
            });
        }
        self.direct.announced_queued.remove(&id);
        self.direct.retry.remove(&peer);
        let reply = self.direct.waiting_user.remove(&id).map(|(r, _)| r);
        match refused {
            None => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(DirectOutcome {
                        id,
                        name: name.clone(),
                        delivered: true,
                    }));
                }
                self.emit(Event::Delivered { id, to: peer, name });
            }
            Some(reason) => {
                let message = format!("{name} refused message {id}: {reason}");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(NodeError::DirectRefused {
                        name: name.clone(),
                        id,
                        reason: reason.clone(),
                    }));
                }
                self.emit(Event::Error { message });
            }
        }
    }

    fn on_direct_request(
        &mut self,
        peer: PeerId,
        request: DirectRequest,
        channel: ResponseChannel<DirectResponse>,
    ) {
        let DirectRequest::Message(message) = request;
        let id = message.id;
        self.receive_direct(peer, message);
        let _ = self
            .swarm
            .behaviour_mut()
            .direct
            .send_response(channel, DirectResponse::Delivered { id });
    }

    /// Shows and logs a private message from `peer` the first time its id arrives.
    pub(super) fn receive_direct(&mut self, peer: PeerId, message: DirectMessage) {
        let id = message.id;
        if self.directory.is_blocked(&peer) {
            debug!(%peer, "dropping a private message from a blocked user");
            return;
        }
        self.observe_name(peer, &message.name);
        if !self.first_time_received(peer, id) {
            return;
        }
        self.auto_reply(peer, &message);
        let from = self.directory.display_name(&peer);
        let entry = Entry {
            ts: ipm_protocol::message::now_ms(),
            id: id.to_string(),
            from: from.clone(),
            peer: peer.to_string(),
            text: message.text.clone(),
            outgoing: false,
        };
        self.record_in(&conversation(&peer), &from, &entry);
        self.metrics.count_received("direct");
        self.emit(Event::Direct {
            id,
            from,
            peer,
            text: message.text,
        });
    }

    /// True the first time message `id` from `peer` arrives, also across restarts: the
    /// conversation's log is read once per peer to learn what arrived before.
    fn first_time_received(&mut self, peer: PeerId, id: MessageId) -> bool {
        if self.direct.loaded_history.insert(peer) {
            if let Some(dir) = &self.store.history_dir {
                if let Ok(entries) =
                    History::read_last(dir, &conversation(&peer), SEEN_FROM_HISTORY)
                {
                    for entry in entries.iter().filter(|e| !e.outgoing) {
                        if let Ok(seen) = entry.id.parse::<MessageId>() {
                            self.direct.received.insert(seen);
                        }
                    }
                }
            }
        }
        self.direct.received.insert(id)
    }
}
