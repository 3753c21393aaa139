//! Private messages not yet acknowledged by their recipient, kept on disk until they are.
//!
//! The outbox is a journal of `add` and `done` records: adding a message is one appended
//! line, so a message is safe the moment `/msg` returns, even if the node is killed.

use std::{collections::BTreeMap, io, path::Path};

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use ipm_protocol::{DirectMessage, MessageId};

use crate::store::journal::{self, Journal};

/// Most messages waiting for one recipient.
pub const MAX_PER_PEER: usize = ipm_protocol::limits::MAX_OUTBOX_PER_PEER;
/// Most messages waiting in all.
pub const MAX_TOTAL: usize = ipm_protocol::limits::MAX_OUTBOX_TOTAL;

/// One waiting message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The recipient.
    pub to: PeerId,
    /// The message as it will be sent.
    pub message: DirectMessage,
}

/// One line of the journal; built only to be written or read at once, so its size does
/// not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Add(Pending),
    Done { id: MessageId },
}

/// Why a message cannot be queued.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Too many messages already wait for that peer or in all.
    #[error("the outbox is full ({0} messages wait): try again once some are delivered")]
    Full(usize),
    /// The outbox file could not be written.
    #[error("cannot write the outbox: {0}")]
    Io(#[from] io::Error),
}

/// The waiting messages, in the order they were written.
#[derive(Debug)]
pub struct Outbox {
    journal: Option<Journal>,
    pending: BTreeMap<MessageId, (u64, Pending)>,
    next_seq: u64,
    done_records: usize,
}

impl Outbox {
    /// An outbox kept only in memory.
    pub fn in_memory() -> Self {
        Self {
            journal: None,
            pending: BTreeMap::new(),
            next_seq: 0,
            done_records: 0,
        }
    }

    /// Loads the outbox journal at `path` (creating it).
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut outbox = Self::in_memory();
        for record in journal::read_all::<Record>(path)? {
            match record {
                Record::Add(p) => {
                    let seq = outbox.next_seq;
                    outbox.next_seq += 1;
                    outbox.pending.insert(p.message.id, (seq, p));
                }
                Record::Done { id } => {
                    outbox.pending.remove(&id);
                    outbox.done_records += 1;
                }
            }
        }
        outbox.journal = Some(Journal::open(path)?);
        outbox.compact()?;
        Ok(outbox)
    }

    /// Queues `message` for `to`, on disk before this returns.
    pub fn add(&mut self, to: PeerId, message: DirectMessage) -> Result<(), OutboxError> {
        let for_peer = self.pending.values().filter(|(_, p)| p.to == to).count();
        if for_peer >= MAX_PER_PEER || self.pending.len() >= MAX_TOTAL {
            return Err(OutboxError::Full(self.pending.len()));
        }
        let pending = Pending { to, message };
        if let Some(journal) = &mut self.journal {
            journal.append(&Record::Add(pending.clone()))?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert(pending.message.id, (seq, pending));
        Ok(())
    }

    /// Forgets a delivered message; false when it was not waiting.
    pub fn remove(&mut self, id: &MessageId) -> io::Result<bool> {
        if self.pending.remove(id).is_none() {
            return Ok(false);
        }
        if let Some(journal) = &mut self.journal {
            journal.append(&Record::Done { id: *id })?;
        }
        self.done_records += 1;
        self.compact()?;
        Ok(true)
    }

    /// A waiting message by id.
    pub fn get(&self, id: &MessageId) -> Option<&Pending> {
        self.pending.get(id).map(|(_, p)| p)
    }

    /// The messages waiting for `peer`, oldest first.
    pub fn for_peer(&self, peer: &PeerId) -> Vec<&Pending> {
        let mut list: Vec<&(u64, Pending)> = self
            .pending
            .values()
            .filter(|(_, p)| &p.to == peer)
            .collect();
        list.sort_by_key(|(seq, _)| *seq);
        list.into_iter().map(|(_, p)| p).collect()
    }

    /// Every recipient with waiting messages.
    pub fn recipients(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self.pending.values().map(|(_, p)| p.to).collect();
        peers.sort();
        peers.dedup();
        peers
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Rewrites the journal once it holds mostly finished records.
    fn compact(&mut self) -> io::Result<()> {
        if self.done_records < 64 || self.done_records < self.pending.len() {
            return Ok(());
        }
        if let Some(journal) = &mut self.journal {
            let mut live: Vec<&(u64, Pending)> = self.pending.values().collect();
            live.sort_by_key(|(seq, _)| *seq);
            journal.rewrite(live.into_iter().map(|(_, p)| Record::Add(p.clone())))?;
        }
        self.done_records = 0;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn queued_messages_survive_a_reopen_until_done() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("outbox.jsonl");
        let bob = PeerId::random();
        let (a, b) = (
            DirectMessage::new("alice", "one"),
            DirectMessage::new("alice", "two"),
        );
        {
            let mut outbox = Outbox::open(&path).unwrap();
            outbox.add(bob, a.clone()).unwrap();
            outbox.add(bob, b.clone()).unwrap();
            assert!(outbox.remove(&a.id).unwrap());
            assert!(!outbox.remove(&a.id).unwrap());
        }
        let outbox = Outbox::open(&path).unwrap();
        let waiting: Vec<_> = outbox
            .for_peer(&bob)
            .into_iter()
            .map(|p| p.message.clone())
            .collect();
        assert_eq!(waiting, vec![b]);
        assert_eq!(outbox.recipients(), vec![bob]);
    }

    #[test]
    fn compaction_keeps_order_and_shrinks_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("outbox.jsonl");
        let bob = PeerId::random();
        let mut outbox = Outbox::open(&path).unwrap();
        let keep = DirectMessage::new("alice", "keep");
        outbox.add(bob, keep.clone()).unwrap();
        for i in 0..200 {
            let m = DirectMessage::new("alice", &format!("m{i}"));
            outbox.add(bob, m.clone()).unwrap();
            outbox.remove(&m.id).unwrap();
        }
        let last = DirectMessage::new("alice", "last");
        outbox.add(bob, last.clone()).unwrap();
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 100, "{lines} lines");
        let reopened = Outbox::open(&path).unwrap();
        let texts: Vec<_> = reopened
            .for_peer(&bob)
            .iter()
            .map(|p| p.message.text.clone())
            .collect();
        assert_eq!(texts, vec!["keep", "last"]);
    }

    #[test]
    fn a_full_outbox_refuses_more() {
        let mut outbox = Outbox::in_memory();
        let bob = PeerId::random();
        for _ in 0..MAX_PER_PEER {
            outbox.add(bob, DirectMessage::new("a", "x")).unwrap();
        }
        assert!(matches!(
            outbox.add(bob, DirectMessage::new("a", "x")),
            Err(OutboxError::Full(_))
        ));
        assert!(outbox
            .add(PeerId::random(), DirectMessage::new("a", "x"))
            .is_ok());
    }
}
