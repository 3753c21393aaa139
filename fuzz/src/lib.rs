//! What each ipm fuzz target checks, and the real encodings its seed corpus starts from.
//!
//! Every `check_*` function takes raw fuzzer bytes, feeds them to one decoder or parser, and
//! panics only when an ipm rule breaks: a decoder panics, a value it accepts does not encode
//! back to itself, or an encoding grows past its wire limit. The fuzz targets in
//! `fuzz_targets/` are one line each around these functions, so the unit tests below run the
//! same checks on the committed seeds with the stable toolchain.

use std::sync::OnceLock;

use ipm_node::{store::sealed, ui::commands};
use ipm_protocol::{
    decode, decode_gossip, encode, encode_gossip,
    geo::{covering_cells, group_cells, is_geohash, normalize_geohash, precision_for_radius},
    limits::{
        MAX_DIRECT_REQUEST_LEN, MAX_DIRECT_RESPONSE_LEN, MAX_FILE_REQUEST_LEN,
        MAX_FILE_RESPONSE_LEN, MAX_GEOHASH_LEN, MAX_GOSSIP_LEN, MAX_HISTORY_REQUEST_LEN,
        MAX_HISTORY_RESPONSE_LEN, MAX_MAILBOX_REQUEST_LEN, MAX_MAILBOX_RESPONSE_LEN,
        MAX_REGISTRY_REQUEST_LEN, MAX_REGISTRY_RESPONSE_LEN, MAX_TAG_LEN,
    },
    name_record::name_key,
    room::normalize_tag,
    sign_chat, verify_chat, ArchivedLine, ChatMessage, DirectMessage, DirectRequest,
    DirectResponse, FileOffer, FileRequest, FileResponse, Gossip, HistoryRequest, HistoryResponse,
    MailboxRequest, MailboxResponse, MessageId, NameRecord, Payload, Position, Presence,
    RegistryError, RegistryRequest, RegistryResponse, Room, Sealed, SignedName,
};
use libp2p::{identity::Keypair, PeerId};

/// Every fuzz target, by name (the name of its binary and of its corpus folder).
pub const TARGETS: &[&str] = &[
    "gossip",
    "direct",
    "file",
    "mailbox",
    "history",
    "registry",
    "name_record",
    "room",
    "geo",
    "command",
    "sealed",
];

/// Runs the check of `target` on `data`; false for an unknown target.
pub fn check(target: &str, data: &[u8]) -> bool {
    match target {
        "gossip" => check_gossip(data),
        "direct" => check_direct(data),
        "file" => check_file(data),
        "mailbox" => check_mailbox(data),
        "history" => check_history(data),
        "registry" => check_registry(data),
        "name_record" => check_name_record(data),
        "room" => check_room(data),
        "geo" => check_geo(data),
        "command" => check_command(data),
        "sealed" => check_sealed(data),
        _ => return false,
    }
    true
}

/// A decoded value must encode within `max` bytes and decode back to itself.
fn round_trip<T: Payload + PartialEq + std::fmt::Debug>(value: &T, max: usize) {
    let bytes = encode(value);
    assert!(
        bytes.len() <= max,
        "a valid payload encodes to {} bytes, over its limit of {max}",
        bytes.len()
    );
    match decode::<T>(&bytes, max) {
        Ok(back) => assert_eq!(&back, value, "payload changed in a round trip"),
        Err(e) => panic!("a valid payload does not decode again: {e}"),
    }
}

/// Decodes `rest` as a request (first byte even) or a response (odd) of one protocol.
fn request_or_response<Q, R>(data: &[u8], max_request: usize, max_response: usize)
where
    Q: Payload + PartialEq + std::fmt::Debug,
    R: Payload + PartialEq + std::fmt::Debug,
{
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which.is_multiple_of(2) {
        if let Ok(request) = decode::<Q>(rest, max_request) {
            round_trip(&request, max_request);
        }
    } else if let Ok(response) = decode::<R>(rest, max_response) {
        round_trip(&response, max_response);
    }
}

/// A gossip payload as it arrives on a room or presence topic.
pub fn check_gossip(data: &[u8]) {
    if let Ok(gossip) = decode_gossip(data) {
        let bytes = encode_gossip(&gossip);
        assert!(
            bytes.len() <= MAX_GOSSIP_LEN,
            "valid gossip encodes to {} bytes",
            bytes.len()
        );
        assert_eq!(decode_gossip(&bytes).as_ref(), Ok(&gossip));
    }
}

/// `/ipm/direct/1`: the first byte picks request or response.
pub fn check_direct(data: &[u8]) {
    request_or_response::<DirectRequest, DirectResponse>(
        data,
        MAX_DIRECT_REQUEST_LEN,
        MAX_DIRECT_RESPONSE_LEN,
    );
}

/// `/ipm/file/1`, and the headers of `/ipm/file/2` on the same bytes: the first byte picks
/// request or response.
pub fn check_file(data: &[u8]) {
    request_or_response::<FileRequest, FileResponse>(
        data,
        MAX_FILE_REQUEST_LEN,
        MAX_FILE_RESPONSE_LEN,
    );
    use ipm_protocol::file_stream::{StreamAnswer, StreamRequest, MAX_STREAM_HEADER_LEN};
    request_or_response::<StreamRequest, StreamAnswer>(
        data,
        MAX_STREAM_HEADER_LEN,
        MAX_STREAM_HEADER_LEN,
    );
}

/// `/ipm/mailbox/1`: the first byte picks request or response.
pub fn check_mailbox(data: &[u8]) {
    request_or_response::<MailboxRequest, MailboxResponse>(
        data,
        MAX_MAILBOX_REQUEST_LEN,
        MAX_MAILBOX_RESPONSE_LEN,
    );
}

/// `/ipm/history/1`: the first byte picks request or response; every line of an accepted
/// answer goes through the signature check a member catching up runs.
pub fn check_history(data: &[u8]) {
    request_or_response::<HistoryRequest, HistoryResponse>(
        data,
        MAX_HISTORY_REQUEST_LEN,
        MAX_HISTORY_RESPONSE_LEN,
    );
    if let Some((_, rest)) = data.split_first().filter(|(which, _)| *which % 2 == 1) {
        if let Ok(HistoryResponse::Lines(lines)) = decode(rest, MAX_HISTORY_RESPONSE_LEN) {
            for line in lines {
                if let Ok(author) = PeerId::from_bytes(&line.author) {
                    let _ = verify_chat(&author, &Room::Lobby.topic(), &line.data);
                }
            }
        }
    }
}

/// `/ipm/registry/1`: the first byte picks request or response.
pub fn check_registry(data: &[u8]) {
    request_or_response::<RegistryRequest, RegistryResponse>(
        data,
        MAX_REGISTRY_REQUEST_LEN,
        MAX_REGISTRY_RESPONSE_LEN,
    );
}

/// Only the name of a name record, to file it under its own key.
#[derive(serde::Deserialize)]
struct NameOnly {
    name: String,
}

/// A name record found in the DHT. First byte even: the value is looked up under the key
/// of the name it claims (so signatures get checked); odd: the next `byte / 2` bytes are the
/// key, the rest the value.
pub fn check_name_record(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (key, value) = if mode.is_multiple_of(2) {
        let key = serde_cbor::from_slice::<NameOnly>(rest)
            .map(|n| name_key(&n.name))
            .unwrap_or_default();
        (key, rest)
    } else {
        let split = usize::from(mode / 2).min(rest.len());
        let (key, value) = rest.split_at(split);
        (key.to_vec(), value)
    };
    if let Ok(record) = NameRecord::decode(&key, value) {
        assert_eq!(record.key(), key, "record accepted under another key");
        let again = NameRecord::decode(&record.key(), &record.encode());
        assert_eq!(again.as_ref().ok(), Some(&record), "record round trip");
    }
}

/// Room names as typed (`/join geo:u09`) and as gossipsub topics.
pub fn check_room(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(room) = Room::parse(s) {
        assert_eq!(Room::from_topic(&room.topic()).as_ref(), Ok(&room));
        assert_eq!(Room::parse(&room.to_string()).as_ref(), Ok(&room));
        assert!(!room.slug().is_empty());
    }
    if let Ok(room) = Room::from_topic(s) {
        assert_eq!(room.topic(), s, "topic is not canonical");
    }
    if let Ok(tag) = normalize_tag(s) {
        assert!(!tag.is_empty() && tag.len() <= MAX_TAG_LEN, "tag {tag:?}");
        assert_eq!(normalize_tag(&tag).as_ref(), Ok(&tag), "not idempotent");
    }
    if let Ok(Room::Geo(hash)) = Room::geo(s) {
        assert!(is_geohash(&hash));
    }
}

/// Positions (`/geo 48.85,2.35`, `/geo u09tvw`) and radii: `position|radius_km`.
pub fn check_geo(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (pos, radius) = s.split_once('|').unwrap_or((s, ""));
    if let Ok(hash) = normalize_geohash(pos) {
        assert!(is_geohash(&hash));
    }
    let Ok(position) = Position::parse(pos) else {
        return;
    };
    assert!((-90.0..=90.0).contains(&position.lat) && (-180.0..=180.0).contains(&position.lon));
    for precision in 1..=MAX_GEOHASH_LEN {
        let hash = position.geohash(precision);
        assert_eq!(hash.len(), precision);
        assert!(Position::from_geohash(&hash).is_ok(), "{hash}");
    }
    let d = position.distance_km(&position);
    assert!(d.is_finite() && d.abs() < 1e-6, "distance to itself {d}");
    let Ok(radius) = radius.trim().parse::<f64>() else {
        return;
    };
    let _ = precision_for_radius(radius, position.lat);
    for cells in [
        covering_cells(&position, radius),
        group_cells(&position, radius),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!cells.is_empty() && cells.len() <= 9, "{cells:?}");
        assert!(cells.iter().all(|c| is_geohash(c)), "{cells:?}");
    }
}

/// A line typed at the prompt, on stdin or through `ipm ctl`.
pub fn check_command(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(commands::Command::Say(text)) = commands::parse(line) {
        assert!(!text.trim().is_empty(), "empty text accepted");
    }
    let _ = commands::parse_target(line);
}

/// The fixed keys of the `sealed` target.
fn keys() -> &'static (Keypair, Keypair) {
    static KEYS: OnceLock<(Keypair, Keypair)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = |seed: u8| match Keypair::ed25519_from_bytes([seed; 32]) {
            Ok(key) => key,
            Err(e) => panic!("a 32-byte ed25519 seed is always a key: {e}"),
        };
        (key(1), key(2))
    })
}

/// A sealed private message as fetched from a mailbox. First byte even: the rest is opened
/// as received; odd: the rest is sealed from the sender to the recipient and must open to
/// the same bytes and sender.
pub fn check_sealed(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (sender, recipient) = keys();
    if mode.is_multiple_of(2) {
        let _ = sealed::open(recipient, rest);
        return;
    }
    let to = recipient.public().to_peer_id();
    let bytes = match sealed::seal(sender, &to, rest) {
        Ok(bytes) => bytes,
        Err(e) => panic!("sealing to an ed25519 peer failed: {e}"),
    };
    let opened = sealed::open(recipient, &bytes);
    assert_eq!(opened, Ok((sender.public().to_peer_id(), rest.to_vec())));
}

/// `byte` followed by `bytes`.
fn tagged(byte: u8, bytes: Vec<u8>) -> Vec<u8> {
    let mut out = vec![byte];
    out.extend(bytes);
    out
}

/// The real encodings each target's corpus starts from, by target name.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let id = |n: u8| MessageId::from_bytes([n; 16]);
    let sent_ms = 1_700_000_000_000;
    let direct = DirectMessage {
        id: id(3),
        name: "alice".into(),
        text: "are you there?".into(),
        sent_ms,
        auto_reply: false,
        re: None,
        receipts: false,
    };
    let offer = FileOffer {
        transfer: id(4),
        from_name: "alice".into(),
        name: "notes.txt".into(),
        size: 1234,
        sha256: [5; 32],
        folder: None,
    };
    let (sender, recipient) = keys();
    let bob = recipient.public().to_peer_id();
    let sealed_bytes = sealed::seal(sender, &bob, b"meet at noon").unwrap_or_default();
    let stored = Sealed {
        id: id(6),
        sealed: sealed_bytes.clone(),
    };
    match target {
        "gossip" => vec![
            encode_gossip(&Gossip::Chat(ChatMessage {
                id: id(1),
                name: "alice".into(),
                text: "hello, world".into(),
                sent_ms,
                geo: Some("u09tvw".into()),
                sig: None,
                re: None,
            })),
            encode_gossip(&Gossip::Chat(ChatMessage {
                id: id(2),
                name: "bob".into(),
                text: "hi".into(),
                sent_ms,
                geo: None,
                sig: None,
                re: None,
            })),
            encode_gossip(&Gossip::FileOffer(offer.clone())),
            encode_gossip(&Gossip::Presence(Presence {
                id: id(7),
                name: "carol".into(),
                rooms: vec![
                    Room::Lobby,
                    Room::Geo("u09t".into()),
                    Room::Interest("rust".into()),
                ],
                geo: Some("u09tvw".into()),
                group: Some("u09t".into()),
                away: Some("at lunch".into()),
                sent_ms,
                every_ms: Some(25_000),
                leaving: false,
                ticket: None,
            })),
        ],
        "direct" => vec![
            tagged(0, encode(&DirectRequest::Message(direct))),
            tagged(1, encode(&DirectResponse::Delivered { id: id(3) })),
            tagged(
                1,
                encode(&DirectResponse::Refused {
                    id: id(3),
                    reason: "blocked".into(),
                }),
            ),
        ],
        "file" => vec![
            tagged(0, encode(&FileRequest::Offer(offer))),
            tagged(
                0,
                encode(&FileRequest::Chunk {
                    transfer: id(4),
                    offset: 65536,
                    len: 65536,
                }),
            ),
            tagged(0, encode(&FileRequest::Decline { transfer: id(4) })),
            tagged(1, encode(&FileResponse::Noted)),
            tagged(1, encode(&FileResponse::Chunk(b"some file bytes".to_vec()))),
            tagged(1, encode(&FileResponse::Error("no such transfer".into()))),
        ],
        "mailbox" => vec![
            tagged(
                0,
                encode(&MailboxRequest::Deposit {
                    to: bob.to_bytes(),
                    message: stored.clone(),
                    ttl_ms: 86_400_000,
                }),
            ),
            tagged(0, encode(&MailboxRequest::Fetch { max: 64 })),
            tagged(
                0,
                encode(&MailboxRequest::Ack {
                    ids: vec![id(6), id(8)],
                }),
            ),
            tagged(1, encode(&MailboxResponse::Stored)),
            tagged(1, encode(&MailboxResponse::Refused("quota".into()))),
            tagged(
                1,
                encode(&MailboxResponse::Messages {
                    messages: vec![stored],
                    more: true,
                }),
            ),
            tagged(1, encode(&MailboxResponse::Acked(2))),
        ],
        "history" => {
            let chat = ChatMessage::with_stamp(
                "alice",
                "hello, world",
                None,
                ipm_protocol::Stamp {
                    id: id(9),
                    sent_ms,
                },
            );
            let line = ArchivedLine {
                author: serde_bytes::ByteBuf::from(sender.public().to_peer_id().to_bytes()),
                ts: sent_ms,
                data: serde_bytes::ByteBuf::from(
                    sign_chat(sender, &Room::Lobby.topic(), chat).unwrap_or_default(),
                ),
            };
            vec![
                tagged(
                    0,
                    encode(&HistoryRequest {
                        topic: Room::Lobby.topic(),
                        since_ms: sent_ms,
                        limit: 500,
                    }),
                ),
                tagged(1, encode(&HistoryResponse::Lines(vec![line]))),
                tagged(
                    1,
                    encode(&HistoryResponse::Refused {
                        reason: "not a member of this room".into(),
                    }),
                ),
            ]
        }
        "registry" => {
            let signed = NameRecord::sign(sender, "alice", sent_ms)
                .map(|r| SignedName::new(&r))
                .ok();
            let mut seeds = vec![
                tagged(0, encode(&RegistryRequest::Lookup { name: "bob".into() })),
                tagged(0, encode(&RegistryRequest::Online { max: 64 })),
                tagged(
                    1,
                    encode(&RegistryResponse::Registered {
                        new: true,
                        ticket: None,
                    }),
                ),
                tagged(1, encode(&RegistryResponse::Owner(None))),
                tagged(
                    1,
                    encode(&RegistryResponse::Refused(RegistryError::Taken {
                        name: "alice".into(),
                        owner: bob.to_bytes(),
                    })),
                ),
            ];
            if let Some(signed) = signed {
                seeds.push(tagged(0, encode(&RegistryRequest::Register(signed.clone()))));
                seeds.push(tagged(1, encode(&RegistryResponse::Owner(Some(signed.clone())))));
                seeds.push(tagged(
                    1,
                    encode(&RegistryResponse::Online {
                        users: vec![signed],
                        more: false,
                    }),
                ));
            }
            seeds
        }
        "name_record" => {
            let record = NameRecord::sign(sender, "alice", sent_ms)
                .map(|r| r.encode())
                .unwrap_or_default();
            let key = name_key("alice");
            let mut odd = vec![u8::try_from(key.len() * 2 + 1).unwrap_or(1)];
            odd.extend_from_slice(&key);
            odd.extend_from_slice(&record);
            vec![tagged(0, record), odd]
        }
        "room" => [
            "lobby",
            "geo:u09tvw",
            "GEO: U09T ",
            "interest:rust",
            "interest:  #Rust  Lang_",
            "/ipm/1/lobby",
            "/ipm/1/geo/u09t",
            "/ipm/1/interest/rust-lang",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "geo" => [
            "48.8566, 2.3522|10",
            "u09tvw|0.5",
            "-90,180|2500",
            "89.99,-179.99|600",
            "s00000000000|1e-9",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "command" => [
            "hello everyone",
            "//literal slash",
            "/help msg",
            "/msg alice hi there",
            "/join interest:rust",
            "/leave geo",
            "/join-geo 10km",
            "/join-interest Rust Lang",
            "/geo 48.8566, 2.3522",
            "/contacts add bob /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
            "/history alice 5",
            "/save geo:u09t out.txt",
            "/send-file bob ./a file.txt",
            "/connect [::1]:4001",
            "/connect example.org:4001",
            "/away gone fishing",
            "/block bob#1a2b",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "sealed" => vec![tagged(0, sealed_bytes), tagged(1, b"meet at noon".to_vec())],
        _ => Vec::new(),
    }
}

/// The peer id of the recipient in the `sealed` and `mailbox` seeds.
pub fn seed_recipient() -> PeerId {
    keys().1.public().to_peer_id()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{fs, path::PathBuf};

    fn corpus(target: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
    }

    #[test]
    fn every_seed_is_a_valid_encoding() {
        // Each seed must get past its decoder, so the fuzzer starts from accepted input.
        let accepted = |target: &str, seed: &[u8]| -> bool {
            let rest = seed.get(1..).unwrap_or_default();
            let text = std::str::from_utf8(seed).unwrap_or_default();
            match target {
                "gossip" => decode_gossip(seed).is_ok(),
                "direct" if seed[0] == 0 => {
                    decode::<DirectRequest>(rest, MAX_DIRECT_REQUEST_LEN).is_ok()
                }
                "direct" => decode::<DirectResponse>(rest, MAX_DIRECT_RESPONSE_LEN).is_ok(),
                "file" if seed[0] == 0 => decode::<FileRequest>(rest, MAX_FILE_REQUEST_LEN).is_ok(),
                "file" => decode::<FileResponse>(rest, MAX_FILE_RESPONSE_LEN).is_ok(),
                "mailbox" if seed[0] == 0 => {
                    decode::<MailboxRequest>(rest, MAX_MAILBOX_REQUEST_LEN).is_ok()
                }
                "mailbox" => decode::<MailboxResponse>(rest, MAX_MAILBOX_RESPONSE_LEN).is_ok(),
                "history" if seed[0] == 0 => {
                    decode::<HistoryRequest>(rest, MAX_HISTORY_REQUEST_LEN).is_ok()
                }
                "history" => decode::<HistoryResponse>(rest, MAX_HISTORY_RESPONSE_LEN).is_ok(),
                "registry" if seed[0] == 0 => {
                    decode::<RegistryRequest>(rest, MAX_REGISTRY_REQUEST_LEN).is_ok()
                }
                "registry" => decode::<RegistryResponse>(rest, MAX_REGISTRY_RESPONSE_LEN).is_ok(),
                "name_record" if seed[0].is_multiple_of(2) => {
                    NameRecord::decode(&name_key("alice"), rest).is_ok()
                }
                "name_record" => {
                    let (key, value) = rest.split_at(usize::from(seed[0] / 2));
                    NameRecord::decode(key, value).is_ok()
                }
                "room" => Room::parse(text).is_ok() || Room::from_topic(text).is_ok(),
                "geo" => Position::parse(text.split('|').next().unwrap_or_default()).is_ok(),
                "command" => commands::parse(text).is_ok(),
                "sealed" if seed[0] == 0 => sealed::open(&keys().1, rest).is_ok(),
                "sealed" => true,
                _ => false,
            }
        };
        for target in TARGETS {
            let seeds = seeds(target);
            assert!(!seeds.is_empty(), "{target} has no seeds");
            for seed in &seeds {
                assert!(accepted(target, seed), "{target} refuses its seed {seed:?}");
                assert!(check(target, seed));
            }
        }
        assert_eq!(seed_recipient(), keys().1.public().to_peer_id());
    }

    #[test]
    fn committed_corpora_pass_their_checks() {
        // The committed seeds (and anything a fuzzing run left beside them) never trip a check.
        for target in TARGETS {
            let dir = corpus(target);
            let entries = fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .flatten()
                .collect::<Vec<_>>();
            assert!(!entries.is_empty(), "{} is empty", dir.display());
            for entry in entries {
                let bytes = fs::read(entry.path()).unwrap_or_default();
                assert!(check(target, &bytes));
            }
        }
    }
}
