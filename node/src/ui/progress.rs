//! Download progress bars at the prompt: indicatif bars drawn as lines above the input line,
//! through rustyline's external printer, at most once a second per transfer.

use std::{
    collections::HashMap,
    io,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use rustyline::ExternalPrinter;

use ipm_protocol::TransferId;

use crate::event::Event;

/// A printer shared by the event printer and the progress bars.
pub type SharedPrinter = Arc<Mutex<dyn ExternalPrinter + Send>>;

/// An indicatif terminal that turns each drawn bar into one printed line.
struct PrinterTerm {
    printer: SharedPrinter,
    line: Mutex<String>,
}

impl std::fmt::Debug for PrinterTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrinterTerm")
    }
}

impl PrinterTerm {
    fn print(&self, text: String) -> io::Result<()> {
        if text.trim().is_empty() {
            return Ok(());
        }
        self.printer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .print(text)
            .map_err(io::Error::other)
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, String> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TermLike for PrinterTerm {
    fn width(&self) -> u16 {
        80
    }
    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> io::Result<()> {
        let line = std::mem::take(&mut *self.buffer()) + s;
        self.print(line)
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.buffer().push_str(s);
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        self.buffer().clear();
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        let line = std::mem::take(&mut *self.buffer());
        self.print(line)
    }
}

/// The bars of the downloads in progress.
pub struct Bars {
    printer: SharedPrinter,
    bars: HashMap<TransferId, ProgressBar>,
}

impl Bars {
    /// Bars drawn through `printer`.
    pub fn new(printer: SharedPrinter) -> Self {
        Self {
            printer,
            bars: HashMap::new(),
        }
    }

    /// Updates the bars from a node event; returns true when the event was a progress
    /// report (shown by its bar, not as a line of its own).
    pub fn on_event(&mut self, event: &Event) -> bool {
        match event {
            Event::FileProgress {
                transfer,
                bytes,
                size,
            } => {
                let bar = self.bars.entry(*transfer).or_insert_with(|| {
                    let term = PrinterTerm {
                        printer: self.printer.clone(),
                        line: Mutex::new(String::new()),
                    };
                    let bar = ProgressBar::with_draw_target(
                        Some(*size),
                        ProgressDrawTarget::term_like_with_hz(Box::new(term), 1),
                    );
                    let style = ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .map(|s| s.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                    bar.set_style(style);
                    bar.set_prefix(crate::ui::render::short(&transfer.to_string()).to_owned());
                    bar.enable_steady_tick(Duration::from_secs(1));
                    bar
                });
                bar.set_position(*bytes);
                true
            }
            Event::FileReceived { transfer, .. } | Event::FileFailed { transfer, .. } => {
                if let Some(bar) = self.bars.remove(transfer) {
                    bar.finish_and_clear();
                }
                false
            }
            _ => false,
        }
    }
}
