//! What one forwarding connection and one forwarder address may cost, whoever signed what
//! they bring: keys cost nothing, so budgets per author alone let K fresh keys put K times a
//! burst on every screen. Authors this node has not seen before spend a budget of the peer
//! that forwarded their message and one of that peer's IP address; over it, their messages
//! are ignored (not shown, not forwarded), and a forwarder that keeps bringing more is
//! penalised. An author is new until `known_after` has passed since its first message that
//! got through; contacts never are.
//!
//! The same machine, with other figures, bounds the announcements of users not yet listed
//! as online ([`ForwarderBudget::newcomer`]) and all presence announcements a forwarder
//! brings ([`ForwarderBudget::forwarded`]).

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use libp2p::PeerId;

use super::rate_limit::{Penalties, TokenBuckets};

/// How much a forwarder and its address may bring of what the budget counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    /// Messages one forwarding peer may bring in a burst.
    pub per_forwarder_burst: u32,
    /// Messages one forwarding peer may bring per second, sustained.
    pub per_forwarder_per_sec: u32,
    /// Messages all forwarders at one IP address may bring in a burst.
    pub per_ip_burst: u32,
    /// Messages all forwarders at one IP address may bring per second, sustained.
    pub per_ip_per_sec: u32,
    /// How long after its first admitted message an author stops counting as new.
    pub known_after: Duration,
    /// Ignored messages (decaying, half-life one minute) beyond which the forwarder is
    /// penalised for each further one.
    pub penalise_after: f64,
}

/// Lines of new authors in rooms: the first few lines of an honest newcomer pass at once;
/// a forwarder bringing hundreds of fresh keys gets about a burst through. The burst is
/// twice an author's own (30): an honest relay passes on at most an author's burst of a
/// flooder it is connected to, and its newcomers' lines still find room here.
pub const NEW_AUTHOR_LINES: Budget = Budget {
    per_forwarder_burst: 60,
    per_forwarder_per_sec: 5,
    per_ip_burst: 120,
    per_ip_per_sec: 10,
    known_after: Duration::from_secs(120),
    penalise_after: 60.0,
};

/// Announcements of users not listed as online yet: a newcomer and the twenty or so users
/// answering it pass at once; a flood of fresh keys is held to a burst.
pub const NEW_ANNOUNCERS: Budget = Budget {
    per_forwarder_burst: 40,
    per_forwarder_per_sec: 2,
    per_ip_burst: 80,
    per_ip_per_sec: 4,
    known_after: Duration::ZERO,
    penalise_after: f64::INFINITY,
};

/// All presence announcements one forwarder brings: an overlay's presence traffic is about
/// two announcements a second however large it grows, plus bursts of answers to newcomers.
pub const ANNOUNCEMENTS: Budget = Budget {
    per_forwarder_burst: 100,
    per_forwarder_per_sec: 10,
    per_ip_burst: 200,
    per_ip_per_sec: 20,
    known_after: Duration::ZERO,
    penalise_after: f64::INFINITY,
};

/// Whether `ip` shares no address budget: 127.0.0.1 and ::1, this machine itself (local
/// overlays and tests run every node there). Other loopback addresses are budgeted when the
/// driver passes them (it leaves every loopback address out while
/// `AddressLimits::loopback_exempt` is on, the default).
pub fn exempt(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => *v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => *v6 == std::net::Ipv6Addr::LOCALHOST,
    }
}

/// Most forwarders, addresses and admitted authors tracked at once; the idlest are
/// forgotten first.
pub const MAX_TRACKED: usize = 4096;

/// What becomes of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Within the budget (or from a known author): go on with it.
    Pass,
    /// Over the budget: ignore it. `penalise`: the forwarder has kept bringing too much and
    /// is penalised for this one.
    Capped {
        /// Whether to penalise the forwarder.
        penalise: bool,
    },
}

/// The budgets of one kind of message, per forwarder and per forwarder address.
#[derive(Debug)]
pub struct ForwarderBudget {
    budget: Budget,
    forwarders: TokenBuckets<PeerId>,
    addresses: TokenBuckets<IpAddr>,
    /// When each admitted author's first message got through.
    admitted: HashMap<PeerId, Instant>,
    ignored: Penalties<PeerId>,
}

impl ForwarderBudget {
    /// A budget with the given figures.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            forwarders: TokenBuckets::new(
                budget.per_forwarder_burst,
                budget.per_forwarder_per_sec,
                MAX_TRACKED,
            ),
            addresses: TokenBuckets::new(budget.per_ip_burst, budget.per_ip_per_sec, MAX_TRACKED),
            admitted: HashMap::new(),
            ignored: Penalties::new(Duration::from_secs(60), MAX_TRACKED),
        }
    }

    /// The budget for lines of new authors in rooms.
    pub fn new_authors() -> Self {
        Self::new(NEW_AUTHOR_LINES)
    }

    /// The budget for announcements of users not listed as online.
    pub fn newcomer() -> Self {
        Self::new(NEW_ANNOUNCERS)
    }

    /// The budget for all presence announcements.
    pub fn forwarded() -> Self {
        Self::new(ANNOUNCEMENTS)
    }

    /// Whether `author` is known at `now`: its first admitted message is `known_after` old.
    pub fn is_known(&self, author: &PeerId, now: Instant) -> bool {
        self.admitted
            .get(author)
            .is_some_and(|first| now.saturating_duration_since(*first) >= self.budget.known_after)
    }

    /// Whether a message of `author` got through this budget (it spoke here).
    pub fn admitted(&self, author: &PeerId) -> bool {
        self.admitted.contains_key(author)
    }

    /// One message by `author` brought by `forwarder` from address `ip` (`None`: through a
    /// relay, or no longer connected) at `now`. `trusted` authors (contacts) always pass.
    pub fn admit(
        &mut self,
        author: PeerId,
        forwarder: PeerId,
        ip: Option<IpAddr>,
        trusted: bool,
        now: Instant,
    ) -> Admission {
        if trusted || (self.budget.known_after > Duration::ZERO && self.is_known(&author, now)) {
            return Admission::Pass;
        }
        let within = self.forwarders.allow(&forwarder, now)
            && ip
                .filter(|ip| !exempt(ip))
                .is_none_or(|ip| self.addresses.allow(&ip, now));
        if within {
            if self.budget.known_after > Duration::ZERO {
                self.remember(author, now);
            }
            return Admission::Pass;
        }
        let ignored = self.ignored.add(&forwarder, 1.0, now);
        Admission::Capped {
            penalise: ignored > self.budget.penalise_after,
        }
    }

    fn remember(&mut self, author: PeerId, now: Instant) {
        if !self.admitted.contains_key(&author) && self.admitted.len() >= MAX_TRACKED {
            let oldest = self
                .admitted
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(p, _)| *p);
            if let Some(oldest) = oldest {
                self.admitted.remove(&oldest);
            }
        }
        self.admitted.entry(author).or_insert(now);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn passes(budget: &mut ForwarderBudget, forwarder: PeerId, ip: IpAddr, now: Instant) -> bool {
        budget.admit(PeerId::random(), forwarder, Some(ip), false, now) == Admission::Pass
    }

    #[test]
    fn fresh_keys_over_one_forwarder_get_a_burst_through() {
        let mut budget = ForwarderBudget::new_authors();
        let t0 = Instant::now();
        let forwarder = PeerId::random();
        let through = (0..200)
            .filter(|_| passes(&mut budget, forwarder, HOME, t0))
            .count();
        assert_eq!(through, NEW_AUTHOR_LINES.per_forwarder_burst as usize);
        // A second later the sustained rate lets a few more through.
        let t1 = t0 + Duration::from_secs(1);
        let through = (0..50)
            .filter(|_| passes(&mut budget, forwarder, HOME, t1))
            .count();
        assert_eq!(through, NEW_AUTHOR_LINES.per_forwarder_per_sec as usize);
    }

    #[test]
    fn many_forwarders_at_one_address_share_its_budget() {
        let mut budget = ForwarderBudget::new_authors();
        let t0 = Instant::now();
        let through = (0..40)
            .map(|_| PeerId::random())
            .map(|f| (0..10).filter(|_| passes(&mut budget, f, HOME, t0)).count())
            .sum::<usize>();
        assert_eq!(through, NEW_AUTHOR_LINES.per_ip_burst as usize);
        // Another address has its own budget.
        assert!(passes(&mut budget, PeerId::random(), OTHER, t0));
    }

    #[test]
    fn forwarders_on_this_machine_share_no_address_budget() {
        let mut budget = ForwarderBudget::new_authors();
        let t0 = Instant::now();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let through = (0..20)
            .map(|_| PeerId::random())
            .map(|f| {
                (0..10)
                    .filter(|_| passes(&mut budget, f, local, t0))
                    .count()
            })
            .sum::<usize>();
        assert_eq!(through, 200);
        assert!(!exempt(&"127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn an_honest_newcomer_passes_and_becomes_known() {
        let mut budget = ForwarderBudget::new_authors();
        let t0 = Instant::now();
        let (alice, forwarder) = (PeerId::random(), PeerId::random());
        for i in 0..5 {
            let at = t0 + Duration::from_secs(i);
            assert_eq!(
                budget.admit(alice, forwarder, Some(HOME), false, at),
                Admission::Pass
            );
        }
        assert!(!budget.is_known(&alice, t0 + Duration::from_secs(119)));
        let later = t0 + NEW_AUTHOR_LINES.known_after;
        assert!(budget.is_known(&alice, later));
        // Known, she passes even while the forwarder's budget is spent on fresh keys.
        while passes(&mut budget, forwarder, HOME, later) {}
        assert_eq!(
            budget.admit(alice, forwarder, Some(HOME), false, later),
            Admission::Pass
        );
    }

    #[test]
    fn contacts_always_pass() {
        let mut budget = ForwarderBudget::new_authors();
        let t0 = Instant::now();
        let forwarder = PeerId::random();
        while passes(&mut budget, forwarder, HOME, t0) {}
        let friend = PeerId::random();
        assert_eq!(
            budget.admit(friend, forwarder, Some(HOME), true, t0),
            Admission::Pass
        );
    }

    #[test]
    fn a_forwarder_that_keeps_bringing_fresh_keys_is_penalised() {
        let mut budget = ForwarderBudget::new_authors();
        let t0 = Instant::now();
        let forwarder = PeerId::random();
        let verdicts: Vec<Admission> = (0..200)
            .map(|_| budget.admit(PeerId::random(), forwarder, Some(HOME), false, t0))
            .collect();
        let burst = NEW_AUTHOR_LINES.per_forwarder_burst as usize;
        let grace = NEW_AUTHOR_LINES.penalise_after as usize;
        assert!(verdicts[..burst].iter().all(|v| *v == Admission::Pass));
        assert!(verdicts[burst..burst + grace]
            .iter()
            .all(|v| *v == Admission::Capped { penalise: false }));
        assert!(verdicts[burst + grace..]
            .iter()
            .all(|v| *v == Admission::Capped { penalise: true }));
    }

    #[test]
    fn admitted_authors_are_bounded() {
        let mut budget = ForwarderBudget::new(Budget {
            per_forwarder_burst: 100_000,
            per_ip_burst: 100_000,
            ..NEW_AUTHOR_LINES
        });
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u64 + 100) {
            let f = PeerId::random();
            budget.admit(
                PeerId::random(),
                f,
                None,
                false,
                t0 + Duration::from_millis(i),
            );
        }
        assert_eq!(budget.admitted.len(), MAX_TRACKED);
    }
}
