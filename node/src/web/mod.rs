//! The local web UI (`ipm --web`): a page served on loopback and guarded by a token, with
//! registration, login and the chat window, built on `Client` and its events only.
//!
//! - [`server`]: the routes behind one guard (Host, Origin, token), and file uploads.
//! - [`uploads`]: the uploaded files, removed once no transfer needs them.
//! - [`preview`]: received images shown inline, typed by their bytes.
//! - [`auth`]: the token kept in the data dir, and the Host and Origin checks.
//! - [`socket`]: the page's WebSocket: events out, commands in through the one executor.
//! - [`setup`]: the registration and login forms, answered by the program starting the node.
//! - [`snapshot`]: the panes' state as JSON.
//! - [`assets`]: the embedded page and the headers every answer carries.

pub mod assets;
pub mod auth;
pub mod preview;
pub mod server;
pub mod setup;
pub mod snapshot;
pub mod socket;
pub mod uploads;
