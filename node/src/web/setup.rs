//! The first pages: registration on a first run (name, position, interests, an optional
//! passphrase) and login on later runs with a sealed identity. The page fills a form; the
//! program starting the node answers it, and the page shows the answer in plain words.

use ipm_protocol::{room::normalize_tag, Position};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::client::Client;

/// Where the node stands, as the page needs to know it.
#[derive(Clone, Debug)]
pub enum Phase {
    /// No name yet: the page shows the registration form.
    Register {
        /// Whether a bootstrap registry will check the name.
        bootstrap: bool,
    },
    /// The identity is sealed: the page asks for its passphrase.
    Login {
        /// The peer id of the sealed identity, when readable without the passphrase.
        name: Option<String>,
    },
    /// The node is starting (connecting to its bootstraps).
    Starting,
    /// The node runs; the page shows the chat window.
    Running(Client),
}

impl Phase {
    /// The phase's name in the page's `phase` message.
    pub fn label(&self) -> &'static str {
        match self {
            Phase::Register { .. } => "register",
            Phase::Login { .. } => "login",
            Phase::Starting => "starting",
            Phase::Running(_) => "running",
        }
    }
}

/// A form the page sent.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Form {
    /// The registration form.
    Register {
        /// The name wanted.
        name: String,
        /// `LAT,LON` or a geohash; empty for none.
        #[serde(default)]
        geo: String,
        /// Interests, comma-separated.
        #[serde(default)]
        interests: String,
        /// A passphrase sealing the identity; empty for none.
        #[serde(default)]
        passphrase: String,
    },
    /// The passphrase of the sealed identity.
    Login {
        /// The passphrase.
        passphrase: String,
    },
}

/// A registration whose fields are all valid.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// The name.
    pub name: String,
    /// The position, when given.
    pub position: Option<Position>,
    /// Normalised interests, without repeats.
    pub interests: Vec<String>,
    /// The passphrase, when given.
    pub passphrase: Option<String>,
}

/// Why a registration form is refused before the network is asked.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormError {
    /// The name is not a valid name.
    #[error("the name \"{name}\" cannot be used: {reason}")]
    Name {
        /// The name given.
        name: String,
        /// Why.
        reason: String,
    },
    /// The position does not parse.
    #[error("the position \"{0}\" is neither LAT,LON nor a geohash")]
    Position(String),
    /// An interest does not normalise to a tag.
    #[error("the interest \"{tag}\" cannot be used: {reason}")]
    Interest {
        /// The tag given.
        tag: String,
        /// Why.
        reason: String,
    },
}

impl Registration {
    /// Checks the fields of a registration form.
    pub fn check(
        name: &str,
        geo: &str,
        interests: &str,
        passphrase: &str,
    ) -> Result<Self, FormError> {
        let name = name.trim();
        ipm_protocol::validate_name(name).map_err(|e| FormError::Name {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
        let geo = geo.trim();
        let position = if geo.is_empty() {
            None
        } else {
            Some(Position::parse(geo).map_err(|_| FormError::Position(geo.to_owned()))?)
        };
        let mut tags: Vec<String> = Vec::new();
        for raw in interests
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let tag = normalize_tag(raw).map_err(|e| FormError::Interest {
                tag: raw.to_owned(),
                reason: e.to_string(),
            })?;
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        Ok(Self {
            name: name.to_owned(),
            position,
            interests: tags,
            passphrase: Some(passphrase.to_owned()).filter(|p| !p.is_empty()),
        })
    }
}

/// Why a form of the first pages did not start the node, as the page shows it.
#[derive(Debug, thiserror::Error)]
pub enum FormRefused {
    /// A registration form reached a node that has an identity.
    #[error("this node is registered: log in with the passphrase")]
    Registered,
    /// A login form reached a node on its first run.
    #[error("this is a first run: register a name first")]
    FirstRun,
    /// A form came while the node was starting from another.
    #[error("the node is already starting")]
    AlreadyStarting,
    /// The page sent something that is not a form.
    #[error("not a form: {0}")]
    NotAForm(#[source] serde_json::Error),
    /// The registration form holds a bad field.
    #[error(transparent)]
    Form(#[from] FormError),
    /// The identity could not be read, unsealed or made.
    #[error(transparent)]
    Identity(#[from] crate::store::identity::IdentityError),
    /// The node could not start.
    #[error("{0:#}")]
    Start(anyhow::Error),
}

/// A form on its way to the program, with where its answer goes.
#[derive(Debug)]
pub struct Submission {
    /// The form.
    pub form: Form,
    /// `Ok` when the node started; else why not.
    pub reply: oneshot::Sender<Result<(), FormRefused>>,
}

/// The program's side of the first pages: forms arrive here, and the phase is set here.
#[derive(Debug)]
pub struct Gate {
    /// The forms pages sent.
    pub forms: mpsc::Receiver<Submission>,
    /// The phase every page sees.
    pub phase: watch::Sender<Phase>,
    /// The answer owed to a login form, given once the node started (or failed to).
    pub pending: Option<oneshot::Sender<Result<(), FormRefused>>>,
}

/// The server's side of the first pages.
#[derive(Clone, Debug)]
pub struct Door {
    /// Where forms go.
    pub forms: mpsc::Sender<Submission>,
    /// The phase, as the program sets it.
    pub phase: watch::Receiver<Phase>,
}

/// A gate and its door, starting at `phase`.
pub fn gate(phase: Phase) -> (Gate, Door) {
    let (forms_tx, forms) = mpsc::channel(4);
    let (phase_tx, phase_rx) = watch::channel(phase);
    (
        Gate {
            forms,
            phase: phase_tx,
            pending: None,
        },
        Door {
            forms: forms_tx,
            phase: phase_rx,
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_registration_is_normalised() {
        let r = Registration::check(" alice ", "48.8566,2.3522", "Rust, Board Games, rust", "")
            .unwrap();
        assert_eq!(r.name, "alice");
        assert!(r.position.is_some());
        assert_eq!(r.interests, vec!["rust", "board-games"]);
        assert_eq!(r.passphrase, None);
        let r = Registration::check("bob", "", "", "secret").unwrap();
        assert_eq!(r.position, None);
        assert!(r.interests.is_empty());
        assert_eq!(r.passphrase.as_deref(), Some("secret"));
    }

    #[test]
    fn bad_fields_are_refused_in_plain_words() {
        let e = Registration::check("<img src=x>", "", "", "").unwrap_err();
        assert!(matches!(e, FormError::Name { .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with("the name \"<img src=x>\" cannot be used"));
        let e = Registration::check("alice", "north pole", "", "").unwrap_err();
        assert_eq!(e, FormError::Position("north pole".into()));
        let e = Registration::check("alice", "", "!!!", "").unwrap_err();
        assert!(matches!(e, FormError::Interest { .. }), "{e}");
        assert!(Registration::check("", "", "", "").is_err());
    }

    #[test]
    fn forms_parse_from_the_page() {
        let form: Form =
            serde_json::from_str(r#"{"op":"register","name":"a","interests":"x"}"#).unwrap();
        assert_eq!(
            form,
            Form::Register {
                name: "a".into(),
                geo: String::new(),
                interests: "x".into(),
                passphrase: String::new()
            }
        );
        let form: Form = serde_json::from_str(r#"{"op":"login","passphrase":"p"}"#).unwrap();
        assert_eq!(
            form,
            Form::Login {
                passphrase: "p".into()
            }
        );
    }
}
