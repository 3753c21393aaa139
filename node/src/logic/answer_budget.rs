//! What answering catch-up questions may cost, per asker, per address and in all: each
//! answer is charged the bytes it carried (at least a disk read's worth), so an asker pays
//! about what its questions cost the answerer, and keys are free but addresses are not. A
//! question is answered only while the asker, its address and the whole node are in credit.

use std::{collections::HashMap, hash::Hash, time::Instant};

/// What an answer costs at least, in bytes: the log or archive read behind it.
pub const MIN_ANSWER_COST: u64 = 16 * 1024;

/// Most askers and addresses tracked; the fullest (idlest) is forgotten to make room.
pub const MAX_TRACKED: usize = 4096;

/// The credit of one kind of asker: `burst` bytes, refilled at `per_sec` bytes a second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Most bytes in credit.
    pub burst: u64,
    /// Bytes of credit regained each second.
    pub per_sec: u64,
}

/// The three credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerLimits {
    /// One asking peer.
    pub peer: Rate,
    /// Every peer of one address together.
    pub address: Rate,
    /// Every asker together.
    pub all: Rate,
}

impl AnswerLimits {
    /// A member answering from its own log: a few full answers in a burst, then about one a
    /// minute to one key and a few a minute to one address; a dozen a minute in all.
    pub fn member() -> Self {
        Self {
            peer: Rate {
                burst: 512 * 1024,
                per_sec: 4 * 1024,
            },
            address: Rate {
                burst: 1024 * 1024,
                per_sec: 8 * 1024,
            },
            all: Rate {
                burst: 4 * 1024 * 1024,
                per_sec: 32 * 1024,
            },
        }
    }

    /// A bootstrap answering from its archive: more in all, the same per asker.
    pub fn bootstrap() -> Self {
        Self {
            all: Rate {
                burst: 32 * 1024 * 1024,
                per_sec: 512 * 1024,
            },
            ..Self::member()
        }
    }
}

/// Why a question is not answered now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// The asker asked too much lately.
    #[error("you asked too much lately: ask again in a minute")]
    Peer,
    /// The asker's address asked too much lately.
    #[error("your address asked too much lately: ask again in a minute")]
    Address,
    /// Every asker together did.
    #[error("busy, ask again later")]
    All,
}

#[derive(Clone, Copy, Debug)]
struct Credit {
    bytes: f64,
    updated: Instant,
}

impl Credit {
    fn at(&mut self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.bytes = (self.bytes + elapsed * rate.per_sec as f64).min(rate.burst as f64);
        self.updated = now;
        self.bytes
    }
}

#[derive(Debug)]
struct Credits<K> {
    rate: Rate,
    credits: HashMap<K, Credit>,
}

impl<K: Hash + Eq + Clone> Credits<K> {
    fn new(rate: Rate) -> Self {
        Self {
            rate,
            credits: HashMap::new(),
        }
    }

    fn get(&mut self, key: &K, now: Instant) -> &mut Credit {
        if !self.credits.contains_key(key) && self.credits.len() >= MAX_TRACKED {
            let rate = self.rate;
            let fullest = self
                .credits
                .iter_mut()
                .map(|(k, c)| (k.clone(), c.at(rate, now)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(k, _)| k);
            if let Some(k) = fullest {
                self.credits.remove(&k);
            }
        }
        let burst = self.rate.burst as f64;
        self.credits.entry(key.clone()).or_insert(Credit {
            bytes: burst,
            updated: now,
        })
    }

    fn in_credit(&mut self, key: &K, now: Instant) -> bool {
        let rate = self.rate;
        self.get(key, now).at(rate, now) > 0.0
    }

    fn charge(&mut self, key: &K, bytes: u64, now: Instant) {
        let rate = self.rate;
        let credit = self.get(key, now);
        credit.at(rate, now);
        credit.bytes -= bytes as f64;
    }
}

/// The credits of catch-up askers, by peer `P` and address `A`.
#[derive(Debug)]
pub struct AnswerBudget<P, A> {
    peers: Credits<P>,
    addresses: Credits<A>,
    all: Credits<()>,
}

impl<P: Hash + Eq + Clone, A: Hash + Eq + Clone> AnswerBudget<P, A> {
    /// Budgets of `limits`.
    pub fn new(limits: AnswerLimits) -> Self {
        Self {
            peers: Credits::new(limits.peer),
            addresses: Credits::new(limits.address),
            all: Credits::new(limits.all),
        }
    }

    /// Whether `peer` at `address` may be answered at `now`.
    pub fn admit(&mut self, peer: &P, address: &A, now: Instant) -> Result<(), Busy> {
        if !self.peers.in_credit(peer, now) {
            return Err(Busy::Peer);
        }
        if !self.addresses.in_credit(address, now) {
            return Err(Busy::Address);
        }
        if !self.all.in_credit(&(), now) {
            return Err(Busy::All);
        }
        Ok(())
    }

    /// Charges an answer of `bytes` to `peer` at `address` (at least [`MIN_ANSWER_COST`]).
    pub fn charge(&mut self, peer: &P, address: &A, bytes: u64, now: Instant) {
        let cost = bytes.max(MIN_ANSWER_COST);
        self.peers.charge(peer, cost, now);
        self.addresses.charge(address, cost, now);
        self.all.charge(&(), cost, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Plays askers asking every 50 ms for `secs` seconds, each answer `answer` bytes;
    /// returns the bytes each got.
    fn play(
        budget: &mut AnswerBudget<u32, u32>,
        askers: &[(u32, u32)],
        answer: u64,
        secs: u64,
    ) -> Vec<u64> {
        let t0 = Instant::now();
        let mut got = vec![0; askers.len()];
        for tick in 0..secs * 20 {
            let now = t0 + Duration::from_millis(tick * 50);
            for (i, (peer, address)) in askers.iter().enumerate() {
                if budget.admit(peer, address, now).is_ok() {
                    budget.charge(peer, address, answer, now);
                    got[i] += answer;
                }
            }
        }
        got
    }

    #[test]
    fn one_key_asking_twenty_times_a_second_does_not_starve_the_others() {
        let mut budget = AnswerBudget::new(AnswerLimits::member());
        // Key 1 at address 1 floods; keys 2 to 5, at addresses of their own, ask as often.
        let askers = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)];
        let got = play(&mut budget, &askers[..1], 64 * 1024, 10);
        assert!(got[0] <= 512 * 1024 + 10 * 4 * 1024 + 64 * 1024, "{got:?}");
        // Newcomers asking once each are all answered after the flood.
        let now = Instant::now() + Duration::from_secs(10);
        for (peer, address) in &askers[1..] {
            assert_eq!(budget.admit(peer, address, now), Ok(()));
            budget.charge(peer, address, 64 * 1024, now);
        }
        assert_eq!(budget.admit(&1, &1, now), Err(Busy::Peer));
    }

    #[test]
    fn fresh_keys_on_one_address_share_its_credit() {
        let mut budget = AnswerBudget::new(AnswerLimits::bootstrap());
        // Forty keys on one address pulling 300 KiB answers for 25 s: bounded by the
        // address's credit, not by forty peers' credits.
        let askers: Vec<(u32, u32)> = (0..40).map(|k| (k, 7)).collect();
        let got: u64 = play(&mut budget, &askers, 300 * 1024, 25).iter().sum();
        let bound = 1024 * 1024 + 25 * 8 * 1024 + 300 * 1024;
        assert!(got <= bound, "{got} > {bound}");
        // Another address is still answered.
        let now = Instant::now() + Duration::from_secs(25);
        assert_eq!(budget.admit(&100, &8, now), Ok(()));
    }

    #[test]
    fn the_whole_node_has_a_ceiling_and_regains_credit() {
        let mut budget = AnswerBudget::new(AnswerLimits::member());
        let t0 = Instant::now();
        // Many addresses, each within its own credit, exhaust the node's.
        let mut answered = 0u64;
        for k in 0..200u32 {
            if budget.admit(&k, &k, t0).is_ok() {
                budget.charge(&k, &k, 256 * 1024, t0);
                answered += 1;
            }
        }
        assert!(answered <= 17, "{answered}");
        assert_eq!(budget.admit(&999, &999, t0), Err(Busy::All));
        assert_eq!(
            budget.admit(&999, &999, t0 + Duration::from_secs(60)),
            Ok(())
        );
    }

    #[test]
    fn the_tracked_askers_are_bounded() {
        let mut budget = AnswerBudget::<u32, u32>::new(AnswerLimits::bootstrap());
        let now = Instant::now();
        for k in 0..(MAX_TRACKED as u32 + 10) {
            let _ = budget.admit(&k, &0, now);
        }
        assert!(budget.peers.credits.len() <= MAX_TRACKED);
    }
}
