//! The real `ipm` at a terminal: a pseudo-terminal runs it with its prompt, keys are typed
//! into it, and what it writes is played on a small terminal model, so tests read the rows a
//! user would see (the scrollback included).

use std::{
    ffi::OsStr,
    fs::File,
    io::{Read, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex, PoisonError},
    time::Instant,
};

use rustix::{
    pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags},
    termios::{tcsetwinsize, Winsize},
};

use crate::support::procs::{ipm, PROC_WAIT};

/// Columns of the terminal.
pub const COLUMNS: usize = 100;
/// Rows of the terminal.
pub const ROWS: usize = 30;

/// A new pseudo-terminal of [`COLUMNS`] × [`ROWS`]: the side a test types into and reads
/// from, and the side a process gets as its terminal.
pub fn pty() -> (File, File) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("a pseudo-terminal");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("the terminal's name");
    let size = Winsize {
        ws_row: ROWS as u16,
        ws_col: COLUMNS as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    tcsetwinsize(&master, size).expect("the terminal's size");
    let far_end = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_string_lossy().as_ref())
        .expect("the terminal's far end");
    (File::from(master), far_end)
}

/// Everything the process wrote, and whether it is still writing.
#[derive(Default)]
struct Output {
    bytes: Vec<u8>,
    closed: bool,
}

/// `ipm` running at a terminal; killed when dropped.
pub struct Terminal {
    child: Child,
    keys: File,
    output: Arc<(Mutex<Output>, Condvar)>,
}

impl Terminal {
    /// Starts `ipm args…` at a new terminal of [`COLUMNS`] × [`ROWS`].
    pub fn start<I, S>(args: I) -> Terminal
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (master, slave) = pty();
        let mut cmd = Command::new(ipm());
        cmd.args(args)
            .env("TERM", "xterm-256color")
            .env_remove("RUST_LOG")
            .stdin(Stdio::from(slave.try_clone().expect("a terminal fd")))
            .stdout(Stdio::from(slave.try_clone().expect("a terminal fd")))
            .stderr(Stdio::from(slave));
        let child = cmd.spawn().expect("ipm starts");
        drop(cmd);
        let keys = master.try_clone().expect("a terminal fd");
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut master = master;
            let mut buf = [0u8; 4096];
            loop {
                let n = master.read(&mut buf).unwrap_or(0);
                let (lock, changed) = &*sink;
                let mut out = lock.lock().unwrap_or_else(PoisonError::into_inner);
                if n == 0 {
                    out.closed = true;
                    changed.notify_all();
                    return;
                }
                out.bytes.extend_from_slice(&buf[..n]);
                changed.notify_all();
            }
        });
        Terminal {
            child,
            keys,
            output,
        }
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        self.keys
            .write_all(format!("{line}\r").as_bytes())
            .expect("typing into the terminal");
    }

    /// Waits until the terminal shows what `ok` looks for, within [`PROC_WAIT`].
    pub fn wait_for(&self, what: &str, ok: impl Fn(&Screen) -> bool) -> Screen {
        self.try_wait_for(PROC_WAIT, ok).unwrap_or_else(|screen| {
            panic!(
                "{what} did not show within {PROC_WAIT:?}; the terminal shows:\n{}",
                screen.rows.join("\n")
            )
        })
    }

    /// Waits until the terminal shows what `ok` looks for, within `within`: the screen
    /// then, or the screen at the deadline (or when the process closed the terminal).
    pub fn try_wait_for(
        &self,
        within: std::time::Duration,
        ok: impl Fn(&Screen) -> bool,
    ) -> Result<Screen, Screen> {
        let deadline = Instant::now() + within;
        let (lock, changed) = &*self.output;
        let mut out = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let screen = Screen::play(&out.bytes);
            if ok(&screen) {
                return Ok(screen);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || out.closed {
                return Err(screen);
            }
            out = changed
                .wait_timeout(out, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// What the terminal shows now.
    #[allow(dead_code)]
    pub fn screen(&self) -> Screen {
        let (lock, _) = &*self.output;
        Screen::play(&lock.lock().unwrap_or_else(PoisonError::into_inner).bytes)
    }

    /// Kills the process (SIGKILL) and reaps it.
    #[allow(dead_code)]
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the prompt, ready for the next line.
    pub fn wait_for_prompt(&self) -> Screen {
        self.wait_for("the prompt", |s| {
            s.cursor_row_text().starts_with('[') && s.cursor_row_text().contains("]>")
        })
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rows a terminal shows, from the first line written, and where its cursor is.
#[derive(Clone, Debug)]
pub struct Screen {
    /// Every row, trailing blanks trimmed.
    pub rows: Vec<String>,
    /// The row the cursor is on.
    pub cursor: usize,
    /// Rows where text was written in reverse video (`CSI 7 m`).
    pub inverse: Vec<bool>,
    /// How many times the bell rang.
    pub bells: usize,
}

impl Screen {
    /// How many rows are exactly `row`.
    pub fn count(&self, row: &str) -> usize {
        self.rows.iter().filter(|r| *r == row).count()
    }

    /// How many rows contain `part`.
    pub fn count_containing(&self, part: &str) -> usize {
        self.rows.iter().filter(|r| r.contains(part)).count()
    }

    /// The first row starting with `start`.
    pub fn row_starting(&self, start: &str) -> Option<&str> {
        self.rows
            .iter()
            .find(|r| r.starts_with(start))
            .map(String::as_str)
    }

    /// Whether the first row starting with `start` has text in reverse video.
    pub fn highlighted(&self, start: &str) -> bool {
        self.rows
            .iter()
            .position(|r| r.starts_with(start))
            .is_some_and(|i| self.inverse.get(i).copied().unwrap_or(false))
    }

    /// The text of the row the cursor is on.
    pub fn cursor_row_text(&self) -> &str {
        self.rows.get(self.cursor).map_or("", String::as_str)
    }

    /// Plays `bytes` on an empty terminal of [`COLUMNS`] × [`ROWS`]: text, carriage return,
    /// line feed, backspace, and the CSI sequences that move the cursor and erase (others
    /// are skipped). The rows above the last [`ROWS`] are the scrollback: the cursor cannot
    /// move up into them.
    pub fn play(bytes: &[u8]) -> Screen {
        let text = String::from_utf8_lossy(bytes);
        let mut rows: Vec<Vec<char>> = vec![Vec::new()];
        let (mut row, mut col) = (0usize, 0usize);
        let (mut reverse, mut inverse, mut bells) = (false, Vec::<bool>::new(), 0usize);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            while rows.len() <= row {
                rows.push(Vec::new());
            }
            let top = rows.len().saturating_sub(ROWS);
            match c {
                '\r' => col = 0,
                '\n' => row += 1,
                '\u{8}' => col = col.saturating_sub(1),
                '\u{1b}' => {
                    if chars.peek() != Some(&'[') {
                        chars.next();
                        continue;
                    }
                    chars.next();
                    let mut params = String::new();
                    let mut end = None;
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            end = Some(c);
                            break;
                        }
                        params.push(c);
                    }
                    let n = params.parse::<usize>().unwrap_or(0);
                    match end {
                        Some('A') => row = row.saturating_sub(n.max(1)).max(top),
                        Some('B') => row += n.max(1),
                        Some('C') => col += n.max(1),
                        Some('D') => col = col.saturating_sub(n.max(1)),
                        Some('G') => col = n.saturating_sub(1),
                        Some('K') if n == 0 => rows[row].truncate(col),
                        Some('K') if n == 1 => {
                            for cell in rows[row].iter_mut().take(col + 1) {
                                *cell = ' ';
                            }
                        }
                        Some('K') => rows[row].clear(),
                        Some('m') => {
                            for p in params.split(';') {
                                match p {
                                    "7" => reverse = true,
                                    "" | "0" | "27" => reverse = false,
                                    _ => {}
                                }
                            }
                        }
                        Some('J') if n == 0 => {
                            rows[row].truncate(col);
                            rows.truncate(row + 1);
                        }
                        Some('J') => {
                            for r in &mut rows[top..] {
                                r.clear();
                            }
                        }
                        _ => {}
                    }
                }
                '\u{7}' => bells += 1,
                c if c.is_control() => {}
                c => {
                    if col >= COLUMNS {
                        col = 0;
                        row += 1;
                        while rows.len() <= row {
                            rows.push(Vec::new());
                        }
                    }
                    if reverse {
                        inverse.resize(inverse.len().max(row + 1), false);
                        inverse[row] = true;
                    }
                    let line = &mut rows[row];
                    while line.len() < col {
                        line.push(' ');
                    }
                    if col < line.len() {
                        line[col] = c;
                    } else {
                        line.push(c);
                    }
                    col += 1;
                }
            }
        }
        while rows.len() <= row {
            rows.push(Vec::new());
        }
        Screen {
            rows: rows
                .into_iter()
                .map(|r| r.into_iter().collect::<String>().trim_end().to_owned())
                .collect(),
            cursor: row,
            inverse,
            bells,
        }
    }
}

#[test]
fn the_model_plays_what_rustyline_and_the_prompt_write() {
    let screen =
        Screen::play(b"one\r\ntwo\r\n[lobby]> hi\x1b[K\r\x1b[K\x1b[1A\r\x1b[Jbar 2\r\n[lobby]> hi");
    assert_eq!(screen.rows, ["one", "bar 2", "[lobby]> hi"]);
    assert_eq!(screen.cursor, 2);
    let marked = Screen::play(b"plain\r\n\x1b[7mloud\x1b[0m\x07\r\nplain again");
    assert_eq!(marked.rows, ["plain", "loud", "plain again"]);
    assert!(marked.highlighted("loud") && !marked.highlighted("plain"));
    assert_eq!(marked.bells, 1);
}
