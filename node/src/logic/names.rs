//! Which names are registered to whom: what DHT lookups of signed name records found, when to
//! look again, and the state of this node's own claim.
//!
//! Plain data and functions; the caller passes the time and runs the lookups.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use ipm_protocol::{name_record::name_key, NameRecord};
use libp2p::PeerId;

/// What the DHT says about a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// Exactly one peer holds a valid record for the name.
    Owner {
        /// The owner.
        peer: PeerId,
        /// The name exactly as the owner registered it.
        name: String,
    },
    /// Valid records of several peers were found: nobody is shown by this name.
    Contested(Vec<PeerId>),
    /// No valid record was found.
    Unregistered,
}

impl Registration {
    /// What a set of verified records for one name says.
    pub fn from_records(records: &[NameRecord]) -> Self {
        let mut peers: Vec<PeerId> = records.iter().map(|r| r.peer).collect();
        peers.sort();
        peers.dedup();
        match (peers.as_slice(), records.first()) {
            ([], _) | (_, None) => Registration::Unregistered,
            ([peer], Some(record)) => Registration::Owner {
                peer: *peer,
                name: record.name.clone(),
            },
            _ => Registration::Contested(peers),
        }
    }
}

/// The lookups of one name.
#[derive(Clone, Debug)]
struct Lookup {
    /// The last answer, once a lookup has finished.
    answer: Option<Registration>,
    /// When the last lookup started.
    started: Instant,
    /// Whether a lookup is running.
    running: bool,
    /// How many lookups in a row gave the same answer (for the backoff).
    repeats: u32,
    /// Whether the answer was remembered from before a restart, not yet looked up again.
    remembered: bool,
}

/// Most doublings of the wait between lookups of a name nobody owns (256 times the base).
const MAX_BACKOFF_DOUBLINGS: u32 = 8;
/// How long a name found owned is trusted before it is looked up again.
pub const OWNER_RECHECK: Duration = Duration::from_secs(600);
/// How long to wait before looking at the own name, held by someone else, again.
pub const TAKEN_RECHECK: Duration = Duration::from_secs(300);
/// Most name lookups running at once; a name seen meanwhile is looked up when seen again.
pub const MAX_RUNNING_LOOKUPS: usize = 32;
/// Most names remembered; past that, the name looked up longest ago is forgotten.
pub const MAX_TRACKED_NAMES: usize = 4096;

/// What this node knows about registered names.
#[derive(Debug)]
pub struct NameBook {
    lookups: HashMap<Vec<u8>, Lookup>,
    /// Names a bootstrap's registry confirmed, by DHT key: the owner and the exact name.
    confirmed: HashMap<Vec<u8>, (PeerId, String)>,
    recheck: Duration,
}

impl NameBook {
    /// A book that looks a name up again `recheck` after an unanswered or
    /// negative lookup (doubling up to 256 times that while the answer stays
    /// the same), and [`OWNER_RECHECK`] after a name was found owned.
    pub fn new(recheck: Duration) -> Self {
        Self {
            lookups: HashMap::new(),
            confirmed: HashMap::new(),
            recheck,
        }
    }

    /// Records that a bootstrap's registry holds `record` (verified) for its name. The
    /// registry is where the first claim of a name is decided, so its answer wins over what
    /// the DHT says.
    pub fn confirm(&mut self, record: &NameRecord) {
        let key = name_key(&record.name);
        if !self.confirmed.contains_key(&key) && self.confirmed.len() >= MAX_TRACKED_NAMES {
            // Forget an arbitrary confirmation; it is asked again when the name is seen.
            if let Some(any) = self.confirmed.keys().next().cloned() {
                self.confirmed.remove(&any);
            }
        }
        self.confirmed
            .insert(key, (record.peer, record.name.clone()));
    }

    /// Whether a bootstrap's registry confirmed who holds `name`.
    pub fn is_confirmed(&self, name: &str) -> bool {
        self.confirmed.contains_key(&name_key(name))
    }

    /// What the last finished lookup of `name` found.
    pub fn registration(&self, name: &str) -> Option<&Registration> {
        self.lookups
            .get(&name_key(name))
            .and_then(|l| l.answer.as_ref())
    }

    /// The peer `name` (exactly as written) is registered to, if one is.
    pub fn owner_of(&self, name: &str) -> Option<PeerId> {
        if let Some((peer, held)) = self.confirmed.get(&name_key(name)) {
            return (held == name).then_some(*peer);
        }
        match self.registration(name) {
            Some(Registration::Owner { peer, name: held }) if held == name => Some(*peer),
            _ => None,
        }
    }

    /// Whether `name` should be looked up at `now`: never looked up, or the
    /// wait after the last lookup is over, and no lookup is running.
    pub fn needs_lookup(&self, name: &str, now: Instant) -> bool {
        match self.lookups.get(&name_key(name)) {
            None => true,
            Some(l) if l.running => false,
            Some(l) if l.remembered => true,
            Some(l) => now.saturating_duration_since(l.started) >= self.wait(l),
        }
    }

    fn wait(&self, lookup: &Lookup) -> Duration {
        match lookup.answer {
            Some(Registration::Owner { .. }) => OWNER_RECHECK,
            _ => self.recheck * 2u32.pow(lookup.repeats.min(MAX_BACKOFF_DOUBLINGS)),
        }
    }

    /// Takes in that `name` was registered to `peer` before a restart: it counts as
    /// registered until the first lookup, which is due at once.
    pub fn remember_owner(&mut self, name: &str, peer: PeerId, now: Instant) {
        let key = name_key(name);
        if self.lookups.contains_key(&key) || self.lookups.len() >= MAX_TRACKED_NAMES {
            return;
        }
        self.lookups.insert(
            key,
            Lookup {
                answer: Some(Registration::Owner {
                    peer,
                    name: name.to_owned(),
                }),
                started: now,
                running: false,
                repeats: 0,
                remembered: true,
            },
        );
    }

    /// Whether a lookup of `name` is running.
    pub fn is_running(&self, name: &str) -> bool {
        self.lookups.get(&name_key(name)).is_some_and(|l| l.running)
    }

    /// Notes that a lookup of `name` started at `now`.
    pub fn started(&mut self, name: &str, now: Instant) {
        let key = name_key(name);
        if !self.lookups.contains_key(&key) && self.lookups.len() >= MAX_TRACKED_NAMES {
            let oldest = self
                .lookups
                .iter()
                .filter(|(_, l)| !l.running)
                .min_by_key(|(_, l)| l.started)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.lookups.remove(&oldest);
            }
        }
        let lookup = self.lookups.entry(key).or_insert(Lookup {
            answer: None,
            started: now,
            running: true,
            repeats: 0,
            remembered: false,
        });
        lookup.started = now;
        lookup.running = true;
        lookup.remembered = false;
    }

    /// Records the verified records a lookup of `name` found and returns
    /// what they say.
    pub fn settle(&mut self, name: &str, records: &[NameRecord], now: Instant) -> Registration {
        let answer = Registration::from_records(records);
        let lookup = self.lookups.entry(name_key(name)).or_insert(Lookup {
            answer: None,
            started: now,
            running: false,
            repeats: 0,
            remembered: false,
        });
        lookup.remembered = false;
        lookup.repeats = if lookup.answer.as_ref() == Some(&answer) {
            lookup.repeats.saturating_add(1)
        } else {
            0
        };
        lookup.answer = Some(answer.clone());
        lookup.running = false;
        answer
    }
}

/// How long a node with a bootstrap leaves the registry to decide its name before it claims
/// the name in the DHT itself: the registry decides first claims, and once it gave its
/// ticket the node stores its record without looking for another claimant first, one walk
/// of the DHT instead of two. Peers that reach no registry still find the record.
pub const REGISTRY_FIRST: Duration = Duration::from_secs(5);

/// Where this node's claim of its own name stands. `failures` counts the stores in a row
/// that failed, for the pause before the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnClaim {
    /// Not claimed yet; try at `next_try` (or as soon as the DHT has peers).
    Idle {
        /// When to try next.
        next_try: Option<Instant>,
        /// Stores in a row that failed.
        failures: u32,
    },
    /// Looking the name up before claiming it.
    Checking {
        /// Stores in a row that failed.
        failures: u32,
    },
    /// Storing the record in the DHT.
    Putting {
        /// Stores in a row that failed before this one.
        failures: u32,
    },
    /// The record is stored; kad republishes it.
    Registered,
    /// Another peer holds the name; look again at `next_try`.
    Taken {
        /// The holder.
        owner: PeerId,
        /// When to look again.
        next_try: Instant,
    },
}

/// How a store of the own record ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// At least one peer took it.
    Stored,
    /// It failed quickly (no peer to hold it, or every one refused).
    Failed,
    /// It ran out of time: the DHT is busy, as when a crowd joins at once.
    TimedOut,
}

/// The pause before storing the own record again after a quick failure, doubled with each
/// failure in a row up to [`PUT_RETRY_MAX`].
pub const PUT_RETRY_FIRST: Duration = Duration::from_secs(10);
/// The pause after a store that timed out, doubled likewise: a busy DHT is left alone for
/// minutes, so that the stores of a crowd that joined together do not pile up again and
/// again, each a walk of the DHT with a handshake per new peer.
pub const PUT_BUSY_RETRY_FIRST: Duration = Duration::from_secs(120);
/// The longest pause between two stores of the own record.
pub const PUT_RETRY_MAX: Duration = Duration::from_secs(30 * 60);

/// The pause before the next store after `failures` failed ones in a row, the last ending
/// as `outcome`: doubling from its first pause, then placed at random (`draw` in 0..1)
/// between half and one and a half times that, so that nodes that failed together retry
/// apart.
pub fn put_retry(outcome: PutOutcome, failures: u32, draw: f64) -> Duration {
    let first = match outcome {
        PutOutcome::TimedOut => PUT_BUSY_RETRY_FIRST,
        PutOutcome::Stored | PutOutcome::Failed => PUT_RETRY_FIRST,
    };
    crate::logic::backoff::pause(first, failures, PUT_RETRY_MAX).mul_f64(0.5 + draw.clamp(0.0, 1.0))
}

/// What to do after the pre-claim lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimStep {
    /// Nobody else holds the name: store our record.
    Put,
    /// Someone else holds it: leave it.
    GiveWay(PeerId),
}

impl OwnClaim {
    /// The claim of a node starting at `now`: with a registry (`registry`) it waits
    /// [`REGISTRY_FIRST`] for the registry's answer, without one it starts at once.
    pub fn new(now: Instant, registry: bool) -> Self {
        OwnClaim::Idle {
            next_try: registry.then(|| now + REGISTRY_FIRST),
            failures: 0,
        }
    }

    /// The claim of a name just taken on: due at once.
    pub fn fresh() -> Self {
        OwnClaim::Idle {
            next_try: None,
            failures: 0,
        }
    }

    /// The lookup before the claim starts.
    pub fn start_check(&mut self) {
        *self = OwnClaim::Checking {
            failures: self.failures(),
        };
    }

    /// The store of the own record starts.
    pub fn start_put(&mut self) {
        *self = OwnClaim::Putting {
            failures: self.failures(),
        };
    }

    /// Stores in a row that failed.
    fn failures(&self) -> u32 {
        match self {
            OwnClaim::Idle { failures, .. }
            | OwnClaim::Checking { failures }
            | OwnClaim::Putting { failures } => *failures,
            OwnClaim::Registered | OwnClaim::Taken { .. } => 0,
        }
    }

    /// The registry gave the node a ticket for its name at `now`: the name is the node's,
    /// and the DHT claim is due at once (a claim under way goes on).
    pub fn ticketed(&mut self, now: Instant) {
        if let OwnClaim::Idle { next_try, .. } = self {
            *next_try = Some(now);
        }
    }

    /// The registry refused the name: `owner` registered it first. The DHT claim is left
    /// until `now + retry`.
    pub fn give_way(&mut self, owner: PeerId, now: Instant, retry: Duration) {
        *self = OwnClaim::Taken {
            owner,
            next_try: now + retry,
        };
    }

    /// Whether a claim attempt should start at `now`.
    pub fn due(&self, now: Instant) -> bool {
        match self {
            OwnClaim::Idle { next_try, .. } => next_try.is_none_or(|t| now >= t),
            OwnClaim::Taken { next_try, .. } => now >= *next_try,
            OwnClaim::Checking { .. } | OwnClaim::Putting { .. } | OwnClaim::Registered => false,
        }
    }

    /// Decides, from what the lookup of our own name found, whether to put
    /// our record; `retry` is how long to wait before looking again when the
    /// name is held by someone else.
    pub fn checked(
        &mut self,
        found: &Registration,
        me: PeerId,
        now: Instant,
        retry: Duration,
    ) -> ClaimStep {
        let other = match found {
            Registration::Owner { peer, .. } if *peer != me => Some(*peer),
            Registration::Contested(peers) => peers.iter().find(|p| **p != me).copied(),
            _ => None,
        };
        match other {
            Some(owner) => {
                *self = OwnClaim::Taken {
                    owner,
                    next_try: now + retry,
                };
                ClaimStep::GiveWay(owner)
            }
            None => {
                self.start_put();
                ClaimStep::Put
            }
        }
    }

    /// Records the end of the put at `now`: registered, or idle for the pause
    /// [`put_retry`] gives (`draw` in 0..1 places it).
    pub fn put_done(&mut self, outcome: PutOutcome, now: Instant, draw: f64) {
        let failures = self.failures();
        *self = match outcome {
            PutOutcome::Stored => OwnClaim::Registered,
            PutOutcome::Failed | PutOutcome::TimedOut => OwnClaim::Idle {
                next_try: Some(now + put_retry(outcome, failures, draw)),
                failures: failures.saturating_add(1),
            },
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    const T: u64 = 1_700_000_000_000;

    fn record(seed: u8, name: &str) -> NameRecord {
        let key = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
        NameRecord::sign(&key, name, T).unwrap()
    }

    #[test]
    fn one_owner_several_claimants_or_none() {
        let bob = record(1, "bob");
        let other = record(2, "bob");
        assert_eq!(
            Registration::from_records(&[bob.clone(), bob.clone()]),
            Registration::Owner {
                peer: bob.peer,
                name: "bob".into()
            }
        );
        let mut both = vec![bob.peer, other.peer];
        both.sort();
        assert_eq!(
            Registration::from_records(&[other.clone(), bob.clone()]),
            Registration::Contested(both)
        );
        assert_eq!(Registration::from_records(&[]), Registration::Unregistered);
    }

    #[test]
    fn owners_are_matched_by_exact_name() {
        let t0 = Instant::now();
        let mut book = NameBook::new(Duration::from_secs(10));
        let bob = record(1, "Bob");
        assert_eq!(book.owner_of("Bob"), None);
        book.started("Bob", t0);
        book.settle("Bob", std::slice::from_ref(&bob), t0);
        assert_eq!(book.owner_of("Bob"), Some(bob.peer));
        assert_eq!(book.owner_of("bob"), None, "same key, not the same name");
        assert!(book.registration("BOB").is_some());
    }

    #[test]
    fn a_remembered_owner_counts_until_the_first_lookup_which_is_due_at_once() {
        let t0 = Instant::now();
        let mut book = NameBook::new(Duration::from_secs(10));
        let bob = record(1, "bob");
        book.remember_owner("bob", bob.peer, t0);
        assert_eq!(book.owner_of("bob"), Some(bob.peer));
        assert!(book.needs_lookup("bob", t0), "checked again at once");
        book.started("bob", t0);
        assert!(!book.needs_lookup("bob", t0));
        book.settle("bob", &[], t0);
        assert_eq!(book.owner_of("bob"), None, "the lookup's answer wins");
        assert!(!book.needs_lookup("bob", t0), "then the usual wait");
        book.remember_owner("bob", bob.peer, t0);
        assert_eq!(
            book.owner_of("bob"),
            None,
            "a live answer is not overwritten"
        );
    }

    #[test]
    fn a_registry_confirmation_wins_over_the_dht() {
        let t0 = Instant::now();
        let mut book = NameBook::new(Duration::from_secs(10));
        let (first, second) = (record(1, "bob"), record(2, "bob"));
        book.started("bob", t0);
        book.settle("bob", std::slice::from_ref(&second), t0);
        assert_eq!(book.owner_of("bob"), Some(second.peer));
        book.confirm(&first);
        assert!(book.is_confirmed("BOB"));
        assert_eq!(book.owner_of("bob"), Some(first.peer));
        assert_eq!(book.owner_of("Bob"), None, "exact spelling only");
    }

    #[test]
    fn lookups_back_off_while_the_answer_stays_the_same() {
        let t0 = Instant::now();
        let s = Duration::from_secs(10);
        let mut book = NameBook::new(s);
        assert!(book.needs_lookup("bob", t0));
        book.started("bob", t0);
        assert!(book.is_running("bob") && book.is_running("BOB"));
        assert!(
            !book.needs_lookup("bob", t0 + s * 100),
            "one lookup at a time"
        );
        book.settle("bob", &[], t0);
        assert!(!book.needs_lookup("bob", t0 + s / 2));
        assert!(book.needs_lookup("bob", t0 + s));
        book.started("bob", t0 + s);
        book.settle("bob", &[], t0 + s);
        assert!(!book.needs_lookup("bob", t0 + s * 2), "waits twice as long");
        assert!(book.needs_lookup("bob", t0 + s * 3));
        // An owner is checked rarely.
        book.started("bob", t0 + s * 3);
        book.settle("bob", &[record(1, "bob")], t0 + s * 3);
        assert!(!book.needs_lookup("bob", t0 + s * 3 + OWNER_RECHECK / 2));
        assert!(book.needs_lookup("bob", t0 + s * 3 + OWNER_RECHECK));
    }

    #[test]
    fn the_book_forgets_the_oldest_name_when_full() {
        let t0 = Instant::now();
        let mut book = NameBook::new(Duration::from_secs(1));
        for i in 0..MAX_TRACKED_NAMES {
            let name = format!("n{i}");
            book.started(&name, t0 + Duration::from_millis(i as u64));
            book.settle(&name, &[], t0);
        }
        book.started("newcomer", t0 + Duration::from_secs(3600));
        assert_eq!(book.lookups.len(), MAX_TRACKED_NAMES);
        assert!(book.is_running("newcomer"));
        assert!(book.registration("n0").is_none(), "the oldest went");
        assert!(book.registration("n1").is_some());
    }

    #[test]
    fn own_claim_gives_way_to_an_earlier_owner() {
        let t0 = Instant::now();
        let retry = Duration::from_secs(60);
        let me = record(1, "bob").peer;
        let mut claim = OwnClaim::fresh();
        assert!(claim.due(t0));
        claim.start_check();
        assert!(!claim.due(t0));
        assert_eq!(
            claim.checked(&Registration::Unregistered, me, t0, retry),
            ClaimStep::Put
        );
        assert_eq!(claim, OwnClaim::Putting { failures: 0 });
        claim.put_done(PutOutcome::Stored, t0, 0.5);
        assert_eq!(claim, OwnClaim::Registered);

        let mine = Registration::Owner {
            peer: me,
            name: "bob".into(),
        };
        let mut claim = OwnClaim::Checking { failures: 0 };
        assert_eq!(claim.checked(&mine, me, t0, retry), ClaimStep::Put);

        let owner = record(2, "bob").peer;
        let theirs = Registration::Owner {
            peer: owner,
            name: "bob".into(),
        };
        let mut claim = OwnClaim::Checking { failures: 0 };
        assert_eq!(
            claim.checked(&theirs, me, t0, retry),
            ClaimStep::GiveWay(owner)
        );
        assert!(!claim.due(t0) && claim.due(t0 + retry));
        let mut claim = OwnClaim::Checking { failures: 0 };
        assert_eq!(
            claim.checked(&Registration::Contested(vec![me, owner]), me, t0, retry),
            ClaimStep::GiveWay(owner)
        );
    }

    #[test]
    fn failed_stores_of_the_own_record_back_off_and_a_busy_dht_longer() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        // A quick failure: retried after the first pause (the middle draw places it there).
        let mut claim = OwnClaim::fresh();
        claim.start_put();
        claim.put_done(PutOutcome::Failed, t0, 0.5);
        assert!(!claim.due(t0 + PUT_RETRY_FIRST - secs(1)));
        assert!(claim.due(t0 + PUT_RETRY_FIRST));
        // The count survives the lookup and the next store: the pause doubles.
        claim.start_check();
        assert!(matches!(
            claim.checked(&Registration::Unregistered, PeerId::random(), t0, secs(60)),
            ClaimStep::Put
        ));
        claim.put_done(PutOutcome::Failed, t0, 0.5);
        assert!(!claim.due(t0 + PUT_RETRY_FIRST * 2 - secs(1)));
        assert!(claim.due(t0 + PUT_RETRY_FIRST * 2));
        // A store that timed out waits minutes, never more than the ceiling.
        let mut busy = OwnClaim::fresh();
        busy.start_put();
        busy.put_done(PutOutcome::TimedOut, t0, 0.5);
        assert!(!busy.due(t0 + PUT_BUSY_RETRY_FIRST - secs(1)));
        assert!(busy.due(t0 + PUT_BUSY_RETRY_FIRST));
        for _ in 0..20 {
            busy.start_put();
            busy.put_done(PutOutcome::TimedOut, t0, 1.0);
        }
        assert!(busy.due(t0 + PUT_RETRY_MAX.mul_f64(1.5)));
        // Draws spread the pauses of nodes that failed together over half to one and a
        // half times the pause.
        assert_eq!(
            put_retry(PutOutcome::TimedOut, 0, 0.0),
            PUT_BUSY_RETRY_FIRST / 2
        );
        assert_eq!(
            put_retry(PutOutcome::TimedOut, 0, 1.0),
            PUT_BUSY_RETRY_FIRST.mul_f64(1.5)
        );
        // Success ends the count.
        busy.start_put();
        busy.put_done(PutOutcome::Stored, t0, 0.5);
        assert_eq!(busy, OwnClaim::Registered);
    }

    #[test]
    fn with_a_registry_the_claim_waits_for_it_and_a_ticket_makes_it_due() {
        let t0 = Instant::now();
        assert!(OwnClaim::new(t0, false).due(t0));
        let claim = OwnClaim::new(t0, true);
        assert!(!claim.due(t0));
        assert!(claim.due(t0 + REGISTRY_FIRST));
        let mut ticketed = OwnClaim::new(t0, true);
        ticketed.ticketed(t0 + Duration::from_secs(1));
        assert!(ticketed.due(t0 + Duration::from_secs(1)));
        // A claim under way is not put off.
        let mut putting = OwnClaim::Putting { failures: 0 };
        putting.ticketed(t0);
        assert_eq!(putting, OwnClaim::Putting { failures: 0 });
    }

    #[test]
    fn a_refusal_by_the_registry_leaves_the_name_to_its_owner() {
        let t0 = Instant::now();
        let owner = PeerId::random();
        let mut claim = OwnClaim::new(t0, true);
        claim.give_way(owner, t0, TAKEN_RECHECK);
        assert!(!claim.due(t0 + REGISTRY_FIRST));
        assert!(claim.due(t0 + TAKEN_RECHECK));
        assert_eq!(
            claim,
            OwnClaim::Taken {
                owner,
                next_try: t0 + TAKEN_RECHECK
            }
        );
    }
}
