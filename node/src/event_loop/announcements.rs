//! Presence in the event loop: announcing this node, hearing others announce themselves,
//! and reporting who comes online and who falls silent.

use std::time::Instant;

use libp2p::{
    gossipsub::{self, MessageAcceptance},
    PeerId,
};
use tracing::debug;

use ipm_protocol::{
    decode_gossip, encode_gossip,
    limits::{MAX_PRESENCE_ROOMS, WIRE_GEOHASH_PRECISION},
    name_record::name_key,
    Gossip, Presence,
};

use super::EventLoop;
use crate::{
    config::Role,
    event::Event,
    logic::names::OwnClaim,
    logic::presence::{announce_every, announcement_due, answer_chance, next_pause},
};

/// Oldest goodbye, by the sender's clock, that a bootstrap acts on, in ms: less than the time
/// gossip remembers duplicates (120 s).
const GOODBYE_MAX_AGE_MS: u64 = 100_000;

impl EventLoop {
    /// Runs four times per presence interval: drops silent users, announces this node when
    /// due and retries the name claim.
    pub(super) fn on_presence_tick(&mut self) {
        let now = Instant::now();
        for (peer, _) in self.people.table.expire(now) {
            self.report_offline(peer);
        }
        self.announce_if_due(now);
        self.maybe_claim_name();
    }

    /// This node changed what it announces (a room joined or left): lets peers know now
    /// rather than at the next periodic announcement (at most four times per interval; a
    /// wanted announcement that has to wait goes out at a later tick).
    pub(super) fn announce_soon(&mut self) {
        self.people.announce_wanted = true;
        self.announce_if_due(Instant::now());
    }

    /// A peer announced itself for the first time: it should hear of us before our next
    /// periodic announcement. In a large overlay only some nodes answer at once (about
    /// [`USERS_AT_BASE_RATE`](crate::logic::presence::USERS_AT_BASE_RATE) in all); the newcomer
    /// hears of the others at their periodic announcements and from the bootstrap's list.
    /// The answer waits for the next tick, whose phase is random, so that the answers do
    /// not all go out in the same instant.
    pub(super) fn answer_newcomer(&mut self, now: Instant) {
        let online = self.people.table.online(now).count();
        if rand::random::<f64>() < answer_chance(online) {
            self.people.announce_wanted = true;
        }
    }

    fn announce_if_due(&mut self, now: Instant) {
        if announcement_due(
            self.people.last_announce,
            self.people.next_announce,
            now,
            self.config.presence_interval,
            self.people.announce_wanted,
        ) {
            self.announce(now);
        }
    }

    /// Announces this node on the presence topic. The first announcement waits until the name
    /// claim has settled (at most one interval), so that peers who look the name up on
    /// hearing of us find the record.
    pub(super) fn announce(&mut self, now: Instant) {
        let settled = matches!(
            self.people.claim,
            OwnClaim::Registered | OwnClaim::Taken { .. }
        );
        if self.config.role != Role::Node
            || !(settled
                || now.saturating_duration_since(self.people.started)
                    >= self.config.presence_interval)
        {
            return;
        }
        // Pauses stretch with the number of users this node sees online.
        let every = announce_every(
            self.config.presence_interval,
            self.people.table.online(now).count(),
        );
        let presence = Presence {
            every_ms: u32::try_from(every.as_millis()).ok().filter(|ms| *ms > 0),
            ..self.own_presence()
        };
        self.publish_presence(presence);
        self.people.last_announce = Some(now);
        self.people.next_announce = Some(now + next_pause(every, rand::random::<f64>()));
        self.people.announce_wanted = false;
    }

    /// Tells peers that this node is shutting down, so that they show it offline at once
    /// instead of after its silence; only a node that has announced itself says goodbye.
    /// Returns whether a goodbye went to some peer.
    pub(super) fn announce_leaving(&mut self) -> bool {
        if self.config.role != Role::Node || self.people.last_announce.is_none() {
            return false;
        }
        let presence = Presence {
            leaving: true,
            ..self.own_presence()
        };
        self.publish_presence(presence)
    }

    fn own_presence(&self) -> Presence {
        let rooms = self
            .rooms
            .iter()
            .take(MAX_PRESENCE_ROOMS)
            .cloned()
            .collect();
        Presence::new(
            &self.config.name,
            rooms,
            self.people
                .position
                .map(|p| p.geohash(WIRE_GEOHASH_PRECISION)),
            self.people.group.as_ref().map(|g| g.own_cell().to_owned()),
            self.people.away.clone(),
        )
    }

    /// Publishes `presence`; returns whether some peer was sent it.
    fn publish_presence(&mut self, presence: Presence) -> bool {
        let bytes = encode_gossip(&Gossip::Presence(presence));
        let topic = self.people.presence_topic.clone();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(_) => true,
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => false,
            Err(e) => {
                debug!("cannot announce presence: {e}");
                false
            }
        }
    }

    /// Checks and records a presence announcement.
    pub(super) fn on_presence(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        let presence = match decode_gossip(data) {
            Ok(Gossip::Presence(presence)) => presence,
            Ok(Gossip::Chat(_) | Gossip::FileOffer(_)) => {
                debug!(peer = %source, "rejecting a chat line sent to the presence topic");
                return MessageAcceptance::Reject;
            }
            Err(e) => {
                debug!(peer = %source, "rejecting presence: {e}");
                return MessageAcceptance::Reject;
            }
        };
        if self.services.is_some() && presence.leaving && fresh(&presence) {
            // Signed by the leaver: its registry session ends with its goodbye.
            self.registry_peer_gone(source);
        }
        if self.config.role != Role::Node || source == self.local_peer_id() {
            return MessageAcceptance::Accept;
        }
        let now = Instant::now();
        if presence.leaving {
            let was_online = self.people.table.get(&source, now).is_some();
            self.people.table.observe(source, presence, now);
            if was_online {
                self.report_offline(source);
            }
            return MessageAcceptance::Accept;
        }
        self.observe_name(source, &presence.name);
        let name = presence.name.clone();
        if self.people.table.observe(source, presence, now) {
            if self.directory.names.is_running(&name) || self.asking_registry(&name) {
                self.people.unreported.insert(source, name);
            } else {
                self.report_online(source);
            }
            self.answer_newcomer(now);
        }
        MessageAcceptance::Accept
    }

    /// Reports `peer` offline, unless it was never reported online (its name was still
    /// being looked up).
    fn report_offline(&mut self, peer: PeerId) {
        if self.people.unreported.remove(&peer).is_none() {
            let name = self.directory.display_name(&peer);
            self.emit(Event::UserOffline { peer, name });
        }
    }

    fn report_online(&mut self, peer: PeerId) {
        let name = self.directory.display_name(&peer);
        self.emit(Event::UserOnline { peer, name });
    }

    /// A lookup of `name` settled: report the users who came online waiting for it.
    pub(super) fn name_settled(&mut self, name: &str) {
        let key = name_key(name);
        let waiting: Vec<PeerId> = self
            .people
            .unreported
            .iter()
            .filter(|(_, n)| name_key(n) == key)
            .map(|(p, _)| *p)
            .collect();
        for peer in waiting {
            self.people.unreported.remove(&peer);
            self.report_online(peer);
        }
    }
}

/// Whether a goodbye is recent enough to end a registry session: gossip forgets duplicates
/// after two minutes, so an older copy may be a replay by someone else.
fn fresh(presence: &Presence) -> bool {
    ipm_protocol::now_ms().saturating_sub(presence.sent_ms) < GOODBYE_MAX_AGE_MS
}
