//! The state the page's panes show, read from `Client` in one go and written as JSON:
//! who this node is, the online users, contacts and blocks, rooms, connections, transfers.

use serde_json::{json, Value};

use crate::{
    client::{
        people::{ClaimStatus, People},
        Client, Conversation, NodeError, Status, TransferView,
    },
    logic::geo_group::CurrentRoom,
};

/// Everything the panes show, as one `snapshot` message for the page.
pub async fn snapshot(client: &Client, current: &CurrentRoom) -> Result<Value, NodeError> {
    let people = client.people().await?;
    let status = client.status().await?;
    let transfers = client.transfers().await?;
    let conversations = client.conversations().await?;
    Ok(json!({
        "event": "snapshot",
        "ts": ipm_protocol::now_ms(),
        "current": current.room().map(|room| room.to_string()),
        "me": me(&people),
        "users": people.users.iter().map(|u| json!({
            "peer": u.peer.to_string(),
            "name": u.name,
            "rooms": u.rooms.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "distance_km": u.distance_km,
            "in_group": u.in_group,
            "away": u.away,
            "blocked": u.blocked,
            "via_bootstrap": u.via_bootstrap,
        })).collect::<Vec<_>>(),
        "contacts": people.contacts.iter().map(|c| json!({
            "name": c.name,
            "peer": c.peer.to_string(),
            "online": c.online,
        })).collect::<Vec<_>>(),
        "blocked": people.blocked.iter().map(|(name, peer)| json!({
            "name": name,
            "peer": peer.to_string(),
        })).collect::<Vec<_>>(),
        "status": status_json(&status),
        "conversations": conversations.iter().map(|c| json!({
            "key": match &c.conversation {
                Conversation::Room(room) => room.to_string(),
                Conversation::Direct(peer) => format!("@{peer}"),
            },
            "title": c.name,
            "unread": c.count,
        })).collect::<Vec<_>>(),
        "transfers": transfers.iter().map(transfer_json).collect::<Vec<_>>(),
    }))
}

fn me(people: &People) -> Value {
    let me = &people.me;
    let claim = match &me.claim {
        ClaimStatus::NotClaimed => "none".to_owned(),
        ClaimStatus::Pending => "pending".to_owned(),
        ClaimStatus::Registered => "registered".to_owned(),
        ClaimStatus::Taken { owner } => format!("taken by {owner}"),
    };
    json!({
        "peer": me.peer.to_string(),
        "name": me.name,
        "claim": claim,
        "position": me.position.map(|p| json!({"lat": p.lat, "lon": p.lon})),
        "group": me.group.as_ref().map(|g| json!({
            "room": g.room().to_string(),
            "radius_km": g.radius_km,
        })),
        "group_peers": me.group_peers,
        "interests": me.interests,
        "away": me.away,
    })
}

fn status_json(status: &Status) -> Value {
    let strings = |addrs: &[libp2p::Multiaddr]| -> Vec<String> {
        addrs.iter().map(ToString::to_string).collect()
    };
    json!({
        "peer": status.peer.to_string(),
        "name": status.name,
        "listen": strings(&status.listen),
        "external": strings(&status.external),
        "nat": status.nat,
        "relayed": strings(&status.relayed),
        "peers": status.peers.iter().map(|p| json!({
            "peer": p.peer.to_string(),
            "name": p.name,
            "kind": kind_name(p.kind),
            "addrs": strings(&p.addrs),
            "agent": p.agent,
        })).collect::<Vec<_>>(),
        "connections": {
            "by_kind": status.connections.by_kind.iter()
                .map(|(kind, n)| json!({"kind": kind_name(*kind), "count": n}))
                .collect::<Vec<_>>(),
            "low": status.connections.low,
            "high": status.connections.high,
        },
        // The people in each room, as /rooms counts them: not the bootstraps that forward it.
        "rooms": status.rooms.iter().map(|r| json!({
            "room": r.room.to_string(),
            "members": r.people.iter()
                .map(|(name, peer)| json!({"name": name, "peer": peer.to_string()}))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn kind_name(kind: crate::logic::connection_budget::Kind) -> String {
    format!("{kind:?}").to_lowercase()
}

/// One transfer, with its state flattened in (`state`, and `path` or `reason`).
pub fn transfer_json(t: &TransferView) -> Value {
    let mut value = json!({
        "transfer": t.id.to_string(),
        "direction": t.direction,
        "with": t.with,
        "peer": t.peer.map(|p| p.to_string()),
        "name": t.name,
        "size": t.size,
        "bytes": t.bytes,
    });
    if let (Value::Object(map), Ok(Value::Object(state))) =
        (&mut value, serde_json::to_value(&t.state))
    {
        map.extend(state);
    }
    value
}
