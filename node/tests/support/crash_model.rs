//! What the crash writer (`node/examples/crash_writer.rs`) writes at each step, so that the
//! crash tests can tell what a data dir must hold after a kill.
#![allow(dead_code)]

use ipm_node::{
    services::mailbox_store::Stored, store::contacts::ContactBook, store::history::Entry,
    store::settings::Settings,
};
use ipm_protocol::{DirectMessage, MessageId, Position, Sealed};
use libp2p::{identity::Keypair, PeerId};

/// The conversation the writer appends to.
pub const ROOM: &str = "lobby";
/// Step `i` finishes the outbox message of step `i - OUTBOX_LAG`.
pub const OUTBOX_LAG: u64 = 3;
/// Step `i` acknowledges the mailbox message of step `i - MAILBOX_LAG`.
pub const MAILBOX_LAG: u64 = 2;
/// Every this many steps, the history entry is large (a wider window to tear a line).
pub const LARGE_EVERY: u64 = 5;

/// A peer id made from a fixed seed.
pub fn peer_of(seed: u8) -> PeerId {
    Keypair::ed25519_from_bytes([seed; 32])
        .expect("32 bytes are an ed25519 seed")
        .public()
        .to_peer_id()
}

/// The recipient of every outbox and mailbox message.
pub fn peer() -> PeerId {
    peer_of(1)
}

/// The message id of step `i`.
pub fn id(i: u64) -> MessageId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&i.to_be_bytes());
    MessageId::from_bytes(bytes)
}

/// The step of a message id made by [`id`].
pub fn step_of(id: &MessageId) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&id.as_bytes()[8..]);
    u64::from_be_bytes(bytes)
}

/// The history text of step `i`.
pub fn text(i: u64) -> String {
    let len = if i.is_multiple_of(LARGE_EVERY) {
        128 * 1024
    } else {
        20 + (i % 300) as usize
    };
    let mut text = format!("step {i} ");
    while text.len() < len {
        text.push_str("0123456789abcdef");
    }
    text.truncate(len);
    text
}

/// The history entry of step `i`.
pub fn entry(i: u64) -> Entry {
    Entry {
        ts: i,
        id: id(i).to_string(),
        from: "writer".into(),
        peer: peer().to_string(),
        text: text(i),
        outgoing: true,
        signed: None,
        re: None,
    }
}

/// The private message queued at step `i`.
pub fn direct(i: u64) -> DirectMessage {
    DirectMessage {
        id: id(i),
        name: "writer".into(),
        text: format!("message {i}"),
        sent_ms: i,
        auto_reply: false,
        re: None,
        receipts: false,
    }
}

/// The mailbox message deposited at step `i`.
pub fn stored(i: u64) -> Stored {
    Stored {
        from: peer_of(2),
        from_ip: None,
        to: peer(),
        message: Sealed {
            id: id(i),
            sealed: vec![(i % 251) as u8; 100 + (i % 1000) as usize],
        },
        expires_ms: u64::MAX,
    }
}

/// The contacts file after step `i`: a varying number of contacts and one blocked peer.
pub fn book(i: u64) -> ContactBook {
    let mut book = ContactBook::default();
    for k in 0..=(i % 40) as u8 {
        book.add(&format!("c{k}-{i}"), peer_of(10 + k), None)
            .expect("every petname is new");
    }
    book.block(peer_of(3 + (i % 5) as u8));
    book
}

/// The settings file after step `i`.
pub fn settings(i: u64) -> Settings {
    Settings {
        name: Some(format!("user{i}")),
        position: Position::new((i % 90) as f64, -((i % 180) as f64)).ok(),
        interests: (0..i % 6).map(|k| format!("tag{k}")).collect(),
        no_receipts: i % 2 == 1,
        rooms: Some(
            std::iter::once("lobby".to_owned())
                .chain((0..i % 5).map(|k| format!("interest:room{k}")))
                .collect(),
        ),
        current: Some(
            if i.is_multiple_of(3) {
                "location-group"
            } else {
                "lobby"
            }
            .to_owned(),
        ),
        group_radius_km: Some(1.0 + (i % 50) as f64),
    }
}
