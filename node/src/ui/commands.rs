//! The one command grammar shared by the prompt, stdin and `ipm ctl`.

use std::{net::IpAddr, path::PathBuf};

use libp2p::Multiaddr;

use ipm_protocol::Room;

mod change_grammar;
mod people_grammar;

pub use change_grammar::{ChangeAction, ChangeCommand, LineRef};
pub use people_grammar::{ContactTarget, PeopleCommand};

/// Lines of history shown when no count is given.
pub const DEFAULT_HISTORY: usize = 20;

/// A parsed line of user input.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Plain text for the current room.
    Say(String),
    /// Help on every command, or on one.
    Help(Option<String>),
    /// The emoji shortcodes, all or those holding a word.
    Emoji(Option<String>),
    /// Connect to a peer.
    Connect(Multiaddr),
    /// Identity, addresses, connections, rooms.
    Status,
    /// Show the last `count` messages of a conversation (the current room when `None`).
    History {
        /// Which conversation.
        target: Option<Target>,
        /// How many lines.
        count: usize,
    },
    /// Search the history for lines holding every word, in one conversation or in all.
    Search {
        /// The words.
        words: Vec<String>,
        /// Which conversation (all when `None`).
        target: Option<Target>,
    },
    /// Write a conversation's history to a text file.
    Save {
        /// Which conversation.
        target: Target,
        /// Where to.
        path: PathBuf,
    },
    /// A private message.
    Msg {
        /// The recipient, as the user typed it.
        user: String,
        /// The text.
        text: String,
    },
    /// Offer a file to one user.
    SendFile {
        /// The recipient.
        user: String,
        /// The file.
        path: PathBuf,
    },
    /// Offer a file to the current room.
    Share(PathBuf),
    /// Accept an offered file (`/accept`, `/get`).
    Accept(String),
    /// Decline an offered file or stop a download.
    Reject(String),
    /// List offers and transfers.
    Transfers,
    /// Join a room and make it current.
    Join(Room),
    /// Leave a room.
    Leave(Room),
    /// List joined rooms.
    Rooms,
    /// Rooms and people: location and interest groups, users, contacts, blocks, away.
    People(PeopleCommand),
    /// Reply to, react to, edit or delete an earlier line.
    Change(ChangeCommand),
    /// Stop the node.
    Quit,
}

/// A conversation: a room, or the private one with a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A room.
    Room(Room),
    /// A user, as typed (resolved by the node).
    User(String),
}

impl Target {
    /// `lobby`, `geo:…`, `interest:…` are rooms; anything else names a user.
    pub fn parse(word: &str) -> Target {
        match Room::parse(word) {
            Ok(room) => Target::Room(room),
            Err(_) => Target::User(word.to_owned()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Room(room) => room.fmt(f),
            Target::User(user) => f.write_str(user),
        }
    }
}

/// A command's name, aliases, usage and one-line summary.
pub struct Spec {
    /// The name, with its slash.
    pub name: &'static str,
    /// Other names for it.
    pub aliases: &'static [&'static str],
    /// Arguments, as shown by /help.
    pub usage: &'static str,
    /// What it does.
    pub summary: &'static str,
}

/// Every command, in the order /help lists them.
#[rustfmt::skip]
pub const SPECS: &[Spec] = &[
    Spec { name: "/help", aliases: &["/?"], usage: "[command]", summary: "list commands, or explain one" },
    Spec { name: "/msg", aliases: &["/send-private-message"], usage: "<user> <text>", summary: "private message; says delivered, or queued until the user is back" },
    Spec { name: "/join", aliases: &[], usage: "<lobby|geo:<geohash>|interest:<tag>>", summary: "join a room and make it the current room" },
    Spec { name: "/leave", aliases: &[], usage: "<room|geo>", summary: "leave a room, or the location group (geo)" },
    Spec { name: "/rooms", aliases: &[], usage: "", summary: "list joined rooms; * marks the current one" },
    Spec { name: "/join-geo", aliases: &[], usage: "[radius_km]", summary: "join the location group: everyone within radius_km (default 10) of you" },
    Spec { name: "/join-interest", aliases: &[], usage: "[tag]", summary: "join the interest group of tag, or of each of your interests" },
    Spec { name: "/geo", aliases: &[], usage: "[<lat,lon|geohash>|off]", summary: "set your location (remembered), forget it with off, or show it" },
    Spec { name: "/list-geo", aliases: &[], usage: "", summary: "show your latitude, longitude, geohash and active radius" },
    Spec { name: "/users", aliases: &["/list-users"], usage: "", summary: "online users: name, peer id, rooms, distance, away text" },
    Spec { name: "/contacts", aliases: &[], usage: "[add <name> <user|peer-id|multiaddr> | remove <name>]", summary: "list contacts, give a user a petname, or remove one" },
    Spec { name: "/block", aliases: &[], usage: "[user]", summary: "drop a user's messages (remembered); no user: list blocked users" },
    Spec { name: "/unblock", aliases: &[], usage: "<user>", summary: "show a blocked user's messages again" },
    Spec { name: "/away", aliases: &[], usage: "[text]", summary: "tell others you are away; private messages get one automatic reply" },
    Spec { name: "/back", aliases: &[], usage: "", summary: "clear the away text" },
    Spec { name: "/name", aliases: &[], usage: "<new name>", summary: "take another name (refused when a bootstrap has it registered to someone else)" },
    Spec { name: "/status", aliases: &[], usage: "", summary: "identity, addresses, connections, rooms and their members" },
    Spec { name: "/send-file", aliases: &[], usage: "<user> <path>", summary: "offer a file or a folder to a user (they /accept it)" },
    Spec { name: "/share", aliases: &[], usage: "<path>", summary: "offer a file or a folder to everyone in the current room" },
    Spec { name: "/get", aliases: &[], usage: "<offer-id>", summary: "download a file shared in a room" },
    Spec { name: "/accept", aliases: &[], usage: "<transfer-id>", summary: "accept an offered file and download it" },
    Spec { name: "/reject", aliases: &[], usage: "<transfer-id>", summary: "decline an offered file, or stop its download" },
    Spec { name: "/transfers", aliases: &[], usage: "", summary: "offers and transfers with their state and progress" },
    Spec { name: "/connect", aliases: &[], usage: "<multiaddr|port|host:port>", summary: "connect to a peer (a bare port means 127.0.0.1)" },
    Spec { name: "/history", aliases: &[], usage: "[room|user] [n]", summary: "the last n messages (default 20) of a room or a private conversation" },
    Spec { name: "/search", aliases: &[], usage: "<words> [in <room|user>]", summary: "the newest lines holding every word, in all conversations or in one" },
    Spec { name: "/reply", aliases: &[], usage: "<ref> <text>", summary: "answer a line; <ref> is shown next to each line (or last, or user/<ref>)" },
    Spec { name: "/react", aliases: &[], usage: "<ref> <emoji|:shortcode:>", summary: "react to a line with one emoji (last: the newest line of the current room)" },
    Spec { name: "/emoji", aliases: &[], usage: "[word]", summary: "list the :shortcodes: that become emoji, or those holding word" },
    Spec { name: "/edit", aliases: &[], usage: "<ref> <text>", summary: "change the text of one of your lines (last: your newest line)" },
    Spec { name: "/delete", aliases: &[], usage: "<ref>", summary: "withdraw one of your lines (last: your newest line)" },
    Spec { name: "/save", aliases: &[], usage: "<room|user> <file.txt>", summary: "write a conversation as 'time name: text' lines" },
    Spec { name: "/quit", aliases: &["/exit"], usage: "", summary: "stop the node" },
];

/// Why a line is not a valid command. The text is one line for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

impl ParseError {
    /// The usage of command `name`, as an error.
    pub fn usage(name: &str) -> Self {
        usage_error(name)
    }
}

fn usage_error(name: &str) -> ParseError {
    let usage = spec(name).map(|s| s.usage).unwrap_or("");
    ParseError(format!("usage: {name} {usage}"))
}

/// The spec of a command by name or alias (with or without the slash).
pub fn spec(name: &str) -> Option<&'static Spec> {
    let name = if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    };
    SPECS
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name.as_str()))
}

/// Parses one line. Text not starting with `/` is a message; `//` sends a literal `/`.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix("//") {
        return say(&format!("/{rest}"));
    }
    if !line.starts_with('/') {
        return say(line);
    }
    let mut words = line.split_whitespace();
    let head = words.next().unwrap_or("/");
    let args: Vec<&str> = words.collect();
    let rest_after = |n: usize| rest_of_line(line, n + 1);
    let Some(spec) = spec(head) else {
        return Err(ParseError(format!(
            "unknown command {head}: type /help for the list"
        )));
    };
    let name = spec.name;
    let room = |s: &str| Room::parse(s).map_err(|e| ParseError(e.to_string()));
    match (name, args.as_slice()) {
        ("/help", []) => Ok(Command::Help(None)),
        ("/help", [cmd]) => match self::spec(cmd) {
            Some(s) => Ok(Command::Help(Some(s.name.to_owned()))),
            None => Err(ParseError(format!(
                "no command {cmd}: type /help for the list"
            ))),
        },
        ("/emoji", []) => Ok(Command::Emoji(None)),
        ("/emoji", [word]) => Ok(Command::Emoji(Some((*word).to_owned()))),
        ("/join", [r]) => Ok(Command::Join(room(r)?)),
        ("/leave", ["geo"]) => Ok(Command::People(PeopleCommand::LeaveGeo)),
        ("/leave", [r]) => Ok(Command::Leave(room(r)?)),
        ("/rooms", []) => Ok(Command::Rooms),
        ("/status", []) => Ok(Command::Status),
        ("/connect", [target]) => Ok(Command::Connect(parse_target(target)?)),
        ("/history", []) => Ok(Command::History {
            target: None,
            count: DEFAULT_HISTORY,
        }),
        ("/history", [one]) => match one.parse::<usize>() {
            Ok(count) => Ok(Command::History {
                target: None,
                count,
            }),
            Err(_) => Ok(Command::History {
                target: Some(target(one)?),
                count: DEFAULT_HISTORY,
            }),
        },
        ("/history", [t, n]) => Ok(Command::History {
            target: Some(target(t)?),
            count: n
                .parse()
                .map_err(|_| ParseError(format!("'{n}' is not a count of lines")))?,
        }),
        ("/search", [_, ..]) => search(args.as_slice()),
        ("/save", [t, _, ..]) => Ok(Command::Save {
            target: target(t)?,
            path: PathBuf::from(rest_after(1)),
        }),
        ("/msg", [user, _, ..]) => Ok(Command::Msg {
            user: (*user).to_owned(),
            text: rest_after(1).to_owned(),
        }),
        ("/send-file", [user, _, ..]) => Ok(Command::SendFile {
            user: (*user).to_owned(),
            path: PathBuf::from(rest_after(1)),
        }),
        ("/share", [_, ..]) => Ok(Command::Share(PathBuf::from(rest_after(0)))),
        ("/get" | "/accept", [id]) => Ok(Command::Accept((*id).to_owned())),
        ("/reject", [id]) => Ok(Command::Reject((*id).to_owned())),
        ("/transfers", []) => Ok(Command::Transfers),
        ("/quit", []) => Ok(Command::Quit),
        (name, args) if change_grammar::handles(name) => {
            change_grammar::parse(name, args, rest_after(1)).map(Command::Change)
        }
        (name, args) if people_grammar::handles(name) => {
            people_grammar::parse(name, args).map(Command::People)
        }
        _ => Err(usage_error(name)),
    }
}

/// `/search <words> [in <room|user>]`: a last pair `in <target>` after at least one word
/// names the conversation.
fn search(args: &[&str]) -> Result<Command, ParseError> {
    let (words, target) = match args {
        [words @ .., "in", t] if !words.is_empty() => (words, Some(target(t)?)),
        words => (words, None),
    };
    Ok(Command::Search {
        words: words.iter().map(|w| (*w).to_owned()).collect(),
        target,
    })
}

/// A room word is a room; anything else names a user (checked when the command runs).
fn target(word: &str) -> Result<Target, ParseError> {
    match Target::parse(word) {
        Target::Room(room) => Ok(Target::Room(room)),
        Target::User(_) if word.contains(':') => Room::parse(word)
            .map(Target::Room)
            .map_err(|e| ParseError(e.to_string())),
        user => Ok(user),
    }
}

/// The line after its first `skip` words, spacing inside kept as typed.
fn rest_of_line(line: &str, skip: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..skip {
        rest = rest
            .find(char::is_whitespace)
            .map_or("", |i| rest[i..].trim_start());
    }
    rest.trim_end()
}

fn say(text: &str) -> Result<Command, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError("nothing to send".into()));
    }
    Ok(Command::Say(text.to_owned()))
}

/// Reads a `/connect` target: a multiaddr, a bare port (127.0.0.1), or `host:port`.
pub fn parse_target(target: &str) -> Result<Multiaddr, ParseError> {
    let bad = |why: &str| ParseError(format!("cannot connect to '{target}': {why}"));
    if target.starts_with('/') {
        return target
            .parse()
            .map_err(|e| bad(&format!("not a multiaddr ({e})")));
    }
    if let Ok(port) = target.parse::<u16>() {
        return format!("/ip4/127.0.0.1/tcp/{port}")
            .parse()
            .map_err(|_| bad("bad port"));
    }
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| bad("use a multiaddr, a port, or host:port"))?;
    let port: u16 = port.parse().map_err(|_| bad("the port must be 1-65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => format!("/ip4/{ip}/tcp/{port}"),
        Ok(IpAddr::V6(ip)) => format!("/ip6/{ip}/tcp/{port}"),
        Err(_) if !host.is_empty() && !host.contains(['/', ' ']) => {
            format!("/dns/{host}/tcp/{port}")
        }
        Err(_) => return Err(bad("the host is empty")),
    };
    addr.parse().map_err(|_| bad("not a host name"))
}

/// Every name and alias, for tab completion.
pub fn names() -> impl Iterator<Item = &'static str> {
    SPECS
        .iter()
        .flat_map(|s| std::iter::once(s.name).chain(s.aliases.iter().copied()))
}

/// The /help text: every command, or one in detail.
pub fn help(command: Option<&str>) -> String {
    match command.and_then(spec) {
        Some(s) => {
            let aliases = if s.aliases.is_empty() {
                String::new()
            } else {
                format!("\n  also: {}", s.aliases.join(", "))
            };
            format!("{} {}\n  {}{}", s.name, s.usage, s.summary, aliases)
        }
        None => {
            let mut out = String::from(
                "Type text to send it to the current room (//text sends a line starting with /).\n",
            );
            for s in SPECS {
                let left = format!("{} {}", s.name, s.usage);
                out.push_str(&format!("  {left:<44} {}\n", s.summary));
            }
            out.push_str("Rooms: lobby, geo:<geohash>, interest:<tag>.\n");
            out.push_str(
                "A user is a name, name#xxxx (end of the peer id), a contact or a peer id.",
            );
            out
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_is_a_message_and_double_slash_escapes() {
        assert_eq!(parse("hello").unwrap(), Command::Say("hello".into()));
        assert_eq!(
            parse("//me waves").unwrap(),
            Command::Say("/me waves".into())
        );
        assert!(parse("   ").is_err());
    }

    #[test]
    fn commands_and_aliases_parse() {
        assert_eq!(parse("/status").unwrap(), Command::Status);
        assert_eq!(parse("/exit").unwrap(), Command::Quit);
        assert_eq!(
            parse("/help connect").unwrap(),
            Command::Help(Some("/connect".into()))
        );
        assert_eq!(parse("/join lobby").unwrap(), Command::Join(Room::Lobby));
        assert_eq!(
            parse("/history lobby 5").unwrap(),
            Command::History {
                target: Some(Target::Room(Room::Lobby)),
                count: 5
            }
        );
        assert_eq!(
            parse("/search lunch Friday in lobby").unwrap(),
            Command::Search {
                words: vec!["lunch".into(), "Friday".into()],
                target: Some(Target::Room(Room::Lobby)),
            }
        );
        assert_eq!(
            parse("/search meet in").unwrap(),
            Command::Search {
                words: vec!["meet".into(), "in".into()],
                target: None,
            }
        );
        assert_eq!(
            parse("/search in bob").unwrap(),
            Command::Search {
                words: vec!["in".into(), "bob".into()],
                target: None,
            }
        );
        assert_eq!(
            parse("/history 7").unwrap(),
            Command::History {
                target: None,
                count: 7
            }
        );
        assert_eq!(
            parse("/history bob").unwrap(),
            Command::History {
                target: Some(Target::User("bob".into())),
                count: DEFAULT_HISTORY
            }
        );
        assert_eq!(
            parse("/save lobby my chat.txt").unwrap(),
            Command::Save {
                target: Target::Room(Room::Lobby),
                path: "my chat.txt".into()
            }
        );
        assert_eq!(
            parse("/msg bob  hi   there ").unwrap(),
            Command::Msg {
                user: "bob".into(),
                text: "hi   there".into()
            }
        );
        assert_eq!(
            parse("/send-private-message bob#x1y2 hi").unwrap(),
            Command::Msg {
                user: "bob#x1y2".into(),
                text: "hi".into()
            }
        );
        assert_eq!(
            parse("/send-file bob /tmp/a b.iso").unwrap(),
            Command::SendFile {
                user: "bob".into(),
                path: "/tmp/a b.iso".into()
            }
        );
        assert_eq!(
            parse("/share notes.txt").unwrap(),
            Command::Share("notes.txt".into())
        );
        assert_eq!(parse("/get abcd").unwrap(), Command::Accept("abcd".into()));
        assert_eq!(
            parse("/reject abcd").unwrap(),
            Command::Reject("abcd".into())
        );
        assert_eq!(parse("/transfers").unwrap(), Command::Transfers);
        assert_eq!(parse("/emoji").unwrap(), Command::Emoji(None));
        assert_eq!(
            parse("/emoji heart").unwrap(),
            Command::Emoji(Some("heart".into()))
        );
    }

    #[test]
    fn bad_input_gives_one_line_errors() {
        for line in [
            "/msg bob",
            "/msg",
            "/send-file bob",
            "/share",
            "/accept",
            "/history geo:aaa",
            "/nope",
            "/join",
            "/join narnia",
            "/history lobby x",
            "/status now",
            "/connect",
            "/help nope",
            "/emoji red heart",
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert!(!err.is_empty() && !err.contains('\n'), "{line}: {err}");
        }
    }

    #[test]
    fn connect_targets() {
        assert_eq!(
            parse_target("4001").unwrap().to_string(),
            "/ip4/127.0.0.1/tcp/4001"
        );
        assert_eq!(
            parse_target("10.0.0.2:7").unwrap().to_string(),
            "/ip4/10.0.0.2/tcp/7"
        );
        assert_eq!(
            parse_target("[::1]:7").unwrap().to_string(),
            "/ip6/::1/tcp/7"
        );
        assert_eq!(
            parse_target("boot.example:7").unwrap().to_string(),
            "/dns/boot.example/tcp/7"
        );
        assert_eq!(
            parse_target("/ip4/1.2.3.4/udp/5/quic-v1")
                .unwrap()
                .to_string(),
            "/ip4/1.2.3.4/udp/5/quic-v1"
        );
        assert!(parse_target("host:99999").is_err());
        assert!(parse_target("/nonsense").is_err());
        assert!(parse_target("justahost").is_err());
    }

    #[test]
    fn help_lists_every_command() {
        let text = help(None);
        for s in SPECS {
            assert!(text.contains(s.name));
        }
        assert!(help(Some("save")).contains("time name: text"));
    }
}
