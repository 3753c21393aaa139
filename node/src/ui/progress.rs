//! Download progress: at a terminal an indicatif bar per download, redrawn in place below the
//! conversation and replaced by one final line when the download ends; where lines cannot be
//! redrawn (a file, a pipe, a dumb terminal) a line per tenth of the file instead.

use std::{
    collections::HashMap,
    io,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use ipm_protocol::TransferId;

use crate::{
    event::Event,
    ui::render,
    ui::screen::{self, SharedScreen},
};

/// How often a bar may be redrawn, per second.
const REDRAWS_PER_SECOND: u8 = 2;
/// Longest a plain-text log stays silent about a download that is making progress.
const QUIET_AT_MOST: Duration = Duration::from_secs(30);

/// An indicatif terminal that hands each drawn bar to the screen, which places it.
struct BarTerm {
    screen: SharedScreen,
    transfer: TransferId,
    line: Mutex<String>,
}

impl std::fmt::Debug for BarTerm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BarTerm")
    }
}

impl BarTerm {
    fn buffer(&self) -> std::sync::MutexGuard<'_, String> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TermLike for BarTerm {
    fn width(&self) -> u16 {
        let width = screen::lock(&self.screen).bar_width();
        u16::try_from(width).unwrap_or(u16::MAX)
    }
    fn height(&self) -> u16 {
        1
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
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> io::Result<()> {
        self.buffer().push_str(s.trim_start_matches('\r'));
        Ok(())
    }
    fn clear_line(&self) -> io::Result<()> {
        self.buffer().clear();
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        let line = std::mem::take(&mut *self.buffer());
        if line.trim().is_empty() {
            return Ok(());
        }
        screen::lock(&self.screen).show_bar(self.transfer, &line);
        Ok(())
    }
}

/// Which progress reports deserve a line of their own where lines cannot be redrawn: the
/// first of a download, then one per tenth of the file, and one at least every
/// [`QUIET_AT_MOST`] while bytes keep coming.
#[derive(Debug, Default)]
pub struct Steps {
    /// The tenth, bytes and time of the last line shown for each download.
    shown: HashMap<TransferId, (u64, u64, Instant)>,
}

impl Steps {
    /// True when `event` should be shown as a line at `now`; forgets downloads that ended.
    pub fn keep(&mut self, event: &Event, now: Instant) -> bool {
        match event {
            Event::FileProgress {
                transfer,
                bytes,
                size,
            } => {
                let tenth = render::percent(*bytes, *size) / 10;
                let worth = match self.shown.get(transfer) {
                    None => true,
                    Some(&(last_tenth, last_bytes, at)) => {
                        tenth > last_tenth
                            || (*bytes > last_bytes && now.duration_since(at) >= QUIET_AT_MOST)
                    }
                };
                if worth {
                    self.shown.insert(*transfer, (tenth, *bytes, now));
                }
                worth
            }
            Event::FileReceived { transfer, .. }
            | Event::FolderReceived { transfer, .. }
            | Event::FileFailed { transfer, .. } => {
                self.shown.remove(transfer);
                true
            }
            // The sender's side: one line once the file is sent whole.
            Event::FileSending { bytes, size, .. } => bytes >= size,
            _ => true,
        }
    }
}

/// The progress of the downloads, shown on the prompt's screen.
pub struct Bars {
    screen: SharedScreen,
    bars: HashMap<TransferId, ProgressBar>,
    steps: Steps,
}

impl Bars {
    /// Bars shown on `screen`.
    pub fn new(screen: SharedScreen) -> Self {
        Self {
            screen,
            bars: HashMap::new(),
            steps: Steps::default(),
        }
    }

    /// Shows a download's event: a progress report moves its bar (or, on a screen that cannot
    /// redraw, becomes a line now and then), and the line of its end replaces the bar. False
    /// for every other event, which the caller prints.
    pub fn on_event(&mut self, event: &Event) -> bool {
        // The sender's side has no bar: only the line of a file sent whole is printed.
        if let Event::FileSending { bytes, size, .. } = event {
            return bytes < size;
        }
        let redraws = screen::lock(&self.screen).redraws();
        if !redraws {
            let keep = self.steps.keep(event, Instant::now());
            if keep && matches!(event, Event::FileProgress { .. }) {
                screen::lock(&self.screen).print(&render::event_line(event));
            }
            return matches!(event, Event::FileProgress { .. });
        }
        match event {
            Event::FileProgress {
                transfer,
                bytes,
                size,
            } => {
                let bar = self
                    .bars
                    .entry(*transfer)
                    .or_insert_with(|| new_bar(&self.screen, *transfer, *size));
                bar.set_position(*bytes);
                true
            }
            Event::FileReceived { transfer, .. }
            | Event::FolderReceived { transfer, .. }
            | Event::FileFailed { transfer, .. } => {
                let Some(bar) = self.bars.remove(transfer) else {
                    return false;
                };
                // Hidden first, so the bar draws nothing more once its line is out.
                bar.set_draw_target(ProgressDrawTarget::hidden());
                bar.finish();
                screen::lock(&self.screen).end_bar(*transfer, &render::event_line(event));
                true
            }
            _ => false,
        }
    }
}

/// A bar for a download of `size` bytes, drawn on `screen`.
fn new_bar(screen: &SharedScreen, transfer: TransferId, size: u64) -> ProgressBar {
    let term = BarTerm {
        screen: screen.clone(),
        transfer,
        line: Mutex::new(String::new()),
    };
    let bar = ProgressBar::with_draw_target(
        Some(size),
        ProgressDrawTarget::term_like_with_hz(Box::new(term), REDRAWS_PER_SECOND),
    );
    let style = ProgressStyle::with_template(
        "{prefix} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(render::short(&transfer.to_string()).to_owned());
    bar
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn progress(transfer: TransferId, bytes: u64) -> Event {
        Event::FileProgress {
            transfer,
            bytes,
            size: 1000,
        }
    }

    #[test]
    fn at_a_terminal_a_download_redraws_one_bar_and_ends_in_one_line() {
        let recorder = crate::ui::screen::Recorder::default();
        let screen: SharedScreen = std::sync::Arc::new(Mutex::new(
            crate::ui::screen::Screen::terminal(Box::new(recorder.clone()), || 60),
        ));
        let mut bars = Bars::new(screen);
        let t = TransferId::random();
        for bytes in [0, 250, 500, 750, 1000] {
            assert!(bars.on_event(&progress(t, bytes)));
        }
        let received = Event::FileReceived {
            transfer: t,
            path: "downloads/f.bin".into(),
            size: 1000,
            sha256: "00".into(),
        };
        assert!(bars.on_event(&received));
        let written = recorder.take();
        let (last, draws) = written.split_last().unwrap();
        assert_eq!(draws.len(), 5, "{written:#?}");
        let short = render::short(&t.to_string()).to_owned();
        assert!(draws[0].starts_with(&format!("{short} [")), "{written:#?}");
        for draw in &draws[1..] {
            let bar = draw.strip_prefix("\x1b[1A\r\x1b[J").unwrap();
            assert!(bar.starts_with(&format!("{short} [")), "{written:#?}");
            assert_eq!(bar.matches('\n').count(), 1);
            assert!(bar.chars().count() <= 60, "{bar:?}");
        }
        assert_eq!(
            *last,
            format!("\x1b[1A\r\x1b[J{}\n", render::event_line(&received))
        );
    }

    #[test]
    fn a_log_shows_a_download_once_per_tenth() {
        let mut steps = Steps::default();
        let t = TransferId::random();
        let start = Instant::now();
        let shown: Vec<u64> = (0..=1000)
            .step_by(5)
            .filter(|&b| steps.keep(&progress(t, b), start))
            .collect();
        assert_eq!(
            shown,
            [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
        );
    }

    #[test]
    fn a_slow_download_still_shows_a_line_now_and_then() {
        let mut steps = Steps::default();
        let t = TransferId::random();
        let start = Instant::now();
        assert!(steps.keep(&progress(t, 1), start));
        assert!(!steps.keep(&progress(t, 2), start + Duration::from_secs(10)));
        assert!(steps.keep(&progress(t, 3), start + QUIET_AT_MOST));
        // A stalled download says nothing new.
        assert!(!steps.keep(&progress(t, 3), start + QUIET_AT_MOST * 3));
    }

    #[test]
    fn a_resumed_download_starts_again_with_a_line() {
        let mut steps = Steps::default();
        let t = TransferId::random();
        let now = Instant::now();
        assert!(steps.keep(&progress(t, 420), now));
        assert!(steps.keep(
            &Event::FileFailed {
                transfer: t,
                reason: "gone".into()
            },
            now
        ));
        assert!(steps.keep(&progress(t, 420), now));
    }
}
