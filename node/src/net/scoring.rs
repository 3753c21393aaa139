//! Gossipsub peer scoring and the subscription filter: which topics a peer may subscribe
//! to, how many, and how a peer's behaviour in the rooms turns into a score. Every number
//! comes from `ipm_protocol::limits`.

use std::time::Duration;

use ipm_protocol::{limits, room::presence_topic, Room};
use libp2p::gossipsub::{
    self, MaxCountSubscriptionFilter, PeerScoreParams, PeerScoreThresholds, TopicHash,
    TopicScoreParams,
};

/// Accepts only ipm topics: rooms (`/ipm/1/lobby`, `/ipm/1/geo/..`, `/ipm/1/interest/..`)
/// and the presence topic. Anything else a peer subscribes to is dropped unread.
#[derive(Debug, Clone, Default)]
pub struct IpmTopics;

impl gossipsub::TopicSubscriptionFilter for IpmTopics {
    fn can_subscribe(&mut self, topic: &TopicHash) -> bool {
        is_ipm_topic(topic.as_str())
    }
}

/// Whether `topic` is a room or the presence topic of this protocol version.
pub fn is_ipm_topic(topic: &str) -> bool {
    topic == presence_topic() || Room::from_topic(topic).is_ok()
}

/// The subscription filter every node runs: ipm topics only, at most
/// [`limits::MAX_ROOMS_PER_PEER`] per peer and [`limits::MAX_SUBSCRIPTIONS_PER_RPC`] per
/// message.
pub type SubscriptionFilter = MaxCountSubscriptionFilter<IpmTopics>;

/// Builds the [`SubscriptionFilter`].
pub fn subscription_filter() -> SubscriptionFilter {
    MaxCountSubscriptionFilter {
        filter: IpmTopics,
        max_subscribed_topics: limits::MAX_ROOMS_PER_PEER,
        max_subscriptions_per_request: limits::MAX_SUBSCRIPTIONS_PER_RPC,
    }
}

/// Score parameters for the whole node. Rooms get [`room_params`] when joined.
///
/// - P5, the application score, is minus the node's decayed spam penalty for the peer
///   (weight [`limits::APP_SCORE_WEIGHT`]).
/// - IP colocation (P6) is off: many honest users share one address behind a NAT, a campus
///   network or a docker host.
/// - Positive topic contributions are capped at 10 so that a long-standing peer that turns
///   to spam still reaches the graylist within a few rejected messages.
/// - Behaviour penalties (P7: broken gossip promises, grafts during a backoff) count only
///   beyond 6, at gossipsub's default weight (-10) and decay.
/// - Scores are kept for an hour after a peer leaves, so a graylisted peer that reconnects
///   is cut off again.
pub fn peer_score_params() -> PeerScoreParams {
    PeerScoreParams {
        topic_score_cap: 10.0,
        app_specific_weight: limits::APP_SCORE_WEIGHT,
        ip_colocation_factor_weight: 0.0,
        // Broken gossip promises and grafts during a backoff happen now and then on slow
        // links; only a pattern of them costs score.
        behaviour_penalty_threshold: 6.0,
        decay_interval: Duration::from_secs(1),
        retain_score: Duration::from_secs(3600),
        ..PeerScoreParams::default()
    }
}

/// Thresholds: no gossip below [`limits::GOSSIP_THRESHOLD`], no publishing below
/// [`limits::PUBLISH_THRESHOLD`], graylisted below [`limits::GRAYLIST_THRESHOLD`]. Peer
/// exchange is only accepted from well-behaved peers (score 10 and up).
pub fn thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: limits::GOSSIP_THRESHOLD,
        publish_threshold: limits::PUBLISH_THRESHOLD,
        graylist_threshold: limits::GRAYLIST_THRESHOLD,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 3.0,
    }
}

/// Score parameters of one room. Chat rooms are often quiet for hours, so there is no
/// penalty for delivering few messages (P3, P3b off); time in the mesh (P1, up to +3) and
/// first deliveries (P2, up to +5) reward useful peers a little; invalid messages (P4) cost
/// [`limits::INVALID_MESSAGE_WEIGHT`] times their squared count.
pub fn room_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 300.0,
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: limits::INVALID_MESSAGE_WEIGHT,
        invalid_message_deliveries_decay: limits::INVALID_MESSAGE_DECAY,
        ..TopicScoreParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossipsub::TopicSubscriptionFilter;

    #[test]
    fn parameters_are_accepted_by_gossipsub() {
        peer_score_params().validate().expect("peer score params");
        thresholds().validate().expect("thresholds");
        room_params().validate().expect("room params");
    }

    #[test]
    fn only_ipm_topics_pass_the_filter() {
        let mut filter = IpmTopics;
        for ok in [
            "/ipm/1/lobby",
            "/ipm/1/presence",
            "/ipm/1/geo/u33dc",
            "/ipm/1/interest/rust",
        ] {
            assert!(filter.can_subscribe(&TopicHash::from_raw(ok)), "{ok}");
        }
        for bad in [
            "/ipm/2/lobby",
            "/ipfs/x",
            "",
            "/ipm/1/geo/not-a-geohash!",
            "/ipm/1/../etc",
        ] {
            assert!(!filter.can_subscribe(&TopicHash::from_raw(bad)), "{bad}");
        }
    }

    #[test]
    fn four_invalid_messages_graylist_a_peer_and_one_does_not() {
        let p4 = |n: f64| n * n * limits::INVALID_MESSAGE_WEIGHT;
        assert!(p4(1.0) > limits::GOSSIP_THRESHOLD - 1.0 && p4(1.0) > limits::GRAYLIST_THRESHOLD);
        assert!(p4(4.0) + 10.0 - limits::SPAM_PENALTY * 4.0 <= limits::GRAYLIST_THRESHOLD);
    }
}
