//! How events look to a person (the prompt and the plain-text daemon output).

use ipm_protocol::Room;

use crate::{event::Event, logic::geo_group::format_km};

/// One human-readable line for `event`.
pub fn event_line(event: &Event) -> String {
    match event {
        Event::Listening { addr } => format!("listening on {addr}"),
        Event::Connected { peer, addr } => format!("* connected to {peer} ({addr})"),
        Event::Disconnected { peer } => format!("* disconnected from {peer}"),
        Event::Joined { room } => format!("* joined {room}"),
        Event::Left { room } => format!("* left {room}"),
        Event::CaughtUp { room, count } => match count {
            0 => format!("* {room}: nothing new while you were away"),
            1 => format!("[{room}] -- 1 line while you were away --"),
            n => format!("[{room}] -- {n} lines while you were away --"),
        },
        Event::Message {
            room,
            from,
            text,
            distance_km,
            ..
        } => message_line(room, from, *distance_km, text),
        Event::Direct { from, text, .. } => {
            format!("[private] {}: {}", clean(from), clean(text))
        }
        Event::Delivered { name, .. } => format!("* delivered to {}", clean(name)),
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
        Event::FileReceived { path, size, .. } => {
            format!(
                "* received {} ({}), sha256 verified",
                path.display(),
                bytes(*size)
            )
        }
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

/// The user's own room line, as it reads to the others: `[room] name: text`.
pub fn own_message(room: &Room, name: &str, text: &str) -> String {
    message_line(room, name, None, text)
}

/// A room line: `[room] from: text`, with the distance to its author when known.
fn message_line(room: &Room, from: &str, distance_km: Option<f64>, text: &str) -> String {
    match distance_km {
        Some(d) => format!(
            "[{room}] {} ({}): {}",
            clean(from),
            format_km(d),
            clean(text)
        ),
        None => format!("[{room}] {}: {}", clean(from), clean(text)),
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
mod tests {
    use super::*;
    use ipm_protocol::MessageId;
    use libp2p::PeerId;

    #[test]
    fn messages_show_room_author_and_text() {
        let line = event_line(&Event::Message {
            room: Room::Lobby,
            id: MessageId::random(),
            from: "alice".into(),
            peer: PeerId::random(),
            text: "hi 😄".into(),
            distance_km: None,
        });
        assert_eq!(line, "[lobby] alice: hi 😄");
    }

    #[test]
    fn lines_missed_come_under_a_marker() {
        let marker = |count| {
            event_line(&Event::CaughtUp {
                room: Room::Lobby,
                count,
            })
        };
        assert_eq!(marker(20), "[lobby] -- 20 lines while you were away --");
        assert_eq!(marker(1), "[lobby] -- 1 line while you were away --");
        assert_eq!(marker(0), "* lobby: nothing new while you were away");
    }

    #[test]
    fn the_own_line_reads_like_the_lines_of_others() {
        let theirs = event_line(&Event::Message {
            room: Room::Interest("rust".into()),
            id: MessageId::random(),
            from: "alice".into(),
            peer: PeerId::random(),
            text: "hi 😄".into(),
            distance_km: None,
        });
        let mine = own_message(&Room::Interest("rust".into()), "alice", "hi 😄");
        assert_eq!(mine, theirs);
        assert_eq!(mine, "[interest:rust] alice: hi 😄");
    }

    #[test]
    fn terminal_escapes_from_peers_are_neutralised() {
        let line = event_line(&Event::Direct {
            id: MessageId::random(),
            from: "mallory".into(),
            peer: PeerId::random(),
            text: "\u{1b}[2Jgotcha".into(),
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
        });
        assert_eq!(line, "[geo:u09t] bob (3.0 km): hi");
    }
}
