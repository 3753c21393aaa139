//! The interactive prompt: rustyline with history and completion; incoming messages are
//! printed above the line being typed without garbling it.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use rustyline::{
    completion::{Completer, Pair},
    error::ReadlineError,
    history::DefaultHistory,
    Context, Editor, Helper, Highlighter, Hinter, Validator,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{
    event::Event,
    ui::commands,
    ui::progress::{Bars, SharedPrinter},
    ui::render,
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
    let printer: SharedPrinter = Arc::new(Mutex::new(editor.create_external_printer()?));
    let mut bars = Bars::new(printer.clone());
    let print = move |line: String| {
        printer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .print(line)
            .is_ok()
    };

    let (line_tx, mut line_rx) = mpsc::channel::<LineRequest>(1);
    let prompt_session = session.clone();
    let reader =
        std::thread::spawn(move || read_lines(editor, history_file, prompt_session, line_tx));

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
                    let quiet =
                        matches!(event, Event::Connected { .. } | Event::Disconnected { .. });
                    if !bars.on_event(&event) && !quiet && !print(render::event_line(&event)) {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    print(format!("({n} events skipped: the prompt fell behind)"));
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

fn read_lines(
    mut editor: Editor<PromptHelper, DefaultHistory>,
    history_file: PathBuf,
    session: Session,
    lines: mpsc::Sender<LineRequest>,
) {
    loop {
        let prompt = format!("[{}]> ", session.current());
        match editor.readline(&prompt) {
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
                    Ok(Ok(Outcome::Sent { peers: 0, room, .. })) => {
                        println!("(nobody else is in {room} yet)");
                    }
                    Ok(Ok(Outcome::Sent { .. })) => {}
                    Ok(Ok(outcome)) => println!("{}", outcome.describe()),
                    Ok(Err(message)) => println!("error: {}", message.describe()),
                    Err(_) => break,
                }
            }
            Err(ReadlineError::Interrupted) => {
                println!("(Ctrl-D or /quit to leave)");
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("prompt failed: {e}");
                break;
            }
        }
    }
}
