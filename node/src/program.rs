//! What the `ipm` and `ipm-bootstrap` binaries share around their work: flags parsed with a
//! one-line error, a tokio runtime, and a one-line report of a failure.

use std::{future::Future, process::ExitCode, time::Duration};

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
            eprintln!(
                "{program}: {} (see {program} --help)",
                first.trim_start_matches("error: ")
            );
            Err(ExitCode::from(2))
        }
    }
}

/// Runs `work` on a new tokio runtime; an error becomes one line on stderr and exit 1.
pub fn run<F>(program: &str, work: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(work);
    // Do not wait for blocked stdin readers.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
