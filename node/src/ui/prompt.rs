//! The interactive prompt: rustyline with history and completion; incoming messages and the
//! answers to commands are printed above the line being typed without garbling it.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use rustyline::{
    completion::{Completer, Pair},
    error::ReadlineError,
    history::DefaultHistory,
    Context, Editor, ExternalPrinter, Helper, Highlighter, Hinter, Validator,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    event::Event,
    ui::commands,
    ui::mention,
    ui::progress::Bars,
    ui::render,
    ui::screen::{self, Screen, SharedScreen},
    ui::session::{Outcome, Session, SessionError},
};

/// Tab completion of command names, room names and the names of online users.
#[derive(Helper, Highlighter, Hinter, Validator)]
struct PromptHelper {
    /// Joined rooms and online users.
    rooms: Arc<RwLock<Vec<String>>>,
}

impl Completer for PromptHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(' ').map_or(0, |i| i + 1);
        let word = &before[start..];
        let pair = |s: &str| Pair {
            display: s.to_owned(),
            replacement: s.to_owned(),
        };
        let candidates: Vec<Pair> = if start == 0 {
            if !word.starts_with('/') {
                return Ok((0, Vec::new()));
            }
            commands::names()
                .filter(|n| n.starts_with(word))
                .map(pair)
                .collect()
        } else {
            let mut words: Vec<String> = self
                .rooms
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            words.extend(["lobby".into(), "geo:".into(), "interest:".into()]);
            words.sort();
            words.dedup();
            words
                .iter()
                .filter(|w| w.starts_with(word))
                .map(|w| pair(w))
                .collect()
        };
        Ok((start, candidates))
    }
}

type LineRequest = (String, oneshot::Sender<Result<Outcome, SessionError>>);

/// Runs the prompt until `/quit`, Ctrl-D, or the node stops. Blocks a thread of its own.
pub async fn run(
    session: Session,
    history_file: PathBuf,
    mut events: broadcast::Receiver<Event>,
) -> anyhow::Result<()> {
    let rooms = Arc::new(RwLock::new(Vec::<String>::new()));
    let mut editor: Editor<PromptHelper, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(PromptHelper {
        rooms: rooms.clone(),
    }));
    let _ = editor.load_history(&history_file);
    let screen: SharedScreen = Arc::new(Mutex::new(match editor.create_external_printer() {
        Ok(printer) => Screen::terminal(Box::new(queued(printer)), screen::terminal_columns),
        Err(_) => Screen::plain(Box::new(screen::Stdout)),
    }));
    let mut bars = Bars::new(screen.clone());

    let (line_tx, mut line_rx) = mpsc::channel::<LineRequest>(1);
    let prompt_session = session.clone();
    let reader_screen = screen.clone();
    let reader = std::thread::spawn(move || {
        read_lines(editor, history_file, prompt_session, reader_screen, line_tx)
    });

    let printer_session = session.clone();
    let printer_task = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    let word = match &event {
                        Event::Joined { room } | Event::Left { room } => Some(room.to_string()),
                        Event::UserOnline { name, .. } | Event::UserOffline { name, .. } => {
                            Some(name.clone())
                        }
                        _ => None,
                    };
                    if let Some(word) = word {
                        let mut list = rooms.write().unwrap_or_else(PoisonError::into_inner);
                        if matches!(event, Event::Joined { .. } | Event::UserOnline { .. }) {
                            list.push(word);
                        } else {
                            list.retain(|w| *w != word);
                        }
                    }
                    // Connections are listed by /status; the prompt stays for conversation.
                    // A delivery the sender's own command reports is told there.
                    let quiet = matches!(
                        event,
                        Event::Connected { .. }
                            | Event::Disconnected { .. }
                            | Event::Delivered { told: true, .. }
                    );
                    if quiet || bars.on_event(&event) {
                        continue;
                    }
                    let mut line = render::event_line(&event);
                    let mentioned = match &event {
                        Event::Message { text, .. } | Event::Direct { text, .. } => {
                            let me = printer_session.own_name().await.unwrap_or_default();
                            mention::mentions(text, &me)
                        }
                        _ => false,
                    };
                    let printed = {
                        let mut screen = screen::lock(&screen);
                        if mentioned && screen.redraws() {
                            line = mention::highlight(&line);
                        }
                        screen.print(&line)
                    };
                    if !printed {
                        break;
                    }
                    // Shown to the user: its sender may get a read receipt, and the
                    // conversation has nothing unread.
                    if let Some((conversation, id)) = shown_line(&event) {
                        printer_session.client().shown(conversation, Some(id)).await;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    screen::lock(&screen)
                        .print(&format!("({n} events skipped: the prompt fell behind)"));
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });

    while let Some((line, reply)) = line_rx.recv().await {
        let _ = reply.send(session.run_line(&line).await);
    }
    printer_task.abort();
    let _ = tokio::task::spawn_blocking(move || reader.join()).await;
    Ok(())
}

/// The conversation and id of a line an event shows (a room line, a private message).
fn shown_line(event: &Event) -> Option<(crate::client::Conversation, ipm_protocol::MessageId)> {
    use crate::client::Conversation;
    match event {
        Event::Message { room, id, .. } => Some((Conversation::Room(room.clone()), *id)),
        Event::Direct { peer, id, .. } => Some((Conversation::Direct(*peer), *id)),
        _ => None,
    }
}

/// Hands what the screen writes to a thread of its own, which writes it through rustyline's
/// `printer`. Rustyline takes a printed line only while it reads one; between two (after
/// Enter) it keeps the printer waiting, and so the thread, never the screen, waits.
struct Queue(std::sync::mpsc::Sender<String>);

impl ExternalPrinter for Queue {
    fn print(&mut self, msg: String) -> rustyline::Result<()> {
        self.0
            .send(msg)
            .map_err(|_| ReadlineError::Io(std::io::Error::other("the terminal is gone")))
    }
}

fn queued(mut printer: impl ExternalPrinter + Send + 'static) -> Queue {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for msg in rx {
            if printer.print(msg).is_err() {
                break;
            }
        }
    });
    Queue(tx)
}

/// What the prompt shows for the answer to a typed line: a room line as the others read it,
/// a private message as the sender's own line with its reference (the node's report of its
/// delivery, or of its queueing, follows on its own line).
pub fn answer_lines(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Sent {
            room,
            id,
            peers,
            from,
            text,
        } => {
            let line = render::own_message(room, id, from, text);
            if *peers == 0 {
                format!("{line}\n(nobody else is in {room} yet)")
            } else {
                line
            }
        }
        Outcome::Direct {
            id,
            name,
            from,
            text,
            delivered,
        } => {
            let line = render::own_direct(name, id, from, text, None);
            match delivered {
                true => format!("{line}  ✓ delivered"),
                // The node's report of its queueing follows.
                false => line,
            }
        }
        // The node's `* joined` and `* left` lines tell them once; what became of the
        // current room follows a leave.
        Outcome::Joined { new: true, .. } => String::new(),
        Outcome::Left { next, .. } => crate::ui::session::next_room(next.as_ref())
            .trim_start_matches("; ")
            .to_owned(),
        other => other.describe(),
    }
}

fn read_lines(
    mut editor: Editor<PromptHelper, DefaultHistory>,
    history_file: PathBuf,
    session: Session,
    screen: SharedScreen,
    lines: mpsc::Sender<LineRequest>,
) {
    let show = |text: &str| {
        screen::lock(&screen).print(text);
    };
    loop {
        let prompt = format!("[{}]> ", session.current());
        let read = editor.readline(&prompt);
        screen::lock(&screen).input_accepted();
        match read {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                let _ = editor.append_history(&history_file);
                let (tx, rx) = oneshot::channel();
                if lines.blocking_send((line, tx)).is_err() {
                    break;
                }
                match rx.blocking_recv() {
                    Ok(Ok(Outcome::Quit)) => break,
                    Ok(Ok(outcome)) => show(&answer_lines(&outcome)),
                    Ok(Err(message)) => show(&format!("error: {}", message.describe())),
                    Err(_) => break,
                }
            }
            Err(ReadlineError::Interrupted) => show("(Ctrl-D or /quit to leave)"),
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                show(&format!("prompt failed: {e}"));
                break;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ipm_protocol::Room;

    fn sent(peers: usize) -> Outcome {
        Outcome::Sent {
            room: Room::Lobby,
            id: "c0ffee00000000000000000000000000".parse().unwrap(),
            peers,
            from: "alice".into(),
            text: "hello 😄".into(),
        }
    }

    #[test]
    fn the_own_room_line_is_shown_signed_like_the_lines_of_others() {
        assert_eq!(answer_lines(&sent(2)), "[lobby] alice: hello 😄  (c0ff)");
        assert_eq!(
            answer_lines(&sent(0)),
            "[lobby] alice: hello 😄  (c0ff)\n(nobody else is in lobby yet)"
        );
    }

    #[test]
    fn a_join_or_leave_is_told_once_by_the_nodes_line() {
        use crate::logic::geo_group::CurrentRoom;
        let joined = |new| Outcome::Joined {
            room: Room::Lobby,
            new,
        };
        assert_eq!(answer_lines(&joined(true)), "");
        assert_eq!(
            joined(true).describe(),
            "joined lobby; it is now the current room"
        );
        assert_eq!(
            answer_lines(&joined(false)),
            "back in lobby; it is now the current room"
        );
        let left = |next| Outcome::Left {
            room: Room::Lobby,
            next,
        };
        assert_eq!(answer_lines(&left(None)), "");
        let rust = CurrentRoom::Room(Room::Interest("rust".into()));
        assert_eq!(
            answer_lines(&left(Some(rust.clone()))),
            "current room is now interest:rust"
        );
        assert_eq!(
            left(Some(rust)).describe(),
            "left lobby; current room is now interest:rust"
        );
        assert_eq!(
            answer_lines(&left(Some(CurrentRoom::Nowhere))),
            "you are in no room now: /join lobby, /join interest:<tag> or /join-geo"
        );
    }

    #[test]
    fn a_private_message_shows_as_the_senders_own_line_with_its_reference() {
        for delivered in [true, false] {
            let id: ipm_protocol::MessageId = "c0ff0000000000000000000000000000".parse().unwrap();
            let outcome = Outcome::Direct {
                id,
                name: "bob".into(),
                from: "alice".into(),
                text: "lunch? 😄".into(),
                delivered,
            };
            assert_eq!(
                answer_lines(&outcome),
                format!(
                    "[private → bob] alice: lunch? 😄  (c0ff){}",
                    if delivered { "  ✓ delivered" } else { "" }
                )
            );
            let said = outcome.describe();
            assert!(
                said.contains("bob") && said.contains("(c0ff)"),
                "ctl says it: {said}"
            );
        }
    }
}
