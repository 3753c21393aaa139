//! When this node announces itself on the presence topic, without I/O: the periodic
//! announcement, extra ones when what it announces changed or a newcomer should hear of it
//! (at most four per interval), the wait for the name claim, and the goodbye.
//!
//! The driver passes the time, the number of users online, whether the name claim has
//! settled, a fingerprint of what it would announce and a random draw; it builds and
//! publishes the announcement the machine asks for. A change that leaves the announcement
//! as peers last heard it (a retried name claim, the same place set again) is not announced
//! early: in a crowd's join every such repeat reaches every node.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::logic::presence::{announce_every, announcement_due, answer_chance, next_pause};

/// What the driver knows when it asks the machine to announce.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// Users online at the moment (stretches the pause between announcements).
    pub online: usize,
    /// Whether the claim of the own name has settled (registered or taken): the first
    /// announcement waits for it, at most one interval.
    pub claim_settled: bool,
    /// A fingerprint of what the node would announce now, apart from its id, time and
    /// pause: equal fingerprints tell peers nothing new.
    pub said: u64,
    /// A random draw in 0..1 that places the next periodic announcement.
    pub draw: f64,
}

/// What happened, for [`Announcer::handle`].
#[derive(Debug)]
pub enum Input {
    /// The periodic check (four times per interval): announce when due.
    Tick(Facts),
    /// What this node announces changed (a room joined or left): announce now if the rate
    /// allows, else at a later tick; nothing when the announcement would say what the last
    /// one said.
    Changed(Facts),
    /// Announce now if allowed at all (the name claim settled, the location group moved),
    /// unless the announcement would say what the last one said.
    Refresh(Facts),
    /// A user not online before announced itself; `online` users are online now. With
    /// chance [`answer_chance`] (`draw` in 0..1 below it; the chance falls when many
    /// newcomers arrive within one interval) it is answered at the next tick,
    /// whose phase is random, so that the answers do not all go out in the same instant.
    Newcomer {
        /// Users online, the newcomer included.
        online: usize,
        /// A random draw in 0..1.
        draw: f64,
    },
    /// The node is stopping.
    Stopping,
}

/// What the driver must do.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Publish this node's presence, promising the next one within `every_ms`.
    Announce {
        /// The longest pause before the next announcement, in ms (`None` when it is zero
        /// or does not fit).
        every_ms: Option<u32>,
    },
    /// Publish a goodbye (a presence with `leaving` set).
    Goodbye,
}

/// The announcing schedule of one node.
#[derive(Debug)]
pub struct Announcer {
    /// The base presence interval.
    interval: Duration,
    /// Only a user's node announces itself; a bootstrap does not.
    user_node: bool,
    /// When the node started.
    started: Instant,
    /// When it last announced itself.
    last: Option<Instant>,
    /// The fingerprint of its last announcement.
    said: Option<u64>,
    /// When the next periodic announcement is due.
    next: Option<Instant>,
    /// Whether an announcement before the next periodic one is wanted.
    wanted: bool,
    /// When newcomers were heard of within the last base interval (at most
    /// [`MAX_NEWCOMERS_TRACKED`]).
    newcomers: VecDeque<Instant>,
    /// The node is stopping: after its goodbye it never announces itself again (the
    /// events handled while the goodbye leaves would otherwise bring it back online).
    stopping: bool,
}

/// Newcomers remembered for the answer chance; more in one interval count as this many.
const MAX_NEWCOMERS_TRACKED: usize = 1024;

impl Announcer {
    /// The schedule of a node started at `started` announcing every `interval`;
    /// `user_node` is false on a bootstrap, which never announces.
    pub fn new(interval: Duration, user_node: bool, started: Instant) -> Self {
        Self {
            interval,
            user_node,
            started,
            last: None,
            said: None,
            next: None,
            wanted: false,
            newcomers: VecDeque::new(),
            stopping: false,
        }
    }

    /// One step: `now` is the current time.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        match input {
            Input::Tick(facts) => self.announce_if_due(now, facts),
            Input::Changed(facts) | Input::Refresh(facts) if self.said == Some(facts.said) => {
                Vec::new()
            }
            Input::Changed(facts) => {
                self.wanted = true;
                self.announce_if_due(now, facts)
            }
            Input::Refresh(facts) => self.announce(now, facts),
            Input::Newcomer { online, draw } => {
                while self
                    .newcomers
                    .front()
                    .is_some_and(|at| now.saturating_duration_since(*at) >= self.interval)
                    || self.newcomers.len() >= MAX_NEWCOMERS_TRACKED
                {
                    self.newcomers.pop_front();
                }
                self.newcomers.push_back(now);
                if draw < answer_chance(online, self.newcomers.len()) {
                    self.wanted = true;
                }
                Vec::new()
            }
            // Only a node that has announced itself says goodbye, and only once.
            Input::Stopping => {
                let said = self.stopping;
                self.stopping = true;
                if self.user_node && self.last.is_some() && !said {
                    vec![Action::Goodbye]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Whether an announcement before the next periodic one is wanted.
    pub fn is_wanted(&self) -> bool {
        self.wanted
    }

    /// When this node last announced itself.
    pub fn last(&self) -> Option<Instant> {
        self.last
    }

    fn announce_if_due(&mut self, now: Instant, facts: Facts) -> Vec<Action> {
        if announcement_due(self.last, self.next, now, self.interval, self.wanted) {
            self.announce(now, facts)
        } else {
            Vec::new()
        }
    }

    /// Announces unless this is a bootstrap or the first announcement still waits for the
    /// name claim (so that peers who look the name up on hearing of us find the record).
    fn announce(&mut self, now: Instant, facts: Facts) -> Vec<Action> {
        let waited = now.saturating_duration_since(self.started) >= self.interval;
        if !self.user_node || self.stopping || !(facts.claim_settled || waited) {
            return Vec::new();
        }
        // Pauses stretch with the number of users this node sees online.
        let every = announce_every(self.interval, facts.online);
        self.last = Some(now);
        self.said = Some(facts.said);
        self.next = Some(now + next_pause(every, facts.draw));
        self.wanted = false;
        vec![Action::Announce {
            every_ms: u32::try_from(every.as_millis()).ok().filter(|ms| *ms > 0),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLED: Facts = Facts {
        online: 0,
        claim_settled: true,
        said: 1,
        draw: 0.0,
    };

    /// `SETTLED` with the next periodic announcement placed at the end of its pause.
    const SLOW: Facts = Facts {
        draw: 1.0,
        ..SETTLED
    };

    /// Facts whose announcement says something else than `SETTLED`'s.
    fn saying(said: u64, facts: Facts) -> Facts {
        Facts { said, ..facts }
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn announcer(t0: Instant) -> Announcer {
        Announcer::new(s(10), true, t0)
    }

    const TEN_S: Action = Action::Announce {
        every_ms: Some(10_000),
    };

    #[test]
    fn the_first_announcement_waits_for_the_claim_at_most_one_interval() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let unsettled = Facts {
            claim_settled: false,
            ..SETTLED
        };
        assert!(a.handle(t0 + s(3), Input::Tick(unsettled)).is_empty());
        assert!(a.handle(t0 + s(3), Input::Refresh(unsettled)).is_empty());
        assert_eq!(a.handle(t0 + s(4), Input::Refresh(SETTLED)), vec![TEN_S]);
        let mut b = announcer(t0);
        assert_eq!(b.handle(t0 + s(10), Input::Tick(unsettled)), vec![TEN_S]);
    }

    #[test]
    fn a_bootstrap_never_announces_nor_says_goodbye() {
        let t0 = Instant::now();
        let mut a = Announcer::new(s(10), false, t0);
        assert!(a.handle(t0 + s(20), Input::Tick(SETTLED)).is_empty());
        assert!(a.handle(t0 + s(20), Input::Refresh(SETTLED)).is_empty());
        assert!(a.handle(t0 + s(21), Input::Stopping).is_empty());
    }

    #[test]
    fn periodic_announcements_fall_in_the_second_half_of_the_pause() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        assert_eq!(a.handle(t0, Input::Tick(SETTLED)), vec![TEN_S]);
        // A draw of 0 places the next one 5 s on.
        assert!(a.handle(t0 + s(4), Input::Tick(SETTLED)).is_empty());
        let late = SLOW;
        assert_eq!(a.handle(t0 + s(5), Input::Tick(late)), vec![TEN_S]);
        // A draw of 1: the whole 10 s.
        assert!(a.handle(t0 + s(14), Input::Tick(SETTLED)).is_empty());
        assert_eq!(a.handle(t0 + s(15), Input::Tick(SETTLED)), vec![TEN_S]);
        assert_eq!(a.last(), Some(t0 + s(15)));
    }

    #[test]
    fn the_pause_stretches_with_the_users_online() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let crowd = Facts {
            online: 50,
            ..SETTLED
        };
        assert_eq!(
            a.handle(t0, Input::Tick(crowd)),
            vec![Action::Announce {
                every_ms: Some(25_000)
            }]
        );
        // Next one after half of 25 s.
        assert!(a.handle(t0 + s(12), Input::Tick(crowd)).is_empty());
        assert_eq!(a.handle(t0 + s(13), Input::Tick(crowd)).len(), 1);
    }

    #[test]
    fn a_change_is_announced_at_once_but_at_most_four_times_per_interval() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let slow = SLOW;
        assert_eq!(a.handle(t0, Input::Changed(slow)), vec![TEN_S]);
        assert!(!a.is_wanted());
        // 2 s later: too soon, it waits for a tick.
        let slow = saying(2, slow);
        assert!(a.handle(t0 + s(2), Input::Changed(slow)).is_empty());
        assert!(a.is_wanted());
        assert!(a
            .handle(t0 + Duration::from_millis(2_400), Input::Tick(slow))
            .is_empty());
        assert_eq!(
            a.handle(t0 + Duration::from_millis(2_500), Input::Tick(slow)),
            vec![TEN_S]
        );
        assert!(!a.is_wanted());
    }

    #[test]
    fn what_peers_last_heard_is_not_announced_again_early() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let slow = SLOW;
        assert_eq!(a.handle(t0, Input::Refresh(slow)), vec![TEN_S]);
        // A claim retried, a room left and joined again: the same announcement.
        assert!(a.handle(t0 + s(3), Input::Refresh(slow)).is_empty());
        assert!(a.handle(t0 + s(3), Input::Changed(slow)).is_empty());
        assert!(!a.is_wanted());
        assert!(a.handle(t0 + s(9), Input::Tick(slow)).is_empty());
        // The periodic one goes out all the same.
        assert_eq!(a.handle(t0 + s(10), Input::Tick(slow)), vec![TEN_S]);
        // Something new goes out at once, and a change back again too.
        assert_eq!(
            a.handle(t0 + s(11), Input::Refresh(saying(2, slow))),
            vec![TEN_S]
        );
        assert_eq!(a.handle(t0 + s(12), Input::Refresh(slow)), vec![TEN_S]);
    }

    #[test]
    fn a_newcomer_is_answered_when_the_draw_is_below_the_chance() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let slow = SLOW;
        a.handle(t0, Input::Tick(slow));
        // With 200 users online the chance is 0.1.
        assert!(a
            .handle(
                t0 + s(1),
                Input::Newcomer {
                    online: 200,
                    draw: 0.1
                }
            )
            .is_empty());
        assert!(!a.is_wanted());
        assert!(a
            .handle(
                t0 + s(1),
                Input::Newcomer {
                    online: 200,
                    draw: 0.09
                }
            )
            .is_empty());
        assert!(a.is_wanted());
        // The answer goes out at the next tick, once a quarter interval has passed.
        assert!(a.handle(t0 + s(2), Input::Tick(slow)).is_empty());
        assert_eq!(a.handle(t0 + s(3), Input::Tick(slow)), vec![TEN_S]);
        // Up to 20 users everyone answers.
        let mut b = announcer(t0);
        b.handle(
            t0,
            Input::Newcomer {
                online: 20,
                draw: 0.99,
            },
        );
        assert!(b.is_wanted());
    }

    #[test]
    fn a_crowd_of_newcomers_is_answered_by_few() {
        let t0 = Instant::now();
        let mut a = announcer(t0);
        let newcomer = |draw| Input::Newcomer { online: 20, draw };
        // Two newcomers within an interval are both answered by everyone...
        a.handle(t0, newcomer(0.99));
        a.handle(t0 + s(1), newcomer(0.99));
        assert!(a.is_wanted());
        a.handle(t0 + s(1), Input::Tick(SETTLED));
        assert!(!a.is_wanted());
        // ...the eighth is answered with chance 2/8, the ninth with 2/9...
        for i in 0..5 {
            a.handle(t0 + s(2) + Duration::from_millis(i), newcomer(0.99));
        }
        a.handle(t0 + s(3), newcomer(0.26));
        assert!(!a.is_wanted());
        a.handle(t0 + s(3), newcomer(0.2));
        assert!(a.is_wanted());
        // ...and once the crowd is an interval old, a newcomer is answered by all again.
        a.handle(t0 + s(20), Input::Tick(SETTLED));
        assert!(!a.is_wanted());
        a.handle(t0 + s(20), newcomer(0.99));
        assert!(a.is_wanted());
    }

    #[test]
    fn only_a_node_that_announced_itself_says_goodbye_and_nothing_after_it() {
        let t0 = Instant::now();
        assert!(announcer(t0).handle(t0, Input::Stopping).is_empty());
        let mut a = announcer(t0);
        a.handle(t0, Input::Tick(SETTLED));
        assert_eq!(a.handle(t0 + s(1), Input::Stopping), vec![Action::Goodbye]);
        // Nothing brings it back online while the goodbye leaves: no announcement, and
        // no second goodbye.
        let changed = saying(2, SETTLED);
        assert!(a.handle(t0 + s(2), Input::Refresh(changed)).is_empty());
        assert!(a.handle(t0 + s(2), Input::Changed(changed)).is_empty());
        assert!(a.handle(t0 + s(60), Input::Tick(SETTLED)).is_empty());
        assert!(a.handle(t0 + s(60), Input::Stopping).is_empty());
    }
}
