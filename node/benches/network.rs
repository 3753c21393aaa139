//! `cargo bench -p ipm-node --bench network`: how fast and how heavy an ipm node is, next to
//! the alternatives, measured on this machine in one run.
//!
//! - file transfer: a file (1 GiB, `IPM_BENCH_FILE_MB`) between two in-process nodes over TCP and
//!   over QUIC, next to a plain tokio TCP copy of the same bytes and `scp` over loopback;
//! - fan-out: lobby messages from random publishers through overlays of 10, 50 and 200 nodes
//!   that only know a bootstrap;
//! - private messages: round trip to a connected peer, and first contact (DHT lookup, dial,
//!   ack) with a peer never connected before;
//! - memory: resident size of an idle `ipm --headless` process and what each connection adds;
//! - overlay (only with `IPM_BENCH_ONLY=overlay`): 100, 500 and 1000 nodes over TCP in several
//!   processes inside a network namespace whose loopback delays each packet 50 ms, and a
//!   churn run; the bench re-executes itself as the node hosts.
//!
//! Prints a table and writes `ipm-bench.json` at the root of the target dir. Every knob is an
//! environment variable, see [`support::Settings`].
#![allow(clippy::unwrap_used, missing_docs)]
#![recursion_limit = "256"]

mod support;

use std::time::Instant;

use serde_json::{json, Value};

use support::{
    fanout, file_transfer, host, machine, memory, overlay, report,
    settings::{Section, Settings},
};

fn main() {
    if std::env::var_os(host::HOST_ENV).is_some() {
        host::run();
    }
    if let Some(delay) = std::env::var_os(support::netns::LINK_ENV) {
        support::netns::run_delayer(delay.to_string_lossy().parse().unwrap_or(50));
    }
    machine::init();
    let settings = Settings::from_env();
    let started = Instant::now();
    let limits = machine::raise_fd_limit(settings.fd_limit_wanted());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let machine = machine::describe();
    println!("ipm network bench on {}", machine["summary"]);
    println!("{}", settings.describe());

    let mut out = serde_json::Map::new();
    out.insert("machine".into(), machine);
    out.insert("settings".into(), settings.to_json());
    out.insert("fd_limit".into(), limits);

    if settings.runs(Section::Files) {
        let result = runtime.block_on(file_transfer::run(&settings));
        out.insert("file_transfer".into(), result);
    }
    if settings.runs(Section::Fanout) || settings.runs(Section::Direct) {
        let (fanout, direct) = runtime.block_on(fanout::run_all(&settings));
        if settings.runs(Section::Fanout) {
            out.insert("fanout".into(), Value::Array(fanout));
        }
        if let Some(direct) = direct {
            out.insert("direct".into(), direct);
        }
    }
    if settings.runs(Section::Memory) {
        let result = runtime.block_on(memory::run(&settings));
        out.insert("memory".into(), result);
    }
    if settings.runs(Section::Overlay) {
        out.insert("overlay".into(), Value::Array(overlay::run_all()));
    }
    out.insert("load_average_at_end".into(), json!(machine::load_average()));
    out.insert(
        "elapsed_s".into(),
        json!(report::round(started.elapsed().as_secs_f64(), 1)),
    );
    let mut out = Value::Object(out);
    let targets = report::targets(&out);
    out["targets"] = targets;
    report::print_table(&out);
    let path = report::write_json(&out);
    println!("\nwrote {}", path.display());
    // Nodes still shutting down in the background need not be waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
}
