//! The mailbox client, without I/O: when a user's node hands a sealed copy of a waiting
//! message to which bootstrap (once per message and bootstrap), when it fetches its own
//! mail, and what it acknowledges.
//!
//! No decision here depends on the time: mail is fetched when a bootstrap connects and on
//! the driver's discovery tick. Sealing and opening (crypto with the node key) stay with the
//! driver.

use std::collections::HashSet;

use ipm_protocol::MessageId;
use libp2p::PeerId;

/// Something that happened to the mailbox client.
#[derive(Debug)]
pub enum Input {
    /// A bootstrap connected; `queued` are the waiting messages already reported queued.
    BootstrapConnected {
        /// The bootstrap.
        bootstrap: PeerId,
        /// Messages that missed their first delivery and still wait.
        queued: Vec<MessageId>,
    },
    /// Message `id` was reported queued; `bootstraps` are those connected now.
    Queued {
        /// The message.
        id: MessageId,
        /// The connected bootstraps.
        bootstraps: Vec<PeerId>,
    },
    /// Time to look for mail at the connected `bootstraps`.
    Poll {
        /// The connected bootstraps.
        bootstraps: Vec<PeerId>,
    },
    /// Depositing `id` at `bootstrap` failed on the way (not refused): it may be tried again.
    DepositFailed {
        /// The message.
        id: MessageId,
        /// The bootstrap.
        bootstrap: PeerId,
    },
    /// `bootstrap` keeps a sealed copy of message `id`.
    Stored {
        /// The message.
        id: MessageId,
        /// The bootstrap.
        bootstrap: PeerId,
    },
    /// `bootstrap` handed over the messages `ids` (already opened by the driver); `more`
    /// when further ones wait there.
    Fetched {
        /// The bootstrap.
        bootstrap: PeerId,
        /// The ids of the messages handed over.
        ids: Vec<MessageId>,
        /// Whether more wait.
        more: bool,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Seal waiting message `id` for its recipient and deposit it at `bootstrap`.
    Deposit {
        /// The message.
        id: MessageId,
        /// The bootstrap.
        bootstrap: PeerId,
    },
    /// Ask `bootstrap` for the messages waiting for this node.
    Fetch {
        /// The bootstrap.
        bootstrap: PeerId,
    },
    /// Tell `bootstrap` that messages `ids` arrived, so it forgets them.
    Ack {
        /// The bootstrap.
        bootstrap: PeerId,
        /// The messages.
        ids: Vec<MessageId>,
    },
    /// Tell the user message `id` waits at `bootstrap`.
    ReportStored {
        /// The message.
        id: MessageId,
        /// The bootstrap.
        bootstrap: PeerId,
    },
}

/// The mailbox client's bookkeeping: which copies were handed to which bootstrap.
#[derive(Debug)]
pub struct MailPickup {
    enabled: bool,
    deposited: HashSet<(MessageId, PeerId)>,
}

impl MailPickup {
    /// A client that deposits and fetches when `enabled` (a user's node); a bootstrap's
    /// client does neither.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            deposited: HashSet::new(),
        }
    }

    /// Whether a copy of `id` was handed to `bootstrap` (or is on its way).
    pub fn was_deposited(&self, id: MessageId, bootstrap: PeerId) -> bool {
        self.deposited.contains(&(id, bootstrap))
    }

    /// One step.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.enabled {
            return actions;
        }
        match input {
            Input::BootstrapConnected { bootstrap, queued } => {
                for id in queued {
                    self.deposit(id, bootstrap, &mut actions);
                }
                actions.push(Action::Fetch { bootstrap });
            }
            Input::Queued { id, bootstraps } => {
                for bootstrap in bootstraps {
                    self.deposit(id, bootstrap, &mut actions);
                }
            }
            Input::Poll { bootstraps } => {
                actions.extend(
                    bootstraps
                        .into_iter()
                        .map(|bootstrap| Action::Fetch { bootstrap }),
                );
            }
            Input::DepositFailed { id, bootstrap } => {
                self.deposited.remove(&(id, bootstrap));
            }
            Input::Stored { id, bootstrap } => actions.push(Action::ReportStored { id, bootstrap }),
            Input::Fetched {
                bootstrap,
                ids,
                more,
            } => {
                if !ids.is_empty() {
                    actions.push(Action::Ack { bootstrap, ids });
                }
                if more {
                    actions.push(Action::Fetch { bootstrap });
                }
            }
        }
        actions
    }

    fn deposit(&mut self, id: MessageId, bootstrap: PeerId, actions: &mut Vec<Action>) {
        if self.deposited.insert((id, bootstrap)) {
            actions.push(Action::Deposit { id, bootstrap });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deposits(actions: &[Action]) -> Vec<(MessageId, PeerId)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Deposit { id, bootstrap } => Some((*id, *bootstrap)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_deposit_goes_once_to_each_bootstrap() {
        let mut m = MailPickup::new(true);
        let (b1, b2, id) = (PeerId::random(), PeerId::random(), MessageId::random());
        let actions = m.handle(Input::Queued {
            id,
            bootstraps: vec![b1, b2],
        });
        assert_eq!(deposits(&actions), vec![(id, b1), (id, b2)]);
        assert!(m
            .handle(Input::Queued {
                id,
                bootstraps: vec![b1, b2],
            })
            .is_empty());
        // Reconnecting to b1 fetches but deposits nothing again.
        assert_eq!(
            m.handle(Input::BootstrapConnected {
                bootstrap: b1,
                queued: vec![id],
            }),
            vec![Action::Fetch { bootstrap: b1 }]
        );
        // A third bootstrap connecting gets its copy, then a fetch.
        let b3 = PeerId::random();
        assert_eq!(
            m.handle(Input::BootstrapConnected {
                bootstrap: b3,
                queued: vec![id],
            }),
            vec![
                Action::Deposit { id, bootstrap: b3 },
                Action::Fetch { bootstrap: b3 }
            ]
        );
        assert!(m.was_deposited(id, b3));
    }

    #[test]
    fn a_failed_deposit_may_be_tried_again() {
        let mut m = MailPickup::new(true);
        let (b, id) = (PeerId::random(), MessageId::random());
        m.handle(Input::Queued {
            id,
            bootstraps: vec![b],
        });
        m.handle(Input::DepositFailed { id, bootstrap: b });
        assert!(!m.was_deposited(id, b));
        let actions = m.handle(Input::BootstrapConnected {
            bootstrap: b,
            queued: vec![id],
        });
        assert_eq!(deposits(&actions), vec![(id, b)]);
    }

    #[test]
    fn mail_is_fetched_at_each_bootstrap_acknowledged_and_fetched_again_while_more_waits() {
        let mut m = MailPickup::new(true);
        let (b1, b2) = (PeerId::random(), PeerId::random());
        assert_eq!(
            m.handle(Input::Poll {
                bootstraps: vec![b1, b2]
            }),
            vec![
                Action::Fetch { bootstrap: b1 },
                Action::Fetch { bootstrap: b2 }
            ]
        );
        let ids = vec![MessageId::random(), MessageId::random()];
        assert_eq!(
            m.handle(Input::Fetched {
                bootstrap: b1,
                ids: ids.clone(),
                more: true,
            }),
            vec![
                Action::Ack { bootstrap: b1, ids },
                Action::Fetch { bootstrap: b1 }
            ]
        );
        assert!(m
            .handle(Input::Fetched {
                bootstrap: b1,
                ids: Vec::new(),
                more: false,
            })
            .is_empty());
    }

    #[test]
    fn a_stored_copy_is_reported_with_its_bootstrap() {
        let mut m = MailPickup::new(true);
        let (b, id) = (PeerId::random(), MessageId::random());
        assert_eq!(
            m.handle(Input::Stored { id, bootstrap: b }),
            vec![Action::ReportStored { id, bootstrap: b }]
        );
    }

    #[test]
    fn a_bootstrap_neither_deposits_nor_fetches() {
        let mut m = MailPickup::new(false);
        let (b, id) = (PeerId::random(), MessageId::random());
        assert!(m
            .handle(Input::BootstrapConnected {
                bootstrap: b,
                queued: vec![id],
            })
            .is_empty());
        assert!(m
            .handle(Input::Queued {
                id,
                bootstraps: vec![b]
            })
            .is_empty());
        assert!(m
            .handle(Input::Poll {
                bootstraps: vec![b]
            })
            .is_empty());
    }
}
