//! File transfer over `/ipm/file/2`: one stream per download. The recipient opens it and
//! asks for a transfer from an offset (and, to fetch one range of a file shared by several
//! members, up to an end); the sender answers with a header, then writes the file's bytes
//! from that offset to the end asked for (else to the end of the file), raw, as fast as the
//! stream's flow control lets it. Headers are length-prefixed envelopes of at most
//! [`MAX_STREAM_HEADER_LEN`] bytes.

use serde::{Deserialize, Serialize};

use crate::envelope::Payload;
use crate::error::DecodeError;
use crate::file::TransferId;
use crate::limits::MAX_FILE_SIZE;
use crate::text::validate_reason;

/// Stream protocol name of streamed file transfer.
pub const FILE_STREAM_PROTOCOL: &str = "/ipm/file/2";

/// Largest encoded header (request or answer) on a file stream, in bytes.
pub const MAX_STREAM_HEADER_LEN: usize = 1024;

/// The recipient's first and only message on a file stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRequest {
    /// The offered transfer.
    pub transfer: TransferId,
    /// First byte wanted: the length of the recipient's partial file.
    pub offset: u64,
    /// One past the last byte wanted; absent: to the end of the file. Left out of the
    /// encoding when absent, so a request without it is the one earlier nodes send, and a
    /// sender that does not know the field ignores it and sends to the end of the file:
    /// a recipient that asked for a range stops reading at its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<u64>,
}

/// The sender's answer, before the bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamAnswer {
    /// `len` bytes follow, from the asked offset to the asked end (or the end of the file).
    Sending {
        /// How many bytes follow.
        len: u64,
    },
    /// The sender serves as many streams as it can already: ask again later.
    Busy,
    /// The transfer cannot be served; the stream ends.
    Error(String),
}

impl Payload for StreamRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        if self.offset >= MAX_FILE_SIZE {
            return Err(DecodeError::Invalid(format!(
                "offset {} is beyond the largest file",
                self.offset
            )));
        }
        match self.end {
            Some(end) if end <= self.offset || end > MAX_FILE_SIZE => {
                Err(DecodeError::Invalid(format!(
                    "range {}..{end} is empty or beyond the largest file",
                    self.offset
                )))
            }
            _ => Ok(()),
        }
    }
}

impl Payload for StreamAnswer {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            StreamAnswer::Sending { len } if *len > MAX_FILE_SIZE => Err(DecodeError::Invalid(
                format!("{len} bytes is more than the largest file"),
            )),
            StreamAnswer::Sending { .. } | StreamAnswer::Busy => Ok(()),
            StreamAnswer::Error(reason) => validate_reason(reason),
        }
    }
}

/// The two-byte big-endian length prefix of a header of `len` bytes, or `None` when the
/// header is longer than [`MAX_STREAM_HEADER_LEN`].
pub fn header_prefix(len: usize) -> Option<[u8; 2]> {
    if len > MAX_STREAM_HEADER_LEN {
        return None;
    }
    u16::try_from(len).ok().map(u16::to_be_bytes)
}

/// The length a received prefix announces, refused past [`MAX_STREAM_HEADER_LEN`] before
/// anything is allocated.
pub fn header_len(prefix: [u8; 2]) -> Result<usize, DecodeError> {
    let len = usize::from(u16::from_be_bytes(prefix));
    if len > MAX_STREAM_HEADER_LEN {
        return Err(DecodeError::TooLarge {
            len,
            max: MAX_STREAM_HEADER_LEN,
        });
    }
    Ok(len)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use proptest::prelude::*;

    #[test]
    fn headers_round_trip_within_their_limit() {
        for end in [None, Some(124), Some(MAX_FILE_SIZE)] {
            let request = StreamRequest {
                transfer: TransferId::random(),
                offset: 123,
                end,
            };
            let bytes = encode(&request);
            assert!(header_prefix(bytes.len()).is_some());
            assert_eq!(
                decode::<StreamRequest>(&bytes, MAX_STREAM_HEADER_LEN).unwrap(),
                request
            );
        }
        let answer = StreamAnswer::Error("no such transfer".into());
        let bytes = encode(&answer);
        assert_eq!(
            decode::<StreamAnswer>(&bytes, MAX_STREAM_HEADER_LEN).unwrap(),
            answer
        );
    }

    #[test]
    fn absurd_headers_are_refused() {
        assert!(header_len([0xff, 0xff]).is_err());
        assert!(header_prefix(MAX_STREAM_HEADER_LEN + 1).is_none());
        let far = StreamRequest {
            transfer: TransferId::random(),
            offset: MAX_FILE_SIZE,
            end: None,
        };
        assert!(decode::<StreamRequest>(&encode(&far), MAX_STREAM_HEADER_LEN).is_err());
        for (offset, end) in [(10, 10), (10, 9), (0, MAX_FILE_SIZE + 1)] {
            let bad = StreamRequest {
                transfer: TransferId::random(),
                offset,
                end: Some(end),
            };
            assert!(decode::<StreamRequest>(&encode(&bad), MAX_STREAM_HEADER_LEN).is_err());
        }
        let huge = StreamAnswer::Sending {
            len: MAX_FILE_SIZE + 1,
        };
        assert!(decode::<StreamAnswer>(&encode(&huge), MAX_STREAM_HEADER_LEN).is_err());
    }

    /// The request as nodes without ranges have it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct RequestWithoutEnd {
        transfer: TransferId,
        offset: u64,
    }

    impl Payload for RequestWithoutEnd {
        fn validate(&self) -> Result<(), DecodeError> {
            Ok(())
        }
    }

    #[test]
    fn a_request_without_a_range_is_the_one_earlier_nodes_send_and_a_range_reads_there() {
        let transfer = TransferId::random();
        let whole = StreamRequest {
            transfer,
            offset: 5,
            end: None,
        };
        let old = RequestWithoutEnd {
            transfer,
            offset: 5,
        };
        assert_eq!(encode(&whole), encode(&old));
        assert_eq!(
            decode::<StreamRequest>(&encode(&old), MAX_STREAM_HEADER_LEN).unwrap(),
            whole
        );
        // An earlier node reads a range request as a request to the end of the file.
        let range = StreamRequest {
            end: Some(4 << 20),
            ..whole
        };
        assert_eq!(
            decode::<RequestWithoutEnd>(&encode(&range), MAX_STREAM_HEADER_LEN).unwrap(),
            old
        );
    }

    proptest! {
        #[test]
        fn random_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode::<StreamRequest>(&bytes, MAX_STREAM_HEADER_LEN);
            let _ = decode::<StreamAnswer>(&bytes, MAX_STREAM_HEADER_LEN);
        }
    }
}
