//! The node's long-lived key: created on the first run, reused after, never world-readable.

use std::{fs, io, path::Path};

use libp2p::identity::Keypair;

use crate::data_dir::write_atomic;

/// Why the identity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file could not be read or written.
    #[error("identity file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// What went wrong.
        source: io::Error,
    },
    /// The key file exists but does not hold a key.
    #[error("identity file {0} is damaged (not a key); move it away to create a new identity")]
    Damaged(String),
}

/// Largest key file accepted: an ed25519 key in protobuf is under 100 bytes.
const MAX_KEY_FILE: u64 = 4096;

/// Loads the key at `path`, or creates, saves (mode 0600, atomically) and returns a new one.
pub fn load_or_create(path: &Path) -> Result<Keypair, IdentityError> {
    let io_err = |source| IdentityError::Io {
        path: path.display().to_string(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            if meta.len() > MAX_KEY_FILE {
                return Err(IdentityError::Damaged(path.display().to_string()));
            }
            let bytes = fs::read(path).map_err(io_err)?;
            Keypair::from_protobuf_encoding(&bytes)
                .map_err(|_| IdentityError::Damaged(path.display().to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| io_err(io::Error::other(e.to_string())))?;
            write_atomic(path, &bytes, true).map_err(io_err)?;
            Ok(key)
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_comes_back_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.key");
        let first = load_or_create(&path).unwrap();
        let second = load_or_create(&path).unwrap();
        assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
    }

    #[test]
    fn a_damaged_key_file_is_reported_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.key");
        fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(IdentityError::Damaged(_))
        ));
        assert_eq!(fs::read(&path).unwrap(), b"garbage");
    }
}
