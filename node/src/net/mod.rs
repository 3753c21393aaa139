//! Networking: the libp2p swarm, the composed behaviour, the wire codec, peer scoring,
//! metrics, and the download tasks that pull files (and folders) from peers.

pub mod addresses;
pub mod behaviour;
pub mod codec;
pub mod download;
pub mod exchange;
pub mod file_stream;
pub mod folder_download;
pub mod ip_limits;
pub mod metrics;
pub mod multi_download;
pub mod part_file;
pub mod peer_manager;
pub mod scoring;
pub mod swarm;
