//! Decisions without I/O: what the node knows of peers and names, presence, the location
//! group, rate limits and retry pauses. Everything here takes the time as an argument.

pub mod announcing;
pub mod backoff;
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
