//! The bootstrap's mailbox: sealed private messages kept for offline recipients, with a
//! time to live and quotas, in an append-only journal so a restart loses nothing.

use std::{collections::BTreeMap, io, path::Path};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use ipm_protocol::{MessageId, Sealed};

use crate::store::journal::{self, Journal};

/// Most messages one sender may have waiting in the mailbox.
pub const MAX_PER_SENDER: usize = ipm_protocol::limits::MAX_MAILBOX_PER_SENDER;
/// Most messages waiting for one recipient.
pub const MAX_PER_RECIPIENT: usize = ipm_protocol::limits::MAX_MAILBOX_PER_RECIPIENT;
/// Most messages the mailbox holds in all.
pub const MAX_TOTAL: usize = ipm_protocol::limits::MAX_MAILBOX_TOTAL;

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Who deposited it.
    pub from: PeerId,
    /// Who may fetch it.
    pub to: PeerId,
    /// The sealed message.
    pub message: Sealed,
    /// When it is dropped, ms since the epoch.
    pub expires_ms: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Add(Stored),
    Remove { id: MessageId },
}

/// Why a message was not stored.
#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    /// A quota is reached.
    #[error("{0}")]
    Quota(String),
    /// The journal could not be written.
    #[error("storage failed: {0}")]
    Io(#[from] io::Error),
}

/// The stored messages, by id.
#[derive(Debug, Default)]
pub struct Mailbox {
    journal: Option<Journal>,
    stored: BTreeMap<MessageId, Stored>,
    removed_records: usize,
}

impl Mailbox {
    /// A mailbox kept only in memory.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the mailbox journal at `path`, dropping what expired before `now_ms`.
    pub fn open(path: &Path, now_ms: u64) -> io::Result<Self> {
        let mut mailbox = Self::default();
        for record in journal::read_all::<Record>(path)? {
            match record {
                Record::Add(s) => {
                    mailbox.stored.insert(s.message.id, s);
                }
                Record::Remove { id } => {
                    mailbox.stored.remove(&id);
                    mailbox.removed_records += 1;
                }
            }
        }
        mailbox.journal = Some(Journal::open(path)?);
        mailbox.expire(now_ms)?;
        mailbox.compact()?;
        Ok(mailbox)
    }

    /// Stores a message unless a quota forbids it. A message id already stored is accepted
    /// again without a second copy.
    pub fn deposit(&mut self, stored: Stored) -> Result<(), DepositError> {
        if self.stored.contains_key(&stored.message.id) {
            return Ok(());
        }
        let count =
            |pick: &dyn Fn(&Stored) -> bool| self.stored.values().filter(|s| pick(s)).count();
        if count(&|s| s.from == stored.from) >= MAX_PER_SENDER {
            return Err(DepositError::Quota(format!(
                "you already have {MAX_PER_SENDER} messages waiting here"
            )));
        }
        if count(&|s| s.to == stored.to) >= MAX_PER_RECIPIENT {
            return Err(DepositError::Quota(
                "the recipient's mailbox is full".into(),
            ));
        }
        if self.stored.len() >= MAX_TOTAL {
            return Err(DepositError::Quota("the mailbox is full".into()));
        }
        if let Some(journal) = &mut self.journal {
            journal.append(&Record::Add(stored.clone()))?;
        }
        self.stored.insert(stored.message.id, stored);
        Ok(())
    }

    /// Up to `max` messages for `to`, oldest expiry first, and whether more wait.
    pub fn waiting_for(&self, to: &PeerId, max: usize) -> (Vec<Sealed>, bool) {
        let mut mine: Vec<&Stored> = self.stored.values().filter(|s| &s.to == to).collect();
        mine.sort_by_key(|s| s.expires_ms);
        let more = mine.len() > max;
        (
            mine.into_iter()
                .take(max)
                .map(|s| s.message.clone())
                .collect(),
            more,
        )
    }

    /// Removes the messages `to` acknowledged (ids of others' messages are ignored).
    pub fn acknowledge(&mut self, to: &PeerId, ids: &[MessageId]) -> io::Result<usize> {
        let mut removed = 0;
        for id in ids {
            if self.stored.get(id).is_some_and(|s| &s.to == to) {
                self.remove(id)?;
                removed += 1;
            }
        }
        self.compact()?;
        Ok(removed)
    }

    /// Drops every message whose time is up.
    pub fn expire(&mut self, now_ms: u64) -> io::Result<usize> {
        let expired: Vec<MessageId> = self
            .stored
            .values()
            .filter(|s| s.expires_ms <= now_ms)
            .map(|s| s.message.id)
            .collect();
        for id in &expired {
            self.remove(id)?;
        }
        Ok(expired.len())
    }

    /// How many messages are stored.
    pub fn len(&self) -> usize {
        self.stored.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.stored.is_empty()
    }

    fn remove(&mut self, id: &MessageId) -> io::Result<()> {
        if self.stored.remove(id).is_some() {
            if let Some(journal) = &mut self.journal {
                journal.append(&Record::Remove { id: *id })?;
            }
            self.removed_records += 1;
        }
        Ok(())
    }

    fn compact(&mut self) -> io::Result<()> {
        if self.removed_records < 256 || self.removed_records < self.stored.len() {
            return Ok(());
        }
        if let Some(journal) = &mut self.journal {
            journal.rewrite(self.stored.values().cloned().map(Record::Add))?;
        }
        self.removed_records = 0;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stored(from: PeerId, to: PeerId, expires_ms: u64) -> Stored {
        Stored {
            from,
            to,
            message: Sealed {
                id: MessageId::random(),
                sealed: vec![1, 2, 3],
            },
            expires_ms,
        }
    }

    #[test]
    fn messages_survive_a_restart_until_acknowledged_or_expired() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mailbox.jsonl");
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let keep = stored(alice, bob, 1_000);
        let short = stored(alice, bob, 10);
        let acked = stored(alice, bob, 1_000);
        {
            let mut m = Mailbox::open(&path, 0).unwrap();
            for s in [&keep, &short, &acked] {
                m.deposit(s.clone()).unwrap();
            }
            // Only the recipient's acknowledgement removes a message.
            assert_eq!(m.acknowledge(&alice, &[acked.message.id]).unwrap(), 0);
            assert_eq!(m.acknowledge(&bob, &[acked.message.id]).unwrap(), 1);
        }
        let m = Mailbox::open(&path, 500).unwrap();
        let (waiting, more) = m.waiting_for(&bob, 10);
        assert_eq!(waiting, vec![keep.message]);
        assert!(!more);
        assert!(m.waiting_for(&alice, 10).0.is_empty());
    }

    #[test]
    fn quotas_hold_and_duplicates_are_stored_once() {
        let mut m = Mailbox::in_memory();
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let first = stored(alice, bob, 1);
        m.deposit(first.clone()).unwrap();
        m.deposit(first).unwrap();
        assert_eq!(m.len(), 1);
        for _ in 1..MAX_PER_SENDER {
            m.deposit(stored(alice, PeerId::random(), 1)).unwrap();
        }
        assert!(matches!(
            m.deposit(stored(alice, bob, 1)),
            Err(DepositError::Quota(_))
        ));
        assert!(m.deposit(stored(PeerId::random(), bob, 1)).is_ok());
        let (page, more) = m.waiting_for(&bob, 1);
        assert_eq!(page.len(), 1);
        assert!(more);
    }
}
