//! The bootstrap's answers on `/ipm/mailbox/1`: keep a sealed message for its recipient,
//! hand a recipient what waits for it, forget what it acknowledged.

use std::{io, net::IpAddr, path::Path};

use libp2p::PeerId;

use ipm_protocol::{limits::MAX_FETCH, MailboxRequest, MailboxResponse};

use super::mailbox_store::{Mailbox, MailboxLimits, Stored};

/// The mailbox a bootstrap serves.
#[derive(Debug)]
pub struct MailboxService {
    store: Mailbox,
}

impl MailboxService {
    /// A mailbox kept in memory only, with budgets `limits`.
    pub fn in_memory(limits: MailboxLimits) -> Self {
        Self {
            store: Mailbox::in_memory(limits),
        }
    }

    /// Opens the mailbox journal at `path`, dropping what expired before `now_ms`.
    pub fn open(path: &Path, now_ms: u64, limits: MailboxLimits) -> io::Result<Self> {
        Ok(Self {
            store: Mailbox::open_with(path, now_ms, limits)?,
        })
    }

    /// The answer at `now_ms` to `peer`'s request, which came from `ip` (`None`: through a
    /// relay).
    pub fn serve(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        request: MailboxRequest,
        now_ms: u64,
    ) -> MailboxResponse {
        match request {
            MailboxRequest::Deposit {
                to,
                message,
                ttl_ms,
            } => match PeerId::from_bytes(&to) {
                Ok(to) => {
                    let stored = Stored {
                        from: peer,
                        from_ip: ip,
                        to,
                        message,
                        expires_ms: now_ms.saturating_add(ttl_ms),
                    };
                    match self.store.deposit(stored) {
                        Ok(()) => MailboxResponse::Stored,
                        Err(e) => MailboxResponse::Refused(e.to_string()),
                    }
                }
                Err(_) => MailboxResponse::Refused("the recipient is not a peer id".into()),
            },
            MailboxRequest::Fetch { max } => {
                let (messages, more) = self
                    .store
                    .waiting_for(&peer, usize::from(max).min(MAX_FETCH));
                MailboxResponse::Messages { messages, more }
            }
            MailboxRequest::Ack { ids } => match self.store.acknowledge(&peer, &ids) {
                Ok(n) => MailboxResponse::Acked(u32::try_from(n).unwrap_or(u32::MAX)),
                Err(e) => MailboxResponse::Refused(format!("storage failed: {e}")),
            },
        }
    }

    /// Drops the messages whose time ran out before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> io::Result<usize> {
        self.store.expire(now_ms)
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipm_protocol::{MessageId, Sealed};

    fn sealed(id: MessageId) -> Sealed {
        Sealed {
            id,
            sealed: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_deposit_waits_for_its_recipient_until_acknowledged() {
        let mut service = MailboxService::in_memory(MailboxLimits::default());
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let id = MessageId::random();
        let deposit = MailboxRequest::Deposit {
            to: bob.to_bytes(),
            message: sealed(id),
            ttl_ms: 1_000,
        };
        assert_eq!(
            service.serve(alice, None, deposit, 0),
            MailboxResponse::Stored
        );
        let fetch = || MailboxRequest::Fetch { max: 10 };
        match service.serve(alice, None, fetch(), 1) {
            MailboxResponse::Messages { messages, .. } => assert!(messages.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
        match service.serve(bob, None, fetch(), 1) {
            MailboxResponse::Messages { messages, more } => {
                assert_eq!(messages.len(), 1);
                assert!(!more);
            }
            other => panic!("unexpected {other:?}"),
        }
        let ack = MailboxRequest::Ack { ids: vec![id] };
        assert_eq!(service.serve(bob, None, ack, 2), MailboxResponse::Acked(1));
        assert!(service.is_empty());
    }

    #[test]
    fn a_deposit_for_something_that_is_no_peer_is_refused() {
        let mut service = MailboxService::in_memory(MailboxLimits::default());
        let deposit = MailboxRequest::Deposit {
            to: vec![0; 5],
            message: sealed(MessageId::random()),
            ttl_ms: 1_000,
        };
        let answer = service.serve(PeerId::random(), None, deposit, 0);
        assert!(matches!(answer, MailboxResponse::Refused(_)));
    }

    #[test]
    fn expired_messages_are_dropped() {
        let mut service = MailboxService::in_memory(MailboxLimits::default());
        let deposit = MailboxRequest::Deposit {
            to: PeerId::random().to_bytes(),
            message: sealed(MessageId::random()),
            ttl_ms: 10,
        };
        service.serve(PeerId::random(), None, deposit, 0);
        assert_eq!(service.expire(5).ok(), Some(0));
        assert_eq!(service.expire(11).ok(), Some(1));
        assert!(service.is_empty());
    }
}
