//! Spam control in the loop: room messages and requests are checked against the budgets of
//! the peer manager before anything else is done with them, and its penalties become
//! gossipsub's application score, so that a peer whose messages keep being rejected is
//! graylisted and disconnected.

use std::time::Instant;

use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance},
    request_response, PeerId,
};

use super::EventLoop;
use crate::{logic::peer_policy::OverBudget, net::scoring};

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
        if self.people.is_presence_topic(&message.topic) {
            return None;
        }
        let verdict = self.swarm.behaviour_mut().peer_manager.room_message(
            source,
            *propagation_source,
            Instant::now(),
        )?;
        Some(match verdict {
            OverBudget::Reject => MessageAcceptance::Reject,
            OverBudget::Ignore => MessageAcceptance::Ignore,
        })
    }

    /// Penalises the author of a rejected or over-budget room message and cuts it off once
    /// its score is below the graylist threshold.
    pub(super) fn penalise_author(&mut self, source: Option<PeerId>) {
        let Some(source) = source else {
            return;
        };
        let behaviour = self.swarm.behaviour_mut();
        let penalty = behaviour.peer_manager.penalise(source, Instant::now());
        behaviour.gossipsub.set_application_score(&source, -penalty);
        self.check_score(source);
    }

    /// Hands `peer`'s gossipsub score to the peer manager, which cuts a graylisted peer off.
    pub(super) fn check_score(&mut self, peer: PeerId) {
        let behaviour = self.swarm.behaviour_mut();
        let score = behaviour.gossipsub.peer_score(&peer);
        behaviour.peer_manager.score(peer, score);
    }

    /// Passes on a request-response event unless it is a request over the peer's budget for
    /// `protocol`: such a request is dropped unanswered (its stream is closed, the sender
    /// sees a failure and may retry later) and no work is done for it.
    pub(super) fn within_request_budget<Req, Resp>(
        &mut self,
        protocol: &'static str,
        event: request_response::Event<Req, Resp>,
    ) -> Option<request_response::Event<Req, Resp>> {
        let now = Instant::now();
        let peer_manager = &mut self.swarm.behaviour_mut().peer_manager;
        peer_manager.used(crate::net::exchange::peer(&event), now);
        if let request_response::Event::Message {
            peer,
            message: request_response::Message::Request { .. },
            ..
        } = &event
        {
            if !peer_manager.request(*peer, protocol, now) {
                return None;
            }
        }
        // A request received or sent keeps its connection from being trimmed until done.
        peer_manager.exchanged(protocol, &event);
        Some(event)
    }
}
