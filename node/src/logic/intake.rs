//! What becomes of one gossip message, without I/O: the verdict that feeds gossipsub's peer
//! scoring (accept, ignore, reject) and what the driver does with it (observe the sender's
//! name, record and show a room line, hand a shared file over, pass a presence on, end a
//! registry session).
//!
//! The driver classifies the topic, passes the raw payload, the peer that forwarded it and
//! that peer's address, the time and a [`Context`] answering what the node knows (joined
//! rooms, blocks, contacts, who is listed online, the location group), and carries out the
//! returned [`Action`]s in order.
//!
//! Keys cost nothing, so besides each author's own budget the intake holds what forwarders
//! may bring (see [`crate::logic::forwarder_budget`]): lines of authors not seen before,
//! announcements of users not listed online, and presence announcements in all. What is
//! over them is ignored; a forwarder that keeps bringing lines of fresh keys is penalised.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use libp2p::PeerId;

use ipm_protocol::{
    decode_gossip, name_ticket::NameTicket, Change, DecodeError, FileOffer, Gossip, MessageId,
    Presence, Room,
};

use crate::logic::{
    directory::RecentIds,
    forwarder_budget::{Admission, Budget, ForwarderBudget, ANNOUNCEMENTS},
    presence::goodbye_is_fresh,
};

/// The topic a message arrived on, as the driver classified it.
#[derive(Clone, Debug, PartialEq)]
pub enum Topic {
    /// The presence topic.
    Presence,
    /// The topic of an ipm room.
    Room(Room),
    /// Some other topic.
    Foreign,
}

/// One gossip message.
#[derive(Debug)]
pub struct Arrival<'a> {
    /// The signed author, if the message names one.
    pub source: Option<PeerId>,
    /// Where it arrived.
    pub topic: Topic,
    /// The payload, not decoded yet.
    pub data: &'a [u8],
    /// The peer that delivered it (its author or a peer forwarding it).
    pub forwarder: PeerId,
    /// The address the forwarder is connected from, when directly connected.
    pub forwarder_ip: Option<IpAddr>,
    /// Whether the forwarder is a bootstrap: it holds its own inbound connections to these
    /// budgets, and what it forwards is not held to them again.
    pub via_bootstrap: bool,
    /// When it arrived, by the local clock.
    pub received: Instant,
}

/// What the node knows that the routing depends on.
pub trait Context {
    /// This node's peer id.
    fn local_peer(&self) -> PeerId;
    /// Whether this node is a bootstrap (it keeps registry sessions).
    fn is_bootstrap(&self) -> bool;
    /// Whether this is a user's node: it keeps history and tracks who is online.
    fn is_user_node(&self) -> bool;
    /// Whether the user joined `room` with `/join`.
    fn joined(&self, room: &Room) -> bool;
    /// Whether the node listens to `room`: joined, or a cell of the location group.
    fn subscribed(&self, room: &Room) -> bool;
    /// Whether the user blocked `peer`.
    fn blocked(&self, peer: &PeerId) -> bool;
    /// Whether `peer` is trusted without further checks: one of the user's contacts.
    fn trusted(&self, peer: &PeerId) -> bool;
    /// Whether `peer` is listed online already (its announcements are no newcomer's).
    fn listed(&self, peer: &PeerId) -> bool;
    /// How a line in `room` from a sender at `geo` is shown: the room to show and log it
    /// under and the sender's distance in km, or `None` when it is not shown (a cell of the
    /// location group, and the sender is beyond the radius or gave no position).
    fn placement(&self, room: &Room, geo: Option<&str>) -> Option<(Room, Option<f64>)>;
}

/// Why a message is invalid (its author is penalised).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// Unsigned: no author to hold to account.
    #[error("the message names no author")]
    NoSource,
    /// The topic is neither presence nor an ipm room.
    #[error("the topic is no ipm room")]
    ForeignTopic,
    /// The payload does not decode or breaks the protocol's rules.
    #[error("cannot decode: {0}")]
    Undecodable(DecodeError),
    /// A presence announcement sent to a room.
    #[error("presence sent to a room")]
    PresenceInRoom,
    /// A chat line or a shared file sent to the presence topic.
    #[error("a chat line or file sent to the presence topic")]
    NotPresence,
}

/// The verdict on a message, for gossipsub's validation.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Valid but not wanted here (a duplicate, a room this node left): do not forward.
    Ignore,
    /// Invalid: drop it and penalise the author.
    Reject(Rejection),
    /// A shared file: valid or not as handing it over ([`Action::ShareFile`]) finds.
    Deferred,
}

/// What the driver must do, in this order.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// The forwarder keeps bringing more lines of new authors than it may: penalise it.
    PenaliseForwarder(PeerId),
    /// A bootstrap ends `peer`'s registry session: it said goodbye just now.
    EndSession(PeerId),
    /// `peer` presents a registry's ticket for its name: check it (before `ObserveName`, so
    /// that a name the ticket confirms is not asked about).
    CheckTicket {
        /// The sender.
        peer: PeerId,
        /// Its ticket.
        ticket: Box<NameTicket>,
    },
    /// Note the name `peer` claims (and look it up when due).
    ObserveName {
        /// The sender.
        peer: PeerId,
        /// The name it claims.
        name: String,
    },
    /// Hand a file shared in `room` over to the transfers; its verdict is the message's.
    ShareFile {
        /// Who shared it.
        source: PeerId,
        /// Where.
        room: Room,
        /// The offer.
        offer: FileOffer,
    },
    /// Append an incoming line to the history of `room`, from the sender's display name.
    Record {
        /// The room to log it under.
        room: Room,
        /// The line's id.
        id: MessageId,
        /// The sender.
        peer: PeerId,
        /// The text.
        text: String,
        /// When it arrived (ms since the Unix epoch).
        ts: u64,
        /// What it does to an earlier line (see [`ipm_protocol::Change`]).
        re: Option<Change>,
        /// The payload as the author signed it, when it is signed: kept for members
        /// catching up.
        signed: Option<Vec<u8>>,
    },
    /// Keep a signed line for members catching up (a bootstrap's room archive).
    Archive {
        /// The room it was published in.
        room: Room,
        /// Its author.
        author: PeerId,
        /// The signed payload.
        data: Vec<u8>,
        /// When it arrived (ms since the Unix epoch).
        ts: u64,
    },
    /// Count the line and show it to the user (`Event::Message`).
    Show {
        /// The room to show it under.
        room: Room,
        /// The line's id.
        id: MessageId,
        /// The sender.
        peer: PeerId,
        /// The text.
        text: String,
        /// The sender's distance in km, when both positions are known.
        distance_km: Option<f64>,
        /// What it does to an earlier line (see [`ipm_protocol::Change`]).
        re: Option<Change>,
    },
    /// Record a user's presence announcement (see [`crate::logic::presence::Input::Heard`]).
    Presence {
        /// The announcing peer.
        peer: PeerId,
        /// What it announced.
        presence: Presence,
        /// The peer that delivered it.
        forwarder: PeerId,
    },
}

/// The verdict on one message and what to do with it.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// For gossipsub's validation.
    pub verdict: Verdict,
    /// To carry out, in order.
    pub actions: Vec<Action>,
}

impl Outcome {
    fn bare(verdict: Verdict) -> Self {
        Self {
            verdict,
            actions: Vec::new(),
        }
    }

    fn reject(reason: Rejection) -> Self {
        Self::bare(Verdict::Reject(reason))
    }
}

/// The gossip intake: routes each message and remembers the ids of room lines and shared
/// files already taken in, so that copies are ignored.
#[derive(Debug)]
pub struct Intake {
    seen: RecentIds<MessageId>,
    new_authors: ForwarderBudget,
    newcomers: ForwarderBudget,
    announcements: ForwarderBudget,
}

/// The presence interval the budgets for announcements are set for: a node announcing more
/// often (as in tests) allows proportionally more.
const PRESENCE_BASE: Duration = Duration::from_secs(10);

/// `budget` with its rates scaled to a presence interval of `interval`.
fn scaled(budget: Budget, interval: Duration) -> Budget {
    let factor = if interval.is_zero() {
        1.0
    } else {
        (PRESENCE_BASE.as_secs_f64() / interval.as_secs_f64()).max(1.0)
    };
    let scale = |n: u32| (f64::from(n) * factor).min(f64::from(u32::MAX)) as u32;
    Budget {
        per_forwarder_per_sec: scale(budget.per_forwarder_per_sec),
        per_ip_per_sec: scale(budget.per_ip_per_sec),
        ..budget
    }
}

impl Intake {
    /// An intake remembering the last `capacity` ids, for an overlay whose nodes announce
    /// themselves every `presence_interval` (stretched as it grows).
    pub fn new(capacity: usize, presence_interval: Duration) -> Self {
        Self {
            seen: RecentIds::new(capacity),
            new_authors: ForwarderBudget::new_authors(),
            // Newcomers arrive at human rates, however often their nodes announce.
            newcomers: ForwarderBudget::newcomer(),
            announcements: ForwarderBudget::new(scaled(ANNOUNCEMENTS, presence_interval)),
        }
    }

    /// Whether a line of `author` was shown in a room here (it passed the budget for new
    /// authors): a member of the user's rooms.
    pub fn spoke(&self, author: &PeerId) -> bool {
        self.new_authors.admitted(author)
    }

    /// Remembers `id` (a line or a file this node published itself), so that copies coming
    /// back are ignored; returns true the first time.
    pub fn insert(&mut self, id: MessageId) -> bool {
        self.seen.insert(id)
    }

    /// One step: `now_ms` is the current time (ms since the Unix epoch).
    pub fn handle(&mut self, now_ms: u64, arrival: Arrival<'_>, here: &impl Context) -> Outcome {
        let Some(source) = arrival.source else {
            return Outcome::reject(Rejection::NoSource);
        };
        let room = match arrival.topic {
            Topic::Presence => return self.presence(now_ms, source, &arrival, here),
            Topic::Foreign => return Outcome::reject(Rejection::ForeignTopic),
            Topic::Room(room) => room,
        };
        let gossip = match decode_gossip(arrival.data) {
            Ok(gossip @ (Gossip::Chat(_) | Gossip::FileOffer(_))) => gossip,
            Ok(Gossip::Presence(_)) => return Outcome::reject(Rejection::PresenceInRoom),
            // A later release's kind: not forwarded, not held against anyone.
            Err(DecodeError::UnknownKind(_)) => return Outcome::bare(Verdict::Ignore),
            Err(e) => return Outcome::reject(Rejection::Undecodable(e)),
        };
        if !here.subscribed(&room) {
            return Outcome::bare(Verdict::Ignore);
        }
        let trusted = arrival.via_bootstrap || here.trusted(&source) || source == here.local_peer();
        let admission = self.new_authors.admit(
            source,
            arrival.forwarder,
            arrival.forwarder_ip,
            trusted,
            arrival.received,
        );
        if let Admission::Capped { penalise } = admission {
            return Outcome {
                verdict: Verdict::Ignore,
                actions: if penalise {
                    vec![Action::PenaliseForwarder(arrival.forwarder)]
                } else {
                    Vec::new()
                },
            };
        }
        let chat = match gossip {
            Gossip::Chat(chat) => chat,
            Gossip::FileOffer(offer) => {
                if !here.joined(&room) || !self.seen.insert(offer.transfer) {
                    return Outcome::bare(Verdict::Ignore);
                }
                return Outcome {
                    verdict: Verdict::Deferred,
                    actions: vec![
                        Action::ObserveName {
                            peer: source,
                            name: offer.from_name.clone(),
                        },
                        Action::ShareFile {
                            source,
                            room,
                            offer,
                        },
                    ],
                };
            }
            Gossip::Presence(_) => return Outcome::reject(Rejection::PresenceInRoom),
        };
        if !self.seen.insert(chat.id) {
            return Outcome::bare(Verdict::Ignore);
        }
        let mut actions = vec![Action::ObserveName {
            peer: source,
            name: chat.name,
        }];
        let signed = chat.sig.is_some().then(|| arrival.data.to_vec());
        if here.is_bootstrap() {
            if let Some(data) = &signed {
                actions.push(Action::Archive {
                    room: room.clone(),
                    author: source,
                    data: data.clone(),
                    ts: now_ms,
                });
            }
        }
        // Blocked authors and geo lines from beyond the radius are not shown, but still
        // forwarded: the verdict is about validity, not about this user's taste.
        if here.blocked(&source) {
            return Outcome {
                verdict: Verdict::Accept,
                actions,
            };
        }
        let Some((room, distance_km)) = here.placement(&room, chat.geo.as_deref()) else {
            return Outcome {
                verdict: Verdict::Accept,
                actions,
            };
        };
        if here.is_user_node() {
            actions.push(Action::Record {
                room: room.clone(),
                id: chat.id,
                peer: source,
                text: chat.text.clone(),
                ts: now_ms,
                signed,
                re: chat.re.clone(),
            });
        }
        actions.push(Action::Show {
            room,
            id: chat.id,
            peer: source,
            text: chat.text,
            distance_km,
            re: chat.re,
        });
        Outcome {
            verdict: Verdict::Accept,
            actions,
        }
    }
}

impl Intake {
    /// A message on the presence topic from `source`.
    fn presence(
        &mut self,
        now_ms: u64,
        source: PeerId,
        arrival: &Arrival<'_>,
        here: &impl Context,
    ) -> Outcome {
        let presence = match decode_gossip(arrival.data) {
            Ok(Gossip::Presence(presence)) => presence,
            Ok(Gossip::Chat(_) | Gossip::FileOffer(_)) => {
                return Outcome::reject(Rejection::NotPresence)
            }
            Err(DecodeError::UnknownKind(_)) => return Outcome::bare(Verdict::Ignore),
            Err(e) => return Outcome::reject(Rejection::Undecodable(e)),
        };
        let trusted = arrival.via_bootstrap || here.trusted(&source);
        let (forwarder, ip, now) = (arrival.forwarder, arrival.forwarder_ip, arrival.received);
        let newcomer = !trusted && !presence.leaving && !here.listed(&source);
        // A newcomer over its budget takes nothing from the users listed already.
        let within = (!newcomer
            || self.newcomers.admit(source, forwarder, ip, false, now) == Admission::Pass)
            && self
                .announcements
                .admit(source, forwarder, ip, trusted, now)
                == Admission::Pass;
        if !within {
            return Outcome::bare(Verdict::Ignore);
        }
        presence_actions(now_ms, source, presence, forwarder, here)
    }
}

/// What to do with a valid announcement of `source` delivered by `forwarder`.
fn presence_actions(
    now_ms: u64,
    source: PeerId,
    presence: Presence,
    forwarder: PeerId,
    here: &impl Context,
) -> Outcome {
    let mut actions = Vec::new();
    if here.is_bootstrap() && presence.leaving && goodbye_is_fresh(&presence, now_ms) {
        // Signed by the leaver: its registry session ends with its goodbye.
        actions.push(Action::EndSession(source));
    }
    if here.is_user_node() && source != here.local_peer() {
        if !presence.leaving {
            if let Some(ticket) = presence.ticket.clone() {
                actions.push(Action::CheckTicket {
                    peer: source,
                    ticket: Box::new(ticket),
                });
            }
            actions.push(Action::ObserveName {
                peer: source,
                name: presence.name.clone(),
            });
        }
        actions.push(Action::Presence {
            peer: source,
            presence,
            forwarder,
        });
    }
    Outcome {
        verdict: Verdict::Accept,
        actions,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::{encode_gossip, ChatMessage};
    use std::collections::HashSet;

    /// A node as the tests want it.
    struct Here {
        me: PeerId,
        bootstrap: bool,
        joined: HashSet<Room>,
        /// Cells of the location group: shown under `group` when the sender is at [`NEAR`].
        cells: HashSet<Room>,
        group: Room,
        blocked: HashSet<PeerId>,
        contacts: HashSet<PeerId>,
        listed: HashSet<PeerId>,
    }

    impl Here {
        fn user() -> Self {
            Self {
                me: PeerId::random(),
                bootstrap: false,
                joined: [Room::Lobby].into_iter().collect(),
                cells: HashSet::new(),
                group: Room::Lobby,
                blocked: HashSet::new(),
                contacts: HashSet::new(),
                listed: HashSet::new(),
            }
        }

        fn bootstrap() -> Self {
            Self {
                bootstrap: true,
                ..Self::user()
            }
        }
    }

    impl Context for Here {
        fn local_peer(&self) -> PeerId {
            self.me
        }
        fn is_bootstrap(&self) -> bool {
            self.bootstrap
        }
        fn is_user_node(&self) -> bool {
            !self.bootstrap
        }
        fn joined(&self, room: &Room) -> bool {
            self.joined.contains(room)
        }
        fn subscribed(&self, room: &Room) -> bool {
            self.joined.contains(room) || self.cells.contains(room)
        }
        fn blocked(&self, peer: &PeerId) -> bool {
            self.blocked.contains(peer)
        }
        fn trusted(&self, peer: &PeerId) -> bool {
            self.contacts.contains(peer)
        }
        fn listed(&self, peer: &PeerId) -> bool {
            self.listed.contains(peer)
        }
        fn placement(&self, room: &Room, geo: Option<&str>) -> Option<(Room, Option<f64>)> {
            if self.cells.contains(room) && !self.joined.contains(room) {
                return (geo == Some(NEAR)).then(|| (self.group.clone(), Some(3.0)));
            }
            Some((room.clone(), None))
        }
    }

    /// The one position within the test group's radius.
    const NEAR: &str = "u33dc";

    const NOW_MS: u64 = 1_700_000_000_000;

    fn line(text: &str) -> (ChatMessage, Vec<u8>) {
        let chat = ChatMessage::new("alice", text, None);
        let bytes = encode_gossip(&Gossip::Chat(chat.clone()));
        (chat, bytes)
    }

    fn at(source: PeerId, room: Room, data: &[u8]) -> Arrival<'_> {
        Arrival {
            source: Some(source),
            topic: Topic::Room(room),
            data,
            forwarder: source,
            forwarder_ip: None,
            via_bootstrap: false,
            received: Instant::now(),
        }
    }

    fn on_presence(source: PeerId, data: &[u8]) -> Arrival<'_> {
        Arrival {
            source: Some(source),
            topic: Topic::Presence,
            data,
            forwarder: source,
            forwarder_ip: None,
            via_bootstrap: false,
            received: Instant::now(),
        }
    }

    fn offer() -> FileOffer {
        FileOffer {
            transfer: MessageId::random(),
            from_name: "alice".into(),
            name: "notes.txt".into(),
            size: 12,
            sha256: [7; 32],
            folder: None,
        }
    }

    fn announcement(leaving: bool, sent_ms: u64) -> Presence {
        Presence {
            leaving,
            sent_ms,
            ..Presence::new("bob", vec![Room::Lobby], None, None, None)
        }
    }

    fn observe(peer: PeerId, name: &str) -> Action {
        Action::ObserveName {
            peer,
            name: name.into(),
        }
    }

    #[test]
    fn a_line_is_observed_recorded_and_shown() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let alice = PeerId::random();
        let (chat, bytes) = line("hello");
        let outcome = intake.handle(NOW_MS, at(alice, Room::Lobby, &bytes), &here);
        assert_eq!(outcome.verdict, Verdict::Accept);
        assert_eq!(
            outcome.actions,
            vec![
                observe(alice, "alice"),
                Action::Record {
                    room: Room::Lobby,
                    id: chat.id,
                    peer: alice,
                    text: "hello".into(),
                    ts: NOW_MS,
                    signed: None,
                    re: None,
                },
                Action::Show {
                    room: Room::Lobby,
                    id: chat.id,
                    peer: alice,
                    text: "hello".into(),
                    distance_km: None,
                    re: None,
                },
            ]
        );
    }

    #[test]
    fn signed_lines_are_kept_for_catch_up_and_unsigned_ones_are_not() {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let author = key.public().to_peer_id();
        let signed = ipm_protocol::sign_chat(&key, &Room::Lobby.topic(), line("kept").0).unwrap();
        let (_, unsigned) = line("not kept");
        let archived = |here: &Here, bytes: &[u8]| {
            let mut intake = Intake::new(100, PRESENCE_BASE);
            intake
                .handle(NOW_MS, at(author, Room::Lobby, bytes), here)
                .actions
                .into_iter()
                .find_map(|a| match a {
                    Action::Archive { data, room, .. } => Some((room, data)),
                    Action::Record { signed, .. } => signed.map(|d| (Room::Lobby, d)),
                    _ => None,
                })
        };
        assert_eq!(
            archived(&Here::bootstrap(), &signed),
            Some((Room::Lobby, signed.clone()))
        );
        assert_eq!(archived(&Here::bootstrap(), &unsigned), None);
        assert_eq!(
            archived(&Here::user(), &signed),
            Some((Room::Lobby, signed))
        );
        assert_eq!(archived(&Here::user(), &unsigned), None);
    }

    #[test]
    fn a_bootstrap_shows_a_line_but_keeps_no_history() {
        let here = Here::bootstrap();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let (_, bytes) = line("hello");
        let outcome = intake.handle(NOW_MS, at(PeerId::random(), Room::Lobby, &bytes), &here);
        assert_eq!(outcome.verdict, Verdict::Accept);
        assert!(!outcome
            .actions
            .iter()
            .any(|a| matches!(a, Action::Record { .. })));
        assert!(matches!(outcome.actions.last(), Some(Action::Show { .. })));
    }

    #[test]
    fn a_second_copy_is_ignored() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let (_, bytes) = line("hello");
        let alice = PeerId::random();
        intake.handle(NOW_MS, at(alice, Room::Lobby, &bytes), &here);
        let again = intake.handle(NOW_MS + 5, at(alice, Room::Lobby, &bytes), &here);
        assert_eq!(again, Outcome::bare(Verdict::Ignore));
    }

    #[test]
    fn the_own_line_coming_back_is_ignored() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let (chat, bytes) = line("mine");
        assert!(intake.insert(chat.id));
        let outcome = intake.handle(NOW_MS, at(PeerId::random(), Room::Lobby, &bytes), &here);
        assert_eq!(outcome.verdict, Verdict::Ignore);
    }

    #[test]
    fn a_line_in_a_room_not_listened_to_is_ignored() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let (_, bytes) = line("hello");
        let room = Room::Interest("rust".into());
        let outcome = intake.handle(NOW_MS, at(PeerId::random(), room, &bytes), &here);
        assert_eq!(outcome, Outcome::bare(Verdict::Ignore));
    }

    #[test]
    fn a_line_from_a_blocked_author_is_accepted_but_not_shown() {
        let mut here = Here::user();
        let mallory = PeerId::random();
        here.blocked.insert(mallory);
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let chat = ChatMessage::new("mallory", "spam", None);
        let bytes = encode_gossip(&Gossip::Chat(chat.clone()));
        let outcome = intake.handle(NOW_MS, at(mallory, Room::Lobby, &bytes), &here);
        assert_eq!(
            outcome,
            Outcome {
                verdict: Verdict::Accept,
                actions: vec![observe(mallory, &chat.name)],
            }
        );
    }

    #[test]
    fn a_group_line_beyond_the_radius_is_accepted_but_not_shown() {
        let mut here = Here::user();
        let cell = Room::Geo("u33db".into());
        here.cells.insert(cell.clone());
        here.group = Room::Geo("u33d".into());
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let far = ChatMessage::new("alice", "far away", Some("u0000".into()));
        let bytes = encode_gossip(&Gossip::Chat(far));
        let alice = PeerId::random();
        let outcome = intake.handle(NOW_MS, at(alice, cell.clone(), &bytes), &here);
        assert_eq!(outcome.verdict, Verdict::Accept);
        assert_eq!(outcome.actions, vec![observe(alice, "alice")]);
        // Within the radius: shown under the group's room with the distance.
        let near = ChatMessage::new("alice", "close by", Some("u33dc".into()));
        let bytes = encode_gossip(&Gossip::Chat(near));
        let outcome = intake.handle(NOW_MS, at(alice, cell, &bytes), &here);
        match outcome.actions.last() {
            Some(Action::Show {
                room, distance_km, ..
            }) => {
                assert_eq!(*room, Room::Geo("u33d".into()));
                assert_eq!(*distance_km, Some(3.0));
            }
            other => panic!("not shown: {other:?}"),
        }
    }

    #[test]
    fn an_unsigned_message_or_a_foreign_topic_is_rejected() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let (_, bytes) = line("hello");
        let unsigned = Arrival {
            source: None,
            topic: Topic::Room(Room::Lobby),
            data: &bytes,
            forwarder: PeerId::random(),
            forwarder_ip: None,
            via_bootstrap: false,
            received: Instant::now(),
        };
        assert_eq!(
            intake.handle(NOW_MS, unsigned, &here).verdict,
            Verdict::Reject(Rejection::NoSource)
        );
        let foreign = Arrival {
            source: Some(PeerId::random()),
            topic: Topic::Foreign,
            data: &bytes,
            forwarder: PeerId::random(),
            forwarder_ip: None,
            via_bootstrap: false,
            received: Instant::now(),
        };
        assert_eq!(
            intake.handle(NOW_MS, foreign, &here).verdict,
            Verdict::Reject(Rejection::ForeignTopic)
        );
    }

    #[test]
    fn garbage_is_rejected() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let outcome = intake.handle(
            NOW_MS,
            at(PeerId::random(), Room::Lobby, b"\xff\x00"),
            &here,
        );
        assert!(matches!(
            outcome.verdict,
            Verdict::Reject(Rejection::Undecodable(_))
        ));
        let outcome = intake.handle(NOW_MS, on_presence(PeerId::random(), b"\xff"), &here);
        assert!(matches!(
            outcome.verdict,
            Verdict::Reject(Rejection::Undecodable(_))
        ));
    }

    #[test]
    fn a_later_releases_kind_is_ignored_not_rejected() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let future = serde_cbor::to_vec(&serde_cbor::Value::Map(
            [
                (
                    serde_cbor::Value::Text("v".into()),
                    serde_cbor::Value::Integer(1),
                ),
                (
                    serde_cbor::Value::Text("body".into()),
                    serde_cbor::Value::Map(
                        [(
                            serde_cbor::Value::Text("Poll".into()),
                            serde_cbor::Value::Text("lunch?".into()),
                        )]
                        .into(),
                    ),
                ),
            ]
            .into(),
        ))
        .unwrap();
        let outcome = intake.handle(NOW_MS, at(PeerId::random(), Room::Lobby, &future), &here);
        assert_eq!(outcome.verdict, Verdict::Ignore);
        assert!(outcome.actions.is_empty());
        let outcome = intake.handle(NOW_MS, on_presence(PeerId::random(), &future), &here);
        assert_eq!(outcome.verdict, Verdict::Ignore);
    }

    #[test]
    fn presence_sent_to_a_room_is_rejected() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let bytes = encode_gossip(&Gossip::Presence(announcement(false, NOW_MS)));
        let outcome = intake.handle(NOW_MS, at(PeerId::random(), Room::Lobby, &bytes), &here);
        assert_eq!(outcome, Outcome::reject(Rejection::PresenceInRoom));
    }

    #[test]
    fn a_chat_line_sent_to_the_presence_topic_is_rejected() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let (_, bytes) = line("hello");
        let outcome = intake.handle(NOW_MS, on_presence(PeerId::random(), &bytes), &here);
        assert_eq!(outcome, Outcome::reject(Rejection::NotPresence));
        let bytes = encode_gossip(&Gossip::FileOffer(offer()));
        let outcome = intake.handle(NOW_MS, on_presence(PeerId::random(), &bytes), &here);
        assert_eq!(outcome, Outcome::reject(Rejection::NotPresence));
    }

    #[test]
    fn a_shared_file_is_handed_over_once_and_only_in_a_joined_room() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let alice = PeerId::random();
        let shared = offer();
        let bytes = encode_gossip(&Gossip::FileOffer(shared.clone()));
        let outcome = intake.handle(NOW_MS, at(alice, Room::Lobby, &bytes), &here);
        assert_eq!(
            outcome,
            Outcome {
                verdict: Verdict::Deferred,
                actions: vec![
                    observe(alice, "alice"),
                    Action::ShareFile {
                        source: alice,
                        room: Room::Lobby,
                        offer: shared,
                    },
                ],
            }
        );
        let again = intake.handle(NOW_MS, at(alice, Room::Lobby, &bytes), &here);
        assert_eq!(again, Outcome::bare(Verdict::Ignore));
        // A cell of the location group is listened to but not joined: no files there.
        let mut here = Here::user();
        let cell = Room::Geo("u33db".into());
        here.cells.insert(cell.clone());
        let bytes = encode_gossip(&Gossip::FileOffer(offer()));
        let outcome = intake.handle(NOW_MS, at(alice, cell, &bytes), &here);
        assert_eq!(outcome, Outcome::bare(Verdict::Ignore));
    }

    #[test]
    fn a_users_presence_is_observed_and_passed_on() {
        let here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let bob = PeerId::random();
        let hello = announcement(false, NOW_MS);
        let bytes = encode_gossip(&Gossip::Presence(hello.clone()));
        let outcome = intake.handle(NOW_MS, on_presence(bob, &bytes), &here);
        assert_eq!(
            outcome,
            Outcome {
                verdict: Verdict::Accept,
                actions: vec![
                    observe(bob, "bob"),
                    Action::Presence {
                        peer: bob,
                        presence: hello,
                        forwarder: bob,
                    },
                ],
            }
        );
        // A goodbye: no name to observe, and a user's node ends no session.
        let bye = announcement(true, NOW_MS);
        let bytes = encode_gossip(&Gossip::Presence(bye.clone()));
        let outcome = intake.handle(NOW_MS, on_presence(bob, &bytes), &here);
        assert_eq!(
            outcome.actions,
            vec![Action::Presence {
                peer: bob,
                presence: bye,
                forwarder: bob,
            }]
        );
        // The own announcement coming back changes nothing.
        let outcome = intake.handle(NOW_MS, on_presence(here.me, &bytes), &here);
        assert_eq!(outcome, Outcome::bare(Verdict::Accept));
    }

    #[test]
    fn a_fresh_goodbye_ends_the_session_at_a_bootstrap() {
        let here = Here::bootstrap();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let bob = PeerId::random();
        let bytes = encode_gossip(&Gossip::Presence(announcement(true, NOW_MS - 99_999)));
        let outcome = intake.handle(NOW_MS, on_presence(bob, &bytes), &here);
        assert_eq!(
            outcome,
            Outcome {
                verdict: Verdict::Accept,
                actions: vec![Action::EndSession(bob)],
            }
        );
        // A bootstrap does not track presence; an ordinary announcement does nothing.
        let bytes = encode_gossip(&Gossip::Presence(announcement(false, NOW_MS)));
        let outcome = intake.handle(NOW_MS, on_presence(bob, &bytes), &here);
        assert_eq!(outcome, Outcome::bare(Verdict::Accept));
    }

    #[test]
    fn a_goodbye_older_than_100_s_does_not_end_a_session() {
        let here = Here::bootstrap();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let bytes = encode_gossip(&Gossip::Presence(announcement(true, NOW_MS - 100_000)));
        let outcome = intake.handle(NOW_MS, on_presence(PeerId::random(), &bytes), &here);
        assert_eq!(outcome, Outcome::bare(Verdict::Accept));
    }

    fn via(source: PeerId, forwarder: PeerId, topic: Topic, data: &[u8]) -> Arrival<'_> {
        Arrival {
            source: Some(source),
            topic,
            data,
            forwarder,
            forwarder_ip: Some("10.1.2.3".parse().unwrap()),
            via_bootstrap: false,
            received: Instant::now(),
        }
    }

    #[test]
    fn lines_of_fresh_keys_over_one_forwarder_are_capped_and_the_forwarder_penalised() {
        let here = Here::user();
        let mut intake = Intake::new(10_000, PRESENCE_BASE);
        let mallory = PeerId::random();
        let mut shown = 0;
        let mut penalties = 0;
        for _ in 0..200 {
            let (_, bytes) = line("buy now");
            let outcome = intake.handle(
                NOW_MS,
                via(PeerId::random(), mallory, Topic::Room(Room::Lobby), &bytes),
                &here,
            );
            shown += outcome
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Show { .. }))
                .count();
            penalties += outcome
                .actions
                .iter()
                .filter(|a| **a == Action::PenaliseForwarder(mallory))
                .count();
        }
        assert!((60..=62).contains(&shown), "{shown} shown");
        assert!(penalties > 50, "{penalties} penalties");
        // A contact's line through the same forwarder still shows, as does a newcomer's
        // through an honest forwarder.
        let mut here = here;
        let friend = PeerId::random();
        here.contacts.insert(friend);
        let (_, bytes) = line("hi");
        let outcome = intake.handle(
            NOW_MS,
            via(friend, mallory, Topic::Room(Room::Lobby), &bytes),
            &here,
        );
        assert!(matches!(outcome.actions.last(), Some(Action::Show { .. })));
        let newcomer = PeerId::random();
        let (_, bytes) = line("hello all");
        let outcome = intake.handle(
            NOW_MS,
            via(newcomer, newcomer, Topic::Room(Room::Lobby), &bytes),
            &here,
        );
        assert_eq!(outcome.verdict, Verdict::Accept);
    }

    #[test]
    fn announcements_of_fresh_keys_over_one_forwarder_are_capped() {
        let mut here = Here::user();
        let mut intake = Intake::new(100, PRESENCE_BASE);
        let mallory = PeerId::random();
        let hello = encode_gossip(&Gossip::Presence(announcement(false, NOW_MS)));
        let accepted = (0..500)
            .filter(|_| {
                let arrival = via(PeerId::random(), mallory, Topic::Presence, &hello);
                intake.handle(NOW_MS, arrival, &here).verdict == Verdict::Accept
            })
            .count();
        assert!((40..=42).contains(&accepted), "{accepted} accepted");
        // Users listed already keep announcing through it, up to its overall budget.
        let bob = PeerId::random();
        here.listed.insert(bob);
        let arrival = via(bob, mallory, Topic::Presence, &hello);
        assert_eq!(
            intake.handle(NOW_MS, arrival, &here).verdict,
            Verdict::Accept
        );
    }
}
