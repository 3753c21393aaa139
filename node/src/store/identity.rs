//! The node's long-lived key: created on the first run, reused after, never world-readable,
//! and optionally sealed with a passphrase (Argon2id + ChaCha20-Poly1305) so that a copied
//! data dir does not give the account away.
//!
//! A sealed file names the Argon2 costs it was sealed with, so a newer argon2 crate with
//! other defaults still opens it. The first format (`ipm-sealed-key-v1`) stored no costs:
//! it was always sealed with argon2 0.5's defaults, written out here as [`V1_COSTS`]; such
//! a file is rewritten in the current format the first time it opens.

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
    /// Other users may write the key file.
    #[error(transparent)]
    Exposed(#[from] crate::store::data_dir::Exposed),
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
/// First bytes of a key file sealed without its costs: always [`V1_COSTS`].
const SEALED_V1: &[u8] = b"ipm-sealed-key-v1\n";
/// First bytes of a key file sealed with its Argon2id costs written after them.
const SEALED_V2: &[u8] = b"ipm-sealed-key-v2\n";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
/// Bytes of the costs in a v2 file: memory (KiB), passes, lanes, each a little-endian u32.
const COSTS_LEN: usize = 12;

/// The Argon2id costs a key is sealed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Costs {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes.
    pub lanes: u32,
}

/// The costs every v1 file was sealed with: argon2 0.5's defaults (Argon2id, version 0x13).
pub const V1_COSTS: Costs = Costs {
    memory_kib: 19 * 1024,
    passes: 2,
    lanes: 1,
};

/// The costs new keys are sealed with.
pub const SEAL_COSTS: Costs = V1_COSTS;

/// Highest costs a key file may ask for, so that a planted file cannot make the node
/// allocate gigabytes or spin for minutes before the passphrase is even checked.
const MAX_COSTS: Costs = Costs {
    memory_kib: 1024 * 1024,
    passes: 64,
    lanes: 16,
};

/// Whether the key file at `path` is sealed with a passphrase.
pub fn is_protected(path: &Path) -> bool {
    fs::read(path).is_ok_and(|bytes| bytes.starts_with(SEALED_V1) || bytes.starts_with(SEALED_V2))
}

/// The costs the key file at `path` is sealed with (`None` when it is not sealed).
pub fn sealed_costs(path: &Path) -> Option<Costs> {
    let bytes = fs::read(path).ok()?;
    if bytes.starts_with(SEALED_V1) {
        return Some(V1_COSTS);
    }
    let rest = bytes.strip_prefix(SEALED_V2)?;
    read_costs(rest).map(|(costs, _)| costs)
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
            crate::store::data_dir::refuse_exposed(path, &meta)?;
            if meta.len() > MAX_KEY_FILE {
                return Err(IdentityError::Damaged(shown()));
            }
            let bytes = Zeroizing::new(fs::read(path).map_err(io_err)?);
            let sealed = match (bytes.strip_prefix(SEALED_V1), bytes.strip_prefix(SEALED_V2)) {
                (Some(rest), _) => Some((V1_COSTS, rest, true)),
                (None, Some(rest)) => {
                    let (costs, rest) =
                        read_costs(rest).ok_or_else(|| IdentityError::Damaged(shown()))?;
                    Some((costs, rest, false))
                }
                (None, None) => None,
            };
            if let Some((costs, sealed, old_format)) = sealed {
                let passphrase =
                    passphrase.ok_or_else(|| IdentityError::NeedsPassphrase(shown()))?;
                let plain = unseal(sealed, passphrase, costs)
                    .ok_or_else(|| IdentityError::WrongPassphrase(shown()))?;
                let key = Keypair::from_protobuf_encoding(&plain)
                    .map_err(|_| IdentityError::Damaged(shown()))?;
                if old_format {
                    // Written again with its costs; the old file stays if that fails.
                    let _ = save(path, &key, Some(passphrase));
                }
                return Ok(key);
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

/// The costs at the start of a v2 body and what follows them; `None` when they are cut
/// short or above [`MAX_COSTS`].
fn read_costs(body: &[u8]) -> Option<(Costs, &[u8])> {
    let (head, rest) = body.split_at_checked(COSTS_LEN)?;
    let word = |i: usize| {
        head.get(i * 4..i * 4 + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let costs = Costs {
        memory_kib: word(0)?,
        passes: word(1)?,
        lanes: word(2)?,
    };
    let within = costs.memory_kib <= MAX_COSTS.memory_kib
        && costs.passes <= MAX_COSTS.passes
        && costs.lanes <= MAX_COSTS.lanes;
    within.then_some((costs, rest))
}

fn derive(passphrase: &str, salt: &[u8], costs: Costs) -> Option<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(costs.memory_kib, costs.passes, costs.lanes, Some(32)).ok()?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .ok()?;
    Some(key)
}

fn seal(plain: &[u8], passphrase: &str) -> io::Result<Vec<u8>> {
    seal_with(plain, passphrase, SEAL_COSTS)
}

fn seal_with(plain: &[u8], passphrase: &str, costs: Costs) -> io::Result<Vec<u8>> {
    let salt: [u8; SALT_LEN] = rand::random();
    let nonce: [u8; NONCE_LEN] = rand::random();
    let key = derive(passphrase, &salt, costs)
        .ok_or_else(|| io::Error::other("key derivation failed"))?;
    let cipher = ChaCha20Poly1305::new(key.as_ref().into());
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), plain)
        .map_err(|_| io::Error::other("encryption failed"))?;
    let mut out = SEALED_V2.to_vec();
    for word in [costs.memory_kib, costs.passes, costs.lanes] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn unseal(sealed: &[u8], passphrase: &str, costs: Costs) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < SALT_LEN + NONCE_LEN {
        return None;
    }
    let (salt, rest) = sealed.split_at(SALT_LEN);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let key = derive(passphrase, salt, costs)?;
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

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_write_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.key");
        load_or_create(&path, None).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let err = load_or_create(&path, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{0} is writable by other users: run chmod 600 {0}",
                path.display()
            )
        );
    }

    /// A v1 file exactly as ipm wrote it before costs were stored: the crate's defaults.
    fn seal_v1(plain: &[u8], passphrase: &str) -> Vec<u8> {
        let salt: [u8; SALT_LEN] = rand::random();
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut key = [0u8; 32];
        argon2::Argon2::default()
            .hash_password_into(passphrase.as_bytes(), &salt, &mut key)
            .unwrap();
        let ciphertext = ChaCha20Poly1305::new((&key).into())
            .encrypt(Nonce::from_slice(&nonce), plain)
            .unwrap();
        let mut out = SEALED_V1.to_vec();
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    #[test]
    fn an_old_format_sealed_key_still_opens_and_is_rewritten_with_its_costs() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.key");
        let key = Keypair::generate_ed25519();
        fs::write(&path, seal_v1(&key.to_protobuf_encoding().unwrap(), "pw")).unwrap();
        assert!(is_protected(&path));
        assert_eq!(sealed_costs(&path), Some(V1_COSTS));
        let opened = load_or_create(&path, Some("pw")).unwrap();
        assert_eq!(opened.public().to_peer_id(), key.public().to_peer_id());
        assert!(fs::read(&path).unwrap().starts_with(SEALED_V2));
        assert_eq!(sealed_costs(&path), Some(SEAL_COSTS));
        let again = load_or_create(&path, Some("pw")).unwrap();
        assert_eq!(again.public().to_peer_id(), key.public().to_peer_id());
    }

    #[test]
    fn a_key_sealed_with_other_costs_opens_with_the_costs_it_names() {
        // As a later ipm with stronger defaults would write it.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("identity.key");
        let key = Keypair::generate_ed25519();
        let costs = Costs {
            memory_kib: 8 * 1024,
            passes: 3,
            lanes: 2,
        };
        let sealed = seal_with(&key.to_protobuf_encoding().unwrap(), "pw", costs).unwrap();
        fs::write(&path, &sealed).unwrap();
        assert_eq!(sealed_costs(&path), Some(costs));
        let opened = load_or_create(&path, Some("pw")).unwrap();
        assert_eq!(opened.public().to_peer_id(), key.public().to_peer_id());
        // A file asking for absurd costs is damaged, not a reason to allocate gigabytes.
        let mut greedy = SEALED_V2.to_vec();
        greedy.extend_from_slice(&u32::MAX.to_le_bytes());
        greedy.extend_from_slice(&sealed[SEALED_V2.len() + 4..]);
        fs::write(&path, greedy).unwrap();
        assert!(matches!(
            load_or_create(&path, Some("pw")),
            Err(IdentityError::Damaged(_))
        ));
    }
}
