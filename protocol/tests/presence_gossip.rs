//! Presence announcements in the gossip envelope, as a peer receives them.

#![allow(clippy::unwrap_used)]

use ipm_protocol::limits::{
    MAX_AWAY_LEN, MAX_GOSSIP_LEN, MAX_PRESENCE_EVERY_MS, MAX_PRESENCE_ROOMS,
};
use ipm_protocol::{decode_gossip, encode_gossip, DecodeError, Gossip, MessageId, Presence, Room};
use proptest::prelude::*;

fn sample() -> Presence {
    Presence {
        id: MessageId::from_bytes([3; 16]),
        name: "alice".into(),
        rooms: vec![
            Room::Lobby,
            Room::Geo("u09t".into()),
            Room::Interest("rust-lang".into()),
        ],
        geo: Some("u09tvw".into()),
        group: Some("u09t".into()),
        away: Some("lunch, back at 2".into()),
        sent_ms: 1_700_000_000_000,
        every_ms: Some(25_000),
        leaving: false,
        ticket: None,
    }
}

#[test]
fn a_ticket_travels_in_the_announcement_and_an_oversized_one_is_refused() {
    use ipm_protocol::{name_ticket::NameTicket, NameRecord};
    use libp2p_identity::Keypair;
    let (registry, carol) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let record = NameRecord::sign(&carol, "carol", 1_700_000_000_000).unwrap();
    let ticket = NameTicket::issue(&registry, &record, 1_700_000_100_000).unwrap();
    let with_ticket = Gossip::Presence(Presence {
        ticket: Some(ticket.clone()),
        ..sample()
    });
    let decoded = decode_gossip(&encode_gossip(&with_ticket)).unwrap();
    assert_eq!(decoded, with_ticket);
    let Gossip::Presence(decoded) = decoded else {
        panic!("not a presence");
    };
    let held = decoded.ticket.unwrap().verify(
        &[registry.public().to_peer_id()],
        &carol.public().to_peer_id(),
        1_700_000_000_001,
    );
    assert_eq!(held.unwrap().name, "carol");
    let bloated = Gossip::Presence(Presence {
        ticket: Some(NameTicket {
            sig: vec![7; 4096],
            ..ticket
        }),
        ..sample()
    });
    assert!(decode_gossip(&encode_gossip(&bloated)).is_err());
}

#[test]
fn round_trip_in_the_gossip_envelope() {
    let g = Gossip::Presence(sample());
    assert_eq!(decode_gossip(&encode_gossip(&g)).unwrap(), g);
    let bare = Presence::new("bob", vec![], None, None, None);
    bare.validate().unwrap();
    let g = Gossip::Presence(bare);
    assert_eq!(decode_gossip(&encode_gossip(&g)).unwrap(), g);
    let leaving = Gossip::Presence(Presence {
        leaving: true,
        ..sample()
    });
    assert_eq!(decode_gossip(&encode_gossip(&leaving)).unwrap(), leaving);
}

#[test]
fn largest_valid_presence_fits() {
    let p = Presence {
        name: "n".repeat(32),
        every_ms: Some(MAX_PRESENCE_EVERY_MS),
        rooms: (0..MAX_PRESENCE_ROOMS)
            .map(|i| Room::Interest(format!("{i}{}", "t".repeat(30))))
            .collect(),
        away: Some("é".repeat(MAX_AWAY_LEN / 2)),
        ..sample()
    };
    p.validate().unwrap();
    assert!(encode_gossip(&Gossip::Presence(p)).len() <= MAX_GOSSIP_LEN);
}

#[test]
fn every_rule_is_enforced() {
    let cases: Vec<(&str, Presence)> = vec![
        (
            "bad name",
            Presence {
                name: "a b".into(),
                ..sample()
            },
        ),
        (
            "too many rooms",
            Presence {
                rooms: vec![Room::Lobby; MAX_PRESENCE_ROOMS + 1],
                ..sample()
            },
        ),
        (
            "bad geo room",
            Presence {
                rooms: vec![Room::Geo("ai".into())],
                ..sample()
            },
        ),
        (
            "tag not normalised",
            Presence {
                rooms: vec![Room::Interest("Rust".into())],
                ..sample()
            },
        ),
        (
            "fine geo",
            Presence {
                geo: Some("u09tvwx".into()),
                ..sample()
            },
        ),
        (
            "uppercase geo",
            Presence {
                geo: Some("U09T".into()),
                ..sample()
            },
        ),
        (
            "fine group",
            Presence {
                group: Some("u09tvwx".into()),
                ..sample()
            },
        ),
        (
            "empty away",
            Presence {
                away: Some(String::new()),
                ..sample()
            },
        ),
        (
            "away with newline",
            Presence {
                away: Some("a\nb".into()),
                ..sample()
            },
        ),
        (
            "long away",
            Presence {
                away: Some("x".repeat(MAX_AWAY_LEN + 1)),
                ..sample()
            },
        ),
        (
            "no pause",
            Presence {
                every_ms: Some(0),
                ..sample()
            },
        ),
        (
            "pause too long",
            Presence {
                every_ms: Some(MAX_PRESENCE_EVERY_MS + 1),
                ..sample()
            },
        ),
    ];
    for (what, p) in cases {
        assert!(
            matches!(p.validate(), Err(DecodeError::Invalid(_))),
            "{what} was accepted"
        );
        let bytes = encode_gossip(&Gossip::Presence(p));
        assert!(decode_gossip(&bytes).is_err(), "{what} decoded");
    }
}

proptest! {
    #[test]
    fn damaged_presence_never_panics(
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut bytes = encode_gossip(&Gossip::Presence(sample()));
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let _ = decode_gossip(&bytes);
        let end = cut.index(bytes.len());
        prop_assert!(decode_gossip(&bytes[..end]).is_err());
    }
}
