//! Room catch-up over `/ipm/history/1`: a node that was away asks a bootstrap or a room
//! member for the signed lines it missed; each line comes back as its author published it.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::envelope::Payload;
use crate::error::DecodeError;
use crate::limits::{MAX_CATCH_UP_LINES, MAX_GOSSIP_LEN};
use crate::room::Room;
use crate::text::validate_reason;

/// Request-response protocol name for room catch-up.
pub const HISTORY_PROTOCOL: &str = "/ipm/history/1";

/// What a returning member asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// The room's gossipsub topic.
    pub topic: String,
    /// Lines kept after this time (ms since the Unix epoch, by the answering node's clock).
    pub since_ms: u64,
    /// At most this many lines, the newest ones: 1 to [`MAX_CATCH_UP_LINES`].
    pub limit: u16,
}

/// One archived line: the author and the payload exactly as the author published it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedLine {
    /// The author's peer id, as bytes.
    pub author: ByteBuf,
    /// When the answering node received it (ms since the Unix epoch).
    pub ts: u64,
    /// The signed gossip payload (see [`crate::signed_line`]).
    pub data: ByteBuf,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryResponse {
    /// The lines kept, oldest first.
    Lines(Vec<ArchivedLine>),
    /// The node keeps nothing for this room or will not answer now.
    Refused {
        /// Why, in a few words.
        reason: String,
    },
}

impl Payload for HistoryRequest {
    fn validate(&self) -> Result<(), DecodeError> {
        Room::from_topic(&self.topic).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        if self.limit == 0 || usize::from(self.limit) > MAX_CATCH_UP_LINES {
            return Err(DecodeError::Invalid(format!(
                "limit {} is not 1 to {MAX_CATCH_UP_LINES}",
                self.limit
            )));
        }
        Ok(())
    }
}

impl Payload for HistoryResponse {
    fn validate(&self) -> Result<(), DecodeError> {
        match self {
            HistoryResponse::Lines(lines) => {
                if lines.len() > MAX_CATCH_UP_LINES {
                    return Err(DecodeError::Invalid(format!(
                        "{} lines, at most {MAX_CATCH_UP_LINES} are allowed",
                        lines.len()
                    )));
                }
                for line in lines {
                    libp2p_identity::PeerId::from_bytes(&line.author)
                        .map_err(|e| DecodeError::Invalid(format!("author: {e}")))?;
                    if line.data.len() > MAX_GOSSIP_LEN {
                        return Err(DecodeError::TooLarge {
                            len: line.data.len(),
                            max: MAX_GOSSIP_LEN,
                        });
                    }
                }
                Ok(())
            }
            HistoryResponse::Refused { reason } => validate_reason(reason),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::envelope::{decode, encode};
    use crate::limits::{MAX_HISTORY_REQUEST_LEN, MAX_HISTORY_RESPONSE_LEN};

    fn request(topic: &str, limit: u16) -> HistoryRequest {
        HistoryRequest {
            topic: topic.into(),
            since_ms: 1,
            limit,
        }
    }

    #[test]
    fn requests_round_trip_and_bad_ones_are_refused() {
        let ok = request(&Room::Lobby.topic(), 500);
        assert_eq!(
            decode::<HistoryRequest>(&encode(&ok), MAX_HISTORY_REQUEST_LEN).unwrap(),
            ok
        );
        for bad in [
            request("/ipm/1/nowhere", 10),
            request(&Room::Lobby.topic(), 0),
            request(&Room::Lobby.topic(), 501),
        ] {
            assert!(matches!(
                decode::<HistoryRequest>(&encode(&bad), MAX_HISTORY_REQUEST_LEN),
                Err(DecodeError::Invalid(_))
            ));
        }
    }

    #[test]
    fn the_largest_answer_fits_the_response_limit() {
        let author = libp2p_identity::Keypair::ed25519_from_bytes([7; 32])
            .unwrap()
            .public()
            .to_peer_id();
        let line = ArchivedLine {
            author: ByteBuf::from(author.to_bytes()),
            ts: u64::MAX,
            data: ByteBuf::from(vec![0xff; MAX_GOSSIP_LEN]),
        };
        let full = HistoryResponse::Lines(vec![line.clone(); MAX_CATCH_UP_LINES]);
        let bytes = encode(&full);
        assert!(bytes.len() <= MAX_HISTORY_RESPONSE_LEN);
        assert_eq!(
            decode::<HistoryResponse>(&bytes, MAX_HISTORY_RESPONSE_LEN).unwrap(),
            full
        );
        let over = HistoryResponse::Lines(vec![line; MAX_CATCH_UP_LINES + 1]);
        assert!(decode::<HistoryResponse>(&encode(&over), usize::MAX).is_err());
    }

    #[test]
    fn a_line_with_a_bad_author_is_refused() {
        let line = ArchivedLine {
            author: ByteBuf::from(vec![1, 2, 3]),
            ts: 0,
            data: ByteBuf::from(vec![0]),
        };
        let bytes = encode(&HistoryResponse::Lines(vec![line]));
        assert!(matches!(
            decode::<HistoryResponse>(&bytes, MAX_HISTORY_RESPONSE_LEN),
            Err(DecodeError::Invalid(_))
        ));
    }
}
