//! Decisions without I/O. Each machine takes inputs, the current time and any random draw,
//! and returns what the driver in `event_loop` must do: `delivery` (private messages),
//! `mail_pickup` (sealed copies at bootstraps), `registry_client` (names at bootstraps),
//! `offers` (file offers and transfers), `intake` (what each gossip message is),
//! `announcing` and `presence` (who is online), `connection_budget` (how many peers to keep,
//! which to trim) and `peer_policy` (bootstrap redials, direct dials, spam budgets). Beside
//! them: `directory` and `names` (what is known of peers), `geo_group`, `rate_limit`,
//! `backoff` and `refusal` (why a change is refused).

pub mod announcing;
pub mod backoff;
pub mod connection_budget;
pub mod delivery;
pub mod directory;
pub mod geo_group;
pub mod intake;
pub mod mail_pickup;
pub mod names;
pub mod offers;
pub mod peer_policy;
pub mod presence;
pub mod rate_limit;
pub mod refusal;
pub mod registry_client;
