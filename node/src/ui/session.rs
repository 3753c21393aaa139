//! Runs parsed commands against a node; every frontend (prompt, stdin, ctl) goes through here.
//!
//! Commands about rooms and people live in the child module `people`.

mod change_answers;
mod people_answers;
mod search_answer;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use libp2p::{Multiaddr, PeerId};

use ipm_protocol::{MessageId, Room};

use crate::{
    client::{Client, Conversation, NodeError, OfferTarget, Status, TransferView},
    logic::geo_group::{after_leave, others, CurrentRoom, HOW_TO_JOIN},
    logic::timeline::Line,
    net::addresses::is_relayed,
    store::data_dir::write_atomic,
    store::history::{Entry, MAX_READ},
    store::search::Query,
    store::transfers::{Direction, State},
    ui::commands::{self, Command, ParseError, Target},
    ui::emoji,
    ui::render,
};

/// How long `/connect` waits for an answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a command failed; its text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The line is not a command.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The node refused or failed the request.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// A conversation's log could not be read.
    #[error("cannot read history of {shown}: {source}")]
    History {
        /// The conversation as the user named it.
        shown: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `/save` could not write its file.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file asked for.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `/leave` of a room that is not joined.
    #[error("not in {0}")]
    NotJoined(Room),
    /// A line or command for the current room when no room is joined.
    #[error("you are in no room: {} first", crate::logic::geo_group::HOW_TO_JOIN)]
    NoRoom,
    /// `/leave-geo` without a location group.
    #[error("not in a location group")]
    NoGroup,
    /// `/join-interest` without a tag and without remembered interests.
    #[error("no interests yet: /join-interest <tag>, or start ipm with --interest <tag>")]
    NoInterests,
    /// A contact's address names no peer.
    #[error("the address has no /p2p/<peer id>")]
    NoPeerInAddr(Multiaddr),
    /// `/unblock` of a user who is not blocked.
    #[error("{user} ({peer}) is not blocked")]
    NotBlocked {
        /// The user as typed.
        user: String,
        /// Its peer.
        peer: PeerId,
    },
}

/// What a command produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Text to show the user.
    Text(String),
    /// A room message went out.
    Sent {
        /// The room.
        room: Room,
        /// The message id.
        id: MessageId,
        /// How many peers were in the room.
        peers: usize,
        /// The user's own name, as the line is signed.
        from: String,
        /// The text sent, its shortcodes expanded.
        text: String,
    },
    /// A private message was delivered, or queued for later.
    Direct {
        /// The message id.
        id: MessageId,
        /// The recipient's display name.
        name: String,
        /// The user's own name.
        from: String,
        /// The text sent, its shortcodes expanded.
        text: String,
        /// True when the recipient acknowledged it; false when it waits in the outbox.
        delivered: bool,
    },
    /// A room was joined (`new`), or was joined already; either way it is now current.
    Joined {
        /// The room.
        room: Room,
        /// True when it was not joined before (the node reports the join as an event too).
        new: bool,
    },
    /// A room was left; `next` is the current room when the left one was current.
    Left {
        /// The room.
        room: Room,
        /// The room now current, when it changed.
        next: Option<CurrentRoom>,
    },
    /// The user asked the node to stop.
    Quit,
}

impl SessionError {
    /// The error as the user reads it: peer text in it cannot drive the terminal.
    pub fn describe(&self) -> String {
        render::clean_lines(&self.to_string())
    }
}

impl Outcome {
    /// The text shown for this outcome (empty for a plain send at the prompt).
    /// Peer text in it (names, messages, file names, refusals) has its control characters
    /// neutralised, whatever command produced it.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Text(text) => render::clean_lines(text),
            Outcome::Sent {
                room, id, peers: 0, ..
            } => {
                format!(
                    "sent ({}) to {room} (nobody else is in {room} yet)",
                    render::line_ref(id)
                )
            }
            Outcome::Sent {
                room, id, peers, ..
            } => format!("sent ({}) to {room} ({peers} peers)", render::line_ref(id)),
            Outcome::Direct {
                id,
                name,
                delivered: true,
                ..
            } => format!(
                "delivered to {} ({})",
                render::clean(name),
                render::line_ref(id)
            ),
            Outcome::Direct {
                id,
                name,
                delivered: false,
                ..
            } => format!(
                "{} is not reachable now: queued ({}), it will be delivered when they are back",
                render::clean(name),
                render::line_ref(id)
            ),
            Outcome::Joined { room, new: true } => {
                format!("joined {room}; it is now the current room")
            }
            Outcome::Joined { room, new: false } => {
                format!("back in {room}; it is now the current room")
            }
            Outcome::Left { room, next } => format!("left {room}{}", next_room(next.as_ref())),
            Outcome::Quit => "bye".into(),
        }
    }
}

/// What a leave says of the current room after it: `; current room is now lobby`, or that
/// there is none and how to join one; nothing when it did not change.
pub fn next_room(next: Option<&CurrentRoom>) -> String {
    match next {
        None => String::new(),
        Some(CurrentRoom::Nowhere) => format!("; you are in no room now: {HOW_TO_JOIN}"),
        Some(room) => format!("; current room is now {room}"),
    }
}

/// The state frontends share: the node handle, the current room and the user's own name.
#[derive(Clone, Debug)]
pub struct Session {
    client: Client,
    current: Arc<Mutex<CurrentRoom>>,
    /// The user's name as last asked of the node; none until needed and after `/name`.
    name: Arc<Mutex<Option<String>>>,
}

impl Session {
    /// A session on `client`.
    pub fn new(client: Client) -> Self {
        Self {
            current: Arc::new(Mutex::new(client.remembered_current())),
            client,
            name: Arc::new(Mutex::new(None)),
        }
    }

    /// The user's own name.
    pub async fn own_name(&self) -> Result<String, SessionError> {
        let known = self
            .name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(name) = known {
            return Ok(name);
        }
        let name = self.client.status().await?.name;
        *self.name.lock().unwrap_or_else(PoisonError::into_inner) = Some(name.clone());
        Ok(name)
    }

    /// Forgets the name remembered by [`Session::own_name`], after a rename.
    fn forget_name(&self) {
        *self.name.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The node handle.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The room plain text goes to (for the location group: its own cell).
    pub fn current_room(&self) -> Result<Room, SessionError> {
        self.current().room().ok_or(SessionError::NoRoom)
    }

    /// The current room, or the location group.
    pub fn current(&self) -> CurrentRoom {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn set_current(&self, room: Room) {
        self.set_current_room(CurrentRoom::Room(room)).await;
    }

    /// Makes `current` this session's current room, and the node's for its next start,
    /// once that is written.
    async fn set_current_room(&self, current: CurrentRoom) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = current.clone();
        self.client.choose_current(&current).await;
    }

    /// Parses and runs one line of input.
    pub async fn run_line(&self, line: &str) -> Result<Outcome, SessionError> {
        let command = commands::parse(line)?;
        self.execute(command).await
    }

    /// Runs one command.
    pub async fn execute(&self, command: Command) -> Result<Outcome, SessionError> {
        match command {
            Command::Say(text) => {
                let room = self.current_room()?;
                let text = emoji::expand(&text);
                let from = self.own_name().await?;
                let published = self.client.publish(room.clone(), text.clone()).await?;
                Ok(Outcome::Sent {
                    room,
                    id: published.id,
                    peers: published.peers,
                    from,
                    text,
                })
            }
            Command::Help(topic) => Ok(Outcome::Text(commands::help(topic.as_deref()))),
            Command::Emoji(word) => Ok(Outcome::Text(emoji::listing(word.as_deref()))),
            Command::Connect(addr) => {
                let peer = self
                    .client
                    .dial_within(addr.clone(), CONNECT_TIMEOUT)
                    .await?;
                Ok(Outcome::Text(format!("connected to {peer} at {addr}")))
            }
            Command::Status => {
                let status = self.client.status().await?;
                let mut text = render_status(&status, &self.current());
                text.push_str(&self.status_of_people().await?);
                Ok(Outcome::Text(text))
            }
            Command::History { target, count } => {
                let (conversation, shown) = match target {
                    Some(target) => self.conversation(&target).await?,
                    None => {
                        let room = self.current_room()?;
                        let shown = room.to_string();
                        (Conversation::Room(room), shown)
                    }
                };
                let lines = self.lines(conversation.clone(), count, &shown).await?;
                self.client.shown(conversation, None).await;
                if lines.is_empty() {
                    return Ok(Outcome::Text(format!("no messages in {shown} yet")));
                }
                Ok(Outcome::Text(change_answers::format_lines(&lines)))
            }
            Command::Search { words, target } => {
                let Some(query) = Query::new(&words) else {
                    return Err(ParseError::usage("/search").into());
                };
                let (only, shown) = match target {
                    Some(target) => {
                        let (conversation, shown) = self.conversation(&target).await?;
                        (Some(conversation), Some(shown))
                    }
                    None => (None, None),
                };
                let hits = self.client.search(query, only).await.map_err(|e| match e {
                    NodeError::History(source) => SessionError::History {
                        shown: shown.clone().unwrap_or_else(|| "every conversation".into()),
                        source,
                    },
                    other => SessionError::Node(other),
                })?;
                Ok(Outcome::Text(search_answer::format_hits(
                    &hits,
                    &words,
                    shown.as_deref(),
                )))
            }
            Command::Save { target, path } => {
                let (conversation, shown) = self.conversation(&target).await?;
                let lines = self.lines(conversation, MAX_READ, &shown).await?;
                let count = save(&lines, &path)?;
                Ok(Outcome::Text(format!(
                    "saved {count} messages of {shown} to {}",
                    path.display()
                )))
            }
            Command::Msg { user, text } => {
                let peer = self.client.resolve_user(&user).await?;
                let text = emoji::expand(&text);
                let from = self.own_name().await?;
                let outcome = self.client.send_direct(peer, text.clone()).await?;
                Ok(Outcome::Direct {
                    id: outcome.id,
                    name: outcome.name,
                    from,
                    text,
                    delivered: outcome.delivered,
                })
            }
            Command::SendFile { user, path } => {
                let peer = self.client.resolve_user(&user).await?;
                let id = self
                    .client
                    .offer_file(OfferTarget::Peer(peer), path.clone())
                    .await?;
                Ok(Outcome::Text(format!(
                    "offered {} to {user} as transfer {}; it starts when they /accept it",
                    path.display(),
                    render::short(&id.to_string())
                )))
            }
            Command::Share(path) => {
                let room = self.current_room()?;
                let id = self
                    .client
                    .offer_file(OfferTarget::Room(room.clone()), path.clone())
                    .await?;
                Ok(Outcome::Text(format!(
                    "shared {} in {room}; others fetch it with /get {}",
                    path.display(),
                    render::short(&id.to_string())
                )))
            }
            Command::Accept(id) => {
                let t = self.client.accept(&id).await?;
                Ok(Outcome::Text(format!(
                    "downloading {} ({}) from {}",
                    t.name,
                    render::bytes(t.size),
                    t.with
                )))
            }
            Command::Reject(id) => {
                let t = self.client.reject(&id).await?;
                Ok(Outcome::Text(format!(
                    "rejected {} from {}",
                    t.name, t.with
                )))
            }
            Command::Transfers => {
                let list = self.client.transfers().await?;
                Ok(Outcome::Text(render_transfers(&list)))
            }
            Command::Join(room) => {
                let new = self.client.join(room.clone()).await?;
                self.set_current(room.clone()).await;
                Ok(Outcome::Joined { room, new })
            }
            Command::Leave(room) => {
                let was = self.client.leave(room.clone()).await?;
                if !was {
                    return Err(SessionError::NotJoined(room));
                }
                let current = self.current();
                let mut next = None;
                if current.room().as_ref() == Some(&room) {
                    let status = self.client.status().await?;
                    let rooms: Vec<Room> = status.rooms.into_iter().map(|r| r.room).collect();
                    let group = self.client.people().await?.me.group;
                    let now = after_leave(&current, &room, &rooms, group.as_ref());
                    self.set_current_room(now.clone()).await;
                    next = Some(now);
                }
                Ok(Outcome::Left { room, next })
            }
            Command::Rooms => {
                let status = self.client.status().await?;
                let current = match self.current() {
                    CurrentRoom::Room(room) => Some(room),
                    CurrentRoom::Geo(_) | CurrentRoom::Nowhere => None,
                };
                let group = self.group_line().await?;
                let unread = self.client.unread().await?;
                if status.rooms.is_empty() && group.is_none() {
                    return Ok(Outcome::Text(format!("in no room: {HOW_TO_JOIN}")));
                }
                let unread_in = |room: &Room| {
                    unread
                        .iter()
                        .find(|u| u.conversation == Conversation::Room(room.clone()))
                        .map_or(String::new(), |u| format!(", {} unread", u.count))
                };
                let lines: Vec<String> = status
                    .rooms
                    .iter()
                    .map(|r| {
                        let mark = if current.as_ref() == Some(&r.room) {
                            '*'
                        } else {
                            ' '
                        };
                        format!(
                            "{mark} {} ({}{})",
                            r.room,
                            others(r.people.len()),
                            unread_in(&r.room)
                        )
                    })
                    .chain(group)
                    .collect();
                let mut lines = lines;
                for u in &unread {
                    if let Conversation::Direct(_) = &u.conversation {
                        lines.push(format!("  @{}: {} unread", render::clean(&u.name), u.count));
                    }
                }
                Ok(Outcome::Text(lines.join("\n")))
            }
            Command::People(command) => self.run_people(command).await,
            Command::Change(command) => self.run_change(command).await.map(Outcome::Text),
            Command::Quit => Ok(Outcome::Quit),
        }
    }
}

impl Session {
    /// A room or a private conversation, and how it is shown.
    async fn conversation(&self, target: &Target) -> Result<(Conversation, String), SessionError> {
        match target {
            Target::Room(room) => Ok((Conversation::Room(room.clone()), room.to_string())),
            Target::User(user) => {
                let peer = self.client.resolve_user(user).await?;
                Ok((Conversation::Direct(peer), user.clone()))
            }
        }
    }

    /// The last `count` lines of `conversation` as they stand now, shown as `shown`.
    async fn lines(
        &self,
        conversation: Conversation,
        count: usize,
        shown: &str,
    ) -> Result<Vec<Line>, SessionError> {
        self.client
            .lines(conversation, count)
            .await
            .map_err(|e| match e {
                NodeError::History(source) => SessionError::History {
                    shown: shown.to_owned(),
                    source,
                },
                other => SessionError::Node(other),
            })
    }
}

/// The `/transfers` table.
pub fn render_transfers(list: &[TransferView]) -> String {
    if list.is_empty() {
        return "no offers or transfers yet".into();
    }
    let mut out = String::new();
    for t in list {
        let arrow = match t.direction {
            Direction::Incoming => "from",
            Direction::Outgoing => "to",
        };
        let state = match &t.state {
            State::Offered if t.direction == Direction::Incoming => {
                format!("offered: /accept {}", render::short(&t.id.to_string()))
            }
            State::Offered => "offered".into(),
            State::Downloading => format!(
                "downloading {}% ({} of {})",
                render::percent(t.bytes, t.size),
                render::bytes(t.bytes),
                render::bytes(t.size)
            ),
            State::Done { path } if t.direction == Direction::Incoming => {
                format!("received: {}", path.display())
            }
            State::Done { .. } => "done".into(),
            State::Sending => "sending".into(),
            State::Sent => "sent".into(),
            State::Rejected => "rejected".into(),
            State::Failed { reason } => format!("failed: {}", render::clean(reason)),
        };
        let _ = writeln!(
            out,
            "{}  {} ({}) {arrow} {}  {state}",
            render::short(&t.id.to_string()),
            render::clean(&t.name),
            render::bytes(t.size),
            render::clean(&t.with)
        );
    }
    out.pop();
    out
}

/// `time name: text`, local time.
pub fn format_entry(entry: &Entry) -> String {
    format!(
        "{} {}: {}",
        format_time(entry.ts),
        render::clean(&entry.from),
        render::clean(&entry.text)
    )
}

/// A timestamp (ms since the epoch) as local `YYYY-MM-DD HH:MM:SS`.
pub fn format_time(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(utc) => utc
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => "????-??-?? ??:??:??".into(),
    }
}

/// Writes `lines` as text to the file `path` the user asked for; returns how many.
fn save(lines: &[Line], path: &Path) -> Result<usize, SessionError> {
    let mut text = String::new();
    for line in lines {
        text.push_str(&change_answers::format_line(line, None));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes(), false).map_err(|source| SessionError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(lines.len())
}

/// The `/status` text.
pub fn render_status(status: &Status, current: &CurrentRoom) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name:     {}", status.name);
    let _ = writeln!(out, "peer id:  {}", status.peer);
    let _ = writeln!(out, "listening:");
    for addr in &status.listen {
        let _ = writeln!(out, "  {addr}");
    }
    if !status.external.is_empty() {
        let _ = writeln!(out, "seen by others at:");
        for addr in &status.external {
            let _ = writeln!(out, "  {addr}");
        }
    }
    let _ = writeln!(out, "reachability: {}", status.nat);
    if !status.relayed.is_empty() {
        let _ = writeln!(out, "reachable through relay:");
        for addr in &status.relayed {
            let _ = writeln!(out, "  {addr}");
        }
    }
    let kinds: Vec<String> = status
        .connections
        .by_kind
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "connections: {} ({}; keeps {} to {})",
        status.peers.len(),
        if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds.join(", ")
        },
        status.connections.low,
        status.connections.high
    );
    for p in &status.peers {
        let addr = p.addrs.first().map(ToString::to_string).unwrap_or_default();
        let how = if !p.addrs.is_empty() && p.addrs.iter().all(is_relayed) {
            "relayed"
        } else {
            "direct"
        };
        let _ = writeln!(out, "  {} {} {} {how} {addr}", p.name, p.peer, p.kind);
    }
    let _ = writeln!(out, "current room: {current}");
    let _ = write!(out, "rooms:");
    for r in &status.rooms {
        let names: Vec<&str> = r.members.iter().map(|(n, _)| n.as_str()).collect();
        let _ = write!(
            out,
            "\n  {} ({}){}{}",
            r.room,
            others(names.len()),
            if names.is_empty() { "" } else { ": " },
            names.join(", ")
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::TransferId;

    const ESCAPE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}";

    #[test]
    fn history_lines_neutralise_peer_control_characters() {
        let entry = Entry {
            ts: 0,
            id: "00".into(),
            from: format!("mallory{ESCAPE}"),
            peer: "12D3Koo".into(),
            text: format!("hi{ESCAPE}\r\nfake line"),
            outgoing: false,
            signed: None,
            re: None,
        };
        let line = format_entry(&entry);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        let shown = Outcome::Text(format!("{line}\n{line}")).describe();
        assert_eq!(shown.lines().count(), 2, "{shown:?}");
    }

    #[test]
    fn transfer_rows_neutralise_names_peers_and_reasons() {
        let view = |state| TransferView {
            id: TransferId::random(),
            direction: Direction::Outgoing,
            with: format!("eve{ESCAPE}"),
            name: format!("a{ESCAPE}.txt"),
            size: 3,
            bytes: 0,
            source: None,
            peer: None,
            state,
        };
        let table = render_transfers(&[
            view(State::Offered),
            view(State::Failed {
                reason: format!("refused: {ESCAPE}"),
            }),
        ]);
        assert_eq!(table.lines().count(), 2, "{table:?}");
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
    }

    #[test]
    fn every_answer_and_error_is_neutralised() {
        let answer = Outcome::Text(format!("downloading x from {ESCAPE}")).describe();
        assert!(!answer.contains('\u{1b}'), "{answer:?}");
        let error = SessionError::NotBlocked {
            user: format!("x{ESCAPE}"),
            peer: PeerId::random(),
        }
        .describe();
        assert!(!error.contains('\u{1b}'), "{error:?}");
    }
}
