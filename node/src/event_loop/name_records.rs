//! Name records in the event loop: claiming the own name in the DHT, looking up the names
//! others use, and admitting the records other peers ask this node to store.

use std::time::Instant;

use libp2p::{
    kad::{self, store::RecordStore, GetRecordOk, PeerRecord, QueryId, Quorum, RecordKey},
    PeerId,
};
use tracing::{debug, info};

use ipm_protocol::{
    name_record::{admit, name_key, NAME_KEY_PREFIX},
    now_ms, NameRecord,
};

use super::EventLoop;
use crate::{
    config::Role,
    event::Event,
    logic::directory::short_id,
    logic::names::{ClaimStep, PutOutcome, MAX_RUNNING_LOOKUPS, TAKEN_RECHECK},
};

/// A running lookup of one name.
pub(super) struct NameQuery {
    name: String,
    records: Vec<NameRecord>,
    /// Whether it is the check before claiming the own name.
    own: bool,
}

impl EventLoop {
    /// Records the name `peer` used and finds out who holds it: from the registry of a
    /// connected bootstrap, else (or when the registry does not know it) from the DHT.
    /// Asking one registry instead of the DHT keeps a crowd of newcomers from flooding
    /// every node with record lookups.
    pub(super) fn observe_name(&mut self, peer: PeerId, name: &str) {
        self.directory.observe_name(peer, name);
        if !self.ask_registry(name) {
            self.look_up_name_in_dht(name);
        }
    }

    /// Looks `name` up in the DHT when due; users waiting for the name to settle are
    /// reported at once when no lookup runs.
    pub(super) fn look_up_name_in_dht(&mut self, name: &str) {
        if self.config.role == Role::Node && self.directory.names.needs_lookup(name, Instant::now())
        {
            self.start_lookup(name, false);
        }
        if !self.directory.names.is_running(name) {
            self.name_settled(name);
        }
    }

    fn dht_has_peers(&mut self) -> bool {
        self.swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .any(|bucket| bucket.num_entries() > 0)
    }

    fn start_lookup(&mut self, name: &str, own: bool) -> bool {
        if self.people.queries.len() >= MAX_RUNNING_LOOKUPS || !self.dht_has_peers() {
            return false;
        }
        let key = RecordKey::new(&name_key(name));
        let id = self.swarm.behaviour_mut().kad.get_record(key);
        self.directory.names.started(name, Instant::now());
        self.people.queries.insert(
            id,
            NameQuery {
                name: name.to_owned(),
                records: Vec::new(),
                own,
            },
        );
        true
    }

    /// Starts claiming the own name when it is due and the DHT has peers. With the
    /// registry's ticket for it the name is this node's: the record is stored without
    /// looking for another claimant first.
    pub(super) fn maybe_claim_name(&mut self) {
        let now = Instant::now();
        if self.config.role != Role::Node || !self.people.claim.due(now) {
            return;
        }
        if self.holds_own_ticket() {
            self.people.claim.start_put();
            self.put_own_record(now);
            return;
        }
        let name = self.config.name.clone();
        if self.start_lookup(&name, true) {
            self.people.claim.start_check();
        }
    }

    pub(super) fn on_get_record(
        &mut self,
        id: QueryId,
        result: Result<GetRecordOk, kad::GetRecordError>,
        last: bool,
    ) {
        let Some(query) = self.people.queries.get_mut(&id) else {
            return;
        };
        if let Ok(GetRecordOk::FoundRecord(PeerRecord { record, peer })) = result {
            match NameRecord::decode(record.key.as_ref(), &record.value) {
                Ok(found) if found.key() == name_key(&query.name) => query.records.push(found),
                Ok(_) => debug!(?peer, "a lookup returned a record of another name"),
                Err(e) => debug!(?peer, "ignoring a bad name record: {e}"),
            }
        }
        if last {
            if let Some(query) = self.people.queries.remove(&id) {
                let now = Instant::now();
                let found = self
                    .directory
                    .names
                    .settle(&query.name, &query.records, now);
                self.name_settled(&query.name);
                if query.own {
                    self.own_name_checked(&found, now);
                }
            }
        }
    }

    fn own_name_checked(&mut self, found: &crate::logic::names::Registration, now: Instant) {
        let me = self.local_peer_id();
        match self.people.claim.checked(found, me, now, TAKEN_RECHECK) {
            ClaimStep::Put => self.put_own_record(now),
            ClaimStep::GiveWay(owner) => {
                self.announce(now);
                self.tell_name_taken(owner);
            }
        }
    }

    /// Tells the user, once per claim, that `owner` holds the own name.
    pub(super) fn tell_name_taken(&mut self, owner: PeerId) {
        if self.people.told_taken {
            return;
        }
        self.people.told_taken = true;
        let name = &self.config.name;
        let me = self.local_peer_id();
        self.emit(Event::Error {
            message: format!(
                "the name {name} is taken: it is registered to another peer ({owner}); others see you as {name}#{} (/name picks another)",
                short_id(&me)
            ),
        });
    }

    /// Stores the own name record in the DHT (the claim is `Putting`).
    fn put_own_record(&mut self, now: Instant) {
        self.people.told_taken = false;
        let record = NameRecord::sign(&self.people.key, &self.config.name, now_ms())
            .map(|r| kad::Record::new(RecordKey::new(&r.key()), r.encode()));
        let put = record.map_err(|e| e.to_string()).and_then(|record| {
            self.swarm
                .behaviour_mut()
                .kad
                .put_record(record, Quorum::One)
                .map_err(|e| e.to_string())
        });
        match put {
            Ok(id) => self.people.put_query = Some(id),
            Err(e) => {
                debug!("cannot store the own name record: {e}");
                let draw = rand::random::<f64>();
                self.people.claim.put_done(PutOutcome::Failed, now, draw);
            }
        }
    }

    pub(super) fn on_put_record(&mut self, id: QueryId, result: kad::PutRecordResult) {
        if self.people.put_query != Some(id) {
            return;
        }
        self.people.put_query = None;
        let outcome = match &result {
            Ok(_) => PutOutcome::Stored,
            Err(kad::PutRecordError::Timeout { .. }) => PutOutcome::TimedOut,
            Err(_) => PutOutcome::Failed,
        };
        if outcome == PutOutcome::Stored {
            info!(name = %self.config.name, "name registered in the DHT");
            self.remember_own_name();
        } else {
            debug!("storing the own name record failed: {result:?}");
        }
        let now = Instant::now();
        let draw = rand::random::<f64>();
        self.people.claim.put_done(outcome, now, draw);
        self.announce(now);
    }

    /// Stores a record another peer put here only when it is a valid name record and does
    /// not take a name already held by someone else (the first claim wins).
    pub(super) fn on_inbound_record(&mut self, source: PeerId, record: kad::Record) {
        let key = record.key.to_vec();
        let store = self.swarm.behaviour_mut().kad.store_mut();
        let verdict = if key.starts_with(NAME_KEY_PREFIX.as_bytes()) {
            NameRecord::decode(&key, &record.value)
                .and_then(|incoming| {
                    let held = store
                        .get(&record.key)
                        .and_then(|r| NameRecord::decode(&key, &r.value).ok());
                    admit(&incoming, held.as_ref(), now_ms())
                })
                .map_err(|e| e.to_string())
        } else {
            Err("not an ipm name record".to_owned())
        };
        match verdict {
            Ok(()) => {
                if let Err(e) = store.put(record) {
                    debug!(peer = %source, "cannot store a name record: {e}");
                }
            }
            Err(reason) => debug!(peer = %source, "refusing a DHT record: {reason}"),
        }
    }
}
