//! Spam control in the loop: a budget of room messages per author and of requests per peer
//! and protocol, and the penalty that becomes gossipsub's application score, so that a peer
//! whose messages keep being rejected is graylisted and disconnected.

use std::time::{Duration, Instant};

use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance},
    request_response, PeerId,
};
use tracing::debug;

use ipm_protocol::limits;

use super::EventLoop;
use crate::{
    logic::rate_limit::{Penalties, TokenBuckets},
    net::scoring,
};

/// Budgets and penalties of every peer the node hears from (bounded in number).
#[derive(Debug)]
pub(crate) struct Spam {
    room_messages: TokenBuckets<PeerId>,
    requests: TokenBuckets<(PeerId, &'static str)>,
    penalties: Penalties<PeerId>,
}

impl Default for Spam {
    fn default() -> Self {
        Self {
            room_messages: TokenBuckets::new(
                limits::ROOM_MESSAGE_BURST,
                limits::ROOM_MESSAGES_PER_SEC,
                limits::MAX_RATE_TRACKED_PEERS,
            ),
            requests: TokenBuckets::new(
                limits::REQUEST_BURST,
                limits::REQUESTS_PER_SEC,
                limits::MAX_RATE_TRACKED_PEERS,
            ),
            penalties: Penalties::new(
                Duration::from_secs_f64(limits::SPAM_PENALTY_HALF_LIFE_SECS),
                limits::MAX_RATE_TRACKED_PEERS,
            ),
        }
    }
}

impl EventLoop {
    /// Checks a room message against its author's budget before anything else is done
    /// with it. Over budget, the message is rejected when the author delivered it itself
    /// (its score drops) and ignored when an honest peer forwarded it (the forwarder had
    /// budget left and must not be punished); the author is penalised either way.
    pub(super) fn gossip_over_budget(
        &mut self,
        propagation_source: &PeerId,
        message: &gossipsub::Message,
    ) -> Option<MessageAcceptance> {
        let topic = IdentTopic::new(message.topic.as_str());
        let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
        if gossipsub.get_topic_params(&topic).is_none()
            && scoring::is_ipm_topic(topic.hash().as_str())
        {
            // Scoring of invalid messages (P4) needs the topic's parameters.
            let _ = gossipsub.set_topic_params(topic, scoring::room_params());
        }
        let source = message.source?;
        // Presence has its own rate at the sender and its own bounded table here.
        if self.people.is_presence_topic(&message.topic)
            || self.spam.room_messages.allow(&source, Instant::now())
        {
            return None;
        }
        debug!(peer = %source, "room message over the author's budget");
        Some(if *propagation_source == source {
            MessageAcceptance::Reject
        } else {
            MessageAcceptance::Ignore
        })
    }

    /// Penalises the author of a rejected or over-budget room message and cuts it off once
    /// its score is below the graylist threshold.
    pub(super) fn penalise_author(&mut self, source: Option<PeerId>) {
        let Some(source) = source else {
            return;
        };
        let penalty = self
            .spam
            .penalties
            .add(&source, limits::SPAM_PENALTY, Instant::now());
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&source, -penalty);
        self.refuse_graylisted(source);
    }

    /// Disconnects `peer` when its gossipsub score is below the graylist threshold.
    pub(super) fn refuse_graylisted(&mut self, peer: PeerId) {
        let score = self.swarm.behaviour().gossipsub.peer_score(&peer);
        if score.is_some_and(|s| s < limits::GRAYLIST_THRESHOLD) && self.swarm.is_connected(&peer) {
            debug!(%peer, ?score, "graylisted: disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Passes on a request-response event unless it is a request over the peer's budget for
    /// `protocol`: such a request is dropped unanswered (its stream is closed, the sender
    /// sees a failure and may retry later) and no work is done for it.
    pub(super) fn within_request_budget<Req, Resp>(
        &mut self,
        protocol: &'static str,
        event: request_response::Event<Req, Resp>,
    ) -> Option<request_response::Event<Req, Resp>> {
        if let request_response::Event::Message {
            peer,
            message: request_response::Message::Request { .. },
            ..
        } = &event
        {
            if !self.spam.requests.allow(&(*peer, protocol), Instant::now()) {
                debug!(%peer, protocol, "request over the peer's budget: dropped");
                return None;
            }
        }
        Some(event)
    }
}
