//! Private messages, the driver: carries out what `logic::delivery` decides (requests on the
//! wire, the outbox and history on disk, events, the sender's answer).

use std::{collections::HashMap, path::Path, time::Instant};

use libp2p::{
    request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel},
    PeerId,
};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use ipm_protocol::{limits, DirectMessage, DirectRequest, DirectResponse, MessageId, Op};

use super::{changes::Checked, EventLoop};
use crate::net::exchange::{exchange, Exchange};
use crate::{
    client::{DirectOutcome, NodeError},
    config::Config,
    event::Event,
    logic::address_key::AddressKey,
    logic::delivery::{Action, Delivery, Dropped, Incoming, Input, Outcome, Reaction},
    logic::edits::kind,
    logic::rate_limit::TokenBuckets,
    logic::timeline::Receipt,
    store::history::{direct_log as conversation, Entry, EntryChange, History},
    store::outbox::Outbox,
};

/// How much of a conversation's log is read to learn ids received before a restart.
const SEEN_FROM_HISTORY: usize = 10_000;

type OutcomeReply = oneshot::Sender<Result<DirectOutcome, NodeError>>;

/// The delivery machine and what only the driver can hold: which request carries which
/// message, and the senders waiting for an outcome.
#[derive(Debug)]
pub(crate) struct DirectState {
    machine: Delivery,
    in_flight: HashMap<OutboundRequestId, MessageId>,
    replies: HashMap<MessageId, OutcomeReply>,
    /// What strangers at each address may still send.
    strangers: TokenBuckets<AddressKey>,
}

impl DirectState {
    /// The machine for `config`, told what `outbox` holds from before.
    pub(crate) fn new(config: &Config, outbox: &Outbox) -> Self {
        let mut machine = Delivery::new(config.direct_wait, config.max_retry);
        for peer in outbox.recipients() {
            for pending in outbox.for_peer(&peer) {
                machine.restore(peer, pending.message.id);
            }
        }
        Self {
            machine,
            in_flight: HashMap::new(),
            replies: HashMap::new(),
            strangers: TokenBuckets::new(
                limits::STRANGER_DIRECT_BURST,
                limits::STRANGER_DIRECT_PER_SEC,
                limits::MAX_RATE_TRACKED_PEERS,
            ),
        }
    }

    /// The waiting messages already reported queued, by recipient and oldest first.
    pub(crate) fn queued(&self) -> Vec<MessageId> {
        self.machine.queued()
    }
}

/// The ids of the messages received from `peer` that its conversation's log holds.
fn earlier_ids(dir: Option<&Path>, peer: &PeerId) -> Vec<MessageId> {
    let Some(dir) = dir else {
        return Vec::new();
    };
    History::read_last(dir, &conversation(peer), SEEN_FROM_HISTORY)
        .map(|entries| {
            entries
                .iter()
                .filter(|e| !e.outgoing)
                .filter_map(|e| e.id.parse::<MessageId>().ok())
                .collect()
        })
        .unwrap_or_default()
}

impl EventLoop {
    /// `/msg`: writes the message to the outbox and history, then tries to deliver it.
    pub(super) fn send_direct(&mut self, to: PeerId, text: String, reply: OutcomeReply) {
        let message = DirectMessage::new(&self.config.name, &text);
        self.send_direct_message(to, message, None, reply);
    }

    /// Sends `message`; `logged` is what the log keeps instead of its text (a change).
    pub(super) fn send_direct_message(
        &mut self,
        to: PeerId,
        mut message: DirectMessage,
        logged: Option<(String, EntryChange)>,
        reply: OutcomeReply,
    ) {
        let id = message.id;
        message.receipts = self.config.receipts;
        match self.enqueue_direct(to, message, logged) {
            Ok(()) => {
                self.direct.replies.insert(id, reply);
                self.deliver(Input::Queued {
                    to,
                    id,
                    user_waits: true,
                });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Checks `message`, writes it to the outbox and the conversation's log; the caller
    /// then tells the machine.
    fn enqueue_direct(
        &mut self,
        to: PeerId,
        message: DirectMessage,
        logged: Option<(String, EntryChange)>,
    ) -> Result<(), NodeError> {
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
        let is_line = logged.as_ref().is_none_or(|(_, re)| re.kind == kind::REPLY);
        let (text, re) = match logged {
            Some((text, re)) => (text, Some(re)),
            None => (message.text, None),
        };
        let entry = Entry {
            ts: message.sent_ms,
            id: message.id.to_string(),
            from: self.config.name.clone(),
            peer: self.local_peer_id().to_string(),
            text,
            outgoing: true,
            signed: None,
            re,
        };
        let name = self.directory.display_name(&to);
        let log = conversation(&to);
        self.record_in(&log, &name, &entry);
        if is_line {
            let me = self.local_peer_id();
            self.note_line(&log, message.id, &me, true);
        }
        self.metrics.count_sent("direct");
        Ok(())
    }

    /// Sends the away text to `peer` (the machine decided it is due).
    fn auto_reply(&mut self, peer: PeerId) {
        let Some(away) = self.away_text().map(str::to_owned) else {
            return;
        };
        let mut reply = DirectMessage::new(&self.config.name, &format!("[away] {away}"));
        reply.auto_reply = true;
        // The user did not type it: no receipts are asked for or shown.
        reply.receipts = false;
        let id = reply.id;
        self.changes.receipts.quiet(id);
        match self.enqueue_direct(peer, reply, None) {
            Ok(()) => self.deliver(Input::Queued {
                to: peer,
                id,
                user_waits: false,
            }),
            Err(e) => debug!(%peer, "no away reply: {e}"),
        }
    }

    /// Forgets who got the away reply (the away text changed).
    pub(super) fn reset_auto_replies(&mut self) {
        self.deliver(Input::AwayChanged);
    }

    /// Sends every waiting message for `peer` that is not already on the wire. Sending to a
    /// peer that is not connected dials it with the addresses the DHT knows.
    pub(super) fn flush_outbox(&mut self, peer: PeerId) {
        self.deliver(Input::Reachable { peer });
    }

    /// Reports "queued" for messages whose ack is late, and retries unreachable peers
    /// with a growing pause.
    pub(super) fn retry_deliveries(&mut self, now: Instant) {
        let actions = self.direct.machine.handle(now, Input::Tick);
        self.carry_out_delivery(actions);
        self.metrics
            .outbox
            .set(i64::try_from(self.store.outbox.len()).unwrap_or(i64::MAX));
    }

    /// Reports every message for `peer` still waiting as queued (its lookup found nothing).
    pub(super) fn report_all_queued(&mut self, peer: PeerId) {
        self.deliver(Input::NotFound { peer });
    }

    /// One step of the delivery machine, now, and what it asks for.
    fn deliver(&mut self, input: Input) {
        let actions = self.direct.machine.handle(Instant::now(), input);
        self.carry_out_delivery(actions);
    }

    fn carry_out_delivery(&mut self, actions: Vec<Action>) {
        // Messages whose delivery the sender's own command answers.
        let mut answered = Vec::new();
        for action in actions {
            match action {
                Action::Send { to, id } => {
                    let Some(pending) = self.store.outbox.get(&id) else {
                        debug!(%id, "not sending a message the outbox no longer holds");
                        continue;
                    };
                    let request = DirectRequest::Message(pending.message.clone());
                    let behaviour = self.swarm.behaviour_mut();
                    let request_id = behaviour.direct.send_request(&to, request);
                    behaviour
                        .peer_manager
                        .request_sent(to, "direct", request_id);
                    self.direct.in_flight.insert(request_id, id);
                }
                Action::LookUp { peer } => self.look_up(peer),
                Action::Forget { id } => {
                    if let Err(e) = self.store.outbox.remove(&id) {
                        self.emit(Event::Error {
                            message: format!("cannot update the outbox: {e}"),
                        });
                    }
                }
                Action::Answer { id, to, outcome } => {
                    let Some(reply) = self.direct.replies.remove(&id) else {
                        continue;
                    };
                    if outcome == Outcome::Delivered {
                        answered.push(id);
                    }
                    let name = self.directory.display_name(&to);
                    let answer = match outcome {
                        Outcome::Delivered | Outcome::Queued => Ok(DirectOutcome {
                            id,
                            name,
                            delivered: outcome == Outcome::Delivered,
                        }),
                        Outcome::Refused(reason) => {
                            Err(NodeError::DirectRefused { name, id, reason })
                        }
                    };
                    let _ = reply.send(answer);
                }
                Action::Queued { id, to } => {
                    let name = self.directory.display_name(&to);
                    self.emit(Event::Queued {
                        id,
                        to,
                        name,
                        at: None,
                    });
                    self.deposit(id);
                }
                Action::Delivered { id, to } => {
                    // Scripts get every acknowledgement; the user is not told again what
                    // the command's answer or a read receipt already said, nor of a
                    // message the node sent on its own.
                    let moves_forward = self.changes.receipts.advance(id, Receipt::Delivered);
                    let name = self.directory.display_name(&to);
                    let told = answered.contains(&id) || !moves_forward;
                    self.emit(Event::Delivered { id, to, name, told });
                }
                Action::Refused { id, to, reason } => {
                    let name = self.directory.display_name(&to);
                    self.emit(Event::Error {
                        message: format!("{name} refused message {id}: {reason}"),
                    });
                }
            }
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
                    self.deliver(Input::Answered { peer, id, response });
                }
            }
            Exchange::Failed {
                peer,
                request_id,
                error,
            } => {
                if let Some(id) = self.direct.in_flight.remove(&request_id) {
                    debug!(%peer, "private message not delivered yet: {error}");
                    self.deliver(Input::Failed {
                        peer,
                        id,
                        dial_failure: matches!(error, OutboundFailure::DialFailure),
                    });
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

    fn on_direct_request(
        &mut self,
        peer: PeerId,
        request: DirectRequest,
        channel: ResponseChannel<DirectResponse>,
    ) {
        let message = match request {
            DirectRequest::Message(message) => message,
            DirectRequest::Notice(notice) => return self.on_notice(peer, notice, channel),
        };
        let id = message.id;
        if !self.stranger_may_send(peer) {
            debug!(%peer, "a private message over its address's budget for strangers: no answer");
            return;
        }
        // Acknowledged only once the message is in the history log (or was before): a
        // message that could not be logged gets no answer, so its sender keeps it and tries
        // again.
        if self.receive_direct(peer, message) {
            let _ = self
                .swarm
                .behaviour_mut()
                .direct
                .send_response(channel, DirectResponse::Delivered { id });
        }
    }

    /// Whether a private message from `peer` is within the budget of strangers at its
    /// address (a contact's always is, and so is a local process's).
    fn stranger_may_send(&mut self, peer: PeerId) -> bool {
        if self.directory.contacts.petname(&peer).is_some() {
            return true;
        }
        let ip = self.swarm.behaviour().peer_manager.remote_ip(&peer);
        match AddressKey::of_peer(peer, ip, self.config.address_limits.loopback_exempt) {
            AddressKey::Exempt(_) => true,
            address => self.direct.strangers.allow(&address, Instant::now()),
        }
    }

    /// Shows and logs a private message from `peer` the first time its id arrives from
    /// `peer` (also across restarts: the conversation's log is read once per peer). True
    /// when the sender may forget it: it is in the history log, was before, or is dropped
    /// for good (a blocked sender).
    pub(super) fn receive_direct(&mut self, peer: PeerId, message: DirectMessage) -> bool {
        let mut safe = true;
        let incoming = Incoming {
            from: peer,
            id: message.id,
            auto_reply: message.auto_reply,
            blocked: self.directory.is_blocked(&peer),
            away: self.away_text().is_some(),
        };
        let dir = self.store.history_dir.as_deref();
        let reactions = self
            .direct
            .machine
            .receive(incoming, || earlier_ids(dir, &peer));
        for reaction in reactions {
            match reaction {
                Reaction::Drop {
                    from,
                    why: Dropped::Blocked,
                    ..
                } => debug!(peer = %from, "dropping a private message from a blocked user"),
                Reaction::Drop { .. } => {}
                Reaction::LearnName { from } => self.observe_name(from, &message.name),
                Reaction::AutoReply { to } => self.auto_reply(to),
                Reaction::Show { from, id } => {
                    let shown = self.directory.display_name(&from);
                    let log = conversation(&from);
                    let checked =
                        self.check_change(&log, &from, message.re.as_ref(), &message.text);
                    let (text, re, is_line) = match &checked {
                        Checked::Plain => (message.text.clone(), None, true),
                        Checked::Refused => continue,
                        Checked::Change { re, text, op, .. } => {
                            (text.clone(), Some(re.clone()), *op == Op::Reply)
                        }
                    };
                    let entry = Entry {
                        ts: ipm_protocol::now_ms(),
                        id: id.to_string(),
                        from: shown.clone(),
                        peer: from.to_string(),
                        text,
                        outgoing: false,
                        signed: None,
                        re,
                    };
                    if let Err(e) = self.log_received(&from, &entry) {
                        warn!(peer = %from, "cannot write history: {e}");
                        self.emit(Event::Error {
                            message: format!("cannot write history of {shown}: {e}"),
                        });
                        self.direct.machine.unreceive(from, id);
                        safe = false;
                    }
                    if is_line {
                        self.note_line(&log, id, &from, false);
                        self.count_unread(&log);
                    }
                    self.heard_receipts(from, id, message.receipts);
                    self.metrics.count_received("direct");
                    let event = match checked {
                        Checked::Change { op, target, .. } => {
                            self.change_event(None, id, from, target, op, message.text.clone())
                        }
                        _ => Event::Direct {
                            id,
                            from: shown,
                            peer: from,
                            text: message.text.clone(),
                            reply_to: None,
                        },
                    };
                    self.emit(event);
                }
            }
        }
        safe
    }

    /// Appends a received message to its conversation's log (nothing to do without one).
    fn log_received(&mut self, from: &PeerId, entry: &Entry) -> std::io::Result<()> {
        match &mut self.store.history {
            Some(history) => history.append(&conversation(from), entry),
            None => Ok(()),
        }
    }
}
