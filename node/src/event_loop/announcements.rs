//! Presence in the event loop: carrying out what the announcer decides (publishing this
//! node's presence and its goodbye) and what the presence table decides (reporting who comes
//! online and who falls silent).

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    time::Instant,
};

use libp2p::{gossipsub, PeerId};
use tracing::debug;

use ipm_protocol::{
    encode_gossip,
    limits::{MAX_PRESENCE_ROOMS, WIRE_GEOHASH_PRECISION},
    Gossip, MessageId, Presence,
};

use super::EventLoop;
use crate::{
    event::Event,
    logic::announcing::{self, Facts},
    logic::names::OwnClaim,
    logic::presence,
};

impl EventLoop {
    /// Runs four times per presence interval: drops silent users, announces this node when
    /// due and retries the name claim.
    pub(super) fn on_presence_tick(&mut self) {
        let now = Instant::now();
        self.presence_step(now, presence::Input::Tick);
        self.release_caught_up(false);
        let facts = self.announce_facts(now);
        self.announcing_step(now, announcing::Input::Tick(facts));
        self.maybe_claim_name();
        self.save_heard_names();
    }

    /// This node changed what it announces (a room joined or left): lets peers know now
    /// rather than at the next periodic announcement (at most four times per interval; a
    /// wanted announcement that has to wait goes out at a later tick).
    pub(super) fn announce_soon(&mut self) {
        let now = Instant::now();
        let facts = self.announce_facts(now);
        self.announcing_step(now, announcing::Input::Changed(facts));
    }

    /// Announces this node on the presence topic, unless the first announcement still
    /// waits for the name claim to settle (at most one interval).
    pub(super) fn announce(&mut self, now: Instant) {
        let facts = self.announce_facts(now);
        self.announcing_step(now, announcing::Input::Refresh(facts));
    }

    /// Tells peers that this node is shutting down, so that they show it offline at once
    /// instead of after its silence; only a node that has announced itself says goodbye.
    /// Returns whether a goodbye went to some peer.
    pub(super) fn announce_leaving(&mut self) -> bool {
        self.announcing_step(Instant::now(), announcing::Input::Stopping)
    }

    /// A user's announcement taken in from the presence topic, delivered by `forwarder`.
    /// Contacts and users who spoke in the user's rooms are never evicted from a full table.
    pub(super) fn hear_presence(&mut self, peer: PeerId, presence: Presence, forwarder: PeerId) {
        let name_pending = !presence.leaving
            && (self.directory.names.is_running(&presence.name)
                || self.asking_registry(&presence.name));
        let protected =
            self.directory.contacts.petname(&peer).is_some() || self.intake.spoke(&peer);
        self.presence_step(
            Instant::now(),
            presence::Input::Heard {
                peer,
                presence: Box::new(presence),
                name_pending,
                forwarder,
                protected,
            },
        );
    }

    /// The node holds no connection to `peer` any more: users heard only through it lose
    /// the stretch of their silence.
    pub(super) fn forwarder_gone(&mut self, peer: PeerId) {
        self.presence_step(Instant::now(), presence::Input::ForwarderGone(peer));
    }

    /// A lookup of `name` settled: report the users who came online waiting for it.
    pub(super) fn name_settled(&mut self, name: &str) {
        let name = name.to_owned();
        self.presence_step(Instant::now(), presence::Input::NameSettled { name });
        self.release_caught_up(false);
    }

    /// What the announcer needs to know at `now`; draws its random number.
    fn announce_facts(&self, now: Instant) -> Facts {
        Facts {
            online: self.people.table.online(now).count(),
            claim_settled: matches!(
                self.people.claim,
                OwnClaim::Registered | OwnClaim::Taken { .. }
            ) || self.holds_own_ticket(),
            said: fingerprint(&self.own_presence()),
            draw: rand::random::<f64>(),
        }
    }

    /// Feeds the announcer and publishes what it asks for; returns whether a goodbye went
    /// to some peer.
    fn announcing_step(&mut self, now: Instant, input: announcing::Input) -> bool {
        let mut goodbye_sent = false;
        for action in self.people.announcer.handle(now, input) {
            match action {
                announcing::Action::Announce { every_ms } => {
                    let presence = Presence {
                        every_ms,
                        ..self.own_presence()
                    };
                    self.publish_presence(presence);
                }
                announcing::Action::Goodbye => {
                    let presence = Presence {
                        leaving: true,
                        ..self.own_presence()
                    };
                    goodbye_sent = self.publish_presence(presence);
                }
            }
        }
        goodbye_sent
    }

    /// Feeds the presence table and reports what it finds.
    pub(super) fn presence_step(&mut self, now: Instant, input: presence::Input) {
        for action in self.people.table.handle(now, input) {
            match action {
                presence::Action::Online(peer) => {
                    let name = self.directory.display_name(&peer);
                    self.emit(Event::UserOnline { peer, name });
                }
                presence::Action::Offline(peer) => {
                    let name = self.directory.display_name(&peer);
                    self.emit(Event::UserOffline { peer, name });
                }
                presence::Action::Newcomer { online } => {
                    // In a large overlay only some nodes answer a newcomer at once (about
                    // `USERS_AT_BASE_RATE` in all); it hears of the others at their periodic
                    // announcements and from the bootstrap's list.
                    let draw = rand::random::<f64>();
                    self.people
                        .announcer
                        .handle(now, announcing::Input::Newcomer { online, draw });
                }
            }
        }
    }

    /// What this node would announce now (its id and time fresh).
    fn own_presence(&self) -> Presence {
        let rooms = self
            .rooms
            .iter()
            .take(MAX_PRESENCE_ROOMS)
            .cloned()
            .collect();
        let presence = Presence::new(
            &self.config.name,
            rooms,
            self.people
                .position
                .map(|p| p.geohash(WIRE_GEOHASH_PRECISION)),
            self.people.group.as_ref().map(|g| g.own_cell().to_owned()),
            self.people.away.clone(),
        );
        // A ticket for another spelling (a rename under way) would not be taken.
        let ticket = self.registry.ticket.clone();
        Presence {
            ticket: ticket.filter(|t| t.name == self.config.name),
            ..presence
        }
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
}

/// A fingerprint of what `presence` says, apart from its id, send time and pause: two
/// announcements with equal fingerprints tell peers the same.
fn fingerprint(presence: &Presence) -> u64 {
    let said = Presence {
        id: MessageId::from_bytes([0; 16]),
        sent_ms: 0,
        every_ms: None,
        ..presence.clone()
    };
    let mut hasher = DefaultHasher::new();
    encode_gossip(&Gossip::Presence(said)).hash(&mut hasher);
    hasher.finish()
}
