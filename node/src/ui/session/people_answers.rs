//! Commands about rooms and people, and how their answers read: `/users`, `/list-geo`,
//! `/join-geo`, `/join-interest`, `/contacts`, `/block`, `/away`, and the people part of
//! `/status`.

use std::fmt::Write as _;

use ipm_protocol::{geo::cell_size_km, limits::WIRE_GEOHASH_PRECISION, Room};

use super::{Outcome, Session, SessionError};
use crate::{
    client::people::{ClaimStatus, Me, People, User},
    logic::geo_group::{
        fallback, format_km, others, CurrentRoom, GeoGroup, DEFAULT_RADIUS_KM, HOW_TO_JOIN,
    },
    net::addresses::peer_of,
    ui::commands::{ContactTarget, PeopleCommand},
};

/// How long `/users` waits for the bootstraps' lists of online users.
const ONLINE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Away text of `/away` without one.
const DEFAULT_AWAY: &str = "away";

impl Session {
    /// Runs a command about rooms and people.
    pub(super) async fn run_people(&self, command: PeopleCommand) -> Result<Outcome, SessionError> {
        let client = self.client();
        let text = match command {
            PeopleCommand::Users => {
                // Users online beyond gossip reach come from the bootstraps' directories; a
                // bootstrap that does not answer in time is left out.
                let _ = tokio::time::timeout(ONLINE_WAIT, client.refresh_online()).await;
                render_users(&self.people().await?)
            }
            PeopleCommand::ListGeo => render_location(&self.people().await?.me),
            PeopleCommand::SetGeo(position) => {
                let group = client.set_position(position).await?;
                let mut text = match position {
                    Some(p) => format!(
                        "location set to {p} (geohash {}); others see the cell {}",
                        p.geohash(MAX_SHOWN_PRECISION),
                        p.geohash(WIRE_GEOHASH_PRECISION)
                    ),
                    None => "location forgotten; nobody sees it any more".to_owned(),
                };
                if let CurrentRoom::Geo(_) = self.current() {
                    match group {
                        Some(group) => {
                            let _ = write!(text, "; the location group moved to {}", group.room());
                            self.set_current_room(CurrentRoom::Geo(group)).await;
                        }
                        None => {
                            text.push_str("; left the location group");
                            text.push_str(&self.current_after_group().await?);
                        }
                    }
                }
                text
            }
            PeopleCommand::JoinGeo(radius) => {
                let group = client.join_geo(radius.unwrap_or(DEFAULT_RADIUS_KM)).await?;
                let text = format!(
                    "joined the location group: {}; it is now the current room",
                    describe_group(&group)
                );
                self.set_current_room(CurrentRoom::Geo(group)).await;
                text
            }
            PeopleCommand::LeaveGeo => {
                if !client.leave_geo().await? {
                    return Err(SessionError::NoGroup);
                }
                let mut text = "left the location group".to_owned();
                if let CurrentRoom::Geo(_) = self.current() {
                    text.push_str(&self.current_after_group().await?);
                }
                text
            }
            PeopleCommand::JoinInterest(Some(tag)) => {
                client.add_interest(tag.clone()).await?;
                // One room: told like a /join, once at the prompt.
                let room = Room::Interest(tag);
                let new = client.join(room.clone()).await?;
                self.set_current(room.clone()).await;
                return Ok(Outcome::Joined { room, new });
            }
            PeopleCommand::JoinInterest(None) => {
                let interests = self.people().await?.me.interests;
                if interests.is_empty() {
                    return Err(SessionError::NoInterests);
                }
                self.join_interests(&interests).await?
            }
            PeopleCommand::Contacts => render_contacts(&self.people().await?),
            PeopleCommand::AddContact { name, target } => {
                let (peer, addr) = match target {
                    ContactTarget::User(user) => (self.resolve(&user).await?, None),
                    ContactTarget::Addr(addr) => {
                        let Some(peer) = peer_of(&addr) else {
                            return Err(SessionError::NoPeerInAddr(addr));
                        };
                        (peer, Some(addr))
                    }
                };
                let previous = client.add_contact(name.clone(), peer, addr).await?;
                match previous {
                    Some(old) => format!("{old} ({peer}) is now called {name}"),
                    None => format!("added {name}: {peer}"),
                }
            }
            PeopleCommand::RemoveContact(name) => {
                let peer = client.remove_contact(name.clone()).await?;
                format!("removed {name} ({peer}) from the contacts")
            }
            PeopleCommand::Block(None) => render_blocked(&self.people().await?),
            PeopleCommand::Block(Some(user)) => {
                let peer = self.resolve(&user).await?;
                let new = client.set_blocked(peer, true).await?;
                if new {
                    format!("blocked {user} ({peer}): their messages are dropped")
                } else {
                    format!("{user} ({peer}) is already blocked")
                }
            }
            PeopleCommand::Unblock(user) => {
                let peer = self.resolve(&user).await?;
                if !client.set_blocked(peer, false).await? {
                    return Err(SessionError::NotBlocked { user, peer });
                }
                format!("unblocked {user} ({peer})")
            }
            PeopleCommand::Away(text) => {
                let text = text.unwrap_or_else(|| DEFAULT_AWAY.to_owned());
                client.set_away(Some(text.clone())).await?;
                format!("you are away: {text}")
            }
            PeopleCommand::Rename(name) => {
                client.rename(name.clone()).await?;
                self.forget_name();
                format!("you are now {name}")
            }
            PeopleCommand::Back => {
                client.set_away(None).await?;
                "welcome back".to_owned()
            }
        };
        Ok(Outcome::Text(text))
    }

    async fn people(&self) -> Result<People, SessionError> {
        Ok(self.client().people().await?)
    }

    async fn resolve(&self, user: &str) -> Result<libp2p::PeerId, SessionError> {
        Ok(self.client().resolve_user(user).await?)
    }

    /// Makes a room still joined current once the location group is left, and says which.
    async fn current_after_group(&self) -> Result<String, SessionError> {
        let status = self.client().status().await?;
        let rooms: Vec<Room> = status.rooms.into_iter().map(|r| r.room).collect();
        let next = fallback(&rooms, None);
        self.set_current_room(next.clone()).await;
        Ok(match next {
            CurrentRoom::Room(Room::Lobby) => "; the lobby is now current".to_owned(),
            CurrentRoom::Nowhere => format!("; you are in no room now: {HOW_TO_JOIN}"),
            room => format!("; {room} is now current"),
        })
    }

    /// Joins the interest rooms of `tags`; the first becomes the current room.
    async fn join_interests(&self, tags: &[String]) -> Result<String, SessionError> {
        let mut joined = Vec::new();
        for tag in tags {
            let room = Room::Interest(tag.clone());
            self.client().join(room.clone()).await?;
            joined.push(room);
        }
        let names: Vec<String> = joined.iter().map(ToString::to_string).collect();
        let first = joined.first().cloned().unwrap_or(Room::Lobby);
        let text = format!(
            "joined {}; {first} is now the current room",
            names.join(", ")
        );
        self.set_current(first).await;
        Ok(text)
    }

    /// The `/rooms` line of the location group, when one is joined.
    pub(super) async fn group_line(&self) -> Result<Option<String>, SessionError> {
        let people = self.people().await?;
        Ok(people.me.group.as_ref().map(|group| {
            let mark = if matches!(self.current(), CurrentRoom::Geo(_)) {
                '*'
            } else {
                ' '
            };
            format!(
                "{mark} location group {} ({})",
                describe_group(group),
                others(people.members(&group.room(), true).len())
            )
        }))
    }

    /// The people part of `/status`: the current room and who is in it, the location, the
    /// interests, the away text and the name record.
    pub(super) async fn status_of_people(&self) -> Result<String, SessionError> {
        let people = self.people().await?;
        let current = self.current();
        let mut out = String::new();
        let members = match &current {
            CurrentRoom::Geo(group) => {
                let _ = write!(out, "\nlocation group: {}", describe_group(group));
                people.members(&group.room(), true)
            }
            CurrentRoom::Room(room) => people.members(room, false),
            CurrentRoom::Nowhere => Vec::new(),
        };
        let names: Vec<String> = members.iter().map(|u| user_label(u)).collect();
        let _ = write!(
            out,
            "\nmembers of {current}: {}",
            if names.is_empty() {
                "nobody else yet".to_owned()
            } else {
                names.join(", ")
            }
        );
        let me = &people.me;
        if !me.interests.is_empty() {
            let _ = write!(out, "\ninterests: {}", me.interests.join(", "));
        }
        if let Some(p) = me.position {
            let _ = write!(
                out,
                "\nlocation: {p} (others see {})",
                p.geohash(WIRE_GEOHASH_PRECISION)
            );
        }
        if let Some(away) = &me.away {
            let _ = write!(out, "\naway: {away}");
        }
        let _ = write!(out, "\nname record: {}", describe_claim(me));
        Ok(out)
    }
}

/// Most geohash characters shown for the own position.
const MAX_SHOWN_PRECISION: usize = 9;

/// `10.0 km around 48.85660,2.35220: geo:u09t and 8 neighbouring cells`.
fn describe_group(group: &GeoGroup) -> String {
    format!(
        "{} around {}: {} and {} neighbouring cells",
        format_km(group.radius_km),
        group.position,
        group.room(),
        group.cells().len().saturating_sub(1)
    )
}

fn describe_claim(me: &Me) -> String {
    match &me.claim {
        ClaimStatus::NotClaimed => "none".to_owned(),
        ClaimStatus::Pending => format!("{} is not registered yet", me.name),
        ClaimStatus::Registered => format!("{} is registered to you", me.name),
        ClaimStatus::Taken { owner } => format!(
            "{} is registered to {owner}; others see you as {}#{}",
            me.name,
            me.name,
            crate::logic::directory::short_id(&me.peer)
        ),
    }
}

/// `bob (3.0 km)` or `bob`.
fn user_label(user: &User) -> String {
    match user.distance_km {
        Some(d) => format!("{} ({})", user.name, format_km(d)),
        None => user.name.clone(),
    }
}

/// The `/users` text: one line per online user, this node first.
pub fn render_users(people: &People) -> String {
    let me = &people.me;
    let width = people
        .users
        .iter()
        .map(|u| u.name.chars().count())
        .chain([me.name.chars().count() + 6])
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "{} online besides you:",
        match people.users.len() {
            1 => "1 user".to_owned(),
            n => format!("{n} users"),
        }
    );
    let you = format!("{} (you)", me.name);
    let _ = write!(out, "\n  {you:<width$}  {}", me.peer);
    for u in &people.users {
        let distance = u.distance_km.map(format_km).unwrap_or_else(|| "-".into());
        let mut rooms: Vec<String> = u.rooms.iter().map(ToString::to_string).collect();
        if let Some(cell) = &u.group {
            rooms.push(format!("location group geo:{cell}"));
        }
        if u.via_bootstrap {
            rooms.push("(via bootstrap)".into());
        }
        let _ = write!(
            out,
            "\n  {:<width$}  {}  {distance:>8}  {}",
            u.name,
            u.peer,
            rooms.join(", ")
        );
        if let Some(away) = &u.away {
            let _ = write!(out, "  (away: {away})");
        }
        if u.blocked {
            out.push_str("  [blocked]");
        }
    }
    out
}

/// The `/list-geo` text.
pub fn render_location(me: &Me) -> String {
    let Some(p) = me.position else {
        return "no location set: /geo <lat,lon|geohash>, or start ipm with --geo".into();
    };
    let (h, w) = cell_size_km(WIRE_GEOHASH_PRECISION, p.lat);
    let mut out = format!(
        "latitude:  {:.5}\nlongitude: {:.5}\ngeohash:   {}\nsent to others: {} (a cell of about {} x {})",
        p.lat,
        p.lon,
        p.geohash(MAX_SHOWN_PRECISION),
        p.geohash(WIRE_GEOHASH_PRECISION),
        format_km(h),
        format_km(w),
    );
    match &me.group {
        Some(group) => {
            let _ = write!(
                out,
                "\nradius:    {} (location group {} and {} neighbouring cells)",
                format_km(group.radius_km),
                group.room(),
                group.cells().len().saturating_sub(1)
            );
        }
        None => out.push_str("\nradius:    none (join a location group with /join-geo <km>)"),
    }
    out
}

/// The `/contacts` text.
pub fn render_contacts(people: &People) -> String {
    if people.contacts.is_empty() {
        return "no contacts yet: /contacts add <name> <user|peer-id|multiaddr>".into();
    }
    let mut out = String::from("contacts:");
    for c in &people.contacts {
        let state = if c.online { "online" } else { "offline" };
        let _ = write!(out, "\n  {}  {}  {state}", c.name, c.peer);
        if let Some(addr) = &c.addr {
            let _ = write!(out, "  {addr}");
        }
    }
    if !people.blocked.is_empty() {
        out.push('\n');
        out.push_str(&render_blocked(people));
    }
    out
}

/// The `/block` text without a user.
pub fn render_blocked(people: &People) -> String {
    if people.blocked.is_empty() {
        return "nobody is blocked".into();
    }
    let mut out = String::from("blocked:");
    for (name, peer) in &people.blocked {
        let _ = write!(out, "\n  {name}  {peer}");
    }
    out
}
