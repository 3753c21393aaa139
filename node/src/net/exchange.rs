//! One shape for the events of every request-response protocol, so each protocol's handler
//! only says what to do with a request, a response and a failed request.

use libp2p::{
    request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel},
    PeerId,
};
use tracing::debug;

/// What a request-response event means to a protocol handler.
pub(crate) enum Exchange<Req, Resp> {
    /// A peer asks; answer on `channel`.
    Request {
        peer: PeerId,
        request: Req,
        channel: ResponseChannel<Resp>,
    },
    /// A peer answered our request `request_id`.
    Response {
        peer: PeerId,
        request_id: OutboundRequestId,
        response: Resp,
    },
    /// Our request `request_id` got no answer.
    Failed {
        peer: PeerId,
        request_id: OutboundRequestId,
        error: OutboundFailure,
    },
    /// Nothing for the handler (logged here).
    Done,
}

/// The peer a request-response event is about.
pub(crate) fn peer<Req, Resp>(event: &request_response::Event<Req, Resp>) -> PeerId {
    match event {
        request_response::Event::Message { peer, .. }
        | request_response::Event::OutboundFailure { peer, .. }
        | request_response::Event::InboundFailure { peer, .. }
        | request_response::Event::ResponseSent { peer, .. } => *peer,
    }
}

/// Sorts a request-response event of `protocol` into an [`Exchange`].
pub(crate) fn exchange<Req, Resp>(
    protocol: &str,
    event: request_response::Event<Req, Resp>,
) -> Exchange<Req, Resp> {
    match event {
        request_response::Event::Message {
            peer,
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        } => Exchange::Request {
            peer,
            request,
            channel,
        },
        request_response::Event::Message {
            peer,
            message:
                request_response::Message::Response {
                    request_id,
                    response,
                },
            ..
        } => Exchange::Response {
            peer,
            request_id,
            response,
        },
        request_response::Event::OutboundFailure {
            peer,
            request_id,
            error,
            ..
        } => Exchange::Failed {
            peer,
            request_id,
            error,
        },
        request_response::Event::InboundFailure { peer, error, .. } => {
            debug!(%peer, protocol, "inbound request failed: {error}");
            Exchange::Done
        }
        request_response::Event::ResponseSent { .. } => Exchange::Done,
    }
}
