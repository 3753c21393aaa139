//! The measuring programs of the network bench, one module per section.

pub mod baseline;
pub mod direct;
pub mod fanout;
pub mod file_transfer;
pub mod host;
pub mod machine;
pub mod memory;
pub mod netns;
pub mod nodes;
pub mod overlay;
pub mod report;
pub mod settings;
pub mod stats;
