//! How events look to a person (the prompt and the plain-text daemon output).

use crate::{event::Event, geo_group::format_km};

/// One human-readable line for `event`.
pub fn event_line(event: &Event) -> String {
    match event {
        Event::Listening { addr } => format!("listening on {addr}"),
        Event::Connected { peer, addr } => format!("* connected to {peer} ({addr})"),
        Event::Disconnected { peer } => format!("* disconnected from {peer}"),
        Event::Joined { room } => format!("* joined {room}"),
        Event::Left { room } => format!("* left {room}"),
        Event::Message {
            room,
            from,
            text,
            distance_km: Some(d),
            ..
        } => format!("[{room}] {from} ({}): {text}", format_km(*d)),
        Event::Message {
            room, from, text, ..
        } => format!("[{room}] {from}: {text}"),
        Event::UserOnline { name, .. } => format!("* {name} is online"),
        Event::UserOffline { name, .. } => format!("* {name} went offline"),
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
            distance_km: None,
        });
        assert_eq!(line, "[lobby] alice: hi 😄");
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
