//! The part of the command grammar about rooms and people: location and interest groups,
//! users, contacts, blocks and the away text.

use libp2p::Multiaddr;

use ipm_protocol::{
    geo::group_precision, presence::validate_away, room::normalize_tag, validate_name, Position,
};

use super::{usage_error, ParseError};

/// A command about rooms and people.
#[derive(Clone, Debug, PartialEq)]
pub enum PeopleCommand {
    /// List online users.
    Users,
    /// Set the own position, or forget it (`None`).
    SetGeo(Option<Position>),
    /// Show the own position and the active radius.
    ListGeo,
    /// Join the location group of this radius (km), or of the default radius.
    JoinGeo(Option<f64>),
    /// Leave the location group.
    LeaveGeo,
    /// Join the interest group of a (normalised) tag, or of every own interest.
    JoinInterest(Option<String>),
    /// List contacts.
    Contacts,
    /// Give a user a petname.
    AddContact {
        /// The petname.
        name: String,
        /// Who.
        target: ContactTarget,
    },
    /// Remove a contact.
    RemoveContact(String),
    /// Block a user, or list blocked users (`None`).
    Block(Option<String>),
    /// Unblock a user.
    Unblock(String),
    /// Set an away text (`None`: the default one).
    Away(Option<String>),
    /// Clear the away text.
    Back,
    /// Take another name.
    Rename(String),
}

/// Who a new contact is.
#[derive(Clone, Debug, PartialEq)]
pub enum ContactTarget {
    /// A user as typed: a name, `name#xxxx`, a petname or a peer id.
    User(String),
    /// A full address ending in `/p2p/<peer id>`.
    Addr(Multiaddr),
}

/// Whether `name` (with its slash) is one of these commands.
pub(super) fn handles(name: &str) -> bool {
    matches!(
        name,
        "/users"
            | "/geo"
            | "/list-geo"
            | "/join-geo"
            | "/join-interest"
            | "/contacts"
            | "/block"
            | "/unblock"
            | "/away"
            | "/back"
            | "/name"
    )
}

/// Parses the arguments of the command `name` (see [`handles`]).
pub(super) fn parse(name: &str, args: &[&str]) -> Result<PeopleCommand, ParseError> {
    let err = |e: &dyn std::fmt::Display| ParseError(e.to_string());
    let text = args.join(" ");
    match (name, args) {
        ("/users", []) => Ok(PeopleCommand::Users),
        ("/geo" | "/list-geo", []) => Ok(PeopleCommand::ListGeo),
        ("/geo", ["off"]) => Ok(PeopleCommand::SetGeo(None)),
        ("/geo", [_, ..]) => Position::parse(&text)
            .map(|p| PeopleCommand::SetGeo(Some(p)))
            .map_err(|e| err(&e)),
        ("/join-geo", []) => Ok(PeopleCommand::JoinGeo(None)),
        ("/join-geo", [radius]) => {
            let number = radius.trim_end_matches("km");
            let km: f64 = number.parse().map_err(|_| {
                ParseError(format!(
                    "'{radius}' is not a radius: give kilometres, e.g. /join-geo 10"
                ))
            })?;
            group_precision(km).map_err(|e| err(&e))?;
            Ok(PeopleCommand::JoinGeo(Some(km)))
        }
        ("/join-interest", []) => Ok(PeopleCommand::JoinInterest(None)),
        ("/join-interest", [_, ..]) => normalize_tag(&text)
            .map(|t| PeopleCommand::JoinInterest(Some(t)))
            .map_err(|e| err(&e)),
        ("/contacts", []) => Ok(PeopleCommand::Contacts),
        ("/contacts", ["add", petname, target]) => {
            validate_name(petname)
                .map_err(|e| ParseError(format!("bad contact name '{petname}': {e}")))?;
            let target = if target.starts_with('/') {
                let addr: Multiaddr = target
                    .parse()
                    .map_err(|e| ParseError(format!("'{target}' is not a multiaddr ({e})")))?;
                if crate::net::addresses::peer_of(&addr).is_none() {
                    return Err(ParseError(format!(
                        "'{target}' has no /p2p/<peer id> at the end: the contact's peer id is needed"
                    )));
                }
                ContactTarget::Addr(addr)
            } else {
                ContactTarget::User((*target).to_owned())
            };
            Ok(PeopleCommand::AddContact {
                name: (*petname).to_owned(),
                target,
            })
        }
        ("/contacts", ["remove" | "rm", petname]) => {
            Ok(PeopleCommand::RemoveContact((*petname).to_owned()))
        }
        ("/block", []) => Ok(PeopleCommand::Block(None)),
        ("/block", [user]) => Ok(PeopleCommand::Block(Some((*user).to_owned()))),
        ("/unblock", [user]) => Ok(PeopleCommand::Unblock((*user).to_owned())),
        ("/away", []) => Ok(PeopleCommand::Away(None)),
        ("/away", [_, ..]) => {
            validate_away(&text).map_err(|e| err(&e))?;
            Ok(PeopleCommand::Away(Some(text)))
        }
        ("/back", []) => Ok(PeopleCommand::Back),
        ("/name", [new]) => {
            validate_name(new).map_err(|e| err(&e))?;
            Ok(PeopleCommand::Rename((*new).to_owned()))
        }
        _ => Err(usage_error(name)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::ui::commands::{parse, Command};

    use super::*;

    fn people(line: &str) -> PeopleCommand {
        match parse(line).unwrap() {
            Command::People(c) => c,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn location_commands() {
        let paris = Position::new(48.8566, 2.3522).unwrap();
        assert_eq!(
            people("/geo 48.8566,2.3522"),
            PeopleCommand::SetGeo(Some(paris))
        );
        assert_eq!(
            people("/geo 48.8566, 2.3522"),
            PeopleCommand::SetGeo(Some(paris))
        );
        assert!(matches!(
            people("/geo u09tvw"),
            PeopleCommand::SetGeo(Some(_))
        ));
        assert_eq!(people("/geo off"), PeopleCommand::SetGeo(None));
        assert_eq!(people("/geo"), PeopleCommand::ListGeo);
        assert_eq!(people("/list-geo"), PeopleCommand::ListGeo);
        assert_eq!(people("/join-geo 10"), PeopleCommand::JoinGeo(Some(10.0)));
        assert_eq!(people("/join-geo 2.5km"), PeopleCommand::JoinGeo(Some(2.5)));
        assert_eq!(people("/join-geo"), PeopleCommand::JoinGeo(None));
        assert_eq!(people("/leave geo"), PeopleCommand::LeaveGeo);
    }

    #[test]
    fn interest_and_people_commands() {
        assert_eq!(
            people("/join-interest Rust Lang"),
            PeopleCommand::JoinInterest(Some("rust-lang".into()))
        );
        assert_eq!(people("/join-interest"), PeopleCommand::JoinInterest(None));
        assert_eq!(people("/users"), PeopleCommand::Users);
        assert_eq!(people("/list-users"), PeopleCommand::Users);
        assert_eq!(people("/contacts"), PeopleCommand::Contacts);
        assert_eq!(
            people("/contacts add ally bob#abcd"),
            PeopleCommand::AddContact {
                name: "ally".into(),
                target: ContactTarget::User("bob#abcd".into())
            }
        );
        let addr = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWFns9ahtDBvZfQ2tTqkux6FC9qc6k9KvPmGbY9vnXcFNP";
        assert_eq!(
            people(&format!("/contacts add ally {addr}")),
            PeopleCommand::AddContact {
                name: "ally".into(),
                target: ContactTarget::Addr(addr.parse().unwrap())
            }
        );
        assert_eq!(
            people("/contacts remove ally"),
            PeopleCommand::RemoveContact("ally".into())
        );
        assert_eq!(
            people("/block bob#abcd"),
            PeopleCommand::Block(Some("bob#abcd".into()))
        );
        assert_eq!(people("/block"), PeopleCommand::Block(None));
        assert_eq!(people("/unblock bob"), PeopleCommand::Unblock("bob".into()));
        assert_eq!(
            people("/away gone fishing"),
            PeopleCommand::Away(Some("gone fishing".into()))
        );
        assert_eq!(people("/away"), PeopleCommand::Away(None));
        assert_eq!(people("/back"), PeopleCommand::Back);
        assert_eq!(
            people("/name alicia"),
            PeopleCommand::Rename("alicia".into())
        );
        assert!(parse("/name").is_err());
        assert!(parse("/name two words").is_err());
        assert!(parse("/name bad#name").is_err());
    }

    #[test]
    fn bad_input_gives_one_line_errors() {
        for line in [
            "/geo 91,0",
            "/geo nowhere",
            "/join-geo 0",
            "/join-geo 3000",
            "/join-geo ten",
            "/join-geo 1 2",
            "/join-interest #",
            "/contacts add",
            "/contacts add a#b bob",
            "/contacts add ally /ip4/127.0.0.1/tcp/1",
            "/contacts add ally /nonsense",
            "/contacts list",
            "/unblock",
            "/users now",
            "/back later",
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert!(!err.is_empty() && !err.contains('\n'), "{line}: {err}");
        }
        assert!(parse("/join-geo 0")
            .unwrap_err()
            .to_string()
            .contains("bad radius"));
    }
}
