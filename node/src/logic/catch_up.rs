//! Catching up on rooms after being away, without I/O: which rooms still wait for what
//! they missed, whom to ask (a connected bootstrap first, else a member of the room), and
//! which lines of an answer to take.
//!
//! A room waits from the moment it is joined, or the node (re)gains its first connection,
//! until one answer came back. Every line of an answer must carry its author's signature
//! for that room; a line already in the log (same author and id), one repeated in the answer
//! or one older than asked for is dropped, so that each line shows once, in order.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;

use ipm_protocol::{
    limits::{MAX_CATCH_UP_AGE_MS, MAX_CATCH_UP_LINES},
    verify_chat, ArchivedLine, ChatMessage, MessageId, Op, Room,
};

/// How far before the last line a node has it asks from: clocks of the node answering and
/// of this node differ, and what overlaps is dropped as already known.
pub const CLOCK_MARGIN_MS: u64 = 2 * 60 * 1000;

/// Most peers tried for one room before it waits for the next reconnection.
const MAX_TRIES: usize = 4;

/// One question to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// Whom to ask.
    pub peer: PeerId,
    /// For which room.
    pub room: Room,
    /// Lines received after this time.
    pub since_ms: u64,
    /// At most this many.
    pub limit: u16,
}

/// Whom a room can be asked of right now.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Connected bootstraps.
    pub bootstraps: Vec<PeerId>,
    /// Connected peers subscribed to each room.
    pub members: HashMap<Room, Vec<PeerId>>,
}

/// A room waiting for what it missed.
#[derive(Clone, Debug)]
struct Waiting {
    since_ms: u64,
    asking: Option<PeerId>,
    tried: HashSet<PeerId>,
}

/// The rooms still catching up.
#[derive(Debug, Default)]
pub struct CatchUp {
    rooms: HashMap<Room, Waiting>,
}

impl CatchUp {
    /// Nothing to catch up yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `room` should catch up on what came after `last_ms` (the time of the last line the
    /// node has of it, if any), at `now_ms`. A room asked already is not asked again.
    pub fn want(&mut self, room: Room, last_ms: Option<u64>, now_ms: u64) {
        let oldest = now_ms.saturating_sub(MAX_CATCH_UP_AGE_MS);
        let since_ms = last_ms.map_or(oldest, |t| t.saturating_sub(CLOCK_MARGIN_MS).max(oldest));
        let waiting = self.rooms.entry(room).or_insert(Waiting {
            since_ms,
            asking: None,
            tried: HashSet::new(),
        });
        waiting.since_ms = waiting.since_ms.min(since_ms);
    }

    /// The node left `room`: it no longer catches up on it.
    pub fn forget(&mut self, room: &Room) {
        self.rooms.remove(room);
    }

    /// The rooms that wait and could be asked of someone now (none is asked yet).
    pub fn unasked(&self) -> Vec<Room> {
        self.rooms
            .iter()
            .filter(|(_, w)| w.asking.is_none() && w.tried.len() < MAX_TRIES)
            .map(|(room, _)| room.clone())
            .collect()
    }

    /// Whether `room` still waits.
    pub fn waits(&self, room: &Room) -> bool {
        self.rooms.contains_key(room)
    }

    /// The questions to send now: for each waiting room no one is asked for, a connected
    /// bootstrap not tried yet, else a member not tried yet.
    pub fn asks(&mut self, sources: &Sources) -> Vec<Ask> {
        let mut out = Vec::new();
        for (room, waiting) in &mut self.rooms {
            if waiting.asking.is_some() || waiting.tried.len() >= MAX_TRIES {
                continue;
            }
            let members = sources.members.get(room).map(Vec::as_slice).unwrap_or(&[]);
            let Some(peer) = sources
                .bootstraps
                .iter()
                .chain(members)
                .find(|p| !waiting.tried.contains(*p))
                .copied()
            else {
                continue;
            };
            waiting.asking = Some(peer);
            waiting.tried.insert(peer);
            out.push(Ask {
                peer,
                room: room.clone(),
                since_ms: waiting.since_ms,
                limit: MAX_CATCH_UP_LINES as u16,
            });
        }
        out.sort_by(|a, b| a.room.cmp(&b.room));
        out
    }

    /// `peer` answered for `room`: the room is done, and the answer is to be taken. An answer
    /// nobody waits for (the room was left, or someone else answered) is dropped: `None`.
    pub fn answered(&mut self, peer: PeerId, room: &Room) -> Option<u64> {
        match self.rooms.get(room) {
            Some(waiting) if waiting.asking == Some(peer) => {
                self.rooms.remove(room).map(|w| w.since_ms)
            }
            _ => None,
        }
    }

    /// Asking `peer` for `room` failed (refused, unreachable, a bad answer): another peer
    /// is asked next.
    pub fn failed(&mut self, peer: PeerId, room: &Room) {
        if let Some(waiting) = self.rooms.get_mut(room) {
            if waiting.asking == Some(peer) {
                waiting.asking = None;
            }
        }
    }

    /// Every question to `peer` is lost (it disconnected).
    pub fn gone(&mut self, peer: &PeerId) {
        for waiting in self.rooms.values_mut() {
            if waiting.asking.as_ref() == Some(peer) {
                waiting.asking = None;
            }
        }
    }
}

/// A line of an answer that holds: to be logged and shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Its author.
    pub author: PeerId,
    /// The line.
    pub chat: ChatMessage,
    /// When the answering node received it (at most now).
    pub ts: u64,
    /// The signed payload, kept in the log for others catching up.
    pub data: Vec<u8>,
}

/// What an answer brought.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sifted {
    /// The lines to take, oldest first.
    pub lines: Vec<Line>,
    /// Lines whose signature does not hold: the answering peer forged or altered them.
    pub forged: usize,
}

/// Sifts an answer for `room` asked `since_ms`, at `now_ms`: lines already `known` (author
/// and id, from the log), repeated, or older than asked for are dropped, and lines whose
/// signature does not hold are counted as forged.
pub fn sift(
    room: &Room,
    since_ms: u64,
    answer: Vec<ArchivedLine>,
    known: &HashSet<(PeerId, MessageId)>,
    now_ms: u64,
) -> Sifted {
    let topic = room.topic();
    let mut out = Sifted::default();
    let mut taken = HashSet::new();
    for line in answer.into_iter().take(MAX_CATCH_UP_LINES) {
        let Ok(author) = PeerId::from_bytes(&line.author) else {
            out.forged += 1;
            continue;
        };
        let Ok(chat) = verify_chat(&author, &topic, &line.data) else {
            out.forged += 1;
            continue;
        };
        if line.ts <= since_ms
            || known.contains(&(author, chat.id))
            || !taken.insert((author, chat.id))
        {
            continue;
        }
        out.lines.push(Line {
            author,
            chat,
            ts: line.ts.min(now_ms),
            data: line.data.into_vec(),
        });
    }
    out.lines.sort_by_key(|l| l.ts);
    out
}

/// What to print of each line of one answer, so that it reads as the conversation stands
/// now: a line edited within the answer shows its new text and the edit shows nothing; a
/// line deleted within the answer shows nothing, nor do its deletion and its reactions.
/// `None`: print nothing for this line (it is logged all the same).
pub fn as_it_stands(lines: &[&ChatMessage], authors: &[PeerId]) -> Vec<Option<String>> {
    let mut shown: Vec<Option<String>> = lines.iter().map(|c| Some(c.text.clone())).collect();
    let at: HashMap<MessageId, usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, c)| c.re.as_ref().is_none_or(|r| r.kind == "reply"))
        .map(|(i, c)| (c.id, i))
        .collect();
    let mut deleted = HashSet::new();
    for (i, chat) in lines.iter().enumerate() {
        let Some(change) = &chat.re else { continue };
        let Some(&target) = at.get(&change.target) else {
            continue;
        };
        let by_author = authors.get(target) == authors.get(i);
        match change.op() {
            Some(Op::Edit(text)) if by_author => {
                if !deleted.contains(&target) {
                    shown[target] = Some(text);
                }
                shown[i] = None;
            }
            Some(Op::Delete) if by_author => {
                deleted.insert(target);
                shown[target] = None;
                shown[i] = None;
            }
            Some(Op::React(_)) if deleted.contains(&target) => shown[i] = None,
            _ => {}
        }
    }
    // A reaction before the deletion of its line is not printed either.
    for (i, chat) in lines.iter().enumerate() {
        if let Some(change) = &chat.re {
            let voided = at.get(&change.target).is_some_and(|t| deleted.contains(t));
            if voided && change.kind != "reply" {
                shown[i] = None;
            }
        }
    }
    shown
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::{decode_gossip, encode_gossip, sign_chat, Gossip};
    use libp2p::identity::Keypair;
    use serde_bytes::ByteBuf;

    const NOW: u64 = 1_800_000_000_000;

    fn archived(key: &Keypair, room: &Room, text: &str, ts: u64) -> ArchivedLine {
        let data = sign_chat(key, &room.topic(), ChatMessage::new("alice", text, None)).unwrap();
        ArchivedLine {
            author: ByteBuf::from(key.public().to_peer_id().to_bytes()),
            ts,
            data: ByteBuf::from(data),
        }
    }

    fn texts(s: &Sifted) -> Vec<&str> {
        s.lines.iter().map(|l| l.chat.text.as_str()).collect()
    }

    #[test]
    fn a_bootstrap_is_asked_first_then_members_one_at_a_time() {
        let (boot, m1, m2) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut catch_up = CatchUp::new();
        catch_up.want(Room::Lobby, Some(NOW - 10_000), NOW);
        assert_eq!(catch_up.unasked(), [Room::Lobby]);
        let sources = Sources {
            bootstraps: vec![boot],
            members: HashMap::from([(Room::Lobby, vec![m1, m2])]),
        };
        let asks = catch_up.asks(&sources);
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].peer, boot);
        assert_eq!(asks[0].since_ms, NOW - 10_000 - CLOCK_MARGIN_MS);
        assert!(catch_up.asks(&sources).is_empty(), "one question at a time");
        assert!(catch_up.unasked().is_empty());
        catch_up.failed(boot, &Room::Lobby);
        assert_eq!(catch_up.asks(&sources)[0].peer, m1);
        catch_up.gone(&m1);
        assert_eq!(catch_up.asks(&sources)[0].peer, m2);
        assert_eq!(catch_up.answered(m1, &Room::Lobby), None, "not asked now");
        assert!(catch_up.answered(m2, &Room::Lobby).is_some());
        assert!(!catch_up.waits(&Room::Lobby));
        assert!(catch_up.asks(&sources).is_empty());
    }

    #[test]
    fn a_room_without_a_line_asks_for_the_last_seven_days_and_nobody_is_asked_twice() {
        let mut catch_up = CatchUp::new();
        catch_up.want(Room::Lobby, None, NOW);
        let peers: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
        let sources = Sources {
            bootstraps: Vec::new(),
            members: HashMap::from([(Room::Lobby, peers)]),
        };
        let first = catch_up.asks(&sources);
        assert_eq!(first[0].since_ms, NOW - MAX_CATCH_UP_AGE_MS);
        let mut asked = vec![first[0].peer];
        loop {
            catch_up.failed(*asked.last().unwrap(), &Room::Lobby);
            match catch_up.asks(&sources).first() {
                Some(ask) => asked.push(ask.peer),
                None => break,
            }
        }
        assert_eq!(asked.len(), MAX_TRIES);
        let unique: HashSet<_> = asked.iter().collect();
        assert_eq!(unique.len(), asked.len());
        catch_up.forget(&Room::Lobby);
        assert!(!catch_up.waits(&Room::Lobby));
    }

    #[test]
    fn forged_altered_known_repeated_and_old_lines_are_dropped() {
        let (alice, mallory) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let room = Room::Lobby;
        let good = archived(&alice, &room, "two", NOW - 10);
        let earlier = archived(&alice, &room, "one", NOW - 20);
        let known = archived(&alice, &room, "known", NOW - 15);
        let old = archived(&alice, &room, "old", NOW - 5000);
        // Mallory's line claimed as Alice's.
        let mut forged = archived(&mallory, &room, "forged", NOW - 5);
        forged.author = ByteBuf::from(alice.public().to_peer_id().to_bytes());
        // Alice's line with its text changed.
        let mut altered = archived(&alice, &room, "three", NOW - 4);
        let Gossip::Chat(mut chat) = decode_gossip(&altered.data).unwrap() else {
            panic!("a chat line")
        };
        chat.text = "thr3e".into();
        altered.data = ByteBuf::from(encode_gossip(&Gossip::Chat(chat)));
        // A line signed for another room.
        let elsewhere = archived(&alice, &Room::interest("rust").unwrap(), "x", NOW - 3);
        let id_of = |l: &ArchivedLine| match decode_gossip(&l.data).unwrap() {
            Gossip::Chat(chat) => chat.id,
            _ => panic!("a chat line"),
        };
        let known_ids = HashSet::from([(alice.public().to_peer_id(), id_of(&known))]);
        let answer = vec![
            good.clone(),
            earlier,
            known,
            good,
            old,
            forged,
            altered,
            elsewhere,
        ];
        let sifted = sift(&room, NOW - 1000, answer, &known_ids, NOW);
        assert_eq!(texts(&sifted), ["one", "two"]);
        assert_eq!(sifted.forged, 3);
    }

    #[test]
    fn a_time_in_the_future_is_taken_as_now() {
        let alice = Keypair::generate_ed25519();
        let line = archived(&alice, &Room::Lobby, "soon", NOW + 1_000_000);
        let sifted = sift(&Room::Lobby, 0, vec![line], &HashSet::new(), NOW);
        assert_eq!(sifted.lines[0].ts, NOW);
    }

    #[test]
    fn an_answer_prints_as_the_conversation_stands_now() {
        let (alice, bob) = (PeerId::random(), PeerId::random());
        let line = |text: &str| ChatMessage::new("x", text, None);
        let change = |target: MessageId, op: Op| {
            let mut c = ChatMessage::new("x", "(fallback)", None);
            c.re = Some(ipm_protocol::Change::new(target, &op));
            c
        };
        let lunch = line("lunch at noon?");
        let secret = line("my pin is 1234");
        let edit = change(lunch.id, Op::Edit("lunch at one?".into()));
        let forged = change(lunch.id, Op::Edit("lunch never".into()));
        let react = change(secret.id, Op::React("👍".into()));
        let delete = change(secret.id, Op::Delete);
        let reply = change(lunch.id, Op::Reply);
        let lines = [&lunch, &secret, &edit, &forged, &react, &delete, &reply];
        let authors = [alice, alice, alice, bob, bob, alice, bob];
        let shown = as_it_stands(&lines, &authors);
        assert_eq!(
            shown,
            vec![
                Some("lunch at one?".to_owned()),
                None,
                None,
                Some("(fallback)".to_owned()),
                None,
                None,
                Some("(fallback)".to_owned()),
            ]
        );
    }
}
