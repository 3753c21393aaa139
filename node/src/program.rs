//! What the `ipm` and `ipm-bootstrap` binaries share around their work: flags parsed with a
//! one-line error, a tokio runtime, a one-line report of a failure, and stdout written so
//! that a reader which goes away (`ipm ctl /users | grep -q bob`) ends the program quietly.

use std::{
    future::Future,
    io::{self, Write},
    process::ExitCode,
    time::Duration,
};

use clap::Parser;

/// Parses the command line; `--help`/`--version` print and exit 0, a bad flag prints one line
/// naming `--help` and exits 2.
pub fn parse_args<T: Parser>(program: &str) -> Result<T, ExitCode> {
    match T::try_parse() {
        Ok(args) => Ok(args),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            report(&format!(
                "{program}: {} (see {program} --help)",
                first.trim_start_matches("error: ")
            ));
            Err(ExitCode::from(2))
        }
    }
}

/// Runs `work` on a new tokio runtime; an error becomes one line on stderr and exit 1, and
/// a closed stdout ([`OutputError::Closed`]) a quiet exit 0.
pub fn run<F>(program: &str, work: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            report(&format!("{program}: cannot start: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(work);
    // Do not wait for blocked stdin readers.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) if matches!(e.downcast_ref(), Some(OutputError::Closed)) => ExitCode::SUCCESS,
        Err(e) => {
            report(&format!("{program}: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr; nothing when stderr is gone too (it is where failures are told, so a
/// failure to tell one has nowhere to go).
pub fn report(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}").and_then(|()| err.flush());
}

/// Why stdout took no more output.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Its reader went away (EPIPE), as `grep -q` or `head` do once they have what they
    /// want. Not a failure: the program stops quietly, as a pipeline expects.
    #[error("stdout was closed by its reader")]
    Closed,
    /// Any other failure to write (a full disk under a redirection, say).
    #[error("cannot write to stdout: {0}")]
    Failed(#[source] io::Error),
}

impl From<io::Error> for OutputError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Failed(e)
        }
    }
}

/// Writes `text` and a newline to stdout, flushed. Every line the binaries print goes
/// through here (or [`print_bytes`]), never through `println!`, which panics on a closed
/// stdout.
pub fn print_line(text: &str) -> Result<(), OutputError> {
    write_to(&mut io::stdout().lock(), text.as_bytes(), true)
}

/// Writes `bytes` to stdout as they are, flushed.
pub fn print_bytes(bytes: &[u8]) -> Result<(), OutputError> {
    write_to(&mut io::stdout().lock(), bytes, false)
}

fn write_to(out: &mut impl Write, bytes: &[u8], newline: bool) -> Result<(), OutputError> {
    out.write_all(bytes)?;
    if newline {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that went away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_is_told_apart_from_a_failure() {
        assert!(matches!(
            write_to(&mut Closed, b"bob", true),
            Err(OutputError::Closed)
        ));
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert!(matches!(OutputError::from(full), OutputError::Failed(_)));
        let mut kept = Vec::new();
        assert!(write_to(&mut kept, b"bob", true).is_ok());
        assert_eq!(kept, b"bob\n");
    }

    #[test]
    fn a_closed_stdout_ends_the_program_quietly_and_a_failure_does_not() {
        let closed = run("ipm", async {
            Err(anyhow::Error::from(OutputError::Closed))
        });
        assert_eq!(closed, ExitCode::SUCCESS);
        let failed = run("ipm", async { Err(anyhow::anyhow!("no")) });
        assert_eq!(failed, ExitCode::FAILURE);
    }
}
