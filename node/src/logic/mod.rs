//! Decisions without I/O. Each machine takes inputs, the current time and any random draw,
//! and returns what the driver in `event_loop` must do: `delivery` (private messages),
//! `mail_pickup` (sealed copies at bootstraps), `registry_client` (names at bootstraps),
//! `offers` (file offers and transfers), `sending` (what a sharer is told as peers fetch),
//! `folder_plan` (folders as one transfer),
//! `piece_plan` (who sends which pieces of a file several members share), `catch_up` (rooms
//! catching up after being away), `answer_budget` (what catch-up answers may cost an asker,
//! its address and the node), `address_key` (the unit budgets per address are kept for),
//! `intake` (what each gossip message is) with
//! `forwarder_budget` (what forwarders of unknown authors may bring), `announcing` and
//! `presence` (who is online), `connection_budget` (how many peers to keep, which to trim),
//! `second_connections` (which of two connections to one peer to close),
//! `dht_upkeep` (how much of Kademlia's bootstrap to run) and `peer_policy` (bootstrap redials, direct dials, spam budgets). Beside them:
//! `directory` and `names` (what is known of peers), `geo_group`, `rate_limit`, `backoff`,
//! `notices` (read receipts and typing),
//! `timeline` (the conversation model: one fold of a log into the lines a person sees),
//! `edits` (changes as log entries, and the recent lines references resolve to),
//! `receipt_ledger` (which receipts move an own message forward),
//! `one_emoji` (what a reaction must be), `refusal` (why a change is refused) and `service_budgets` (a bootstrap's budgets, as
//! settings).

pub mod address_key;
pub mod announcing;
pub mod answer_budget;
pub mod backoff;
pub mod catch_up;
pub mod connection_budget;
pub mod delivery;
pub mod dht_upkeep;
pub mod directory;
pub mod edits;
pub mod folder_plan;
pub mod forwarder_budget;
pub mod geo_group;
pub mod intake;
pub mod mail_pickup;
pub mod names;
pub mod notices;
pub mod offers;
pub mod one_emoji;
pub mod peer_policy;
pub mod piece_plan;
pub mod presence;
pub mod rate_limit;
pub mod receipt_ledger;
pub mod refusal;
pub mod registry_client;
pub mod second_connections;
pub mod sending;
pub mod service_budgets;
pub mod timeline;
pub mod upload_slots;
