//! The node's long-lived key: created on the first run, reused after, never world-readable,
//! and optionally sealed with a passphrase (Argon2id + ChaCha20-Poly1305) so that a copied
//! data dir does not give the account away.

use std::{fs, io, path::Path};

use chacha20poly1305::{aead::Aead, ChaCha20Poly1305, KeyInit, Nonce};
use libp2p::identity::Keypair;
use zeroize::Zeroizing;

use crate::store::data_dir::write_atomic;

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
    /// The key is sealed and no passphrase was given.
    #[error("identity file {0} is protected by a passphrase: set IPM_PASSPHRASE or run ipm in a terminal")]
    NeedsPassphrase(String),
    /// The passphrase does not open the key.
    #[error("wrong passphrase for identity file {0}")]
    WrongPassphrase(String),
}

/// Largest key file accepted: an ed25519 key in protobuf is under 100 bytes.
const MAX_KEY_FILE: u64 = 4096;
/// First bytes of a passphrase-sealed key file.
const SEALED_MAGIC: &[u8] = b"ipm-sealed-key-v1\n";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;

/// Whether the key file at `path` is sealed with a passphrase.
pub fn is_protected(path: &Path) -> bool {
    fs::read(path).is_ok_and(|bytes| bytes.starts_with(SEALED_MAGIC))
}

/// Loads the key at `path`, or creates, saves (mode 0600, atomically) and returns a new one.
/// With a `passphrase`, a new key is saved sealed, and an unsealed one is sealed in place.
pub fn load_or_create(path: &Path, passphrase: Option<&str>) -> Result<Keypair, IdentityError> {
    let shown = || path.display().to_string();
    let io_err = |source| IdentityError::Io {
        path: shown(),
        source,
    };
    match fs::metadata(path) {
        Ok(meta) => {
            if meta.len() > MAX_KEY_FILE {
                return Err(IdentityError::Damaged(shown()));
            }
            let bytes = Zeroizing::new(fs::read(path).map_err(io_err)?);
            if let Some(sealed) = bytes.strip_prefix(SEALED_MAGIC) {
                let passphrase =
                    passphrase.ok_or_else(|| IdentityError::NeedsPassphrase(shown()))?;
                let plain = unseal(sealed, passphrase)
                    .ok_or_else(|| IdentityError::WrongPassphrase(shown()))?;
                return Keypair::from_protobuf_encoding(&plain)
                    .map_err(|_| IdentityError::Damaged(shown()));
            }
            let key = Keypair::from_protobuf_encoding(&bytes)
                .map_err(|_| IdentityError::Damaged(shown()))?;
            if let Some(passphrase) = passphrase {
                save(path, &key, Some(passphrase)).map_err(io_err)?;
            }
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            save(path, &key, passphrase).map_err(io_err)?;
            Ok(key)
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Writes `key` to `path`, sealed when a passphrase is given.
pub fn save(path: &Path, key: &Keypair, passphrase: Option<&str>) -> io::Result<()> {
    let plain = Zeroizing::new(
        key.to_protobuf_encoding()
            .map_err(|e| io::Error::other(e.to_string()))?,
    );
    let bytes = match passphrase {
        Some(passphrase) => seal(&plain, passphrase)?,
        None => plain.to_vec(),
    };
    write_atomic(path, &bytes, true)
}

fn derive(passphrase: &str, salt: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    argon2::Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .ok()?;
    Some(key)
}

fn seal(plain: &[u8], passphrase: &str) -> io::Result<Vec<u8>> {
    let salt: [u8; SALT_LEN] = rand::random();
    let nonce: [u8; NONCE_LEN] = rand::random();
    let key = derive(passphrase, &salt).ok_or_else(|| io::Error::other("key derivation failed"))?;
    let cipher = ChaCha20Poly1305::new(key.as_ref().into());
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), plain)
        .map_err(|_| io::Error::other("encryption failed"))?;
    let mut out = SEALED_MAGIC.to_vec();
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn unseal(sealed: &[u8], passphrase: &str) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < SALT_LEN + NONCE_LEN {
        return None;
    }
    let (salt, rest) = sealed.split_at(SALT_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let key = derive(passphrase, salt)?;
    ChaCha20Poly1305::new(key.as_ref().into())
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_comes_back_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.key");
        let first = load_or_create(&path, None).unwrap();
        let second = load_or_create(&path, None).unwrap();
        assert_eq!(first.public().to_peer_id(), second.public().to_peer_id());
        assert!(!is_protected(&path));
    }

    #[test]
    fn a_damaged_key_file_is_reported_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.key");
        fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            load_or_create(&path, None),
            Err(IdentityError::Damaged(_))
        ));
        assert_eq!(fs::read(&path).unwrap(), b"garbage");
    }

    #[test]
    fn a_sealed_key_needs_its_passphrase() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.key");
        let plain = load_or_create(&path, None).unwrap();
        // Giving a passphrase seals the existing key in place: same identity.
        let sealed = load_or_create(&path, Some("correct horse")).unwrap();
        assert_eq!(plain.public().to_peer_id(), sealed.public().to_peer_id());
        assert!(is_protected(&path));
        let raw = fs::read(&path).unwrap();
        let protobuf = plain.to_protobuf_encoding().unwrap();
        assert!(!raw
            .windows(protobuf.len())
            .any(|w| w == protobuf.as_slice()));
        assert!(matches!(
            load_or_create(&path, None),
            Err(IdentityError::NeedsPassphrase(_))
        ));
        assert!(matches!(
            load_or_create(&path, Some("wrong")),
            Err(IdentityError::WrongPassphrase(_))
        ));
        let again = load_or_create(&path, Some("correct horse")).unwrap();
        assert_eq!(again.public().to_peer_id(), plain.public().to_peer_id());
    }
}
