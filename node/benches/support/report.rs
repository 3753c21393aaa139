//! The printed table, the targets, and `ipm-bench.json`.

use std::path::PathBuf;

use serde_json::{json, Value};

/// `v` rounded to `digits` decimals.
pub fn round(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// A rounded number, or null.
pub fn opt(v: Option<f64>, digits: i32) -> Value {
    v.map_or(Value::Null, |v| json!(round(v, digits)))
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn target(value: Option<f64>, met: Option<bool>, goal: &str) -> Value {
    json!({ "value": value, "goal": goal, "met": met })
}

/// Each target of the issue, with the measured value and whether it is met (null when the
/// figure is missing).
pub fn targets(out: &Value) -> Value {
    let files = &out["file_transfer"];
    let tcp_vs_raw = num(&files["tcp_vs_raw"]);
    let tcp_vs_scp = num(&files["tcp_vs_scp"]);
    let quic_vs_raw = num(&files["quic_vs_raw"]);
    let largest = out["fanout"]
        .as_array()
        .and_then(|runs| runs.iter().max_by_key(|r| r["nodes"].as_u64().unwrap_or(0)));
    let (nodes, delivery, p99) = largest.map_or((None, None, None), |r| {
        (
            r["nodes"].as_u64(),
            num(&r["delivery_ratio"]),
            num(&r["p99_ms"]),
        )
    });
    let idle = num(&out["memory"]["idle_rss_mb"]);
    json!({
        "tcp_at_least_half_of_raw": target(tcp_vs_raw, tcp_vs_raw.map(|r| r >= 0.5), "tcp_vs_raw >= 0.5"),
        "tcp_at_least_scp": target(tcp_vs_scp, tcp_vs_scp.map(|r| r >= 1.0), "tcp_vs_scp >= 1"),
        "quic_at_least_30pct_of_raw": target(quic_vs_raw, quic_vs_raw.map(|r| r >= 0.3), "quic_vs_raw >= 0.3"),
        "lobby_delivery_complete": target(delivery, delivery.map(|d| d >= 1.0).filter(|_| nodes == Some(200)),
            &format!("delivery_ratio = 1 at 200 nodes (largest run: {})", nodes.unwrap_or(0))),
        "lobby_p99_under_100ms": target(p99, p99.map(|p| p < 100.0).filter(|_| nodes == Some(200)),
            &format!("p99_ms < 100 at 200 nodes (largest run: {})", nodes.unwrap_or(0))),
        "idle_rss_under_20mb": target(idle, idle.map(|m| m < 20.0), "idle_rss_mb < 20"),
    })
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Prints the summary table.
pub fn print_table(out: &Value) {
    println!(
        "\n== summary ({})",
        out["machine"]["summary"].as_str().unwrap_or("")
    );
    let mut rows: Vec<(String, String)> = Vec::new();
    let files = &out["file_transfer"];
    if files.is_object() {
        let mb = show(&files["file_mb"]);
        rows.push((
            format!("file {mb} MiB: plain TCP, no file (Mbit/s)"),
            show(&files["raw_tcp_memory_mbps"]),
        ));
        let mut rounds = vec![files];
        if let Some(map) = files.as_object() {
            rounds.extend(
                map.iter()
                    .filter(|(k, _)| k.starts_with("on_"))
                    .map(|(_, v)| v),
            );
        }
        for round in rounds {
            let medium = round["medium"].as_str().unwrap_or("?");
            for (key, label) in [
                ("tcp_mbps", "ipm over TCP"),
                ("quic_mbps", "ipm over QUIC"),
                ("raw_tcp_mbps", "plain TCP copy"),
                ("scp_mbps", "scp"),
            ] {
                rows.push((
                    format!("file {mb} MiB in {medium}: {label} (Mbit/s)"),
                    show(&round[key]),
                ));
            }
            for key in ["tcp_vs_raw", "quic_vs_raw", "tcp_vs_scp"] {
                rows.push((format!("file in {medium}: {key}"), show(&round[key])));
            }
        }
    }
    if let Some(runs) = out["fanout"].as_array() {
        for r in runs {
            rows.push((
                format!(
                    "lobby, {} nodes: delivery, p50/p99/max ms, dup/node",
                    show(&r["nodes"])
                ),
                format!(
                    "{} , {} / {} / {} , {}",
                    show(&r["delivery_ratio"]),
                    show(&r["p50_ms"]),
                    show(&r["p99_ms"]),
                    show(&r["max_ms"]),
                    show(&r["duplicates_per_node"])
                ),
            ));
        }
    }
    let direct = &out["direct"];
    if direct.is_object() {
        rows.push((
            "private message round trip p50 / p99 (ms)".into(),
            format!(
                "{} / {}",
                show(&direct["rtt_p50_ms"]),
                show(&direct["rtt_p99_ms"])
            ),
        ));
        rows.push((
            format!(
                "first contact in {} nodes p50 / p95 (ms)",
                show(&direct["overlay_nodes"])
            ),
            format!(
                "{} / {}",
                show(&direct["first_contact_p50_ms"]),
                show(&direct["first_contact_p95_ms"])
            ),
        ));
    }
    let memory = &out["memory"];
    if memory.is_object() {
        rows.push(("idle RSS (MiB)".into(), show(&memory["idle_rss_mb"])));
        for n in [10, 100] {
            rows.push((
                format!("per connection at {n} (KiB)"),
                show(&memory[format!("per_connection_kb_at_{n}")]),
            ));
        }
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows {
        println!("  {k:<width$}  {v}");
    }
    println!("\n== targets");
    if let Some(targets) = out["targets"].as_object() {
        for (name, t) in targets {
            let verdict = match t["met"].as_bool() {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not measured",
            };
            println!(
                "  {name:<28} {verdict:<13} value {} (goal {})",
                show(&t["value"]),
                t["goal"].as_str().unwrap_or("")
            );
        }
    }
}

/// Where the report goes: `$CARGO_TARGET_DIR/ipm-bench.json`, else the workspace's
/// `target/ipm-bench.json`.
pub fn json_path() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace.join(dir)
            }
        }
        _ => workspace.join("target"),
    };
    target.join("ipm-bench.json")
}

/// Writes the report and returns its path.
pub fn write_json(out: &Value) -> PathBuf {
    let path = json_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let text = serde_json::to_string_pretty(out).unwrap();
    std::fs::write(&path, text + "\n").unwrap();
    path
}
