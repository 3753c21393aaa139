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
    let disk_vs_raw = num(&files["on_disk"]["tcp_vs_raw"]);
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
    let runs = out["overlay"].as_array().cloned().unwrap_or_default();
    let largest_stable = runs
        .iter()
        .filter(|r| r["churn"] == false)
        .max_by_key(|r| r["nodes"].as_u64().unwrap_or(0));
    let churned = runs.iter().find(|r| r["churn"] == true);
    let at = |r: Option<&Value>, key: &str| r.and_then(|r| num(&r[key]));
    let big = largest_stable
        .and_then(|r| r["nodes"].as_u64())
        .unwrap_or(0);
    let of_1000 = |v: Option<f64>, ok: fn(f64) -> bool| v.map(ok).filter(|_| big >= 1000);
    let o_delivery = at(largest_stable, "delivery_ratio_stable");
    let o_p95 = at(largest_stable, "p95_ms");
    let o_p99 = at(largest_stable, "p99_ms");
    let o_dup = at(largest_stable, "duplicates_per_node_per_message");
    let conn_over: Option<f64> = (!runs.is_empty()).then(|| {
        runs.iter()
            .map(|r| {
                num(&r["connections_per_node_max"]).unwrap_or(0.0)
                    - num(&r["connection_cap"]).unwrap_or(0.0)
            })
            .fold(f64::MIN, f64::max)
    });
    let churn_delivery = at(churned, "delivery_ratio_stable");
    let largest_label = format!("largest stable overlay run: {big}");
    json!({
        "overlay_1000_delivery_complete": target(o_delivery, of_1000(o_delivery, |d| d >= 1.0),
            &format!("delivery_ratio_stable = 1 at 1000 nodes, 50 ms links ({largest_label})")),
        "overlay_1000_p95_at_most_450ms": target(o_p95, of_1000(o_p95, |p| p <= 450.0),
            &format!("p95_ms <= 450 at 1000 nodes ({largest_label})")),
        "overlay_1000_p99_at_most_600ms": target(o_p99, of_1000(o_p99, |p| p <= 600.0),
            &format!("p99_ms <= 600 at 1000 nodes ({largest_label})")),
        "overlay_1000_duplicates_at_most_3": target(o_dup, of_1000(o_dup, |d| d <= 3.0),
            &format!("duplicates_per_node_per_message <= 3 at 1000 nodes ({largest_label})")),
        "overlay_connections_within_cap": target(conn_over, conn_over.map(|o| o <= 0.0),
            "connections_per_node_max - connection_cap <= 0 in every overlay run"),
        "overlay_churn_delivery_999": target(churn_delivery, churn_delivery.map(|d| d >= 0.999),
            "delivery_ratio_stable >= 0.999 with 10 % churn per minute"),
        "lobby_200_p99_at_most_1s": target(p99, p99.map(|p| p <= 1000.0).filter(|_| nodes == Some(200)),
            &format!("p99_ms <= 1000 at 200 nodes (largest run: {})", nodes.unwrap_or(0))),
        "tcp_at_least_half_of_raw": target(tcp_vs_raw, tcp_vs_raw.map(|r| r >= 0.5), "tcp_vs_raw >= 0.5"),
        "tcp_at_least_1_5x_scp": target(tcp_vs_scp, tcp_vs_scp.map(|r| r >= 1.5), "tcp_vs_scp >= 1.5"),
        "disk_within_10pct_of_raw": target(disk_vs_raw, disk_vs_raw.map(|r| r >= 0.9), "on_disk.tcp_vs_raw >= 0.9"),
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
                ("tcp_two_mbps", "ipm over TCP, /get from two senders"),
                ("tcp_v1_mbps", "ipm over TCP, /ipm/file/1"),
                ("quic_mbps", "ipm over QUIC"),
                ("quic_v1_mbps", "ipm over QUIC, /ipm/file/1"),
                ("raw_tcp_mbps", "plain TCP copy"),
                ("scp_mbps", "scp"),
            ] {
                rows.push((
                    format!("file {mb} MiB in {medium}: {label} (Mbit/s)"),
                    show(&round[key]),
                ));
            }
            for key in [
                "tcp_vs_raw",
                "quic_vs_raw",
                "tcp_vs_scp",
                "tcp_vs_tcp_v1",
                "tcp_two_vs_tcp",
            ] {
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
    rows.extend(super::overlay::rows(out));
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
