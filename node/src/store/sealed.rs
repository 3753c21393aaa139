//! Messages sealed to one recipient's key, so that a mailbox can keep them without reading
//! them: X25519 between a one-time key and the recipient's ed25519 key (in its Montgomery
//! form), SHA-256 to derive the key, ChaCha20-Poly1305 to encrypt. Inside, the sender signs
//! the message together with the recipient's id, so the recipient knows who wrote it and a
//! sealed message cannot be re-addressed.

use chacha20poly1305::{aead::Aead, ChaCha20Poly1305, KeyInit, Nonce};
use curve25519_dalek::edwards::CompressedEdwardsY;
use libp2p::{
    identity::{Keypair, PublicKey},
    PeerId,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// Domain separation for everything derived or signed here.
const CONTEXT: &[u8] = b"ipm/mailbox/1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Why a message could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Only ed25519 identities can receive sealed messages.
    #[error("the peer id does not carry an ed25519 key")]
    NotEd25519,
    /// The sealed bytes are not for this node, or were altered.
    #[error("the message cannot be opened: not for this node, or damaged")]
    Unreadable,
    /// The sender's signature does not match.
    #[error("the sender's signature is invalid")]
    BadSignature,
}

#[derive(Serialize, Deserialize)]
struct Inner {
    #[serde(with = "serde_bytes")]
    sender: Vec<u8>,
    #[serde(with = "serde_bytes")]
    message: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

fn ed25519_of(peer: &PeerId) -> Result<[u8; 32], SealError> {
    let multihash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if multihash.code() != 0 {
        return Err(SealError::NotEd25519);
    }
    let key =
        PublicKey::try_decode_protobuf(multihash.digest()).map_err(|_| SealError::NotEd25519)?;
    key.try_into_ed25519()
        .map(|k| k.to_bytes())
        .map_err(|_| SealError::NotEd25519)
}

fn montgomery(ed25519: &[u8; 32]) -> Result<[u8; 32], SealError> {
    CompressedEdwardsY(*ed25519)
        .decompress()
        .map(|p| p.to_montgomery().to_bytes())
        .ok_or(SealError::NotEd25519)
}

fn symmetric_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> [u8; KEY_LEN] {
    let mut h = Sha256::new();
    h.update(CONTEXT);
    h.update(shared);
    h.update(ephemeral);
    h.update(recipient);
    h.finalize().into()
}

fn signed_bytes(recipient: &PeerId, message: &[u8]) -> Vec<u8> {
    let mut bytes = CONTEXT.to_vec();
    bytes.extend_from_slice(&recipient.to_bytes());
    bytes.extend_from_slice(message);
    bytes
}

/// Seals `message` from `sender` so that only `recipient` can open it.
pub fn seal(sender: &Keypair, recipient: &PeerId, message: &[u8]) -> Result<Vec<u8>, SealError> {
    let recipient_x = montgomery(&ed25519_of(recipient)?)?;
    let signature = sender
        .sign(&signed_bytes(recipient, message))
        .map_err(|_| SealError::NotEd25519)?;
    let inner = Inner {
        sender: sender.public().encode_protobuf(),
        message: message.to_vec(),
        signature,
    };
    let plaintext = serde_cbor::to_vec(&inner).map_err(|_| SealError::Unreadable)?;

    let ephemeral = x25519_dalek::StaticSecret::from(rand::random::<[u8; 32]>());
    let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral).to_bytes();
    let shared = ephemeral
        .diffie_hellman(&x25519_dalek::PublicKey::from(recipient_x))
        .to_bytes();
    let key = symmetric_key(&shared, &ephemeral_public, &recipient_x);
    let nonce: [u8; NONCE_LEN] = rand::random();
    let cipher = ChaCha20Poly1305::new((&key).into());
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), plaintext.as_slice())
        .map_err(|_| SealError::Unreadable)?;

    let mut out = Vec::with_capacity(32 + NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&ephemeral_public);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a message sealed to `recipient`; returns the verified sender and the message.
pub fn open(recipient: &Keypair, sealed: &[u8]) -> Result<(PeerId, Vec<u8>), SealError> {
    if sealed.len() < 32 + NONCE_LEN {
        return Err(SealError::Unreadable);
    }
    let (ephemeral_public, rest) = sealed.split_at(32);
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let ephemeral_public: [u8; 32] = ephemeral_public
        .try_into()
        .map_err(|_| SealError::Unreadable)?;

    let ed = recipient
        .clone()
        .try_into_ed25519()
        .map_err(|_| SealError::NotEd25519)?;
    // The X25519 secret of an ed25519 key: the first half of SHA-512 of its seed.
    let digest = Sha512::digest(ed.secret().as_ref());
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&digest[..32]);
    let secret = x25519_dalek::StaticSecret::from(scalar);
    let recipient_x = x25519_dalek::PublicKey::from(&secret).to_bytes();
    let shared = secret
        .diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral_public))
        .to_bytes();
    let key = symmetric_key(&shared, &ephemeral_public, &recipient_x);
    let cipher = ChaCha20Poly1305::new((&key).into());
    let plaintext = cipher
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .map_err(|_| SealError::Unreadable)?;

    let inner: Inner = serde_cbor::from_slice(&plaintext).map_err(|_| SealError::Unreadable)?;
    let sender =
        PublicKey::try_decode_protobuf(&inner.sender).map_err(|_| SealError::BadSignature)?;
    let me = recipient.public().to_peer_id();
    if !sender.verify(&signed_bytes(&me, &inner.message), &inner.signature) {
        return Err(SealError::BadSignature);
    }
    Ok((sender.to_peer_id(), inner.message))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens_and_the_sender_is_proven() {
        let alice = Keypair::generate_ed25519();
        let bob = Keypair::generate_ed25519();
        let eve = Keypair::generate_ed25519();
        let bob_id = bob.public().to_peer_id();
        let sealed = seal(&alice, &bob_id, b"meet at noon").unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"noon"));
        let (from, message) = open(&bob, &sealed).unwrap();
        assert_eq!(from, alice.public().to_peer_id());
        assert_eq!(message, b"meet at noon");
        assert_eq!(open(&eve, &sealed), Err(SealError::Unreadable));
    }

    #[test]
    fn tampering_is_detected() {
        let alice = Keypair::generate_ed25519();
        let bob = Keypair::generate_ed25519();
        let mut sealed = seal(&alice, &bob.public().to_peer_id(), b"hello").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(open(&bob, &sealed), Err(SealError::Unreadable));
        assert_eq!(open(&bob, &[1, 2, 3]), Err(SealError::Unreadable));
    }

    #[test]
    fn a_message_sealed_for_someone_else_cannot_be_readdressed() {
        // Carol opens what alice sealed for her, and seals the same inner bytes for bob:
        // the signature names carol as recipient, so bob refuses it.
        let alice = Keypair::generate_ed25519();
        let bob = Keypair::generate_ed25519();
        let carol = Keypair::generate_ed25519();
        let for_carol = seal(&alice, &carol.public().to_peer_id(), b"for carol").unwrap();
        let (_, message) = open(&carol, &for_carol).unwrap();
        let signature = alice
            .sign(&signed_bytes(&carol.public().to_peer_id(), &message))
            .unwrap();
        let forged = Inner {
            sender: alice.public().encode_protobuf(),
            message,
            signature,
        };
        let bob_x = montgomery(&ed25519_of(&bob.public().to_peer_id()).unwrap()).unwrap();
        let eph = x25519_dalek::StaticSecret::from([9u8; 32]);
        let eph_pub = x25519_dalek::PublicKey::from(&eph).to_bytes();
        let shared = eph
            .diffie_hellman(&x25519_dalek::PublicKey::from(bob_x))
            .to_bytes();
        let key = symmetric_key(&shared, &eph_pub, &bob_x);
        let nonce = [0u8; NONCE_LEN];
        let ct = ChaCha20Poly1305::new((&key).into())
            .encrypt(
                Nonce::from_slice(&nonce),
                serde_cbor::to_vec(&forged).unwrap().as_slice(),
            )
            .unwrap();
        let mut sealed = eph_pub.to_vec();
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ct);
        assert_eq!(open(&bob, &sealed), Err(SealError::BadSignature));
    }
}
