//! Decisions without I/O: what the node knows of peers and names, presence, the location
//! group, rate limits and retry pauses. Everything here takes the time as an argument.

pub mod backoff;
pub mod directory;
pub mod geo_group;
pub mod names;
pub mod presence;
pub mod rate_limit;
pub mod registry_client;
