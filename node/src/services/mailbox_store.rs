//! The bootstrap's mailbox: sealed private messages kept for offline recipients, with a
//! time to live and budgets, in an append-only journal so a restart loses nothing.
//!
//! Budgets hold against many cheap keys: besides the quotas per sending key and per
//! recipient, each network address (see `address_budget`) may hold only a share of the
//! whole mailbox (messages and bytes) and only a share of one recipient's quota, so a flood
//! from fresh keys at one address neither fills a recipient's box nor the mailbox. Lookups go
//! through indexes by recipient and by expiry; nothing scans every message.
//!
//! The journal writes sealed bytes in base64 (`put` lines); lines of the older form (`add`,
//! bytes as a JSON array of numbers) are still read, and the journal is rewritten in the
//! compact form when it holds any, or when it grows past [`COMPACT_FACTOR`] times the
//! live data.

use std::{
    collections::{BTreeSet, HashMap},
    io,
    net::IpAddr,
    path::{Path, PathBuf},
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use ipm_protocol::{MessageId, Sealed};

use super::address_budget::AddressKey;
pub use crate::logic::service_budgets::MailboxLimits;
use crate::store::journal::{self, Journal};

/// Most messages one sender may have waiting in the mailbox.
pub const MAX_PER_SENDER: usize = ipm_protocol::limits::MAX_MAILBOX_PER_SENDER;
/// Most messages waiting for one recipient.
pub const MAX_PER_RECIPIENT: usize = ipm_protocol::limits::MAX_MAILBOX_PER_RECIPIENT;
/// Most messages the mailbox holds in all.
pub const MAX_TOTAL: usize = ipm_protocol::limits::MAX_MAILBOX_TOTAL;
/// The journal is rewritten once it is this many times larger than its live lines.
pub const COMPACT_FACTOR: u64 = 4;
/// Journals smaller than this are never rewritten for their size.
const COMPACT_MIN_BYTES: u64 = 1 << 20;
/// Bytes of a journal line beside the sealed message (ids, keys, field names).
const LINE_OVERHEAD: u64 = 256;

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Who deposited it.
    pub from: PeerId,
    /// The address it was deposited from (`None`: unknown, or kept from before addresses
    /// were recorded).
    pub from_ip: Option<IpAddr>,
    /// Who may fetch it.
    pub to: PeerId,
    /// The sealed message.
    pub message: Sealed,
    /// When it is dropped, ms since the epoch.
    pub expires_ms: u64,
}

/// A stored message as older journals wrote it.
#[derive(Deserialize)]
struct OldStored {
    from: PeerId,
    to: PeerId,
    message: Sealed,
    expires_ms: u64,
}

/// A stored message as the journal writes it: sealed bytes in base64.
#[derive(Serialize, Deserialize)]
struct Line {
    from: PeerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<IpAddr>,
    to: PeerId,
    id: MessageId,
    sealed: String,
    expires_ms: u64,
}

/// A journal line as read: any form ever written.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Add(OldStored),
    Put(Line),
    Remove { id: MessageId },
}

/// A journal line as written now.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Written {
    Put(Box<Line>),
    Remove { id: MessageId },
}

fn line_of(s: &Stored) -> Written {
    Written::Put(Box::new(Line {
        from: s.from,
        ip: s.from_ip,
        to: s.to,
        id: s.message.id,
        sealed: BASE64.encode(&s.message.sealed),
        expires_ms: s.expires_ms,
    }))
}

/// The journal's size of a stored message's line, roughly.
fn line_len(s: &Stored) -> u64 {
    (s.message.sealed.len() as u64).div_ceil(3) * 4 + LINE_OVERHEAD
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

/// Messages and bytes held for one budget.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    messages: usize,
    bytes: u64,
}

impl Usage {
    fn add(&mut self, bytes: u64) {
        self.messages += 1;
        self.bytes += bytes;
    }

    /// Takes one message of `bytes` off; whether nothing is left.
    fn sub(&mut self, bytes: u64) -> bool {
        self.messages = self.messages.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
        self.messages == 0
    }
}

/// The stored messages, by id, with indexes by recipient and expiry and the usage of every
/// budget.
#[derive(Debug, Default)]
pub struct Mailbox {
    journal: Option<Journal>,
    path: Option<PathBuf>,
    limits: MailboxLimits,
    stored: HashMap<MessageId, Stored>,
    by_recipient: HashMap<PeerId, BTreeSet<(u64, MessageId)>>,
    by_expiry: BTreeSet<(u64, MessageId)>,
    per_sender: HashMap<PeerId, usize>,
    per_recipient: HashMap<PeerId, Usage>,
    per_address: HashMap<AddressKey, Usage>,
    per_address_recipient: HashMap<(AddressKey, PeerId), usize>,
    total: Usage,
    /// Bytes of the journal's lines (an estimate between rewrites).
    journal_bytes: u64,
}

impl Mailbox {
    /// A mailbox kept only in memory, with budgets `limits`.
    pub fn in_memory(limits: MailboxLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Loads the mailbox journal at `path` with the default budgets, dropping what expired
    /// before `now_ms`.
    pub fn open(path: &Path, now_ms: u64) -> io::Result<Self> {
        Self::open_with(path, now_ms, MailboxLimits::default())
    }

    /// Loads the mailbox journal at `path` with budgets `limits`, dropping what expired
    /// before `now_ms`.
    pub fn open_with(path: &Path, now_ms: u64, limits: MailboxLimits) -> io::Result<Self> {
        let mut mailbox = Self::in_memory(limits);
        let mut old_lines = false;
        for record in journal::read_all::<Record>(path)? {
            match record {
                Record::Add(old) => {
                    old_lines = true;
                    mailbox.insert(Stored {
                        from: old.from,
                        from_ip: None,
                        to: old.to,
                        message: old.message,
                        expires_ms: old.expires_ms,
                    });
                }
                Record::Put(line) => {
                    let Ok(sealed) = BASE64.decode(line.sealed.as_bytes()) else {
                        continue;
                    };
                    mailbox.insert(Stored {
                        from: line.from,
                        from_ip: line.ip,
                        to: line.to,
                        message: Sealed {
                            id: line.id,
                            sealed,
                        },
                        expires_ms: line.expires_ms,
                    });
                }
                Record::Remove { id } => {
                    mailbox.take(&id);
                }
            }
        }
        mailbox.journal = Some(Journal::open(path)?);
        mailbox.journal_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        mailbox.path = Some(path.to_owned());
        mailbox.expire(now_ms)?;
        if old_lines {
            mailbox.rewrite()?;
        } else {
            mailbox.compact()?;
        }
        Ok(mailbox)
    }

    /// Stores a message unless a budget forbids it. A message id already stored is accepted
    /// again without a second copy.
    pub fn deposit(&mut self, stored: Stored) -> Result<(), DepositError> {
        if self.stored.contains_key(&stored.message.id) {
            return Ok(());
        }
        self.check_budgets(&stored)?;
        if let Some(journal) = &mut self.journal {
            journal.append(&line_of(&stored))?;
            self.journal_bytes += line_len(&stored);
        }
        self.insert(stored);
        Ok(())
    }

    fn check_budgets(&self, stored: &Stored) -> Result<(), DepositError> {
        let bytes = stored.message.sealed.len() as u64;
        let limits = &self.limits;
        let quota = |why: &str| Err(DepositError::Quota(why.to_owned()));
        if self.per_sender.get(&stored.from).copied().unwrap_or(0) >= MAX_PER_SENDER {
            return quota(&format!(
                "you already have {MAX_PER_SENDER} messages waiting here"
            ));
        }
        let address = AddressKey::of(stored.from_ip);
        let share = u64::from(limits.address_share.max(1));
        let used = self.per_address.get(&address).copied().unwrap_or_default();
        if used.messages as u64 >= MAX_TOTAL as u64 / share
            || used.bytes + bytes > limits.max_bytes / share
        {
            return quota("your address already has its share of this mailbox");
        }
        let for_recipient = self
            .per_recipient
            .get(&stored.to)
            .copied()
            .unwrap_or_default();
        if for_recipient.messages >= MAX_PER_RECIPIENT
            || for_recipient.bytes + bytes > limits.per_recipient_bytes
        {
            return quota("the recipient's mailbox is full");
        }
        let from_here = self
            .per_address_recipient
            .get(&(address, stored.to))
            .copied()
            .unwrap_or(0);
        if from_here >= limits.per_address_per_recipient {
            return quota("your address already has its share of the recipient's mailbox");
        }
        if self.total.messages >= MAX_TOTAL || self.total.bytes + bytes > limits.max_bytes {
            return quota("the mailbox is full");
        }
        Ok(())
    }

    /// Up to `max` messages for `to`, oldest expiry first, and whether more wait.
    pub fn waiting_for(&self, to: &PeerId, max: usize) -> (Vec<Sealed>, bool) {
        let Some(mine) = self.by_recipient.get(to) else {
            return (Vec::new(), false);
        };
        let page = mine
            .iter()
            .take(max)
            .filter_map(|(_, id)| self.stored.get(id))
            .map(|s| s.message.clone())
            .collect();
        (page, mine.len() > max)
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
            .by_expiry
            .iter()
            .take_while(|(expires_ms, _)| *expires_ms <= now_ms)
            .map(|(_, id)| *id)
            .collect();
        for id in &expired {
            self.remove(id)?;
        }
        if !expired.is_empty() {
            self.compact()?;
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

    /// How many sealed bytes are stored.
    pub fn bytes(&self) -> u64 {
        self.total.bytes
    }

    fn insert(&mut self, stored: Stored) {
        let id = stored.message.id;
        if let Some(old) = self.stored.get(&id) {
            if old == &stored {
                return;
            }
            self.take(&id);
        }
        let bytes = stored.message.sealed.len() as u64;
        let address = AddressKey::of(stored.from_ip);
        let at = (stored.expires_ms, id);
        self.by_recipient.entry(stored.to).or_default().insert(at);
        self.by_expiry.insert(at);
        *self.per_sender.entry(stored.from).or_default() += 1;
        self.per_recipient.entry(stored.to).or_default().add(bytes);
        self.per_address.entry(address).or_default().add(bytes);
        *self
            .per_address_recipient
            .entry((address, stored.to))
            .or_default() += 1;
        self.total.add(bytes);
        self.stored.insert(id, stored);
    }

    /// Takes message `id` out of memory and every budget.
    fn take(&mut self, id: &MessageId) -> Option<Stored> {
        let stored = self.stored.remove(id)?;
        let bytes = stored.message.sealed.len() as u64;
        let address = AddressKey::of(stored.from_ip);
        let at = (stored.expires_ms, *id);
        if let Some(mine) = self.by_recipient.get_mut(&stored.to) {
            mine.remove(&at);
            if mine.is_empty() {
                self.by_recipient.remove(&stored.to);
            }
        }
        self.by_expiry.remove(&at);
        if let Some(n) = self.per_sender.get_mut(&stored.from) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_sender.remove(&stored.from);
            }
        }
        if self
            .per_recipient
            .get_mut(&stored.to)
            .is_some_and(|u| u.sub(bytes))
        {
            self.per_recipient.remove(&stored.to);
        }
        if self
            .per_address
            .get_mut(&address)
            .is_some_and(|u| u.sub(bytes))
        {
            self.per_address.remove(&address);
        }
        let pair = (address, stored.to);
        if let Some(n) = self.per_address_recipient.get_mut(&pair) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_address_recipient.remove(&pair);
            }
        }
        self.total.sub(bytes);
        Some(stored)
    }

    fn remove(&mut self, id: &MessageId) -> io::Result<()> {
        if self.stored.contains_key(id) {
            if let Some(journal) = &mut self.journal {
                journal.append(&Written::Remove { id: *id })?;
                self.journal_bytes += LINE_OVERHEAD / 4;
            }
            self.take(id);
        }
        Ok(())
    }

    /// Bytes the journal's lines for what is stored take.
    fn live_bytes(&self) -> u64 {
        self.total.bytes.div_ceil(3) * 4 + self.total.messages as u64 * LINE_OVERHEAD
    }

    /// Rewrites the journal once it is [`COMPACT_FACTOR`] times larger than its live lines.
    fn compact(&mut self) -> io::Result<()> {
        if self.journal_bytes < COMPACT_MIN_BYTES
            || self.journal_bytes <= COMPACT_FACTOR * self.live_bytes()
        {
            return Ok(());
        }
        self.rewrite()
    }

    fn rewrite(&mut self) -> io::Result<()> {
        if let Some(journal) = &mut self.journal {
            let mut live: Vec<&Stored> = self.stored.values().collect();
            live.sort_by_key(|s| (s.expires_ms, s.message.id));
            journal.rewrite(live.into_iter().map(line_of))?;
            self.journal_bytes = self
                .path
                .as_deref()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or_else(|| self.live_bytes(), |m| m.len());
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stored(from: PeerId, to: PeerId, expires_ms: u64) -> Stored {
        stored_at(None, from, to, expires_ms)
    }

    fn stored_at(ip: Option<&str>, from: PeerId, to: PeerId, expires_ms: u64) -> Stored {
        Stored {
            from,
            from_ip: ip.and_then(|ip| ip.parse().ok()),
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
        let mut m = Mailbox::in_memory(MailboxLimits::default());
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

    #[test]
    fn fresh_keys_at_one_address_fill_only_its_share_of_a_recipients_box() {
        let mut m = Mailbox::in_memory(MailboxLimits::default());
        let bob = PeerId::random();
        let attacker = Some("198.51.100.7");
        let mut stored_count = 0;
        // Ten fresh keys, 200 messages each: five keys would fill Bob's 1000 slots.
        for _ in 0..10 {
            let key = PeerId::random();
            for _ in 0..MAX_PER_SENDER {
                if m.deposit(stored_at(attacker, key, bob, 1_000)).is_ok() {
                    stored_count += 1;
                }
            }
        }
        assert_eq!(
            stored_count,
            MailboxLimits::default().per_address_per_recipient
        );
        // Alice, at another address, still reaches Bob.
        let alice = stored_at(Some("203.0.113.9"), PeerId::random(), bob, 1_000);
        m.deposit(alice.clone()).unwrap();
        let (page, _) = m.waiting_for(&bob, MAX_PER_RECIPIENT);
        assert!(page.contains(&alice.message));
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_the_whole_mailbox() {
        let limits = MailboxLimits {
            max_bytes: 64 * 1024,
            address_share: 4,
            ..MailboxLimits::default()
        };
        let mut m = Mailbox::in_memory(limits);
        let big = |ip: &str| {
            let mut s = stored_at(Some(ip), PeerId::random(), PeerId::random(), 1_000);
            s.message.sealed = vec![7; 1024];
            s
        };
        let mut held = 0;
        for _ in 0..100 {
            if m.deposit(big("198.51.100.7")).is_ok() {
                held += 1;
            }
        }
        // A quarter of 64 KiB in messages of 1 KiB.
        assert_eq!(held, 16);
        assert_eq!(m.bytes(), 16 * 1024);
        m.deposit(big("203.0.113.9")).unwrap();
        // Four addresses fill it; a fifth is told it is full, nothing is dropped for it.
        for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            while m.deposit(big(ip)).is_ok() {}
        }
        assert!(m.bytes() <= limits.max_bytes);
        assert!(matches!(
            m.deposit(big("192.0.2.4")),
            Err(DepositError::Quota(_))
        ));
        assert_eq!(m.bytes(), limits.max_bytes);
    }

    #[test]
    fn an_old_journal_of_number_arrays_loads_and_is_rewritten_compact() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mailbox.jsonl");
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let mut kept = stored(alice, bob, 1_000);
        kept.message.sealed = (0..=255u8).cycle().take(4096).collect();
        let acked = stored(alice, bob, 1_000);
        let old_line = |s: &Stored| {
            serde_json::json!({
                "op": "add",
                "from": s.from.to_base58(),
                "to": s.to.to_base58(),
                "message": { "id": s.message.id, "sealed": s.message.sealed },
                "expires_ms": s.expires_ms,
            })
            .to_string()
        };
        let remove = serde_json::json!({ "op": "remove", "id": acked.message.id }).to_string();
        let old = format!("{}\n{}\n{remove}\n", old_line(&kept), old_line(&acked));
        std::fs::write(&path, &old).unwrap();
        let m = Mailbox::open(&path, 0).unwrap();
        assert_eq!(m.waiting_for(&bob, 10).0, vec![kept.message.clone()]);
        drop(m);
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(
            new.contains("\"op\":\"put\"") && !new.contains("\"add\""),
            "{new}"
        );
        assert!(
            new.len() * 2 < old.len(),
            "{} vs {} bytes",
            new.len(),
            old.len()
        );
        let m = Mailbox::open(&path, 0).unwrap();
        assert_eq!(m.waiting_for(&bob, 10).0, vec![kept.message]);
    }

    #[test]
    fn the_journal_stays_within_a_few_times_the_live_data() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mailbox.jsonl");
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let mut m = Mailbox::open(&path, 0).unwrap();
        let keep = stored(alice, bob, 1_000_000);
        m.deposit(keep.clone()).unwrap();
        let mut largest = 0;
        for i in 0..2_000u64 {
            let mut s = stored_at(Some("192.0.2.1"), alice, bob, 10 + i);
            s.message.sealed = vec![1; 4096];
            m.deposit(s.clone()).unwrap();
            if i % 2 == 0 {
                m.acknowledge(&bob, &[s.message.id]).unwrap();
            } else {
                m.expire(10 + i).unwrap();
            }
            largest = largest.max(std::fs::metadata(&path).unwrap().len());
        }
        // 2 000 messages of 4 KiB went through (over 10 MiB of lines); the journal never
        // held much more than its compaction threshold.
        assert!(largest < 2 * COMPACT_MIN_BYTES, "{largest} bytes");
        drop(m);
        let m = Mailbox::open(&path, 0).unwrap();
        assert_eq!(m.waiting_for(&bob, 10).0, vec![keep.message]);
    }
}
