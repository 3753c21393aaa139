//! Room catch-up, the driver: asks what `logic::catch_up` decides over `/ipm/history/1`,
//! logs and shows the lines of an answer under one marker, and answers others — a
//! bootstrap from its room archive, a member from its own logs.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use libp2p::{
    request_response::{OutboundRequestId, ResponseChannel},
    PeerId,
};
use serde_bytes::ByteBuf;
use tracing::{debug, warn};

use ipm_protocol::{
    limits::MAX_CATCH_UP_LINES, ArchivedLine, ChatMessage, HistoryRequest, HistoryResponse,
    MessageId, Room,
};

use super::{location::geo_view, EventLoop};
use crate::{
    event::Event,
    logic::{
        answer_budget::{AnswerBudget, AnswerLimits},
        catch_up::{self, CatchUp, Sources},
        intake::Action,
        notices::CatchUpMarkers,
        timeline::{kind, Timeline},
    },
    net::exchange::{exchange, Exchange},
    services::address_budget::AddressKey,
    store::history::History,
};

/// Lines of its own log a node reads to tell which lines of an answer it has already.
const KNOWN_WINDOW: usize = 2 * MAX_CATCH_UP_LINES;

/// Longest caught-up lines wait for their authors' names before they are shown.
const NAME_WAIT: Duration = Duration::from_secs(3);
/// Most answers waiting for names at once.
const MAX_HELD: usize = 64;

/// Caught-up lines of one answer waiting to be logged and shown under their marker.
#[derive(Debug)]
struct Held {
    until: Instant,
    marker: Option<Event>,
    names: HashSet<String>,
    shows: Vec<Action>,
}

/// What the loop keeps for catching up.
#[derive(Debug)]
pub(crate) struct CatchUpState {
    rooms: CatchUp,
    asked: HashMap<OutboundRequestId, (PeerId, Room)>,
    /// What answering costs each asker, its address and the node.
    answers: AnswerBudget<PeerId, AddressKey>,
    markers: CatchUpMarkers,
    held: Vec<Held>,
}

impl CatchUpState {
    /// The state of a node; `serves_archive` for a bootstrap answering from its archive.
    pub(crate) fn new(serves_archive: bool) -> Self {
        Self {
            rooms: CatchUp::new(),
            asked: HashMap::new(),
            answers: AnswerBudget::new(match serves_archive {
                true => AnswerLimits::bootstrap(),
                false => AnswerLimits::member(),
            }),
            markers: CatchUpMarkers::default(),
            held: Vec::new(),
        }
    }
}

impl EventLoop {
    /// `room` was joined: it catches up on what it missed.
    pub(super) fn catch_up_on(&mut self, room: Room) {
        if self.store.history.is_none() {
            return;
        }
        let last = self.last_logged(&room);
        self.catch_up.rooms.want(room, last, ipm_protocol::now_ms());
        self.ask_for_missed();
    }

    /// `room` was left: it no longer catches up.
    pub(super) fn stop_catching_up(&mut self, room: &Room) {
        self.catch_up.rooms.forget(room);
    }

    /// A first connection to `peer`: when it is the node's only one, or the first bootstrap,
    /// the node is back online and every room catches up; then whoever can be asked is.
    pub(super) fn catch_up_connected(&mut self, peer: PeerId) {
        let bootstraps = self.connected_bootstraps();
        let back_online = self.swarm.connected_peers().count() == 1
            || (bootstraps.len() == 1 && bootstraps[0] == peer);
        if back_online && self.store.history.is_some() {
            let now = ipm_protocol::now_ms();
            let group = self.people.group.iter().flat_map(|g| g.rooms());
            let rooms: Vec<Room> = self.rooms.iter().cloned().chain(group).collect();
            for room in rooms {
                let last = self.last_logged(&room);
                self.catch_up.rooms.want(room, last, now);
            }
        }
        self.ask_for_missed();
    }

    /// `peer` is gone: what it was asked is asked of someone else.
    pub(super) fn catch_up_gone(&mut self, peer: PeerId) {
        self.catch_up.rooms.gone(&peer);
        self.ask_for_missed();
    }

    /// Sends the questions due: to a connected bootstrap, else to a connected member.
    pub(super) fn ask_for_missed(&mut self) {
        let rooms = self.catch_up.rooms.unasked();
        if rooms.is_empty() {
            return;
        }
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let mut members: HashMap<Room, Vec<PeerId>> = HashMap::new();
        for room in rooms {
            let topic = libp2p::gossipsub::IdentTopic::new(room.topic()).hash();
            let mut peers: Vec<PeerId> = gossipsub
                .all_peers()
                .filter(|(_, topics)| topics.contains(&&topic))
                .map(|(peer, _)| *peer)
                .collect();
            peers.sort();
            members.insert(room, peers);
        }
        let sources = Sources {
            bootstraps: self.connected_bootstraps(),
            members,
        };
        for ask in self.catch_up.rooms.asks(&sources) {
            let request = HistoryRequest {
                topic: ask.room.topic(),
                since_ms: ask.since_ms,
                limit: ask.limit,
            };
            let behaviour = self.swarm.behaviour_mut();
            let id = behaviour.history.send_request(&ask.peer, request);
            behaviour.peer_manager.request_sent(ask.peer, "history", id);
            debug!(peer = %ask.peer, room = %ask.room, "asking for missed lines");
            self.catch_up.asked.insert(id, (ask.peer, ask.room));
        }
    }

    /// One event of `/ipm/history/1`.
    pub(super) fn on_history_event(
        &mut self,
        event: libp2p::request_response::Event<HistoryRequest, HistoryResponse>,
    ) {
        match exchange("history", event) {
            Exchange::Request {
                peer,
                request,
                channel,
            } => self.answer_history(peer, request, channel),
            Exchange::Response {
                peer,
                request_id,
                response,
            } => {
                let Some((_, room)) = self.catch_up.asked.remove(&request_id) else {
                    return;
                };
                match response {
                    HistoryResponse::Lines(lines) => self.take_missed(peer, room, lines),
                    HistoryResponse::Refused { reason } => {
                        debug!(%peer, %room, "catch-up refused: {reason}");
                        self.catch_up.rooms.failed(peer, &room);
                        self.ask_for_missed();
                    }
                }
            }
            Exchange::Failed {
                peer,
                request_id,
                error,
            } => {
                if let Some((_, room)) = self.catch_up.asked.remove(&request_id) {
                    debug!(%peer, %room, "catch-up failed: {error}");
                    self.catch_up.rooms.failed(peer, &room);
                    self.ask_for_missed();
                }
            }
            Exchange::Done => {}
        }
    }

    /// Logs and shows what `peer` sent for `room`, under one marker.
    fn take_missed(&mut self, peer: PeerId, room: Room, lines: Vec<ArchivedLine>) {
        let Some(since) = self.catch_up.rooms.answered(peer, &room) else {
            return;
        };
        let log_room = self.log_room(&room);
        let known = self.known_lines(&log_room);
        let now = ipm_protocol::now_ms();
        let sifted = catch_up::sift(&room, since, lines, &known, now);
        if sifted.forged > 0 {
            warn!(%peer, %room, forged = sifted.forged, "catch-up answer with forged lines");
            self.penalise_author(Some(peer));
        }
        let mut shown = Vec::new();
        for line in sifted.lines {
            // A line that came live meanwhile, or from a blocked author, is not shown again.
            if !self.intake.insert(line.chat.id) || self.directory.is_blocked(&line.author) {
                continue;
            }
            self.observe_name(line.author, &line.chat.name);
            let Some((shown_in, distance_km)) =
                geo_view(&self.people, &self.rooms, &room, line.chat.geo.as_deref())
            else {
                continue;
            };
            shown.push((shown_in, distance_km, line));
        }
        // A log with lines before this answer: the node had been in the room.
        let been_here = !known.is_empty();
        // Lines a person will read: not the edits, reactions and deletions among them.
        let new_lines = shown
            .iter()
            .filter(|(_, _, l)| l.chat.re.as_ref().is_none_or(|c| c.kind == kind::REPLY))
            .count();
        let marker = self
            .catch_up
            .markers
            .decide(&log_room.slug(), been_here, new_lines);
        let marker = marker.map(|marker| Event::CaughtUp {
            room: log_room,
            count: marker.count(),
            first_visit: !marker.been_here(),
        });
        let mut shows = Vec::new();
        let mut names = HashSet::new();
        let texts = {
            let chats: Vec<&ChatMessage> = shown.iter().map(|(_, _, l)| &l.chat).collect();
            let authors: Vec<PeerId> = shown.iter().map(|(_, _, l)| l.author).collect();
            catch_up::as_it_stands(&chats, &authors)
        };
        for ((shown_in, distance_km, line), text) in shown.into_iter().zip(texts) {
            let chat = line.chat;
            shows.push(Action::Record {
                room: shown_in.clone(),
                id: chat.id,
                peer: line.author,
                text: chat.text.clone(),
                ts: line.ts,
                signed: Some(line.data),
                re: chat.re.clone(),
            });
            names.insert(chat.name);
            let Some(text) = text else {
                continue;
            };
            // An edit within the answer is folded into its line: shown as a plain line.
            let re = chat
                .re
                .filter(|c| c.kind == kind::REPLY || text == chat.text);
            shows.push(Action::Show {
                room: shown_in,
                id: chat.id,
                peer: line.author,
                text,
                distance_km,
                re,
            });
        }
        // Logged and shown once the authors' names are settled (a registry or the DHT
        // answered), or after a short wait, so that friends read as their names. A line
        // not logged yet when the node stops is asked for again at the next start.
        if self.catch_up.held.len() >= MAX_HELD {
            self.release_caught_up(true);
        }
        self.catch_up.held.push(Held {
            until: Instant::now() + NAME_WAIT,
            marker,
            names,
            shows,
        });
        self.release_caught_up(false);
    }

    /// Logs and shows the caught-up lines whose authors' names are settled, or that waited
    /// long enough (all of them with `all`).
    pub(super) fn release_caught_up(&mut self, all: bool) {
        let now = Instant::now();
        let held = std::mem::take(&mut self.catch_up.held);
        for batch in held {
            let pending = batch
                .names
                .iter()
                .any(|n| self.asking_registry(n) || self.directory.names.is_running(n));
            if pending && !all && now < batch.until {
                self.catch_up.held.push(batch);
                continue;
            }
            if let Some(marker) = batch.marker {
                self.emit(marker);
            }
            for action in batch.shows {
                match action {
                    Action::Record { .. } => self.record_line(action),
                    _ => self.show_line(action),
                }
            }
        }
    }

    /// Answers `peer`'s question: a bootstrap from its archive, a member of the room from
    /// its log, within a budget of disk reads.
    fn answer_history(
        &mut self,
        peer: PeerId,
        request: HistoryRequest,
        channel: ResponseChannel<HistoryResponse>,
    ) {
        let limit = usize::from(request.limit).min(MAX_CATCH_UP_LINES);
        let now = ipm_protocol::now_ms();
        let clock = Instant::now();
        // Keys are free, addresses are not: an asker pays, with its address, what its
        // answers carried; a contact is always answered.
        let ip = self.swarm.behaviour().peer_manager.remote_ip(&peer);
        let address = AddressKey::of_peer(peer, ip, self.config.address_limits.loopback_exempt);
        let contact = self.directory.contacts.petname(&peer).is_some();
        let busy = match contact {
            true => None,
            false => self.catch_up.answers.admit(&peer, &address, clock).err(),
        };
        let response = match Room::from_topic(&request.topic) {
            Err(_) => refused("not an ipm room"),
            Ok(_) if busy.is_some() => {
                debug!(%peer, "catch-up question over budget");
                refused(&busy.map(|b| b.to_string()).unwrap_or_default())
            }
            Ok(room) => match &self.services {
                Some(services) if services.archive.keeps(&room) => HistoryResponse::Lines(
                    services
                        .archive
                        .lines_since(&room, request.since_ms, limit, now),
                ),
                Some(_) => refused("no lines of this room are kept here"),
                None if !self.rooms.contains(&room) => refused("not a member of this room"),
                None => match self.logged_lines(&room, request.since_ms, limit) {
                    Ok(lines) => HistoryResponse::Lines(lines),
                    Err(e) => {
                        warn!(%room, "cannot read history for a catch-up: {e}");
                        refused("cannot read the history now")
                    }
                },
            },
        };
        if !contact && busy.is_none() {
            let bytes = match &response {
                HistoryResponse::Lines(lines) => lines
                    .iter()
                    .map(|l| (l.data.len() + l.author.len() + 16) as u64)
                    .sum(),
                _ => 0,
            };
            self.catch_up.answers.charge(&peer, &address, bytes, clock);
        }
        debug!(%peer, topic = request.topic, "answering a catch-up");
        if self
            .swarm
            .behaviour_mut()
            .history
            .send_response(channel, response)
            .is_err()
        {
            debug!(%peer, "the catch-up answer could not be sent");
        }
    }

    /// Keeps a signed line for catch-up, at a bootstrap.
    pub(super) fn archive_line(&mut self, action: Action) {
        let Action::Archive {
            room,
            author,
            data,
            ts,
        } = action
        else {
            return;
        };
        let Some(services) = &mut self.services else {
            return;
        };
        if let Err(e) = services
            .archive
            .insert(room, author, ts, data, ipm_protocol::now_ms())
        {
            debug!(%author, "{e}");
        }
    }

    /// The signed lines of this node's log of `room` received after `since_ms`, newest
    /// `limit`, oldest first, as the conversation model hands them on.
    fn logged_lines(
        &self,
        room: &Room,
        since_ms: u64,
        limit: usize,
    ) -> std::io::Result<Vec<ArchivedLine>> {
        let Some(history) = &self.store.history else {
            return Ok(Vec::new());
        };
        let entries = History::read_last(history.dir(), &room.slug(), KNOWN_WINDOW)?;
        // A deleted line, its edits and its reactions are not handed on; its deletion is.
        let mut lines: Vec<ArchivedLine> = Timeline::shareable(&entries)
            .into_iter()
            .filter(|e| e.ts > since_ms)
            .filter_map(|e| {
                let author = e.peer.parse::<PeerId>().ok()?;
                let data = STANDARD.decode(e.signed.as_deref()?).ok()?;
                Some(ArchivedLine {
                    author: ByteBuf::from(author.to_bytes()),
                    ts: e.ts,
                    data: ByteBuf::from(data),
                })
            })
            .collect();
        let skip = lines.len().saturating_sub(limit);
        Ok(lines.split_off(skip))
    }

    /// The (author, id) of the last lines logged for `room`.
    fn known_lines(&self, room: &Room) -> HashSet<(PeerId, MessageId)> {
        let Some(history) = &self.store.history else {
            return HashSet::new();
        };
        History::read_last(history.dir(), &room.slug(), KNOWN_WINDOW)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| Some((e.peer.parse().ok()?, e.id.parse().ok()?)))
            .collect()
    }

    /// When the last line of `room`'s log was logged, if any.
    fn last_logged(&self, room: &Room) -> Option<u64> {
        let history = self.store.history.as_ref()?;
        let log = self.log_room(room).slug();
        History::read_last(history.dir(), &log, 1)
            .ok()?
            .last()
            .map(|e| e.ts)
    }

    /// The room whose log holds the lines of `room`: a cell of the location group logs
    /// under the group.
    fn log_room(&self, room: &Room) -> Room {
        match &self.people.group {
            Some(group) if group.covers(room) && !self.rooms.contains(room) => group.room(),
            _ => room.clone(),
        }
    }
}

fn refused(reason: &str) -> HistoryResponse {
    HistoryResponse::Refused {
        reason: reason.to_owned(),
    }
}
