//! How events look to a person (the prompt and the plain-text daemon output).

use ipm_protocol::{MessageId, Room};

use crate::{event::Event, logic::edits::MIN_REF, logic::geo_group::format_km};

/// One human-readable line for `event`.
pub fn event_line(event: &Event) -> String {
    match event {
        Event::Listening { addr } => format!("listening on {addr}"),
        Event::Connected { peer, addr } => format!("* connected to {peer} ({addr})"),
        Event::Disconnected { peer } => format!("* disconnected from {peer}"),
        Event::Joined { room } => format!("* joined {room}"),
        Event::Left { room } => format!("* left {room}"),
        Event::CaughtUp {
            room,
            count,
            first_visit,
        } => match (count, first_visit) {
            (0, _) => format!("* {room}: nothing new while you were away"),
            (1, true) => format!("[{room}] -- 1 earlier line --"),
            (n, true) => format!("[{room}] -- {n} earlier lines --"),
            (1, false) => format!("[{room}] -- 1 line while you were away --"),
            (n, false) => format!("[{room}] -- {n} lines while you were away --"),
        },
        Event::Message {
            room,
            id,
            from,
            text,
            distance_km,
            reply_to,
            ..
        } => message_line(room, id, from, *distance_km, text, reply_to.as_ref()),
        Event::Direct {
            id,
            from,
            text,
            reply_to,
            ..
        } => format!(
            "[private] {}{}: {}  ({})",
            clean(from),
            answering(reply_to.as_ref()),
            clean(text),
            line_ref(id)
        ),
        Event::Reaction {
            room,
            target,
            from,
            emoji,
            ..
        } => format!(
            "{} {} reacted {} to ({})",
            place(room.as_deref()),
            clean(from),
            clean(emoji),
            line_ref(target)
        ),
        Event::Edited {
            room,
            target,
            from,
            text,
            ..
        } => format!(
            "{} {} edited ({}): {}",
            place(room.as_deref()),
            clean(from),
            line_ref(target),
            clean(text)
        ),
        Event::Deleted {
            room, target, from, ..
        } => format!(
            "{} {} deleted ({})",
            place(room.as_deref()),
            clean(from),
            line_ref(target)
        ),
        Event::Read { id, name, .. } => {
            format!("* {} read your message ({})", clean(name), line_ref(id))
        }
        Event::Typing { from, .. } => format!("* {} is typing", clean(from)),
        Event::Delivered { id, name, .. } => {
            format!("* delivered to {} ({})", clean(name), line_ref(id))
        }
        Event::Queued { name, at: None, .. } => format!(
            "* {} is not reachable now; the message is queued and will be delivered later",
            clean(name)
        ),
        Event::Queued {
            name, at: Some(_), ..
        } => format!(
            "* queued at the bootstrap: {} gets the message (sealed, unreadable to the bootstrap) when they connect",
            clean(name)
        ),
        Event::FileOffer {
            transfer,
            from,
            name,
            size,
            room,
            ..
        } => match room {
            Some(room) => format!(
                "[{room}] {} shares {} ({}): /get {}",
                clean(from),
                clean(name),
                bytes(*size),
                short(&transfer.to_string())
            ),
            None => format!(
                "* {} offers {} ({}): /accept {} or /reject {}",
                clean(from),
                clean(name),
                bytes(*size),
                short(&transfer.to_string()),
                short(&transfer.to_string())
            ),
        },
        Event::FileProgress {
            transfer,
            bytes: done,
            size,
        } => format!(
            "* {} {} of {} ({}%)",
            short(&transfer.to_string()),
            bytes(*done),
            bytes(*size),
            percent(*done, *size)
        ),
        Event::FileGetting { by, name, .. } => {
            format!("* {} is getting {}", clean(by), clean(name))
        }
        Event::FileSending {
            bytes: done,
            size,
            name,
            to_name,
            ..
        } if done >= size => format!(
            "* {} sent whole to {} ({})",
            clean(name),
            clean(to_name),
            bytes(*size)
        ),
        Event::FileSending {
            bytes: done,
            size,
            name,
            to_name,
            ..
        } => format!(
            "* {} to {}: {} of {} ({}%)",
            clean(name),
            clean(to_name),
            bytes(*done),
            bytes(*size),
            percent(*done, *size)
        ),
        Event::FolderFileSent {
            to_name,
            path,
            size,
            ..
        } => format!(
            "* {} sent to {} ({})",
            clean(path),
            clean(to_name),
            bytes(*size)
        ),
        Event::FileReceived { path, size, .. } => {
            format!(
                "* received {} ({}), sha256 verified",
                path.display(),
                bytes(*size)
            )
        }
        Event::FolderOffer {
            transfer,
            from,
            name,
            size,
            files,
            room,
            ..
        } => {
            let what = format!("folder {}/ ({}, {})", clean(name), count(*files), bytes(*size));
            let id = short(&transfer.to_string()).to_owned();
            match room {
                Some(room) => format!("[{room}] {} shares {what}: /get {id}", clean(from)),
                None => format!(
                    "* {} offers {what}: /accept {id} or /reject {id}",
                    clean(from)
                ),
            }
        }
        Event::FolderReceived {
            path, size, files, ..
        } => format!(
            "* received folder {} ({}, {}), every sha256 verified",
            path.display(),
            count(*files),
            bytes(*size)
        ),
        Event::FileFailed { transfer, reason } => {
            format!(
                "* transfer {} failed: {}",
                short(&transfer.to_string()),
                clean(reason)
            )
        }
        Event::Registered {
            name,
            at,
            new: true,
        } => format!("* the name {} is now registered to you at bootstrap {at}", clean(name)),
        Event::Registered { name, at, .. } => {
            format!("* logged in as {} at bootstrap {at}", clean(name))
        }
        Event::UserOnline { name, .. } => format!("* {} is online", clean(name)),
        Event::UserOffline { name, .. } => format!("* {} went offline", clean(name)),
        Event::Error { message } => format!("error: {}", clean(message)),
    }
}

/// The user's own room line, as it reads to the others: `[room] name: text  (ref)`.
pub fn own_message(room: &Room, id: &MessageId, name: &str, text: &str) -> String {
    message_line(room, id, name, None, text, None)
}

/// An own private message as its sender sees it: `[private → bob] alice: text  (ref)`.
pub fn own_direct(
    to: &str,
    id: &MessageId,
    from: &str,
    text: &str,
    reply_to: Option<&MessageId>,
) -> String {
    format!(
        "[private → {}] {}{}: {}  ({})",
        clean(to),
        clean(from),
        answering(reply_to),
        clean(text),
        line_ref(id)
    )
}

/// An own reply in a room, as the others read it.
pub fn own_reply(room: &Room, id: &MessageId, from: &str, text: &str, to: &MessageId) -> String {
    message_line(room, id, from, None, text, Some(to))
}

/// A room line: `[room] from: text  (ref)`, with the distance to its author when known and
/// the line it answers.
fn message_line(
    room: &Room,
    id: &MessageId,
    from: &str,
    distance_km: Option<f64>,
    text: &str,
    reply_to: Option<&MessageId>,
) -> String {
    let far = distance_km.map_or(String::new(), |d| format!(" ({})", format_km(d)));
    format!(
        "[{room}] {}{far}{}: {}  ({})",
        clean(from),
        answering(reply_to),
        clean(text),
        line_ref(id)
    )
}

/// The short reference of a line at the prompt: the first [`MIN_REF`] hex characters of
/// its id (`/history` shows longer ones where these are not unique).
pub fn line_ref(id: &MessageId) -> String {
    let hex = id.to_string();
    hex.get(..MIN_REF).unwrap_or(&hex).to_owned()
}

/// ` (re abcd)` for a reply, nothing for a line that answers none.
fn answering(reply_to: Option<&MessageId>) -> String {
    reply_to.map_or(String::new(), |t| format!(" (re {})", line_ref(t)))
}

/// `[room]`, or `[private]` for a private conversation.
fn place(room: Option<&str>) -> String {
    format!("[{}]", room.unwrap_or("private"))
}

/// `1 file`, `12 files`.
fn count(files: u32) -> String {
    match files {
        1 => "1 file".to_owned(),
        n => format!("{n} files"),
    }
}

/// The first 8 characters of an id: enough for `/accept` and friends.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// `done` as a percentage of `size` (100 for an empty file).
pub fn percent(done: u64, size: u64) -> u64 {
    done.saturating_mul(100).checked_div(size).unwrap_or(100)
}

/// A byte count for people: `512 B`, `1.5 MiB`, `2.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Text from a peer with control characters (terminal escapes among them) made visible,
/// so nobody can rewrite the user's screen.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '�' } else { c })
        .collect()
}

/// Several lines of output that may hold peer text (a command's answer): like [`clean`],
/// but the line breaks between the lines stay.
pub fn clean_lines(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '�'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::MessageId;
    use libp2p::PeerId;

    fn id() -> MessageId {
        "abcdef00000000000000000000000000".parse().unwrap()
    }

    #[test]
    fn messages_show_room_author_text_and_reference() {
        let line = event_line(&Event::Message {
            room: Room::Lobby,
            id: id(),
            from: "alice".into(),
            peer: PeerId::random(),
            text: "hi 😄".into(),
            distance_km: None,
            reply_to: None,
        });
        assert_eq!(line, "[lobby] alice: hi 😄  (abcd)");
        let reply = event_line(&Event::Direct {
            id: id(),
            from: "bob".into(),
            peer: PeerId::random(),
            text: "yes".into(),
            reply_to: Some("12340000000000000000000000000000".parse().unwrap()),
        });
        assert_eq!(reply, "[private] bob (re 1234): yes  (abcd)");
    }

    #[test]
    fn changes_name_the_line_they_change() {
        let peer = PeerId::random();
        let edited = event_line(&Event::Edited {
            room: Some("lobby".into()),
            id: MessageId::random(),
            target: id(),
            from: "alice".into(),
            peer,
            text: "hello".into(),
        });
        assert_eq!(edited, "[lobby] alice edited (abcd): hello");
        let reacted = event_line(&Event::Reaction {
            room: None,
            id: MessageId::random(),
            target: id(),
            from: "bob".into(),
            peer,
            emoji: "👍".into(),
        });
        assert_eq!(reacted, "[private] bob reacted 👍 to (abcd)");
        let deleted = event_line(&Event::Deleted {
            room: Some("lobby".into()),
            id: MessageId::random(),
            target: id(),
            from: "alice".into(),
            peer,
        });
        assert_eq!(deleted, "[lobby] alice deleted (abcd)");
    }

    #[test]
    fn lines_missed_come_under_a_marker() {
        let marker = |count, first_visit| {
            event_line(&Event::CaughtUp {
                room: Room::Lobby,
                count,
                first_visit,
            })
        };
        assert_eq!(
            marker(20, false),
            "[lobby] -- 20 lines while you were away --"
        );
        assert_eq!(marker(1, false), "[lobby] -- 1 line while you were away --");
        assert_eq!(marker(0, false), "* lobby: nothing new while you were away");
        assert_eq!(marker(16, true), "[lobby] -- 16 earlier lines --");
    }

    #[test]
    fn the_own_line_reads_like_the_lines_of_others() {
        let theirs = event_line(&Event::Message {
            room: Room::Interest("rust".into()),
            id: id(),
            from: "alice".into(),
            peer: PeerId::random(),
            text: "hi 😄".into(),
            distance_km: None,
            reply_to: None,
        });
        let mine = own_message(&Room::Interest("rust".into()), &id(), "alice", "hi 😄");
        assert_eq!(mine, theirs);
        assert_eq!(mine, "[interest:rust] alice: hi 😄  (abcd)");
    }

    #[test]
    fn terminal_escapes_from_peers_are_neutralised() {
        let line = event_line(&Event::Direct {
            id: MessageId::random(),
            from: "mallory".into(),
            peer: PeerId::random(),
            text: "\u{1b}[2Jgotcha".into(),
            reply_to: None,
        });
        assert!(!line.contains('\u{1b}'), "{line}");
    }

    #[test]
    fn answers_keep_their_lines_but_lose_escapes() {
        let text = "a\u{1b}]0;title\u{7}\nb\r\u{9b}2J";
        assert_eq!(clean_lines(text), "a�]0;title�\nb��2J");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(2 << 30), "2.0 GiB");
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(0, 0), 100);
    }

    #[test]
    fn geo_messages_show_the_distance() {
        let line = event_line(&Event::Message {
            room: Room::Geo("u09t".into()),
            id: MessageId::random(),
            from: "bob".into(),
            peer: PeerId::random(),
            text: "hi".into(),
            distance_km: Some(2.96),
            reply_to: None,
        });
        assert!(line.starts_with("[geo:u09t] bob (3.0 km): hi  ("), "{line}");
    }
}
