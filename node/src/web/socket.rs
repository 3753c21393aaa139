//! The page's WebSocket: the node's events go out as the same JSON objects `--json` prints;
//! the page's commands come in and run through the one command executor the prompt and
//! `ipm ctl` use, so the three never disagree. Before the node runs, the socket carries the
//! registration and login forms instead.

use crate::web::setup::FormRefused;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use libp2p::PeerId;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};

use ipm_protocol::Room;

use crate::{
    client::{Client, Conversation},
    logic::timeline::{Line, Receipt},
    ui::emoji::SHORTCODES,
    ui::session::{Outcome, Session},
    web::setup::{Door, Form, Phase, Submission},
    web::snapshot::snapshot,
};

/// Longest message the page may send.
pub const MAX_PAGE_MESSAGE: usize = 64 * 1024;
/// Commands of one page running at once; more wait.
const COMMANDS_IN_FLIGHT: usize = 8;
/// Most history lines one ask returns.
const MAX_HISTORY: usize = 500;

/// What the chat page asks.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Ask {
    /// Run a line exactly as typed at the prompt.
    Run { id: u64, line: String },
    /// The panes' state.
    Snapshot { id: u64 },
    /// The last lines of a conversation: a room, or `@<peer id>`.
    History {
        id: u64,
        conversation: String,
        #[serde(default)]
        count: Option<usize>,
    },
    /// The page shows a conversation, up to its line `line` (hex id): its unread count and
    /// read receipts follow.
    Shown {
        id: u64,
        conversation: String,
        #[serde(default)]
        line: Option<String>,
    },
}

/// Serves one page's socket until it closes or the node stops.
pub async fn serve(mut socket: WebSocket, door: Door) {
    let mut phase = door.phase.clone();
    loop {
        let now = phase.borrow_and_update().clone();
        if let Phase::Running(client) = now {
            chat(socket, client).await;
            return;
        }
        let hello = match &now {
            Phase::Register { bootstrap } => {
                json!({"event": "phase", "phase": now.label(), "bootstrap": bootstrap})
            }
            Phase::Login { name } => json!({"event": "phase", "phase": now.label(), "name": name}),
            Phase::Starting | Phase::Running(_) => json!({"event": "phase", "phase": now.label()}),
        };
        if send(&mut socket, hello.to_string()).await.is_err() {
            return;
        }
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(message)) = message else { return };
                let Message::Text(text) = message else { continue };
                let answer = match serde_json::from_str::<Form>(text.as_str()) {
                    Ok(form) => submit(&door, form).await,
                    Err(e) => Err(FormRefused::NotAForm(e)),
                };
                let reply = match answer {
                    Ok(()) => json!({"event": "setup_reply", "ok": true}),
                    Err(refused) => json!({"event": "setup_reply", "ok": false, "message": refused.to_string()}),
                };
                if send(&mut socket, reply.to_string()).await.is_err() {
                    return;
                }
            }
            changed = phase.changed() => if changed.is_err() { return },
        }
    }
}

/// Hands a form to the program and waits for its answer.
async fn submit(door: &Door, form: Form) -> Result<(), FormRefused> {
    let (reply, answer) = oneshot::channel();
    door.forms
        .send(Submission { form, reply })
        .await
        .map_err(|_| FormRefused::AlreadyStarting)?;
    answer.await.unwrap_or(Err(FormRefused::AlreadyStarting))
}

async fn send(socket: &mut WebSocket, text: String) -> Result<(), axum::Error> {
    socket.send(Message::Text(text.into())).await
}

/// The chat window's socket: events out, commands in.
async fn chat(mut socket: WebSocket, client: Client) {
    // Each page has its own current room, as each prompt would.
    let session = Session::new(client.clone());
    let mut events = client.events();
    let (answers_tx, mut answers) = mpsc::channel::<String>(COMMANDS_IN_FLIGHT * 2);
    let permits = Arc::new(Semaphore::new(COMMANDS_IN_FLIGHT));
    let hello = json!({
        "event": "phase",
        "phase": "running",
        "peer": client.peer_id().to_string(),
        "emoji": SHORTCODES,
    });
    if send(&mut socket, hello.to_string()).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(message)) = message else { break };
                let Message::Text(text) = message else { continue };
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let (session, answers_tx) = (session.clone(), answers_tx.clone());
                tokio::spawn(async move {
                    let answer = answer(&session, text.as_str()).await;
                    let _ = answers_tx.send(answer.to_string()).await;
                    drop(permit);
                });
            }
            event = events.recv() => {
                let line = match event {
                    Ok(event) => event.to_json_line(),
                    Err(broadcast::error::RecvError::Lagged(n)) => json!({
                        "event": "error", "ts": ipm_protocol::now_ms(),
                        "message": format!("{n} events were dropped: the page fell behind"),
                    }).to_string(),
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if send(&mut socket, line).await.is_err() {
                    break;
                }
            }
            Some(line) = answers.recv() => {
                if send(&mut socket, line).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// The answer to one message of the page.
async fn answer(session: &Session, text: &str) -> Value {
    let ask = match serde_json::from_str::<Ask>(text) {
        Ok(ask) => ask,
        Err(e) => return error(None, format!("not a request: {e}")),
    };
    match ask {
        Ask::Run { id, line } => run(session, id, &line).await,
        Ask::Snapshot { id } => match snapshot(session.client(), &session.current()).await {
            Ok(mut value) => {
                value["id"] = id.into();
                value
            }
            Err(e) => error(Some(id), e.to_string()),
        },
        Ask::History {
            id,
            conversation,
            count,
        } => {
            let count = count.unwrap_or(100).min(MAX_HISTORY);
            let Some(conversation) = parse_conversation(&conversation) else {
                return error(Some(id), format!("no conversation {conversation}"));
            };
            let direct = matches!(conversation, Conversation::Direct(_));
            match session.client().lines(conversation, count).await {
                Ok(lines) => json!({
                    "event": "history", "id": id, "ts": ipm_protocol::now_ms(),
                    "lines": lines.iter().map(|l| line_json(l, direct)).collect::<Vec<_>>(),
                }),
                Err(e) => error(Some(id), e.to_string()),
            }
        }
        Ask::Shown {
            id,
            conversation,
            line,
        } => {
            let Some(conversation) = parse_conversation(&conversation) else {
                return error(Some(id), format!("no conversation {conversation}"));
            };
            let line = line.and_then(|l| l.parse::<ipm_protocol::MessageId>().ok());
            session.client().shown(conversation, line).await;
            json!({ "event": "shown", "id": id, "ts": ipm_protocol::now_ms() })
        }
    }
}

/// One line of a conversation as the page draws it: its current text, whether it was
/// edited or deleted, what it answers, its reactions and (an own private message) how far
/// it got. The page never sees the log's records.
fn line_json(line: &Line, direct: bool) -> Value {
    let state = (direct && line.entry.outgoing).then(|| match line.receipt() {
        Receipt::Read => "read",
        Receipt::Delivered => "delivered",
        Receipt::Sent => "queued",
    });
    let reactions: serde_json::Map<String, Value> = line
        .reactions
        .iter()
        .map(|(emoji, n)| (emoji.clone(), json!(n)))
        .collect();
    json!({
        "event": "history",
        "id": line.entry.id,
        "ts": line.entry.ts,
        "from": line.entry.from,
        "peer": line.entry.peer,
        "text": line.text,
        "outgoing": line.entry.outgoing,
        "edited": line.edited,
        "deleted": line.deleted,
        "reply_to": line.reply_to.as_ref().map(|q| json!({
            "id": q.id, "from": q.from, "text": q.text,
        })),
        "reactions": (!reactions.is_empty()).then_some(reactions),
        "state": state,
    })
}

/// Runs a line through the session, and says what became of it.
async fn run(session: &Session, id: u64, line: &str) -> Value {
    if line.trim() == "/quit" {
        return error(
            Some(id),
            "the page does not stop the node: stop ipm where it runs".into(),
        );
    }
    let result = session.run_line(line).await;
    let current = session.current().room().map(|room| room.to_string());
    match result {
        Ok(outcome) => {
            let detail = match &outcome {
                Outcome::Sent {
                    room,
                    id,
                    from,
                    text,
                    peers,
                } => json!({"kind": "sent", "room": room.to_string(), "id": id.to_string(),
                            "from": from, "text": text, "peers": peers}),
                Outcome::Direct {
                    id,
                    name,
                    from,
                    text,
                    delivered,
                } => {
                    json!({"kind": "direct", "id": id.to_string(), "name": name,
                           "from": from, "text": text, "delivered": delivered})
                }
                Outcome::Text(_) | Outcome::Joined { .. } | Outcome::Left { .. } => {
                    json!({"kind": "text"})
                }
                Outcome::Quit => json!({"kind": "quit"}),
            };
            json!({
                "event": "reply", "id": id, "ts": ipm_protocol::now_ms(), "ok": true,
                "output": outcome.describe(), "outcome": detail, "current": current,
            })
        }
        Err(e) => json!({
            "event": "reply", "id": id, "ts": ipm_protocol::now_ms(), "ok": false,
            "output": e.describe(), "current": current,
        }),
    }
}

fn error(id: Option<u64>, message: String) -> Value {
    json!({"event": "reply", "id": id, "ts": ipm_protocol::now_ms(), "ok": false, "output": message})
}

/// A room (`lobby`, `geo:u09t`, `interest:rust`) or `@<peer id>`.
fn parse_conversation(text: &str) -> Option<Conversation> {
    match text.strip_prefix('@') {
        Some(peer) => peer.parse::<PeerId>().ok().map(Conversation::Direct),
        None => Room::parse(text).ok().map(Conversation::Room),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_rooms_or_peers() {
        assert_eq!(
            parse_conversation("lobby"),
            Some(Conversation::Room(Room::Lobby))
        );
        let peer = PeerId::random();
        assert_eq!(
            parse_conversation(&format!("@{peer}")),
            Some(Conversation::Direct(peer))
        );
        assert_eq!(parse_conversation("@nobody"), None);
        assert_eq!(parse_conversation("kitchen"), None);
    }

    #[test]
    fn page_requests_parse() {
        let ask: Ask = serde_json::from_str(r#"{"op":"run","id":3,"line":"/users"}"#).unwrap();
        assert!(matches!(ask, Ask::Run { id: 3, .. }));
        assert!(serde_json::from_str::<Ask>(r#"{"op":"rm","id":1}"#).is_err());
    }
}
