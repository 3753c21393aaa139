//! Name registries in the event loop: a node logs in with its name at every bootstrap it
//! connects to, looks names up and asks who is online there; a bootstrap serves its registry
//! (see `crate::services::name_registry`) and the directory of logged-in peers connected to it.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use libp2p::{
    request_response::{self, OutboundRequestId, ResponseChannel},
    PeerId,
};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use ipm_protocol::{
    limits::MAX_ONLINE_LISTED, message::now_ms, name_record::name_key, validate_name, NameRecord,
    RegistryError, RegistryRequest, RegistryResponse, SignedName,
};

use super::EventLoop;
use crate::client::Refusal;
use crate::net::exchange::{exchange, Exchange};
use crate::{
    client::login::{Login, RegistryAsk},
    client::NodeError,
    config::Role,
    event::Event,
    logic::names::{OwnClaim, MAX_TRACKED_NAMES},
};

/// How long before the registry is asked again about a name it did not confirm.
const LOOKUP_RECHECK: Duration = Duration::from_secs(60);

/// The longest pause between two login attempts at a bootstrap that does not answer.
const MAX_RELOGIN_PAUSE: Duration = Duration::from_secs(30);

/// What an outbound registry request was for.
#[derive(Debug)]
pub(super) enum RegistryCall {
    Login { bootstrap: PeerId, name: String },
    Rename { rename: u64, bootstrap: PeerId },
    Lookup { name: String },
    Online { refresh: u64, bootstrap: PeerId },
}

/// Where the login at one bootstrap stands.
#[derive(Debug)]
enum LoginState {
    Pending(Vec<oneshot::Sender<Login>>),
    Done(Login),
}

/// A rename waiting for the bootstraps' answers.
struct PendingRename {
    name: String,
    waiting: usize,
    accepted: Vec<PeerId>,
    refusal: Option<Refusal>,
    reply: oneshot::Sender<Result<(), NodeError>>,
}

/// A refresh of the online lists waiting for the bootstraps' answers.
struct PendingRefresh {
    waiting: usize,
    reply: oneshot::Sender<()>,
}

/// What the event loop keeps about registries.
#[derive(Default)]
pub(super) struct RegistryState {
    calls: HashMap<OutboundRequestId, RegistryCall>,
    logins: HashMap<PeerId, LoginState>,
    /// Users each connected bootstrap reported online, by bootstrap.
    listed: HashMap<PeerId, Vec<NameRecord>>,
    /// When each name was last asked about (by DHT key).
    asked: HashMap<Vec<u8>, Instant>,
    renames: HashMap<u64, PendingRename>,
    refreshes: HashMap<u64, PendingRefresh>,
    next_id: u64,
    /// Logins that failed without an answer: when to try again (none while a retry is on
    /// the wire), and how many tries failed so far.
    relogins: HashMap<PeerId, (Option<Instant>, u32)>,
}

impl RegistryState {
    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Users the bootstraps reported online, one record per peer.
    pub(super) fn listed_users(&self) -> BTreeMap<PeerId, &NameRecord> {
        self.listed
            .values()
            .flatten()
            .map(|record| (record.peer, record))
            .collect()
    }
}

impl EventLoop {
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

    /// Logs in (or registers) the own name at a bootstrap that just connected.
    pub(super) fn log_in_at(&mut self, bootstrap: PeerId) {
        if self.config.role != Role::Node {
            return;
        }
        let name = self.config.name.clone();
        let signed = match self.own_record(&name) {
            Ok(signed) => signed,
            Err(e) => {
                warn!("cannot sign the own name record: {e}");
                return;
            }
        };
        let id = self
            .swarm
            .behaviour_mut()
            .registry
            .send_request(&bootstrap, RegistryRequest::Register(signed));
        self.registry
            .calls
            .insert(id, RegistryCall::Login { bootstrap, name });
        let waiters = match self.registry.logins.remove(&bootstrap) {
            Some(LoginState::Pending(waiters)) => waiters,
            _ => Vec::new(),
        };
        self.registry
            .logins
            .insert(bootstrap, LoginState::Pending(waiters));
    }

    /// Asks the registry of a connected bootstrap who holds `name`, unless it confirmed the
    /// name already or was asked recently. Returns false when no registry is connected: the
    /// caller then looks the name up in the DHT.
    pub(super) fn ask_registry(&mut self, name: &str) -> bool {
        if self.config.role != Role::Node || self.directory.names.is_confirmed(name) {
            return true;
        }
        let Some(bootstrap) = self.connected_registries().into_iter().next() else {
            return false;
        };
        let key = name_key(name);
        let now = Instant::now();
        if self
            .registry
            .asked
            .get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < LOOKUP_RECHECK)
        {
            return true;
        }
        if self.registry.asked.len() >= MAX_TRACKED_NAMES {
            self.registry.asked.clear();
        }
        self.registry.asked.insert(key, now);
        let id = self.swarm.behaviour_mut().registry.send_request(
            &bootstrap,
            RegistryRequest::Lookup {
                name: name.to_owned(),
            },
        );
        self.registry.calls.insert(
            id,
            RegistryCall::Lookup {
                name: name.to_owned(),
            },
        );
        true
    }

    /// Whether a registry was asked about `name` and has not answered yet.
    pub(super) fn asking_registry(&self, name: &str) -> bool {
        let key = name_key(name);
        self.registry
            .calls
            .values()
            .any(|call| matches!(call, RegistryCall::Lookup { name } if name_key(name) == key))
    }

    /// Forgets what a bootstrap that went away said (node), or logs the peer out (bootstrap).
    pub(super) fn registry_peer_gone(&mut self, peer: PeerId) {
        if let Some(services) = &mut self.services {
            if services.registry.log_out(&peer) {
                self.update_registry_metrics();
            }
        }
        self.registry.listed.remove(&peer);
    }

    pub(super) fn on_registry_ask(&mut self, ask: RegistryAsk) {
        match ask {
            RegistryAsk::Login { bootstrap, reply } => {
                match self.registry.logins.get_mut(&bootstrap) {
                    Some(LoginState::Done(login)) => {
                        let _ = reply.send(login.clone());
                    }
                    Some(LoginState::Pending(waiters)) => waiters.push(reply),
                    None if self.swarm.is_connected(&bootstrap)
                        && self.config.role == Role::Node =>
                    {
                        self.log_in_at(bootstrap);
                        if let Some(LoginState::Pending(waiters)) =
                            self.registry.logins.get_mut(&bootstrap)
                        {
                            waiters.push(reply);
                        }
                    }
                    None => {
                        let _ = reply
                            .send(Login::Unavailable("not connected to that bootstrap".into()));
                    }
                }
            }
            RegistryAsk::RefreshOnline { reply } => self.refresh_online(reply),
            RegistryAsk::Rename { name, reply } => self.rename(name, reply),
        }
    }

    fn refresh_online(&mut self, reply: oneshot::Sender<()>) {
        let bootstraps = self.connected_registries();
        if bootstraps.is_empty() || self.config.role != Role::Node {
            let _ = reply.send(());
            return;
        }
        let refresh = self.registry.next();
        let max = u16::try_from(MAX_ONLINE_LISTED).unwrap_or(u16::MAX);
        self.ask_each(&bootstraps, &RegistryRequest::Online { max }, |bootstrap| {
            RegistryCall::Online { refresh, bootstrap }
        });
        self.registry.refreshes.insert(
            refresh,
            PendingRefresh {
                waiting: bootstraps.len(),
                reply,
            },
        );
    }

    /// Sends `request` to each of `bootstraps`, remembering what each answer is for.
    fn ask_each(
        &mut self,
        bootstraps: &[PeerId],
        request: &RegistryRequest,
        call: impl Fn(PeerId) -> RegistryCall,
    ) {
        for bootstrap in bootstraps {
            let id = self
                .swarm
                .behaviour_mut()
                .registry
                .send_request(bootstrap, request.clone());
            self.registry.calls.insert(id, call(*bootstrap));
        }
    }

    fn refresh_answered(&mut self, refresh: u64) {
        if let Some(pending) = self.registry.refreshes.get_mut(&refresh) {
            pending.waiting = pending.waiting.saturating_sub(1);
            if pending.waiting == 0 {
                if let Some(done) = self.registry.refreshes.remove(&refresh) {
                    let _ = done.reply.send(());
                }
            }
        }
    }

    fn rename(&mut self, name: String, reply: oneshot::Sender<Result<(), NodeError>>) {
        if let Err(e) = validate_name(&name) {
            let _ = reply.send(Err(NodeError::Refused(Refusal::BadName {
                name,
                source: e,
            })));
            return;
        }
        if self.config.role != Role::Node {
            let _ = reply.send(Err(NodeError::Refused(Refusal::BootstrapName)));
            return;
        }
        if name == self.config.name {
            let _ = reply.send(Ok(()));
            return;
        }
        let bootstraps = self.connected_registries();
        if bootstraps.is_empty() {
            let _ = reply.send(self.take_name(name));
            return;
        }
        let signed = match self.own_record(&name) {
            Ok(signed) => signed,
            Err(e) => {
                let _ = reply.send(Err(NodeError::Refused(Refusal::Sign(e))));
                return;
            }
        };
        let rename = self.registry.next();
        self.ask_each(
            &bootstraps,
            &RegistryRequest::Register(signed),
            |bootstrap| RegistryCall::Rename { rename, bootstrap },
        );
        self.registry.renames.insert(
            rename,
            PendingRename {
                name,
                waiting: bootstraps.len(),
                accepted: Vec::new(),
                refusal: None,
                reply,
            },
        );
    }

    /// One bootstrap answered a rename; once all did, the rename is taken or undone.
    fn rename_answered(&mut self, rename: u64, bootstrap: PeerId, refusal: Option<Refusal>) {
        let Some(pending) = self.registry.renames.get_mut(&rename) else {
            return;
        };
        pending.waiting = pending.waiting.saturating_sub(1);
        match refusal {
            Some(reason) => {
                pending.refusal.get_or_insert(reason);
            }
            None => pending.accepted.push(bootstrap),
        }
        if pending.waiting > 0 {
            return;
        }
        let Some(done) = self.registry.renames.remove(&rename) else {
            return;
        };
        match done.refusal {
            Some(reason) => {
                // Give the bootstraps that accepted the new name the old one back.
                for bootstrap in done.accepted {
                    self.log_in_at(bootstrap);
                }
                let _ = done.reply.send(Err(NodeError::Refused(reason)));
            }
            None => {
                for bootstrap in &done.accepted {
                    self.registry.logins.insert(
                        *bootstrap,
                        LoginState::Done(Login::Registered { new: true }),
                    );
                }
                let _ = done.reply.send(self.take_name(done.name));
            }
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
        self.people.claim = OwnClaim::Idle { next_try: None };
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
                let reason = format!("the bootstrap did not answer: {error}");
                match self.registry.calls.remove(&request_id) {
                    Some(RegistryCall::Login { bootstrap, .. }) => {
                        self.login_failed(bootstrap, reason)
                    }
                    Some(RegistryCall::Rename { rename, bootstrap }) => {
                        // An unreachable registry does not stop a rename.
                        self.rename_answered(rename, bootstrap, None)
                    }
                    Some(RegistryCall::Online { refresh, .. }) => self.refresh_answered(refresh),
                    Some(RegistryCall::Lookup { name }) => self.look_up_name_in_dht(&name),
                    None => {}
                }
            }
            Exchange::Done => {}
        }
    }

    /// A login got no answer: whoever waits hears so, and it is tried again later while
    /// the bootstrap stays connected.
    fn login_failed(&mut self, bootstrap: PeerId, reason: String) {
        let tries = self
            .registry
            .relogins
            .get(&bootstrap)
            .map_or(0, |(_, n)| *n);
        let pause = crate::logic::backoff::pause(Duration::from_secs(1), tries, MAX_RELOGIN_PAUSE);
        self.registry
            .relogins
            .insert(bootstrap, (Some(Instant::now() + pause), tries + 1));
        self.login_settled(bootstrap, Login::Unavailable(reason));
    }

    /// Logs in again where an earlier login got no answer and its pause is over.
    pub(super) fn retry_logins(&mut self, now: Instant) {
        if self.registry.relogins.is_empty() {
            return;
        }
        let due: Vec<PeerId> = self
            .registry
            .relogins
            .iter()
            .filter(|(_, (at, _))| at.is_some_and(|at| at <= now))
            .map(|(peer, _)| *peer)
            .collect();
        for bootstrap in due {
            if self.swarm.is_connected(&bootstrap) {
                if let Some((at, _)) = self.registry.relogins.get_mut(&bootstrap) {
                    *at = None;
                }
                self.log_in_at(bootstrap);
            } else {
                // Connecting again logs in again.
                self.registry.relogins.remove(&bootstrap);
            }
        }
    }

    fn login_settled(&mut self, bootstrap: PeerId, login: Login) {
        if !matches!(login, Login::Unavailable(_)) {
            self.registry.relogins.remove(&bootstrap);
        }
        if let Some(LoginState::Pending(waiters)) = self.registry.logins.remove(&bootstrap) {
            for waiter in waiters {
                let _ = waiter.send(login.clone());
            }
        }
        self.registry
            .logins
            .insert(bootstrap, LoginState::Done(login));
    }

    /// Takes a verified record from a registry as proof of who holds its name.
    fn confirmed_by_registry(&mut self, record: &NameRecord) {
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
        match (call, response) {
            (RegistryCall::Login { bootstrap, name }, RegistryResponse::Registered { new }) => {
                if let Ok(record) = NameRecord::sign(&self.key, &name, now_ms()) {
                    self.directory.names.confirm(&record);
                }
                info!(%name, %bootstrap, new, "name registered at the bootstrap");
                self.emit(Event::Registered {
                    name,
                    at: bootstrap,
                    new,
                });
                self.login_settled(bootstrap, Login::Registered { new });
            }
            (RegistryCall::Login { bootstrap, name }, RegistryResponse::Refused(error)) => {
                let login = match &error {
                    RegistryError::Taken { owner, .. } => match PeerId::from_bytes(owner) {
                        Ok(owner) => Login::Taken { owner },
                        Err(_) => Login::Refused(error.to_string()),
                    },
                    other => Login::Refused(other.to_string()),
                };
                self.emit(Event::Error {
                    message: format!("bootstrap {bootstrap} refused the name \"{name}\": {error}"),
                });
                self.login_settled(bootstrap, login);
            }
            (RegistryCall::Rename { rename, bootstrap }, RegistryResponse::Registered { .. }) => {
                self.rename_answered(rename, bootstrap, None)
            }
            (RegistryCall::Rename { rename, bootstrap }, RegistryResponse::Refused(error)) => self
                .rename_answered(
                    rename,
                    bootstrap,
                    Some(Refusal::Registry {
                        bootstrap,
                        source: Box::new(error),
                    }),
                ),
            (RegistryCall::Lookup { name }, RegistryResponse::Owner(Some(signed))) => {
                match signed.verify() {
                    Ok(record) => self.confirmed_by_registry(&record),
                    Err(_) => self.look_up_name_in_dht(&name),
                }
            }
            // A name the registry does not hold may still be claimed in the DHT.
            (RegistryCall::Lookup { name }, RegistryResponse::Owner(None)) => {
                self.look_up_name_in_dht(&name)
            }
            (
                RegistryCall::Online { refresh, bootstrap },
                RegistryResponse::Online { users, .. },
            ) => {
                let records: Vec<NameRecord> =
                    users.iter().filter_map(|u| u.verify().ok()).collect();
                for record in &records {
                    self.confirmed_by_registry(record);
                }
                self.registry.listed.insert(bootstrap, records);
                self.refresh_answered(refresh);
            }
            (call, response) => {
                debug!(%peer, ?call, ?response, "unexpected registry answer");
                match call {
                    RegistryCall::Login { bootstrap, .. } => {
                        self.login_failed(bootstrap, "unexpected answer".into())
                    }
                    RegistryCall::Rename { rename, bootstrap } => {
                        self.rename_answered(rename, bootstrap, None)
                    }
                    RegistryCall::Online { refresh, .. } => self.refresh_answered(refresh),
                    RegistryCall::Lookup { name } => self.look_up_name_in_dht(&name),
                }
            }
        }
    }

    /// The bootstrap's side: register, look up, list who is online; a user's node keeps no
    /// registry.
    fn serve_registry(
        &mut self,
        peer: PeerId,
        request: RegistryRequest,
        channel: ResponseChannel<RegistryResponse>,
    ) {
        let response = match &mut self.services {
            Some(services) => services.registry.serve(peer, request),
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
