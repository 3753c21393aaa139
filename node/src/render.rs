//! How events look to a person (the prompt and the plain-text daemon output).

use crate::event::Event;

/// One human-readable line for `event`.
pub fn event_line(event: &Event) -> String {
    match event {
        Event::Listening { addr } => format!("listening on {addr}"),
        Event::Connected { peer, addr } => format!("* connected to {peer} ({addr})"),
        Event::Disconnected { peer } => format!("* disconnected from {peer}"),
        Event::Joined { room } => format!("* joined {room}"),
        Event::Left { room } => format!("* left {room}"),
        Event::Message {
            room, from, text, ..
        } => format!("[{room}] {from}: {text}"),
        Event::Error { message } => format!("error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipm_protocol::{MessageId, Room};
    use libp2p::PeerId;

    #[test]
    fn messages_show_room_author_and_text() {
        let line = event_line(&Event::Message {
            room: Room::Lobby,
            id: MessageId::random(),
            from: "alice".into(),
            peer: PeerId::random(),
            text: "hi 😄".into(),
        });
        assert_eq!(line, "[lobby] alice: hi 😄");
    }
}
