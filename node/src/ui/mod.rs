//! Frontends: the command grammar, the session that runs commands against a `Client`, the
//! interactive prompt and its screen, how events are rendered, mentions, progress bars, emoji
//! and `ipm ctl`.

pub mod commands;
pub mod ctl;
pub mod emoji;
pub mod mention;
pub mod progress;
pub mod prompt;
pub mod render;
pub mod screen;
pub mod session;
