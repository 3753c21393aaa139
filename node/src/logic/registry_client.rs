//! A user's node at the bootstraps' name registries, without I/O: logging in (or
//! registering) the own name at each bootstrap that connects and retrying a login that got no
//! answer, renaming at every connected registry, refreshing the lists of users online there,
//! and asking a registry who holds a name seen in use.
//!
//! The driver sends the requests the actions name (signing the own record, which needs the
//! key), keeps the reply channels under the [`ReplyId`]s it gets from [`RegistryClient::reply_id`]
//! and maps each libp2p request id to the [`CallId`] of its [`Action`].

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use ipm_protocol::{
    limits::MAX_ONLINE_LISTED,
    name_record::{name_key, NameRecordError},
    name_ticket::NameTicket,
    validate_name, NameRecord, RegistryError, RegistryRequest, RegistryResponse,
};
use libp2p::PeerId;

use super::{backoff, names::MAX_TRACKED_NAMES, refusal::Refusal};

/// How long a registry's ticket holds (a day); its holder asks for a fresh one at half of
/// that, so the ticket in its announcements always holds for twelve hours more.
pub const TICKET_LIFE_MS: u64 = 24 * 60 * 60 * 1000;

/// Least time between two asks for a fresh ticket.
pub const TICKET_RETRY_MS: u64 = 10 * 60 * 1000;

/// Whether to ask for a fresh ticket at `now_ms`, holding one that expires at `expires_ms`
/// and having asked last at `asked_ms`.
pub fn ticket_renewal_due(expires_ms: u64, asked_ms: u64, now_ms: u64) -> bool {
    expires_ms.saturating_sub(now_ms) < TICKET_LIFE_MS / 2
        && now_ms.saturating_sub(asked_ms) >= TICKET_RETRY_MS
}

/// What a bootstrap's registry said about this node's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Login {
    /// The name is registered to this node: `new` for a first registration, false for a
    /// login with a name registered before.
    Registered {
        /// Whether the name was registered just now.
        new: bool,
    },
    /// Another key registered the name first.
    Taken {
        /// The holder.
        owner: PeerId,
    },
    /// The registry refused for another reason.
    Refused(String),
    /// The bootstrap did not answer (not connected, no registry, timed out).
    Unavailable(String),
}

/// How long before a registry is asked again about a name it did not confirm.
pub const LOOKUP_RECHECK: Duration = Duration::from_secs(60);

/// The first pause before logging in again at a bootstrap that did not answer.
pub const FIRST_RELOGIN_PAUSE: Duration = Duration::from_secs(1);

/// The longest pause between two login attempts at a bootstrap that does not answer.
pub const MAX_RELOGIN_PAUSE: Duration = Duration::from_secs(30);

/// One request to a registry, as the machine knows it; the driver maps it to the libp2p
/// request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(u64);

/// Someone waiting for an answer (a login outcome, a rename, a refresh); the driver keeps
/// the reply channel under this id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyId(u64);

/// What happened.
#[derive(Debug)]
pub enum Input {
    /// A bootstrap opened its first connection: log in there.
    Connected {
        /// The bootstrap.
        bootstrap: PeerId,
    },
    /// The last connection to a peer closed: forget what it listed.
    Gone {
        /// The peer.
        peer: PeerId,
    },
    /// Time passed: log in again where a login got no answer and its pause is over.
    Tick {
        /// Which of [`RegistryClient::due_relogins`] are connected now; the others are
        /// forgotten (connecting again logs in again).
        connected: Vec<PeerId>,
    },
    /// The user asks how the login at `bootstrap` went (waiting for it if under way).
    LoginAsked {
        /// The bootstrap.
        bootstrap: PeerId,
        /// Whether it is connected now.
        connected: bool,
        /// Who waits.
        reply: ReplyId,
    },
    /// The user asks every connected registry who is online.
    RefreshAsked {
        /// The connected registries.
        registries: Vec<PeerId>,
        /// Who waits.
        reply: ReplyId,
    },
    /// The user asks to be called `name` from now on.
    RenameAsked {
        /// The new name.
        name: String,
        /// The connected registries.
        registries: Vec<PeerId>,
        /// Who waits.
        reply: ReplyId,
    },
    /// The node saw `name` in use and wants to know who holds it.
    NameSeen {
        /// The name.
        name: String,
        /// Whether a registry confirmed its holder already.
        confirmed: bool,
        /// The connected registries.
        registries: Vec<PeerId>,
    },
    /// A registry answered a call.
    Answered {
        /// The call.
        call: CallId,
        /// The answer.
        response: RegistryResponse,
    },
    /// A call got no answer.
    Failed {
        /// The call.
        call: CallId,
        /// Why, as the user reads it.
        reason: String,
    },
    /// The driver could not sign the record an [`Action::Register`] asked for.
    Unsigned {
        /// The call that was not sent.
        call: CallId,
        /// Why.
        reason: NameRecordError,
    },
    /// The own name is now `name` (an [`Action::TakeName`] succeeded).
    Renamed {
        /// The new own name.
        name: String,
    },
}

/// What the driver must do.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Sign a record of `name` with the node's key and send it to `bootstrap` as a
    /// `Register` request (a login, or a rename); an unsigned record is reported as
    /// [`Input::Unsigned`].
    Register {
        /// The call to report the answer under.
        call: CallId,
        /// Where.
        bootstrap: PeerId,
        /// The name to register.
        name: String,
    },
    /// Send `request` to `bootstrap`'s registry.
    Send {
        /// The call to report the answer under.
        call: CallId,
        /// Where.
        bootstrap: PeerId,
        /// What.
        request: RegistryRequest,
    },
    /// The own name cannot go into a record, so no login was sent.
    CannotSign {
        /// Why.
        reason: String,
    },
    /// A registry's ticket for the own name: put it in presence announcements.
    Ticket(NameTicket),
    /// `bootstrap` registered the own `name` (or logged it in): it vouches for the own
    /// record; tell the user.
    Registered {
        /// The bootstrap.
        bootstrap: PeerId,
        /// The own name.
        name: String,
        /// Whether it was registered for the first time.
        new: bool,
    },
    /// `bootstrap` refused the own `name`: tell the user.
    NameRefused {
        /// The bootstrap.
        bootstrap: PeerId,
        /// The own name.
        name: String,
        /// What the registry said.
        error: RegistryError,
    },
    /// Answer a login waiter.
    AnswerLogin {
        /// The waiter.
        reply: ReplyId,
        /// The outcome.
        login: Login,
    },
    /// Drop a login waiter unanswered: its login was not sent or was overtaken by a rename.
    AbandonLogin {
        /// The waiter.
        reply: ReplyId,
    },
    /// Answer a rename without taking a name: `refusal` is why it was refused, none when
    /// the name already is the own name.
    AnswerRename {
        /// The waiter.
        reply: ReplyId,
        /// Why the rename was refused.
        refusal: Option<Refusal>,
    },
    /// Make `name` the own name (remembered, announced, claimed in the DHT), report
    /// [`Input::Renamed`] when that worked, and answer the waiter with the outcome.
    TakeName {
        /// The waiter.
        reply: ReplyId,
        /// The new name.
        name: String,
    },
    /// Every registry asked about who is online answered (or failed): tell the waiter.
    AnswerRefresh {
        /// The waiter.
        reply: ReplyId,
    },
    /// A registry vouched for this verified record: take it as proof of who holds its name.
    Confirmed(NameRecord),
    /// Look `name` up in the DHT: no registry is connected, or the one asked did not know.
    LookUpInDht {
        /// The name.
        name: String,
    },
}

/// What a call was for.
#[derive(Debug)]
enum Call {
    Login { bootstrap: PeerId, name: String },
    Rename { reply: ReplyId, bootstrap: PeerId },
    Lookup { name: String },
    Online { reply: ReplyId, bootstrap: PeerId },
}

/// Where the login at one bootstrap stands.
#[derive(Debug)]
enum LoginState {
    Pending(Vec<ReplyId>),
    Done(Login),
}

/// A rename waiting for the registries' answers.
#[derive(Debug)]
struct PendingRename {
    name: String,
    waiting: usize,
    accepted: Vec<PeerId>,
    refusal: Option<Refusal>,
}

/// A login that got no answer: when to try again (none while the retry is on the wire),
/// and how many tries failed so far.
#[derive(Debug)]
struct Relogin {
    at: Option<Instant>,
    failed: u32,
}

/// What a user's node keeps about the registries it talks to.
#[derive(Debug)]
pub struct RegistryClient {
    /// Whether this is a user's node (a bootstrap has no name to log in with).
    user: bool,
    /// The own name.
    name: String,
    calls: HashMap<CallId, Call>,
    logins: HashMap<PeerId, LoginState>,
    /// Users each connected bootstrap reported online, by bootstrap.
    listed: HashMap<PeerId, Vec<NameRecord>>,
    /// When each name was last asked about (by DHT key).
    asked: HashMap<Vec<u8>, Instant>,
    renames: HashMap<ReplyId, PendingRename>,
    /// Refreshes of the online lists, by how many answers each still waits for.
    refreshes: HashMap<ReplyId, usize>,
    relogins: HashMap<PeerId, Relogin>,
    next_id: u64,
}

impl RegistryClient {
    /// The registry side of a node called `name`; `user` is false for a bootstrap, which
    /// logs in nowhere and asks no registry.
    pub fn new(name: String, user: bool) -> Self {
        Self {
            user,
            name,
            calls: HashMap::new(),
            logins: HashMap::new(),
            listed: HashMap::new(),
            asked: HashMap::new(),
            renames: HashMap::new(),
            refreshes: HashMap::new(),
            relogins: HashMap::new(),
            next_id: 0,
        }
    }

    /// A fresh id to keep a waiter's reply channel under before passing it in an input.
    pub fn reply_id(&mut self) -> ReplyId {
        ReplyId(self.next())
    }

    /// Users the bootstraps reported online, one record per peer.
    pub fn listed_users(&self) -> BTreeMap<PeerId, &NameRecord> {
        self.listed
            .values()
            .flatten()
            .map(|record| (record.peer, record))
            .collect()
    }

    /// Whether a registry was asked about `name` and has not answered yet.
    pub fn is_asking(&self, name: &str) -> bool {
        let key = name_key(name);
        self.calls
            .values()
            .any(|call| matches!(call, Call::Lookup { name } if name_key(name) == key))
    }

    /// The bootstraps where a login is to be tried again at `now`.
    pub fn due_relogins(&self, now: Instant) -> Vec<PeerId> {
        let mut due: Vec<PeerId> = self
            .relogins
            .iter()
            .filter(|(_, r)| r.at.is_some_and(|at| at <= now))
            .map(|(peer, _)| *peer)
            .collect();
        due.sort();
        due
    }

    /// One step: `now` is the current time.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        match input {
            Input::Connected { bootstrap } => self.log_in(bootstrap),
            Input::Gone { peer } => {
                self.listed.remove(&peer);
                Vec::new()
            }
            Input::Tick { connected } => self.retry_logins(now, &connected),
            Input::LoginAsked {
                bootstrap,
                connected,
                reply,
            } => self.login_asked(bootstrap, connected, reply),
            Input::RefreshAsked { registries, reply } => self.refresh(&registries, reply),
            Input::RenameAsked {
                name,
                registries,
                reply,
            } => self.rename(name, &registries, reply),
            Input::NameSeen {
                name,
                confirmed,
                registries,
            } => self.name_seen(now, name, confirmed, &registries),
            Input::Answered { call, response } => match self.calls.remove(&call) {
                Some(call) => self.answered(now, call, response),
                None => Vec::new(),
            },
            Input::Failed { call, reason } => match self.calls.remove(&call) {
                Some(call) => self.failed(now, call, reason),
                None => Vec::new(),
            },
            Input::Unsigned { call, reason } => match self.calls.remove(&call) {
                Some(Call::Login { bootstrap, .. }) => {
                    self.login_settled(bootstrap, Login::Refused(reason.to_string()))
                }
                Some(Call::Rename { reply, .. }) => match self.renames.remove(&reply) {
                    Some(_) => vec![Action::AnswerRename {
                        reply,
                        refusal: Some(Refusal::Sign(reason)),
                    }],
                    None => Vec::new(),
                },
                Some(call) => self.failed(now, call, reason.to_string()),
                None => Vec::new(),
            },
            Input::Renamed { name } => {
                self.name = name;
                Vec::new()
            }
        }
    }

    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn call(&mut self, call: Call) -> CallId {
        let id = CallId(self.next());
        self.calls.insert(id, call);
        id
    }

    /// Logs in (or registers) the own name at `bootstrap`; whoever waits for an earlier
    /// login there keeps waiting, now for this one.
    fn log_in(&mut self, bootstrap: PeerId) -> Vec<Action> {
        if !self.user {
            return Vec::new();
        }
        if let Err(e) = validate_name(&self.name) {
            return vec![Action::CannotSign {
                reason: NameRecordError::BadName(e.to_string()).to_string(),
            }];
        }
        let name = self.name.clone();
        let call = self.call(Call::Login {
            bootstrap,
            name: name.clone(),
        });
        let waiters = match self.logins.remove(&bootstrap) {
            Some(LoginState::Pending(waiters)) => waiters,
            _ => Vec::new(),
        };
        self.logins.insert(bootstrap, LoginState::Pending(waiters));
        vec![Action::Register {
            call,
            bootstrap,
            name,
        }]
    }

    fn login_asked(&mut self, bootstrap: PeerId, connected: bool, reply: ReplyId) -> Vec<Action> {
        match self.logins.get_mut(&bootstrap) {
            Some(LoginState::Done(login)) => vec![Action::AnswerLogin {
                reply,
                login: login.clone(),
            }],
            Some(LoginState::Pending(waiters)) => {
                waiters.push(reply);
                Vec::new()
            }
            None if connected && self.user => {
                let mut actions = self.log_in(bootstrap);
                match self.logins.get_mut(&bootstrap) {
                    Some(LoginState::Pending(waiters)) => waiters.push(reply),
                    _ => actions.push(Action::AbandonLogin { reply }),
                }
                actions
            }
            None => vec![Action::AnswerLogin {
                reply,
                login: Login::Unavailable("not connected to that bootstrap".into()),
            }],
        }
    }

    /// A login got no answer: whoever waits hears so, and it is tried again after a pause
    /// while the bootstrap stays connected.
    fn login_failed(&mut self, now: Instant, bootstrap: PeerId, reason: String) -> Vec<Action> {
        let failed = self.relogins.get(&bootstrap).map_or(0, |r| r.failed);
        let pause = backoff::pause(FIRST_RELOGIN_PAUSE, failed, MAX_RELOGIN_PAUSE);
        self.relogins.insert(
            bootstrap,
            Relogin {
                at: Some(now + pause),
                failed: failed + 1,
            },
        );
        self.login_settled(bootstrap, Login::Unavailable(reason))
    }

    fn retry_logins(&mut self, now: Instant, connected: &[PeerId]) -> Vec<Action> {
        let mut actions = Vec::new();
        for bootstrap in self.due_relogins(now) {
            if connected.contains(&bootstrap) {
                if let Some(relogin) = self.relogins.get_mut(&bootstrap) {
                    relogin.at = None;
                }
                actions.extend(self.log_in(bootstrap));
            } else {
                // Connecting again logs in again.
                self.relogins.remove(&bootstrap);
            }
        }
        actions
    }

    /// The login at `bootstrap` ended with `login`: whoever waits hears it.
    fn login_settled(&mut self, bootstrap: PeerId, login: Login) -> Vec<Action> {
        if !matches!(login, Login::Unavailable(_)) {
            self.relogins.remove(&bootstrap);
        }
        let mut actions = Vec::new();
        if let Some(LoginState::Pending(waiters)) = self.logins.remove(&bootstrap) {
            actions.extend(waiters.into_iter().map(|reply| Action::AnswerLogin {
                reply,
                login: login.clone(),
            }));
        }
        self.logins.insert(bootstrap, LoginState::Done(login));
        actions
    }

    fn refresh(&mut self, registries: &[PeerId], reply: ReplyId) -> Vec<Action> {
        if registries.is_empty() || !self.user {
            return vec![Action::AnswerRefresh { reply }];
        }
        let max = u16::try_from(MAX_ONLINE_LISTED).unwrap_or(u16::MAX);
        let actions = registries
            .iter()
            .map(|bootstrap| Action::Send {
                call: self.call(Call::Online {
                    reply,
                    bootstrap: *bootstrap,
                }),
                bootstrap: *bootstrap,
                request: RegistryRequest::Online { max },
            })
            .collect();
        self.refreshes.insert(reply, registries.len());
        actions
    }

    fn refresh_answered(&mut self, reply: ReplyId) -> Vec<Action> {
        let Some(waiting) = self.refreshes.get_mut(&reply) else {
            return Vec::new();
        };
        *waiting = waiting.saturating_sub(1);
        if *waiting > 0 {
            return Vec::new();
        }
        self.refreshes.remove(&reply);
        vec![Action::AnswerRefresh { reply }]
    }

    fn rename(&mut self, name: String, registries: &[PeerId], reply: ReplyId) -> Vec<Action> {
        let refuse = |reason: Refusal| {
            vec![Action::AnswerRename {
                reply,
                refusal: Some(reason),
            }]
        };
        if let Err(e) = validate_name(&name) {
            return refuse(Refusal::BadName { name, source: e });
        }
        if !self.user {
            return refuse(Refusal::BootstrapName);
        }
        if name == self.name {
            return vec![Action::AnswerRename {
                reply,
                refusal: None,
            }];
        }
        if registries.is_empty() {
            return vec![Action::TakeName { reply, name }];
        }
        let actions = registries
            .iter()
            .map(|bootstrap| Action::Register {
                call: self.call(Call::Rename {
                    reply,
                    bootstrap: *bootstrap,
                }),
                bootstrap: *bootstrap,
                name: name.clone(),
            })
            .collect();
        self.renames.insert(
            reply,
            PendingRename {
                name,
                waiting: registries.len(),
                accepted: Vec::new(),
                refusal: None,
            },
        );
        actions
    }

    /// One registry answered a rename (an unreachable one counts as accepting); once all
    /// did, the rename is taken or undone.
    fn rename_answered(
        &mut self,
        reply: ReplyId,
        bootstrap: PeerId,
        refusal: Option<Refusal>,
    ) -> Vec<Action> {
        let Some(pending) = self.renames.get_mut(&reply) else {
            return Vec::new();
        };
        pending.waiting = pending.waiting.saturating_sub(1);
        match refusal {
            Some(reason) => {
                pending.refusal.get_or_insert(reason);
            }
            None => pending.accepted.push(bootstrap),
        }
        if pending.waiting > 0 {
            return Vec::new();
        }
        let Some(done) = self.renames.remove(&reply) else {
            return Vec::new();
        };
        let mut actions = Vec::new();
        match done.refusal {
            Some(reason) => {
                // Give the registries that accepted the new name the old one back.
                for bootstrap in done.accepted {
                    actions.extend(self.log_in(bootstrap));
                }
                actions.push(Action::AnswerRename {
                    reply,
                    refusal: Some(reason),
                });
            }
            None => {
                for bootstrap in done.accepted {
                    let before = self
                        .logins
                        .insert(bootstrap, LoginState::Done(Login::Registered { new: true }));
                    if let Some(LoginState::Pending(waiters)) = before {
                        actions.extend(
                            waiters
                                .into_iter()
                                .map(|reply| Action::AbandonLogin { reply }),
                        );
                    }
                }
                actions.push(Action::TakeName {
                    reply,
                    name: done.name,
                });
            }
        }
        actions
    }

    fn name_seen(
        &mut self,
        now: Instant,
        name: String,
        confirmed: bool,
        registries: &[PeerId],
    ) -> Vec<Action> {
        if !self.user || confirmed {
            return Vec::new();
        }
        let Some(bootstrap) = registries.first().copied() else {
            return vec![Action::LookUpInDht { name }];
        };
        let key = name_key(&name);
        if self
            .asked
            .get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < LOOKUP_RECHECK)
        {
            return Vec::new();
        }
        if self.asked.len() >= MAX_TRACKED_NAMES {
            self.asked.clear();
        }
        self.asked.insert(key, now);
        let request = RegistryRequest::Lookup { name: name.clone() };
        let call = self.call(Call::Lookup { name });
        vec![Action::Send {
            call,
            bootstrap,
            request,
        }]
    }

    fn answered(&mut self, now: Instant, call: Call, response: RegistryResponse) -> Vec<Action> {
        match (call, response) {
            (Call::Login { bootstrap, name }, RegistryResponse::Registered { new, ticket }) => {
                let mut actions = vec![Action::Registered {
                    bootstrap,
                    name,
                    new,
                }];
                actions.extend(ticket.map(Action::Ticket));
                actions.extend(self.login_settled(bootstrap, Login::Registered { new }));
                actions
            }
            (Call::Login { bootstrap, name }, RegistryResponse::Refused(error)) => {
                let login = match &error {
                    RegistryError::Taken { owner, .. } => match PeerId::from_bytes(owner) {
                        Ok(owner) => Login::Taken { owner },
                        Err(_) => Login::Refused(error.to_string()),
                    },
                    other => Login::Refused(other.to_string()),
                };
                let mut actions = vec![Action::NameRefused {
                    bootstrap,
                    name,
                    error,
                }];
                actions.extend(self.login_settled(bootstrap, login));
                actions
            }
            (Call::Rename { reply, bootstrap }, RegistryResponse::Registered { ticket, .. }) => {
                let mut actions: Vec<Action> = ticket.map(Action::Ticket).into_iter().collect();
                actions.extend(self.rename_answered(reply, bootstrap, None));
                actions
            }
            (Call::Rename { reply, bootstrap }, RegistryResponse::Refused(error)) => self
                .rename_answered(
                    reply,
                    bootstrap,
                    Some(Refusal::Registry {
                        bootstrap,
                        source: Box::new(error),
                    }),
                ),
            (Call::Lookup { name }, RegistryResponse::Owner(Some(signed))) => {
                match signed.verify() {
                    Ok(record) => vec![Action::Confirmed(record)],
                    Err(_) => vec![Action::LookUpInDht { name }],
                }
            }
            // A name the registry does not hold may still be claimed in the DHT.
            (Call::Lookup { name }, RegistryResponse::Owner(None)) => {
                vec![Action::LookUpInDht { name }]
            }
            (Call::Online { reply, bootstrap }, RegistryResponse::Online { users, .. }) => {
                let records: Vec<NameRecord> =
                    users.iter().filter_map(|u| u.verify().ok()).collect();
                let mut actions: Vec<Action> =
                    records.iter().cloned().map(Action::Confirmed).collect();
                // The bootstrap's latest listing replaces the one before.
                self.listed.insert(bootstrap, records);
                actions.extend(self.refresh_answered(reply));
                actions
            }
            (call, _) => self.failed(now, call, "unexpected answer".into()),
        }
    }

    fn failed(&mut self, now: Instant, call: Call, reason: String) -> Vec<Action> {
        match call {
            Call::Login { bootstrap, .. } => self.login_failed(now, bootstrap, reason),
            // An unreachable registry does not stop a rename.
            Call::Rename { reply, bootstrap } => self.rename_answered(reply, bootstrap, None),
            Call::Online { reply, .. } => self.refresh_answered(reply),
            Call::Lookup { name } => vec![Action::LookUpInDht { name }],
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_ticket_is_renewed_at_half_its_life_and_not_asked_for_again_at_once() {
        let issued = 1_800_000_000_000;
        let expires = issued + TICKET_LIFE_MS;
        assert!(!ticket_renewal_due(expires, 0, issued));
        assert!(!ticket_renewal_due(
            expires,
            0,
            issued + TICKET_LIFE_MS / 2 - 1
        ));
        let half = issued + TICKET_LIFE_MS / 2 + 1;
        assert!(ticket_renewal_due(expires, 0, half));
        assert!(!ticket_renewal_due(
            expires,
            half,
            half + TICKET_RETRY_MS - 1
        ));
        assert!(ticket_renewal_due(expires, half, half + TICKET_RETRY_MS));
        // An expired ticket is asked for too.
        assert!(ticket_renewal_due(expires, 0, expires + 1));
    }
    use super::*;
    use ipm_protocol::SignedName;
    use libp2p::identity::Keypair;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn peer() -> PeerId {
        PeerId::random()
    }

    fn user(name: &str) -> RegistryClient {
        RegistryClient::new(name.into(), true)
    }

    fn signed(name: &str) -> (PeerId, SignedName) {
        let key = Keypair::generate_ed25519();
        let record = NameRecord::sign(&key, name, 1).expect("a valid name");
        (record.peer, SignedName::new(&record))
    }

    /// The call of the only request among `actions`, and where it goes.
    fn sent(actions: &[Action]) -> (CallId, PeerId) {
        let calls = calls(actions);
        assert_eq!(calls.len(), 1, "one request expected in {actions:?}");
        calls[0]
    }

    fn calls(actions: &[Action]) -> Vec<(CallId, PeerId)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Register {
                    call, bootstrap, ..
                }
                | Action::Send {
                    call, bootstrap, ..
                } => Some((*call, *bootstrap)),
                _ => None,
            })
            .collect()
    }

    fn failed(call: CallId) -> Input {
        Input::Failed {
            call,
            reason: "timed out".into(),
        }
    }

    fn answered(call: CallId, response: RegistryResponse) -> Input {
        Input::Answered { call, response }
    }

    #[test]
    fn a_connected_bootstrap_is_logged_in_with_the_own_name() {
        let mut m = user("alice");
        let b = peer();
        let actions = m.handle(Instant::now(), Input::Connected { bootstrap: b });
        let (call, _) = sent(&actions);
        assert_eq!(
            actions,
            vec![Action::Register {
                call,
                bootstrap: b,
                name: "alice".into()
            }]
        );
    }

    #[test]
    fn a_login_that_gets_no_answer_is_retried_with_doubling_pauses_while_connected() {
        let mut m = user("alice");
        let b = peer();
        let mut now = Instant::now();
        let (mut call, _) = sent(&m.handle(now, Input::Connected { bootstrap: b }));
        for pause in [1, 2, 4, 8, 16, 30, 30] {
            m.handle(now, failed(call));
            assert!(m
                .due_relogins(now + secs(pause) - Duration::from_millis(1))
                .is_empty());
            now += secs(pause);
            assert_eq!(m.due_relogins(now), vec![b]);
            let actions = m.handle(now, Input::Tick { connected: vec![b] });
            call = sent(&actions).0;
            // While the retry is on the wire, nothing more is due.
            assert!(m.due_relogins(now + secs(60)).is_empty());
        }
    }

    #[test]
    fn login_retries_stop_when_the_bootstrap_leaves() {
        let mut m = user("alice");
        let b = peer();
        let t0 = Instant::now();
        let (call, _) = sent(&m.handle(t0, Input::Connected { bootstrap: b }));
        m.handle(t0, failed(call));
        assert_eq!(m.due_relogins(t0 + secs(1)), vec![b]);
        assert!(m
            .handle(t0 + secs(1), Input::Tick { connected: vec![] })
            .is_empty());
        assert!(m.due_relogins(t0 + secs(100)).is_empty());
        // Connecting again logs in again, from the first pause.
        let (call, _) = sent(&m.handle(t0 + secs(5), Input::Connected { bootstrap: b }));
        m.handle(t0 + secs(5), failed(call));
        assert_eq!(m.due_relogins(t0 + secs(6)), vec![b]);
    }

    #[test]
    fn an_answered_login_is_not_retried_and_its_waiters_hear_the_outcome() {
        let mut m = user("alice");
        let b = peer();
        let t0 = Instant::now();
        let (call, _) = sent(&m.handle(t0, Input::Connected { bootstrap: b }));
        m.handle(t0, failed(call));
        let (call, _) = sent(&m.handle(t0 + secs(1), Input::Tick { connected: vec![b] }));
        let waiter = m.reply_id();
        let asked = Input::LoginAsked {
            bootstrap: b,
            connected: true,
            reply: waiter,
        };
        assert!(m.handle(t0 + secs(1), asked).is_empty());
        let actions = m.handle(
            t0 + secs(2),
            answered(
                call,
                RegistryResponse::Registered {
                    new: false,
                    ticket: None,
                },
            ),
        );
        assert_eq!(
            actions,
            vec![
                Action::Registered {
                    bootstrap: b,
                    name: "alice".into(),
                    new: false
                },
                Action::AnswerLogin {
                    reply: waiter,
                    login: Login::Registered { new: false }
                }
            ]
        );
        assert!(m.due_relogins(t0 + secs(100)).is_empty());
        // Asked later, the outcome is known at once.
        let later = m.reply_id();
        let asked = Input::LoginAsked {
            bootstrap: b,
            connected: true,
            reply: later,
        };
        assert_eq!(
            m.handle(t0 + secs(3), asked),
            vec![Action::AnswerLogin {
                reply: later,
                login: Login::Registered { new: false }
            }]
        );
    }

    #[test]
    fn a_failed_login_tells_its_waiters_the_bootstrap_did_not_answer() {
        let mut m = user("alice");
        let b = peer();
        let t0 = Instant::now();
        let (call, _) = sent(&m.handle(t0, Input::Connected { bootstrap: b }));
        let waiter = m.reply_id();
        m.handle(
            t0,
            Input::LoginAsked {
                bootstrap: b,
                connected: true,
                reply: waiter,
            },
        );
        assert_eq!(
            m.handle(t0, failed(call)),
            vec![Action::AnswerLogin {
                reply: waiter,
                login: Login::Unavailable("timed out".into())
            }]
        );
    }

    #[test]
    fn a_taken_name_names_its_owner_and_the_user_is_told() {
        let mut m = user("alice");
        let (b, owner) = (peer(), peer());
        let t0 = Instant::now();
        let waiter = m.reply_id();
        let actions = m.handle(
            t0,
            Input::LoginAsked {
                bootstrap: b,
                connected: true,
                reply: waiter,
            },
        );
        let (call, _) = sent(&actions);
        let error = RegistryError::Taken {
            name: "alice".into(),
            owner: owner.to_bytes(),
        };
        assert_eq!(
            m.handle(t0, answered(call, RegistryResponse::Refused(error.clone()))),
            vec![
                Action::NameRefused {
                    bootstrap: b,
                    name: "alice".into(),
                    error
                },
                Action::AnswerLogin {
                    reply: waiter,
                    login: Login::Taken { owner }
                }
            ]
        );
        let other = RegistryError::Full;
        let (call, _) = sent(&m.handle(t0, Input::Connected { bootstrap: b }));
        let waiter = m.reply_id();
        let asked = Input::LoginAsked {
            bootstrap: b,
            connected: true,
            reply: waiter,
        };
        m.handle(t0, asked);
        let actions = m.handle(t0, answered(call, RegistryResponse::Refused(other)));
        assert!(actions.contains(&Action::AnswerLogin {
            reply: waiter,
            login: Login::Refused("the registry is full".into())
        }));
        // A refusal is an answer: no retry.
        assert!(m.due_relogins(t0 + secs(100)).is_empty());
    }

    #[test]
    fn a_login_asked_at_an_unconnected_bootstrap_is_unavailable() {
        let mut m = user("alice");
        let reply = m.reply_id();
        let asked = Input::LoginAsked {
            bootstrap: peer(),
            connected: false,
            reply,
        };
        assert_eq!(
            m.handle(Instant::now(), asked),
            vec![Action::AnswerLogin {
                reply,
                login: Login::Unavailable("not connected to that bootstrap".into())
            }]
        );
    }

    #[test]
    fn an_unusable_own_name_sends_no_login() {
        let mut m = user("");
        let t0 = Instant::now();
        let actions = m.handle(t0, Input::Connected { bootstrap: peer() });
        assert!(matches!(actions.as_slice(), [Action::CannotSign { .. }]));
        let reply = m.reply_id();
        let asked = Input::LoginAsked {
            bootstrap: peer(),
            connected: true,
            reply,
        };
        let actions = m.handle(t0, asked);
        assert_eq!(actions.last(), Some(&Action::AbandonLogin { reply }));
    }

    #[test]
    fn a_bootstrap_logs_in_nowhere_and_has_no_name_to_change() {
        let mut m = RegistryClient::new("boot".into(), false);
        let t0 = Instant::now();
        let b = peer();
        assert!(m.handle(t0, Input::Connected { bootstrap: b }).is_empty());
        let reply = m.reply_id();
        let rename = Input::RenameAsked {
            name: "bob".into(),
            registries: vec![b],
            reply,
        };
        assert_eq!(
            m.handle(t0, rename),
            vec![Action::AnswerRename {
                reply,
                refusal: Some(Refusal::BootstrapName)
            }]
        );
        let seen = Input::NameSeen {
            name: "bob".into(),
            confirmed: false,
            registries: vec![b],
        };
        assert!(m.handle(t0, seen).is_empty());
    }

    fn rename(m: &mut RegistryClient, name: &str, registries: &[PeerId]) -> (ReplyId, Vec<Action>) {
        let reply = m.reply_id();
        let input = Input::RenameAsked {
            name: name.into(),
            registries: registries.to_vec(),
            reply,
        };
        (reply, m.handle(Instant::now(), input))
    }

    #[test]
    fn a_rename_refused_by_one_registry_is_refused_and_the_others_get_the_old_name_back() {
        let mut m = user("alice");
        let (b1, b2) = (peer(), peer());
        let t0 = Instant::now();
        let (reply, actions) = rename(&mut m, "bob", &[b1, b2]);
        let asked = calls(&actions);
        assert_eq!(asked.len(), 2);
        assert!(actions
            .iter()
            .all(|a| matches!(a, Action::Register { name, .. } if name == "bob")));
        let (c1, c2) = (asked[0].0, asked[1].0);
        let accepted = m.handle(
            t0,
            answered(
                c1,
                RegistryResponse::Registered {
                    new: true,
                    ticket: None,
                },
            ),
        );
        assert!(accepted.is_empty(), "waits for every registry");
        let error = RegistryError::Taken {
            name: "bob".into(),
            owner: peer().to_bytes(),
        };
        let actions = m.handle(t0, answered(c2, RegistryResponse::Refused(error.clone())));
        let relogin = sent(&actions);
        assert_eq!(relogin.1, asked[0].1);
        assert_eq!(
            actions,
            vec![
                Action::Register {
                    call: relogin.0,
                    bootstrap: asked[0].1,
                    name: "alice".into()
                },
                Action::AnswerRename {
                    reply,
                    refusal: Some(Refusal::Registry {
                        bootstrap: asked[1].1,
                        source: Box::new(error)
                    })
                }
            ]
        );
    }

    #[test]
    fn a_rename_no_registry_refused_is_taken_even_when_one_did_not_answer() {
        let mut m = user("alice");
        let (b1, b2) = (peer(), peer());
        let t0 = Instant::now();
        let (reply, actions) = rename(&mut m, "bob", &[b1, b2]);
        let asked = calls(&actions);
        assert!(m.handle(t0, failed(asked[0].0)).is_empty());
        let actions = m.handle(
            t0,
            answered(
                asked[1].0,
                RegistryResponse::Registered {
                    new: true,
                    ticket: None,
                },
            ),
        );
        assert_eq!(
            actions,
            vec![Action::TakeName {
                reply,
                name: "bob".into()
            }]
        );
        // The registry that accepted holds the new name as a fresh registration.
        let waiter = m.reply_id();
        let asked_login = Input::LoginAsked {
            bootstrap: asked[1].1,
            connected: true,
            reply: waiter,
        };
        assert_eq!(
            m.handle(t0, asked_login),
            vec![Action::AnswerLogin {
                reply: waiter,
                login: Login::Registered { new: true }
            }]
        );
        // Once taken, the new name is the one logged in with.
        m.handle(t0, Input::Renamed { name: "bob".into() });
        assert!(matches!(
            &m.handle(t0, Input::Connected { bootstrap: peer() })[..],
            [Action::Register { name, .. }] if name == "bob"
        ));
    }

    #[test]
    fn a_rename_without_registries_or_to_the_same_name_needs_no_answer() {
        let mut m = user("alice");
        let (reply, actions) = rename(&mut m, "bob", &[]);
        assert_eq!(
            actions,
            vec![Action::TakeName {
                reply,
                name: "bob".into()
            }]
        );
        let (reply, actions) = rename(&mut m, "alice", &[peer()]);
        assert_eq!(
            actions,
            vec![Action::AnswerRename {
                reply,
                refusal: None
            }]
        );
        let (reply, actions) = rename(&mut m, "", &[peer()]);
        assert!(matches!(
            &actions[..],
            [Action::AnswerRename { reply: r, refusal: Some(why) }]
                if *r == reply && matches!(why, Refusal::BadName { name, .. } if name.is_empty())
        ));
    }

    #[test]
    fn a_rename_whose_record_cannot_be_signed_is_refused() {
        let mut m = user("alice");
        let (reply, actions) = rename(&mut m, "bob", &[peer(), peer()]);
        let asked = calls(&actions);
        let t0 = Instant::now();
        let unsigned = |call| Input::Unsigned {
            call,
            reason: NameRecordError::Malformed("no key".into()),
        };
        assert_eq!(
            m.handle(t0, unsigned(asked[0].0)),
            vec![Action::AnswerRename {
                reply,
                refusal: Some(Refusal::Sign(NameRecordError::Malformed("no key".into())))
            }]
        );
        assert!(m.handle(t0, unsigned(asked[1].0)).is_empty());
    }

    #[test]
    fn a_refresh_answers_once_all_registries_answered_or_failed() {
        let mut m = user("alice");
        let (b1, b2, b3) = (peer(), peer(), peer());
        let t0 = Instant::now();
        let reply = m.reply_id();
        let input = Input::RefreshAsked {
            registries: vec![b1, b2, b3],
            reply,
        };
        let actions = m.handle(t0, input);
        assert!(actions.iter().all(|a| matches!(
            a,
            Action::Send {
                request: RegistryRequest::Online { .. },
                ..
            }
        )));
        let asked = calls(&actions);
        assert_eq!(asked.len(), 3);
        let (carol, listed) = signed("carol");
        let online = RegistryResponse::Online {
            users: vec![listed],
            more: false,
        };
        let actions = m.handle(t0, answered(asked[0].0, online));
        assert!(matches!(&actions[..], [Action::Confirmed(r)] if r.peer == carol));
        assert!(m.listed_users().contains_key(&carol));
        assert!(m.handle(t0, failed(asked[1].0)).is_empty());
        assert_eq!(
            m.handle(
                t0,
                answered(
                    asked[2].0,
                    RegistryResponse::Registered {
                        new: true,
                        ticket: None,
                    }
                )
            ),
            vec![Action::AnswerRefresh { reply }]
        );
        // What a bootstrap listed is forgotten when it goes away.
        m.handle(t0, Input::Gone { peer: asked[0].1 });
        assert!(m.listed_users().is_empty());
    }

    #[test]
    fn a_refresh_without_registries_answers_at_once() {
        let mut m = user("alice");
        let reply = m.reply_id();
        let input = Input::RefreshAsked {
            registries: vec![],
            reply,
        };
        assert_eq!(
            m.handle(Instant::now(), input),
            vec![Action::AnswerRefresh { reply }]
        );
    }

    fn seen(name: &str, registries: &[PeerId]) -> Input {
        Input::NameSeen {
            name: name.into(),
            confirmed: false,
            registries: registries.to_vec(),
        }
    }

    #[test]
    fn a_name_asked_within_a_minute_is_not_asked_again() {
        let mut m = user("alice");
        let (b1, b2) = (peer(), peer());
        let t0 = Instant::now();
        let actions = m.handle(t0, seen("Bob", &[b1, b2]));
        assert_eq!(
            actions,
            vec![Action::Send {
                call: sent(&actions).0,
                bootstrap: b1,
                request: RegistryRequest::Lookup { name: "Bob".into() }
            }]
        );
        assert!(m.is_asking("bob"));
        assert!(m.handle(t0 + secs(59), seen("bob", &[b1])).is_empty());
        assert_eq!(calls(&m.handle(t0 + secs(60), seen("bob", &[b1]))).len(), 1);
    }

    #[test]
    fn a_confirmed_name_is_not_asked_and_without_registries_the_dht_is() {
        let mut m = user("alice");
        let t0 = Instant::now();
        let confirmed = Input::NameSeen {
            name: "bob".into(),
            confirmed: true,
            registries: vec![peer()],
        };
        assert!(m.handle(t0, confirmed).is_empty());
        assert_eq!(
            m.handle(t0, seen("bob", &[])),
            vec![Action::LookUpInDht { name: "bob".into() }]
        );
    }

    #[test]
    fn an_owner_answer_confirms_its_record_and_no_owner_means_the_dht() {
        let mut m = user("alice");
        let b = peer();
        let t0 = Instant::now();
        let (call, _) = sent(&m.handle(t0, seen("bob", &[b])));
        let (bob, record) = signed("bob");
        let actions = m.handle(t0, answered(call, RegistryResponse::Owner(Some(record))));
        assert!(matches!(&actions[..], [Action::Confirmed(r)] if r.peer == bob && r.name == "bob"));
        assert!(!m.is_asking("bob"));
        let (call, _) = sent(&m.handle(t0, seen("dave", &[b])));
        assert_eq!(
            m.handle(t0, answered(call, RegistryResponse::Owner(None))),
            vec![Action::LookUpInDht {
                name: "dave".into()
            }]
        );
        let (call, _) = sent(&m.handle(t0, seen("erin", &[b])));
        assert_eq!(
            m.handle(t0, failed(call)),
            vec![Action::LookUpInDht {
                name: "erin".into()
            }]
        );
    }

    #[test]
    fn a_forged_owner_record_is_not_taken() {
        let mut m = user("alice");
        let t0 = Instant::now();
        let (call, _) = sent(&m.handle(t0, seen("bob", &[peer()])));
        let (_, mut record) = signed("bob");
        record.name = "mallory".into();
        assert_eq!(
            m.handle(t0, answered(call, RegistryResponse::Owner(Some(record)))),
            vec![Action::LookUpInDht { name: "bob".into() }]
        );
    }

    #[test]
    fn tracked_lookups_are_bounded() {
        let mut m = user("alice");
        let b = peer();
        let t0 = Instant::now();
        for i in 0..=MAX_TRACKED_NAMES {
            m.handle(t0, seen(&format!("n{i}"), &[b]));
        }
        assert!(m.asked.len() <= MAX_TRACKED_NAMES);
        // Forgetting makes a name asked again.
        assert_eq!(calls(&m.handle(t0, seen("n0", &[b]))).len(), 1);
    }
}
