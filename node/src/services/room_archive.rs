//! The bootstrap's room archive: the last signed lines of every room it forwards, kept on
//! disk, so that members coming back catch up over `/ipm/history/1`.
//!
//! Each line is kept as its author published it, signature included: the archive can
//! withhold a line but cannot forge or alter one, and members check every line they get.
//! The archive is bounded: per room (the newest [`ArchiveLimits::per_room`] lines), per
//! author in a room (one author flooding a room pushes out its own lines, not the others'),
//! for authors new to a room together (many fresh keys push out their own lines, not the
//! room's regulars), by age, and in all (the oldest lines of the whole archive go first).
//!
//! A deletion withdraws its author's line: the archive then keeps the signed deletion, not
//! the line's text, its edits or its reactions.

use std::{
    collections::{HashMap, VecDeque},
    io,
    path::Path,
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use ipm_protocol::{
    decode_gossip,
    limits::{MAX_CATCH_UP_AGE_MS, MAX_CATCH_UP_LINES},
    verify_chat, ArchivedLine, Gossip, LineError, MessageId, Room,
};

use crate::store::journal::{self, Journal};

/// How much the archive keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Newest lines kept of one room.
    pub per_room: usize,
    /// Newest lines kept of one author in one room.
    pub per_author: usize,
    /// Oldest line kept, in ms.
    pub max_age_ms: u64,
    /// Bytes of payload kept in all rooms together.
    pub total_bytes: usize,
    /// Lines of one room that authors not yet settled in it may hold together.
    pub newcomers: usize,
    /// How long an author's lines must have been kept in a room before the author counts
    /// as settled there, in ms.
    pub settle_ms: u64,
}

impl Default for ArchiveLimits {
    /// 500 lines a room, a quarter of them from one author and a quarter from authors
    /// settled in the room for less than an hour, 7 days, 64 MiB in all.
    fn default() -> Self {
        Self {
            per_room: MAX_CATCH_UP_LINES,
            per_author: MAX_CATCH_UP_LINES / 4,
            max_age_ms: MAX_CATCH_UP_AGE_MS,
            total_bytes: 64 << 20,
            newcomers: MAX_CATCH_UP_LINES / 4,
            settle_ms: 60 * 60 * 1000,
        }
    }
}

/// One author's place in one room.
#[derive(Clone, Copy, Debug)]
struct Standing {
    /// Lines of the author kept in the room.
    lines: usize,
    /// When the oldest line of the author's unbroken presence in the archive was sent.
    since: u64,
}

/// One kept line.
#[derive(Clone, Debug)]
struct Kept {
    seq: u64,
    author: PeerId,
    ts: u64,
    data: Vec<u8>,
    /// The line's id.
    id: Option<MessageId>,
    /// What it does to an earlier line: the change's kind and target.
    re: Option<(String, MessageId)>,
}

impl Kept {
    /// Whether this is `author`'s deletion of `target`.
    fn deletes(&self, target: &MessageId, author: &PeerId) -> bool {
        self.author == *author
            && matches!(&self.re, Some((kind, t)) if kind == "delete" && t == target)
    }

    /// Whether this is an edit or a reaction of `target`.
    fn changes(&self, target: &MessageId) -> bool {
        matches!(&self.re, Some((kind, t)) if (kind == "edit" || kind == "react") && t == target)
    }
}

/// The id and the change of a signed line (`None` when it does not decode).
fn identify(data: &[u8]) -> (Option<MessageId>, Option<(String, MessageId)>) {
    match decode_gossip(data) {
        Ok(Gossip::Chat(chat)) => (Some(chat.id), chat.re.map(|c| (c.kind, c.target))),
        _ => (None, None),
    }
}

/// One line in the journal.
#[derive(Serialize, Deserialize)]
struct Record {
    topic: String,
    author: String,
    ts: u64,
    data: String,
}

/// The lines kept for catch-up, per room.
#[derive(Debug)]
pub struct RoomArchive {
    limits: ArchiveLimits,
    rooms: HashMap<Room, VecDeque<Kept>>,
    /// Each author's standing in each room.
    authors: HashMap<Room, HashMap<PeerId, Standing>>,
    /// Every kept line in the order it came, to drop the oldest of the whole archive.
    order: VecDeque<(u64, Room)>,
    bytes: usize,
    next_seq: u64,
    journal: Option<Journal>,
    /// Records in the journal, kept or not: it is rewritten when mostly stale.
    journal_records: usize,
}

impl RoomArchive {
    /// An archive kept in memory only.
    pub fn in_memory(limits: ArchiveLimits) -> Self {
        Self {
            limits,
            rooms: HashMap::new(),
            authors: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
            journal: None,
            journal_records: 0,
        }
    }

    /// Opens the archive journal at `path`, dropping what is older than the limits at
    /// `now_ms`.
    pub fn open(path: &Path, now_ms: u64, limits: ArchiveLimits) -> io::Result<Self> {
        let mut archive = Self::in_memory(limits);
        let records: Vec<Record> = journal::read_all(path)?;
        let read = records.len();
        for record in records {
            let (Ok(room), Ok(author), Ok(data)) = (
                Room::from_topic(&record.topic),
                record.author.parse::<PeerId>(),
                STANDARD.decode(&record.data),
            ) else {
                continue;
            };
            archive.keep(room, author, record.ts, data, now_ms);
        }
        let mut journal = Journal::open(path)?;
        if read > archive.len() {
            journal.rewrite(archive.records())?;
        }
        archive.journal_records = archive.len();
        archive.journal = Some(journal);
        Ok(archive)
    }

    /// Lines kept in all rooms.
    pub fn len(&self) -> usize {
        self.rooms.values().map(VecDeque::len).sum()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.rooms.values().all(VecDeque::is_empty)
    }

    /// Whether lines of `room` are kept.
    pub fn keeps(&self, room: &Room) -> bool {
        self.rooms.get(room).is_some_and(|lines| !lines.is_empty())
    }

    /// Keeps `data`, a line `author` published in `room`, received at `ts`, if its signature
    /// holds. A failed journal write is returned; the line stays kept in memory.
    pub fn insert(
        &mut self,
        room: Room,
        author: PeerId,
        ts: u64,
        data: Vec<u8>,
        now_ms: u64,
    ) -> Result<(), ArchiveError> {
        verify_chat(&author, &room.topic(), &data).map_err(ArchiveError::Line)?;
        let record = Record {
            topic: room.topic(),
            author: author.to_string(),
            ts,
            data: STANDARD.encode(&data),
        };
        self.keep(room, author, ts, data, now_ms);
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        journal.append(&record).map_err(ArchiveError::Io)?;
        self.journal_records += 1;
        let kept = self.len();
        if self.journal_records > 2 * kept + 1024 {
            let records: Vec<Record> = self.records().collect();
            if let Some(journal) = &mut self.journal {
                journal.rewrite(records).map_err(ArchiveError::Io)?;
            }
            self.journal_records = kept;
        }
        Ok(())
    }

    /// The newest `limit` lines of `room` received after `since_ms`, oldest first.
    pub fn lines_since(
        &self,
        room: &Room,
        since_ms: u64,
        limit: usize,
        now_ms: u64,
    ) -> Vec<ArchivedLine> {
        let oldest = now_ms.saturating_sub(self.limits.max_age_ms);
        let Some(lines) = self.rooms.get(room) else {
            return Vec::new();
        };
        let fresh: Vec<&Kept> = lines
            .iter()
            .filter(|k| k.ts > since_ms && k.ts >= oldest)
            .collect();
        fresh[fresh.len().saturating_sub(limit)..]
            .iter()
            .map(|k| ArchivedLine {
                author: ByteBuf::from(k.author.to_bytes()),
                ts: k.ts,
                data: ByteBuf::from(k.data.clone()),
            })
            .collect()
    }

    /// Keeps a line without checking it, then drops what is over the limits.
    fn keep(&mut self, room: Room, author: PeerId, ts: u64, data: Vec<u8>, now_ms: u64) {
        let oldest = now_ms.saturating_sub(self.limits.max_age_ms);
        if ts < oldest {
            return;
        }
        let (id, re) = identify(&data);
        if !self.take_deletion(&room, author, id, re.as_ref()) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += data.len();
        let lines = self.rooms.entry(room.clone()).or_default();
        lines.push_back(Kept {
            seq,
            author,
            ts,
            data,
            id,
            re,
        });
        self.order.push_back((seq, room.clone()));
        let standing = self
            .authors
            .entry(room.clone())
            .or_default()
            .entry(author)
            .or_insert(Standing {
                lines: 0,
                since: ts,
            });
        standing.lines += 1;
        if standing.lines > self.limits.per_author {
            if let Some(at) = lines.iter().position(|k| k.author == author) {
                self.remove_at(&room, at);
            }
        }
        self.bound_newcomers(&room, now_ms);
        while self.rooms.get(&room).map_or(0, VecDeque::len) > self.limits.per_room {
            self.remove_at(&room, 0);
        }
        while self
            .rooms
            .get(&room)
            .and_then(VecDeque::front)
            .is_some_and(|k| k.ts < oldest)
        {
            self.remove_at(&room, 0);
        }
        while self.bytes > self.limits.total_bytes {
            let Some((seq, room)) = self.order.pop_front() else {
                break;
            };
            // Lines dropped by a room's own limits left their place in `order` behind.
            if self
                .rooms
                .get(&room)
                .and_then(VecDeque::front)
                .map(|k| k.seq)
                == Some(seq)
            {
                self.remove_at(&room, 0);
            }
        }
        if self.order.len() > 2 * self.len() + 1024 {
            let rooms = &self.rooms;
            self.order.retain(|(seq, room)| {
                rooms
                    .get(room)
                    .is_some_and(|lines| lines.iter().any(|k| k.seq == *seq))
            });
        }
    }

    /// Applies deletions before a line is kept, and says whether to keep it. A deletion
    /// drops its author's line and that line's edits and reactions (the deletion itself is
    /// kept, so a member holding the line from elsewhere withdraws it too); a line, an edit
    /// or a reaction whose line its author deleted is not kept.
    fn take_deletion(
        &mut self,
        room: &Room,
        author: PeerId,
        id: Option<MessageId>,
        re: Option<&(String, MessageId)>,
    ) -> bool {
        let Some(lines) = self.rooms.get(room) else {
            return true;
        };
        match re {
            Some((kind, target)) if kind == "delete" => {
                let line_by_other = lines
                    .iter()
                    .any(|k| k.id.as_ref() == Some(target) && k.author != author);
                if line_by_other {
                    return false;
                }
                while let Some(at) = self.rooms.get(room).and_then(|lines| {
                    lines.iter().position(|k| {
                        (k.id.as_ref() == Some(target)
                            && k.re.as_ref().is_none_or(|(kind, _)| kind == "reply"))
                            || k.changes(target)
                    })
                }) {
                    self.remove_at(room, at);
                }
                true
            }
            Some((kind, target)) if kind == "edit" || kind == "react" => !lines.iter().any(|k| {
                k.re.as_ref()
                    .is_some_and(|(kind, t)| kind == "delete" && t == target)
            }),
            _ => !id.is_some_and(|id| lines.iter().any(|k| k.deletes(&id, &author))),
        }
    }

    /// Drops the line at `at` in `room`.
    fn remove_at(&mut self, room: &Room, at: usize) {
        let Some(lines) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(gone) = lines.remove(at) else {
            return;
        };
        self.bytes -= gone.data.len();
        if lines.is_empty() {
            self.rooms.remove(room);
        }
        if let Some(authors) = self.authors.get_mut(room) {
            if let Some(standing) = authors.get_mut(&gone.author) {
                standing.lines -= 1;
                if standing.lines == 0 {
                    authors.remove(&gone.author);
                }
            }
            if authors.is_empty() {
                self.authors.remove(room);
            }
        }
    }

    /// Keeps the lines of authors not yet settled in `room` at `now_ms` within
    /// [`ArchiveLimits::newcomers`], dropping their oldest first: fresh keys are free, and
    /// many of them, each within its own share, must not push a room's regulars out.
    fn bound_newcomers(&mut self, room: &Room, now_ms: u64) {
        let settle_ms = self.limits.settle_ms;
        loop {
            let (Some(lines), Some(authors)) = (self.rooms.get(room), self.authors.get(room))
            else {
                return;
            };
            let newcomer = |k: &Kept| {
                authors
                    .get(&k.author)
                    .is_none_or(|s| now_ms.saturating_sub(s.since) < settle_ms)
            };
            if lines.iter().filter(|k| newcomer(k)).count() <= self.limits.newcomers {
                return;
            }
            match lines.iter().position(newcomer) {
                Some(at) => self.remove_at(room, at),
                None => return,
            }
        }
    }

    /// Every kept line as a journal record, oldest first in each room.
    fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.rooms.iter().flat_map(|(room, lines)| {
            lines.iter().map(move |k| Record {
                topic: room.topic(),
                author: k.author.to_string(),
                ts: k.ts,
                data: STANDARD.encode(&k.data),
            })
        })
    }
}

/// Why a line was not archived.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Its signature does not hold.
    #[error("not archived: {0}")]
    Line(LineError),
    /// The journal could not be written.
    #[error("cannot write the room archive: {0}")]
    Io(io::Error),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::{sign_chat, ChatMessage};
    use libp2p::identity::Keypair;

    const NOW: u64 = 1_800_000_000_000;

    fn signed(key: &Keypair, room: &Room, text: &str) -> Vec<u8> {
        sign_chat(key, &room.topic(), ChatMessage::new("alice", text, None)).unwrap()
    }

    fn texts(lines: &[ArchivedLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| match ipm_protocol::decode_gossip(&l.data).unwrap() {
                ipm_protocol::Gossip::Chat(chat) => chat.text,
                other => panic!("not a line: {other:?}"),
            })
            .collect()
    }

    fn small() -> ArchiveLimits {
        ArchiveLimits {
            per_room: 5,
            per_author: 3,
            max_age_ms: 1000,
            total_bytes: 1 << 20,
            newcomers: 5,
            settle_ms: 0,
        }
    }

    #[test]
    fn lines_come_back_after_a_time_oldest_first_and_at_most_the_newest_asked() {
        let key = Keypair::generate_ed25519();
        let author = key.public().to_peer_id();
        let mut archive = RoomArchive::in_memory(ArchiveLimits::default());
        for i in 0..4u64 {
            let data = signed(&key, &Room::Lobby, &format!("line {i}"));
            archive
                .insert(Room::Lobby, author, NOW + i, data, NOW)
                .unwrap();
        }
        let since = archive.lines_since(&Room::Lobby, NOW, 10, NOW + 5);
        assert_eq!(texts(&since), ["line 1", "line 2", "line 3"]);
        let newest = archive.lines_since(&Room::Lobby, 0, 2, NOW + 5);
        assert_eq!(texts(&newest), ["line 2", "line 3"]);
        assert!(archive
            .lines_since(&Room::interest("rust").unwrap(), 0, 10, NOW)
            .is_empty());
    }

    #[test]
    fn forged_lines_and_lines_of_another_room_are_not_kept() {
        let key = Keypair::generate_ed25519();
        let mut archive = RoomArchive::in_memory(ArchiveLimits::default());
        let other = Keypair::generate_ed25519().public().to_peer_id();
        let data = signed(&key, &Room::Lobby, "mine");
        assert!(archive
            .insert(Room::Lobby, other, NOW, data.clone(), NOW)
            .is_err());
        let rust = Room::interest("rust").unwrap();
        let author = key.public().to_peer_id();
        assert!(archive.insert(rust, author, NOW, data, NOW).is_err());
        assert!(archive.is_empty());
    }

    #[test]
    fn a_flooding_author_pushes_out_its_own_lines_first() {
        let (honest, flooder) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let mut archive = RoomArchive::in_memory(small());
        let h = honest.public().to_peer_id();
        archive
            .insert(
                Room::Lobby,
                h,
                NOW,
                signed(&honest, &Room::Lobby, "hello"),
                NOW,
            )
            .unwrap();
        let f = flooder.public().to_peer_id();
        for i in 0..20 {
            let data = signed(&flooder, &Room::Lobby, &format!("spam {i}"));
            archive.insert(Room::Lobby, f, NOW + 1, data, NOW).unwrap();
        }
        let kept = texts(&archive.lines_since(&Room::Lobby, 0, 10, NOW));
        assert_eq!(kept, ["hello", "spam 17", "spam 18", "spam 19"]);
    }

    #[test]
    fn many_fresh_keys_each_within_its_share_cannot_wipe_a_rooms_regulars() {
        let hour = 60 * 60 * 1000;
        let mut archive = RoomArchive::in_memory(ArchiveLimits::default());
        let regulars = [Keypair::generate_ed25519(), Keypair::generate_ed25519()];
        // The regulars have talked here for two hours.
        for (i, key) in regulars.iter().enumerate() {
            let data = signed(key, &Room::Lobby, "good morning");
            let at = NOW - 2 * hour + i as u64;
            archive
                .insert(Room::Lobby, key.public().to_peer_id(), at, data, at)
                .unwrap();
        }
        for i in 0..20u64 {
            let key = &regulars[i as usize % 2];
            let data = signed(key, &Room::Lobby, &format!("honest {i}"));
            let at = NOW - 1000 + i;
            archive
                .insert(Room::Lobby, key.public().to_peer_id(), at, data, at)
                .unwrap();
        }
        // 40 fresh keys, each far below the share of one author, send 520 lines.
        for k in 0..40u64 {
            let key = Keypair::generate_ed25519();
            for i in 0..13u64 {
                let data = signed(&key, &Room::Lobby, &format!("junk {k} {i}"));
                let at = NOW + k * 13 + i;
                archive
                    .insert(Room::Lobby, key.public().to_peer_id(), at, data, at)
                    .unwrap();
            }
        }
        let caught_up = texts(&archive.lines_since(&Room::Lobby, 0, MAX_CATCH_UP_LINES, NOW + 600));
        let honest = caught_up.iter().filter(|t| t.starts_with("honest")).count();
        let junk = caught_up.iter().filter(|t| t.starts_with("junk")).count();
        assert_eq!(honest, 20, "every honest line is still there");
        assert_eq!(junk, ArchiveLimits::default().newcomers);
        // Once settled, an author's lines count as a regular's.
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let first = signed(&key, &Room::Lobby, "first");
        archive.insert(Room::Lobby, peer, NOW, first, NOW).unwrap();
        let later = NOW + hour;
        let data = signed(&key, &Room::Lobby, "an hour later");
        archive
            .insert(Room::Lobby, peer, later, data, later)
            .unwrap();
        let kept = texts(&archive.lines_since(&Room::Lobby, 0, MAX_CATCH_UP_LINES, later));
        assert!(kept.contains(&"first".to_owned()) && kept.contains(&"an hour later".to_owned()));
    }

    #[test]
    fn rooms_age_and_the_whole_archive_are_bounded() {
        let key = Keypair::generate_ed25519();
        let author = key.public().to_peer_id();
        let one = signed(&key, &Room::Lobby, "x").len();
        let mut archive = RoomArchive::in_memory(ArchiveLimits {
            per_author: 100,
            total_bytes: 3 * one,
            ..small()
        });
        let rooms: Vec<Room> = (0..4)
            .map(|i| Room::interest(&format!("r{i}")).unwrap())
            .collect();
        for room in &rooms {
            archive
                .insert(room.clone(), author, NOW, signed(&key, room, "x"), NOW)
                .unwrap();
        }
        assert_eq!(archive.len(), 3);
        assert!(
            !archive.keeps(&rooms[0]),
            "the oldest line of all went first"
        );
        // Lines older than the age limit are neither kept nor served.
        assert!(archive.lines_since(&rooms[3], 0, 10, NOW + 2000).is_empty());
        let old = signed(&key, &Room::Lobby, "old");
        archive
            .insert(Room::Lobby, author, NOW - 5000, old, NOW)
            .unwrap();
        assert!(!archive.keeps(&Room::Lobby));
    }

    #[test]
    fn the_archive_survives_a_restart_and_its_journal_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.jsonl");
        let key = Keypair::generate_ed25519();
        let author = key.public().to_peer_id();
        {
            let mut archive = RoomArchive::open(&path, NOW, small()).unwrap();
            for i in 0..8 {
                let data = signed(&key, &Room::Lobby, &format!("line {i}"));
                archive
                    .insert(Room::Lobby, author, NOW + i, data, NOW)
                    .unwrap();
            }
        }
        let archive = RoomArchive::open(&path, NOW, small()).unwrap();
        let kept = texts(&archive.lines_since(&Room::Lobby, 0, 10, NOW));
        assert_eq!(kept, ["line 5", "line 6", "line 7"]);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 3, "the journal holds only what is kept");
    }

    #[test]
    fn a_deletion_withdraws_the_line_its_edits_and_reactions_but_not_anothers() {
        let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let (a, b) = (alice.public().to_peer_id(), bob.public().to_peer_id());
        let mut archive = RoomArchive::in_memory(ArchiveLimits::default());
        let change = |key: &Keypair, target: MessageId, op: ipm_protocol::Op, text: &str| {
            let mut chat = ChatMessage::new("x", text, None);
            chat.re = Some(ipm_protocol::Change::new(target, &op));
            sign_chat(key, &Room::Lobby.topic(), chat).unwrap()
        };
        let secret = ChatMessage::new("alice", "my pin is 1234", None);
        let secret_id = secret.id;
        let data = sign_chat(&alice, &Room::Lobby.topic(), secret).unwrap();
        archive.insert(Room::Lobby, a, NOW, data, NOW).unwrap();
        let edit = change(
            &alice,
            secret_id,
            ipm_protocol::Op::Edit("pin 9".into()),
            "pin 9",
        );
        archive.insert(Room::Lobby, a, NOW + 1, edit, NOW).unwrap();
        let react = change(&bob, secret_id, ipm_protocol::Op::React("👍".into()), "👍");
        archive
            .insert(Room::Lobby, b, NOW + 2, react.clone(), NOW)
            .unwrap();
        // Bob cannot withdraw alice's line.
        let forged = change(&bob, secret_id, ipm_protocol::Op::Delete, "(deleted)");
        archive
            .insert(Room::Lobby, b, NOW + 3, forged, NOW)
            .unwrap();
        assert_eq!(archive.lines_since(&Room::Lobby, 0, 10, NOW).len(), 3);
        let delete = change(&alice, secret_id, ipm_protocol::Op::Delete, "(deleted)");
        archive
            .insert(Room::Lobby, a, NOW + 4, delete, NOW)
            .unwrap();
        // A reaction coming late is not kept either.
        archive.insert(Room::Lobby, b, NOW + 5, react, NOW).unwrap();
        let kept = texts(&archive.lines_since(&Room::Lobby, 0, 10, NOW));
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(!kept
            .iter()
            .any(|t| t.contains("1234") || t.contains("pin 9")));
    }
}
