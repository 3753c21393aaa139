//! What the prompt prints above the line being typed: every event and answer on a line of its
//! own, and the progress bars of downloads kept together below them, redrawn in place.

use std::{
    io::{self, Write},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use rustyline::ExternalPrinter;

use ipm_protocol::TransferId;

/// A screen shared by the event printer, the progress bars and the line reader.
pub type SharedScreen = Arc<Mutex<Screen>>;

/// Locks a shared screen, even one a panicking thread held.
pub fn lock(screen: &SharedScreen) -> MutexGuard<'_, Screen> {
    screen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The output of the prompt. At a terminal the bars of the downloads in progress stay at the
/// bottom, just above the input line: a new line of text is written where they were and they
/// are drawn again below it, and a bar that changes rewrites them. Elsewhere lines are only
/// appended, and bars are not drawn.
pub struct Screen {
    out: Box<dyn ExternalPrinter + Send>,
    /// True at a terminal that understands cursor movement.
    redraw: bool,
    /// How many columns a row has.
    columns: fn() -> usize,
    /// The bars of the downloads in progress, in the order they started.
    bars: Vec<(TransferId, String)>,
    /// How many rows of bars sit right above the cursor.
    drawn: usize,
}

impl Screen {
    /// A screen on a terminal of `columns()` columns, written through rustyline's `printer`.
    pub fn terminal(printer: Box<dyn ExternalPrinter + Send>, columns: fn() -> usize) -> Self {
        Self {
            out: printer,
            redraw: true,
            columns,
            bars: Vec::new(),
            drawn: 0,
        }
    }

    /// Lines appended to `out`, nothing ever redrawn.
    pub fn plain(out: Box<dyn ExternalPrinter + Send>) -> Self {
        Self {
            out,
            redraw: false,
            columns: || 80,
            bars: Vec::new(),
            drawn: 0,
        }
    }

    /// True when bars can be drawn and redrawn in place.
    pub fn redraws(&self) -> bool {
        self.redraw
    }

    /// Columns a bar may take without wrapping onto a second row.
    pub fn bar_width(&self) -> usize {
        (self.columns)().saturating_sub(1).max(1)
    }

    /// Prints `text` (one or more lines) on lines of its own, above the bars. False when the
    /// terminal is gone.
    pub fn print(&mut self, text: &str) -> bool {
        let text = text.trim_end_matches('\n');
        if text.is_empty() {
            return true;
        }
        let mut out = self.erase_bars();
        out.push_str(text);
        out.push('\n');
        self.write(out)
    }

    /// Shows `line` as the bar of `transfer`: the bar rewrites itself in place.
    pub fn show_bar(&mut self, transfer: TransferId, line: &str) -> bool {
        if !self.redraw {
            return true;
        }
        let line: String = line.trim_end().chars().take(self.bar_width()).collect();
        let all_drawn = self.drawn == self.bars.len();
        match self.bars.iter_mut().find(|(t, _)| *t == transfer) {
            Some((_, shown)) if *shown == line && all_drawn => return true,
            Some((_, shown)) => *shown = line,
            None => self.bars.push((transfer, line)),
        }
        let out = self.erase_bars();
        self.write(out)
    }

    /// Ends the bar of `transfer`: `line` takes its place, on a line of its own.
    pub fn end_bar(&mut self, transfer: TransferId, line: &str) -> bool {
        let mut out = self.erase_bars();
        self.bars.retain(|(t, _)| *t != transfer);
        let line = line.trim_end_matches('\n');
        if !line.is_empty() {
            out.push_str(line);
            out.push('\n');
        }
        self.write(out)
    }

    /// The user pressed Enter: the typed line now sits below the bars drawn so far, so the
    /// next output draws them afresh below it.
    pub fn input_accepted(&mut self) {
        self.drawn = 0;
    }

    /// What clears the bars drawn above the cursor, which is then at the start of the row
    /// the first of them took.
    fn erase_bars(&self) -> String {
        match self.drawn {
            0 => String::new(),
            rows => format!("\x1b[{rows}A\r\x1b[J"),
        }
    }

    /// Writes `out` followed by the bars, and remembers how many rows they took.
    fn write(&mut self, mut out: String) -> bool {
        if self.redraw {
            for (_, bar) in &self.bars {
                out.push_str(bar);
                out.push('\n');
            }
        }
        if out.is_empty() {
            return true;
        }
        let ok = self.out.print(out).is_ok();
        self.drawn = if self.redraw { self.bars.len() } else { 0 };
        ok
    }
}

/// Plain lines on stdout, for a terminal rustyline cannot drive (`TERM=dumb`).
pub struct Stdout;

impl ExternalPrinter for Stdout {
    fn print(&mut self, msg: String) -> rustyline::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(msg.as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

/// The columns of the terminal on stdout (80 when it does not say).
pub fn terminal_columns() -> usize {
    #[cfg(unix)]
    if let Ok(size) = rustix::termios::tcgetwinsize(io::stdout()) {
        if size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    80
}

/// A printer that records what a screen writes, for tests.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Vec<String>>>);

#[cfg(test)]
impl ExternalPrinter for Recorder {
    fn print(&mut self, msg: String) -> rustyline::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(msg);
        Ok(())
    }
}

#[cfg(test)]
impl Recorder {
    /// What was written since the last call.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn terminal() -> (Screen, Recorder) {
        let recorder = Recorder::default();
        (
            Screen::terminal(Box::new(recorder.clone()), || 40),
            recorder,
        )
    }

    #[test]
    fn every_line_ends_with_a_newline() {
        let (mut screen, out) = terminal();
        assert!(screen.print("* joined lobby"));
        assert!(screen.print("listening on /ip4/127.0.0.1/tcp/1\n"));
        assert!(screen.print("a\nb"));
        assert!(screen.print(""));
        assert_eq!(
            out.take(),
            [
                "* joined lobby\n",
                "listening on /ip4/127.0.0.1/tcp/1\n",
                "a\nb\n"
            ]
        );
    }

    #[test]
    fn a_bar_is_redrawn_in_place_and_lines_go_above_it() {
        let (mut screen, out) = terminal();
        let t = TransferId::random();
        screen.show_bar(t, "t [=>  ] 1/4");
        screen.show_bar(t, "t [==> ] 2/4   ");
        screen.show_bar(t, "t [==> ] 2/4");
        screen.print("[lobby] bob: hi");
        screen.end_bar(t, "* received f.bin (4 B), sha256 verified");
        screen.print("[lobby] bob: bye");
        assert_eq!(
            out.take(),
            [
                "t [=>  ] 1/4\n",
                "\x1b[1A\r\x1b[Jt [==> ] 2/4\n",
                "\x1b[1A\r\x1b[J[lobby] bob: hi\nt [==> ] 2/4\n",
                "\x1b[1A\r\x1b[J* received f.bin (4 B), sha256 verified\n",
                "[lobby] bob: bye\n",
            ]
        );
    }

    #[test]
    fn two_bars_stay_together_and_the_typed_line_is_not_erased() {
        let (mut screen, out) = terminal();
        let (a, b) = (TransferId::random(), TransferId::random());
        screen.show_bar(a, "a 1");
        screen.show_bar(b, "b 1");
        screen.show_bar(a, "a 2");
        screen.input_accepted();
        screen.print("downloading c");
        assert_eq!(
            out.take(),
            [
                "a 1\n",
                "\x1b[1A\r\x1b[Ja 1\nb 1\n",
                "\x1b[2A\r\x1b[Ja 2\nb 1\n",
                "downloading c\na 2\nb 1\n",
            ]
        );
    }

    #[test]
    fn a_bar_never_wraps_onto_a_second_row() {
        let (mut screen, out) = terminal();
        screen.show_bar(TransferId::random(), &"=".repeat(100));
        assert_eq!(out.take(), [format!("{}\n", "=".repeat(39))]);
    }

    #[test]
    fn a_plain_screen_appends_lines_and_draws_no_bars() {
        let recorder = Recorder::default();
        let mut screen = Screen::plain(Box::new(recorder.clone()));
        let t = TransferId::random();
        screen.show_bar(t, "t [=>  ] 1/4");
        screen.print("[lobby] bob: hi");
        screen.end_bar(t, "* received f.bin");
        assert_eq!(recorder.take(), ["[lobby] bob: hi\n", "* received f.bin\n"]);
    }
}
