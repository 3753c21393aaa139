//! File transfer over `/ipm/file/1`: an offer, then the recipient pulls chunks from the
//! sender, several in flight, and checks the whole file against the offered sha256.

use serde::{Deserialize, Serialize};

use crate::envelope::Payload;
use crate::error::DecodeError;
use crate::folder::FolderSummary;
use crate::limits::{MAX_CHUNK_LEN, MAX_FILE_NAME_LEN, MAX_FILE_SIZE};
use crate::name::validate_name;
use crate::stamp::MessageId;
use crate::text::validate_reason;

/// Request-response protocol name for file transfer.
pub const FILE_PROTOCOL: &str = "/ipm/file/1";

/// Identifies one offered file; random, so it cannot be guessed.
pub type TransferId = MessageId;

/// A file someone offers: to one peer (`/send-file`) or to a room (`/share`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOffer {
    /// The transfer this offer starts.
    pub transfer: TransferId,
    /// The sender's claimed display name.
    pub from_name: String,
    /// The file's name as the sender has it (receivers sanitise it again).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file (of a folder: of its encoded manifest).
    #[serde(with = "serde_bytes")]
    pub sha256: [u8; 32],
    /// Set when the offer is a folder (`size` is then the total of its files); absent on
    /// the wire otherwise, and ignored by nodes of the previous release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<FolderSummary>,
}

impl FileOffer {
    /// Checks the offer's fields: a valid sender name, a file name of 1 to
    /// [`MAX_FILE_NAME_LEN`] bytes without NUL, and a size of at most [`MAX_FILE_SIZE`].
    pub fn validate(&self) -> Result<(), DecodeError> {
        validate_name(&self.from_name).map_err(|e| DecodeError::Invalid(format!("name: {e}")))?;
        if self.name.is_empty() || self.name.len() > MAX_FILE_NAME_LEN || self.name.contains('\0') {
            return Err(DecodeError::Invalid(format!(
                "file name must be 1 to {MAX_FILE_NAME_LEN} bytes without NUL"
            )));
        }
        if self.size > MAX_FILE_SIZE {
            return Err(DecodeError::Invalid(format!(
                "file size {} is over the limit of {MAX_FILE_SIZE} bytes",
                self.size
            )));
        }
        if let Some(folder) = &self.folder {
            folder.validate()?;
        }
        Ok(())
    }
}

/// What a peer asks on `/ipm/file/1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileRequest {
    /// "I would like to send you this file" (sender to recipient).
    Offer(FileOffer),
    /// "Send me these bytes of that file" (recipient to sender).
    Chunk {
        /// The transfer.
        transfer: TransferId,
        /// First byte wanted.
        offset: u64,
        /// How many bytes, at most [`MAX_CHUNK_LEN`].
        len: u32,
    },
    /// "I do not want that file" (recipient to sender).
    Decline {
        /// The transfer.
        transfer: TransferId,
    },
}

/// The answer to a [`FileRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileResponse {
    /// The offer or decline was taken note of.
    Noted,
    /// The bytes asked for (fewer only at the end of the file).
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The request cannot be served.
    Error(String),
}

impl Payload for FileRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            FileRequest::Offer(offer) => offer.validate(),
            FileRequest::Chunk { len, .. } if *len == 0 || *len > MAX_CHUNK_LEN => {
                Err(DecodeError::Invalid(format!(
                    "chunk length {len} is not within 1..={MAX_CHUNK_LEN}"
                )))
            }
            FileRequest::Chunk { .. } | FileRequest::Decline { .. } => Ok(()),
        }
    }
}

impl Payload for FileResponse {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            FileResponse::Noted => Ok(()),
            FileResponse::Chunk(data) if data.len() > MAX_CHUNK_LEN as usize => Err(
                DecodeError::Invalid(format!("chunk of {} bytes is too large", data.len())),
            ),
            FileResponse::Chunk(_) => Ok(()),
            FileResponse::Error(reason) => validate_reason(reason),
        }
    }
}

/// Turns a name chosen by a peer into a safe file name for the downloads folder: only the
/// last path component is kept, control characters and separators are dropped, names made
/// only of dots are refused, leading dots are removed (no hidden files), and the result is
/// cut to [`MAX_FILE_NAME_LEN`] bytes keeping the extension. Returns `None` when nothing
/// usable is left.
pub fn sanitize_file_name(raw: &str) -> Option<String> {
    let last = raw
        .rsplit(['/', '\\'])
        .find(|part| !part.trim().is_empty())
        .unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '/' | '\\' | ':'))
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    if cleaned.is_empty() {
        return None;
    }
    if cleaned.len() <= MAX_FILE_NAME_LEN {
        return Some(cleaned);
    }
    let (stem, ext) = match cleaned.rfind('.') {
        Some(i) if cleaned.len() - i <= 16 => cleaned.split_at(i),
        _ => (cleaned.as_str(), ""),
    };
    let mut cut = MAX_FILE_NAME_LEN - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}{ext}", &stem[..cut]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use crate::limits::{MAX_FILE_REQUEST_LEN, MAX_FILE_RESPONSE_LEN};
    use proptest::prelude::*;

    fn offer() -> FileOffer {
        FileOffer {
            transfer: TransferId::random(),
            from_name: "alice".into(),
            name: "holiday.jpg".into(),
            size: 5 << 30,
            sha256: [9; 32],
            folder: None,
        }
    }

    #[test]
    fn round_trips() {
        for req in [
            FileRequest::Offer(offer()),
            FileRequest::Chunk {
                transfer: TransferId::random(),
                offset: 7,
                len: MAX_CHUNK_LEN,
            },
            FileRequest::Decline {
                transfer: TransferId::random(),
            },
        ] {
            assert_eq!(
                decode::<FileRequest>(&encode(&req), MAX_FILE_REQUEST_LEN).unwrap(),
                req
            );
        }
        let full = FileResponse::Chunk(vec![1; MAX_CHUNK_LEN as usize]);
        let bytes = encode(&full);
        assert!(bytes.len() <= MAX_FILE_RESPONSE_LEN);
        assert_eq!(
            decode::<FileResponse>(&bytes, MAX_FILE_RESPONSE_LEN).unwrap(),
            full
        );
    }

    #[test]
    fn absurd_offers_and_chunks_are_refused() {
        let mut o = offer();
        o.size = MAX_FILE_SIZE + 1;
        assert!(
            decode::<FileRequest>(&encode(&FileRequest::Offer(o)), MAX_FILE_REQUEST_LEN).is_err()
        );
        let mut o = offer();
        o.name = String::new();
        assert!(
            decode::<FileRequest>(&encode(&FileRequest::Offer(o)), MAX_FILE_REQUEST_LEN).is_err()
        );
        let zero = FileRequest::Chunk {
            transfer: TransferId::random(),
            offset: 0,
            len: 0,
        };
        assert!(decode::<FileRequest>(&encode(&zero), MAX_FILE_REQUEST_LEN).is_err());
        let huge = FileRequest::Chunk {
            transfer: TransferId::random(),
            offset: 0,
            len: MAX_CHUNK_LEN + 1,
        };
        assert!(decode::<FileRequest>(&encode(&huge), MAX_FILE_REQUEST_LEN).is_err());
        let over = FileResponse::Chunk(vec![0; MAX_CHUNK_LEN as usize + 1]);
        assert!(decode::<FileResponse>(&encode(&over), MAX_FILE_RESPONSE_LEN + 16).is_err());
    }

    #[test]
    fn hostile_names_are_made_safe() {
        assert_eq!(
            sanitize_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            sanitize_file_name("/abs/path/x.txt").as_deref(),
            Some("x.txt")
        );
        assert_eq!(
            sanitize_file_name("C:\\Users\\a\\evil.exe").as_deref(),
            Some("evil.exe")
        );
        assert_eq!(sanitize_file_name("..").as_deref(), None);
        assert_eq!(sanitize_file_name("../").as_deref(), None);
        assert_eq!(sanitize_file_name(".bashrc").as_deref(), Some("bashrc"));
        assert_eq!(
            sanitize_file_name("a\u{7}b\nc.txt").as_deref(),
            Some("abc.txt")
        );
        assert_eq!(sanitize_file_name("   ").as_deref(), None);
        let long = format!("{}.tar.gz", "é".repeat(300));
        let safe = sanitize_file_name(&long).unwrap();
        assert!(
            safe.len() <= MAX_FILE_NAME_LEN && safe.ends_with(".gz"),
            "{safe}"
        );
    }

    proptest! {
        #[test]
        fn sanitized_names_are_always_plain(raw in ".{0,400}") {
            if let Some(name) = sanitize_file_name(&raw) {
                prop_assert!(!name.is_empty() && name.len() <= MAX_FILE_NAME_LEN);
                prop_assert!(!name.contains(['/', '\\', '\0']));
                prop_assert!(!name.starts_with('.'));
                prop_assert!(!name.chars().any(char::is_control));
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<FileRequest>(&bytes, MAX_FILE_REQUEST_LEN);
            let _ = decode::<FileResponse>(&bytes, MAX_FILE_RESPONSE_LEN);
        }
    }
}
