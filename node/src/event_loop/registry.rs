//! Name registries in the event loop: the driver of [`RegistryClient`] (logging in at every
//! bootstrap that connects, renaming, refreshing who is online, asking who holds a name),
//! and a bootstrap serving its registry (see `crate::services::registry_service`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use libp2p::{
    request_response::{self, OutboundRequestId, ResponseChannel},
    PeerId,
};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use ipm_protocol::{
    name_record::name_key, name_ticket::NameTicket, now_ms, NameRecord, RegistryError,
    RegistryRequest, RegistryResponse, SignedName,
};

use super::EventLoop;
use crate::net::exchange::{exchange, Exchange};
use crate::{
    client::login::{Login, RegistryAsk},
    client::NodeError,
    config::{Config, Role},
    event::Event,
    logic::names::{OwnClaim, TAKEN_RECHECK},
    logic::registry_client::{ticket_renewal_due, Action, CallId, Input, RegistryClient, ReplyId},
    net::{addresses::peer_of, metrics::KindLabel},
    services::address_budget::AddressKey,
};

/// What the event loop keeps about registries: the machine, and what it cannot hold (the
/// libp2p request ids of its calls and the channels of those waiting for an answer).
pub(super) struct RegistryState {
    client: RegistryClient,
    calls: HashMap<OutboundRequestId, CallId>,
    logins: HashMap<ReplyId, oneshot::Sender<Login>>,
    renames: HashMap<ReplyId, oneshot::Sender<Result<(), NodeError>>>,
    refreshes: HashMap<ReplyId, oneshot::Sender<()>>,
    /// The registry's ticket for the own name, put in presence announcements.
    pub(super) ticket: Option<NameTicket>,
    /// When a fresh ticket was last asked for (ms since the epoch).
    renewal_asked_ms: u64,
}

impl RegistryState {
    /// The registry side of a node built from `config`.
    pub(super) fn new(config: &Config) -> Self {
        Self {
            client: RegistryClient::new(config.name.clone(), config.role == Role::Node),
            calls: HashMap::new(),
            logins: HashMap::new(),
            renames: HashMap::new(),
            refreshes: HashMap::new(),
            ticket: None,
            renewal_asked_ms: 0,
        }
    }

    /// Users the bootstraps reported online, one record per peer.
    pub(super) fn listed_users(&self) -> BTreeMap<PeerId, &NameRecord> {
        self.client.listed_users()
    }
}

impl EventLoop {
    /// Whether the node holds a registry's ticket for the name it goes by now.
    pub(super) fn holds_own_ticket(&self) -> bool {
        self.registry
            .ticket
            .as_ref()
            .is_some_and(|t| t.name == self.config.name)
    }

    fn connected_registries(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self
            .config
            .bootstrap
            .iter()
            .filter_map(crate::net::addresses::peer_of)
            .filter(|p| self.swarm.is_connected(p))
            .collect();
        peers.sort();
        peers.dedup();
        peers
    }

    fn own_record(&self, name: &str) -> Result<SignedName, ipm_protocol::NameRecordError> {
        NameRecord::sign(&self.key, name, now_ms()).map(|r| SignedName::new(&r))
    }

    /// Feeds `input` to the registry machine and carries out what it decides.
    fn drive_registry(&mut self, input: Input) {
        let now = Instant::now();
        let actions = self.registry.client.handle(now, input);
        self.carry_out_registry(now, actions);
    }

    fn carry_out_registry(&mut self, now: Instant, actions: Vec<Action>) {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            if let Some(input) = self.registry_action(now, action) {
                queue.extend(self.registry.client.handle(now, input));
            }
        }
    }

    /// Carries out one action; what went wrong doing it is reported back as an input.
    fn registry_action(&mut self, now: Instant, action: Action) -> Option<Input> {
        match action {
            Action::Register {
                call,
                bootstrap,
                name,
            } => match self.own_record(&name) {
                Ok(signed) => {
                    self.send_registry(call, bootstrap, RegistryRequest::Register(signed));
                }
                Err(reason) => {
                    warn!("cannot sign the own name record: {reason}");
                    return Some(Input::Unsigned { call, reason });
                }
            },
            Action::Send {
                call,
                bootstrap,
                request,
            } => self.send_registry(call, bootstrap, request),
            Action::Ticket(ticket) => {
                let own = ticket.name == self.config.name;
                self.registry.ticket = Some(ticket);
                if own {
                    self.people.claim.ticketed(now);
                    self.maybe_claim_name();
                    self.announce(now);
                }
            }
            Action::CannotSign { reason } => {
                warn!("cannot sign the own name record: {reason}");
            }
            Action::Registered {
                bootstrap,
                name,
                new,
            } => {
                if let Ok(record) = NameRecord::sign(&self.key, &name, now_ms()) {
                    self.directory.names.confirm(&record);
                }
                info!(%name, %bootstrap, new, "name registered at the bootstrap");
                if name == self.config.name {
                    self.remember_own_name();
                }
                self.emit(Event::Registered {
                    name,
                    at: bootstrap,
                    new,
                });
            }
            Action::NameRefused {
                bootstrap,
                name,
                error,
            } => {
                let owner = match &error {
                    RegistryError::Taken { owner, .. } if name == self.config.name => {
                        PeerId::from_bytes(owner).ok()
                    }
                    _ => None,
                };
                match owner {
                    // The first claim of the name won at the registry: the DHT claim is
                    // left to its owner, and the node goes by a suffixed name.
                    Some(owner) => {
                        self.people.claim.give_way(owner, now, TAKEN_RECHECK);
                        self.announce(now);
                        self.tell_name_taken(owner);
                    }
                    None => self.emit(Event::Error {
                        message: format!(
                            "bootstrap {bootstrap} refused the name \"{name}\": {error}"
                        ),
                    }),
                }
            }
            Action::AnswerLogin { reply, login } => {
                if let Some(reply) = self.registry.logins.remove(&reply) {
                    let _ = reply.send(login);
                }
            }
            Action::AbandonLogin { reply } => {
                self.registry.logins.remove(&reply);
            }
            Action::AnswerRename { reply, refusal } => {
                if let Some(reply) = self.registry.renames.remove(&reply) {
                    let _ = reply.send(refusal.map_or(Ok(()), |r| Err(NodeError::Refused(r))));
                }
            }
            Action::TakeName { reply, name } => {
                let taken = self.take_name(name.clone());
                let took = taken.is_ok();
                if let Some(reply) = self.registry.renames.remove(&reply) {
                    let _ = reply.send(taken);
                }
                if took {
                    return Some(Input::Renamed { name });
                }
            }
            Action::AnswerRefresh { reply } => {
                if let Some(reply) = self.registry.refreshes.remove(&reply) {
                    let _ = reply.send(());
                }
            }
            Action::Confirmed(record) => self.confirmed_by_registry(&record),
            Action::LookUpInDht { name } => self.look_up_name_in_dht(&name),
        }
        None
    }

    fn send_registry(&mut self, call: CallId, bootstrap: PeerId, request: RegistryRequest) {
        let id = self
            .swarm
            .behaviour_mut()
            .registry
            .send_request(&bootstrap, request);
        self.registry.calls.insert(id, call);
    }

    /// Logs in (or registers) the own name at a bootstrap that just connected.
    pub(super) fn log_in_at(&mut self, bootstrap: PeerId) {
        self.drive_registry(Input::Connected { bootstrap });
    }

    /// Asks the registry of a connected bootstrap who holds `name`, unless it confirmed the
    /// name already or was asked recently. Returns false when no registry is connected: the
    /// caller then looks the name up in the DHT.
    pub(super) fn ask_registry(&mut self, name: &str) -> bool {
        let now = Instant::now();
        let input = Input::NameSeen {
            name: name.to_owned(),
            confirmed: self.directory.names.is_confirmed(name),
            registries: self.connected_registries(),
        };
        let mut actions = self.registry.client.handle(now, input);
        let no_registry = actions
            .iter()
            .any(|a| matches!(a, Action::LookUpInDht { .. }));
        actions.retain(|a| !matches!(a, Action::LookUpInDht { .. }));
        self.carry_out_registry(now, actions);
        !no_registry
    }

    /// Whether a registry was asked about `name` and has not answered yet.
    pub(super) fn asking_registry(&self, name: &str) -> bool {
        self.registry.client.is_asking(name)
    }

    /// Forgets what a bootstrap that went away said (node), or logs the peer out (bootstrap).
    pub(super) fn registry_peer_gone(&mut self, peer: PeerId) {
        if let Some(services) = &mut self.services {
            if services.registry.log_out(&peer) {
                self.update_registry_metrics();
            }
        }
        self.drive_registry(Input::Gone { peer });
    }

    pub(super) fn on_registry_ask(&mut self, ask: RegistryAsk) {
        let reply = self.registry.client.reply_id();
        let input = match ask {
            RegistryAsk::Login {
                bootstrap,
                reply: tx,
            } => {
                self.registry.logins.insert(reply, tx);
                Input::LoginAsked {
                    bootstrap,
                    connected: self.swarm.is_connected(&bootstrap),
                    reply,
                }
            }
            RegistryAsk::RefreshOnline { reply: tx } => {
                self.registry.refreshes.insert(reply, tx);
                Input::RefreshAsked {
                    registries: self.connected_registries(),
                    reply,
                }
            }
            RegistryAsk::Rename { name, reply: tx } => {
                self.registry.renames.insert(reply, tx);
                Input::RenameAsked {
                    name,
                    registries: self.connected_registries(),
                    reply,
                }
            }
        };
        self.drive_registry(input);
    }

    /// Saves the name the node goes by in the settings, once it is the node's (a registry or
    /// the DHT holds it for this key): a name refused at start is never saved, so the next
    /// start without `--name` does not ask for it again.
    pub(super) fn remember_own_name(&self) {
        let name = self.config.name.clone();
        let saved = self.config.data_dir.as_ref().and_then(|dir| {
            crate::store::settings::Settings::load(&dir.settings())
                .ok()
                .and_then(|s| s.name)
        });
        if saved.as_deref() == Some(name.as_str()) {
            return;
        }
        if let Err(e) = self.save_settings(|s| s.name = Some(name)) {
            warn!("cannot remember the name: {e}");
        }
    }

    /// Makes `name` the own name: remembered, announced, claimed in the DHT.
    fn take_name(&mut self, name: String) -> Result<(), NodeError> {
        self.save_settings(|s| s.name = Some(name.clone()))?;
        let old = std::mem::replace(&mut self.config.name, name.clone());
        // Stop republishing the record of the old name.
        self.swarm
            .behaviour_mut()
            .kad
            .remove_record(&libp2p::kad::RecordKey::new(&name_key(&old)));
        self.people.claim = OwnClaim::fresh();
        self.people.told_taken = false;
        self.maybe_claim_name();
        self.announce(Instant::now());
        info!(%old, %name, "renamed");
        Ok(())
    }

    pub(super) fn on_registry_event(
        &mut self,
        event: request_response::Event<RegistryRequest, RegistryResponse>,
    ) {
        match exchange("registry", event) {
            Exchange::Request {
                peer,
                request,
                channel,
            } => self.serve_registry(peer, request, channel),
            Exchange::Response {
                peer,
                request_id,
                response,
            } => self.on_registry_response(peer, request_id, response),
            Exchange::Failed {
                peer,
                request_id,
                error,
            } => {
                debug!(%peer, "registry request failed: {error}");
                if let Some(call) = self.registry.calls.remove(&request_id) {
                    self.drive_registry(Input::Failed {
                        call,
                        reason: format!("the bootstrap did not answer: {error}"),
                    });
                }
            }
            Exchange::Done => {}
        }
    }

    /// A presence of `peer` carried its registry ticket: when one of this node's bootstraps
    /// signed it, the name is confirmed on the spot instead of being asked about.
    pub(super) fn check_ticket(&mut self, peer: PeerId, ticket: &NameTicket) {
        if self.directory.names.owner_of(&ticket.name) == Some(peer) {
            return;
        }
        let trusted: Vec<PeerId> = self.config.bootstrap.iter().filter_map(peer_of).collect();
        match ticket.verify(&trusted, &peer, now_ms()) {
            Ok(record) => self.confirmed_by_registry(&record),
            Err(e) => debug!(%peer, "name ticket not taken: {e}"),
        }
    }

    /// Logs in again at the registry of the own ticket once half its life is over, so that
    /// the announcements always carry one that holds.
    pub(super) fn renew_ticket(&mut self) {
        let now = now_ms();
        let Some(ticket) = &self.registry.ticket else {
            return;
        };
        let due = ticket_renewal_due(ticket.expires_ms, self.registry.renewal_asked_ms, now);
        let registry = PeerId::from_bytes(&ticket.registry).ok();
        if let Some(registry) = registry.filter(|r| due && self.swarm.is_connected(r)) {
            self.registry.renewal_asked_ms = now;
            self.log_in_at(registry);
        }
    }

    /// Logs in again where an earlier login got no answer and its pause is over.
    pub(super) fn retry_logins(&mut self, now: Instant) {
        let due = self.registry.client.due_relogins(now);
        if due.is_empty() {
            return;
        }
        let connected = due
            .into_iter()
            .filter(|p| self.swarm.is_connected(p))
            .collect();
        let actions = self.registry.client.handle(now, Input::Tick { connected });
        self.carry_out_registry(now, actions);
    }

    /// Takes a verified record from a registry as proof of who holds its name.
    pub(super) fn confirmed_by_registry(&mut self, record: &NameRecord) {
        self.directory.names.confirm(record);
        if record.peer != self.local_peer_id() {
            self.directory.observe_name(record.peer, &record.name);
        }
        self.name_settled(&record.name);
    }

    fn on_registry_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: RegistryResponse,
    ) {
        let Some(call) = self.registry.calls.remove(&request_id) else {
            return;
        };
        debug!(%peer, ?call, "registry answered");
        self.drive_registry(Input::Answered { call, response });
    }

    /// The bootstrap's side: register, look up, list who is online; a user's node keeps no
    /// registry.
    fn serve_registry(
        &mut self,
        peer: PeerId,
        request: RegistryRequest,
        channel: ResponseChannel<RegistryResponse>,
    ) {
        let kind = match &request {
            RegistryRequest::Register(_) => "register",
            RegistryRequest::Lookup { .. } => "lookup",
            RegistryRequest::Online { .. } => "online",
        };
        let response = match &mut self.services {
            Some(services) => {
                self.metrics
                    .registry_requests
                    .get_or_create(&KindLabel { kind: kind.into() })
                    .inc();
                let ip = self.swarm.behaviour().peer_manager.remote_ip(&peer);
                let address =
                    AddressKey::of_peer(peer, ip, self.config.address_limits.loopback_exempt);
                services
                    .registry
                    .serve(peer, address, request, ipm_protocol::now_ms(), &self.key)
            }
            None => RegistryResponse::Refused(RegistryError::Refused(
                "this node keeps no registry".into(),
            )),
        };
        self.update_registry_metrics();
        let _ = self
            .swarm
            .behaviour_mut()
            .registry
            .send_response(channel, response);
    }

    fn update_registry_metrics(&self) {
        let Some(services) = &self.services else {
            return;
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics
            .registered_names
            .set(count(services.registry.names()));
        self.metrics
            .online_users
            .set(count(services.registry.online()));
    }
}
