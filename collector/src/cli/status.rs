//! `egress-collector status`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use egress_collector::control::server::Request;
use serde_json::Value;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// Print the counters as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn main(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let status = super::one_reply(&args.control, &Request::Status)?;
    if args.json {
        println!("{status}");
    } else {
        print!("{}", render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(s: &Value) -> String {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let reasons = |v: &Value| -> String {
        let map = v.as_object().cloned().unwrap_or_default();
        if map.is_empty() {
            return "none".into();
        }
        map.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = String::new();
    let i = &s["ingest"];
    out += &format!(
        "ingest       datagrams {}  accepted {}  workers {}\n             rejected: {}\n             dropped:  {}\n",
        n(&i["datagrams"]), n(&i["accepted"]), n(&i["workers_seen"]), reasons(&i["rejected"]), reasons(&i["dropped"])
    );
    for stage in ["attribution", "redaction"] {
        out += &format!(
            "{stage:<12} processed {}  dropped: {}\n",
            n(&s[stage]["processed"]),
            reasons(&s[stage]["dropped"])
        );
    }
    let c = &s["chain"];
    out += &format!(
        "chain        appended {}  gap entries {} ({} events)  queued {}\n",
        n(&c["appended"]),
        n(&c["gap_entries"]),
        n(&c["events_in_gaps"]),
        n(&c["queued"])
    );
    for (db, d) in s["databases"].as_object().cloned().unwrap_or_default() {
        out += &format!(
            "  {db:<20} head seq {}  appended {}  gaps {} ({} events)  queued {}{}{}\n",
            d["head_seq"],
            n(&d["appended"]),
            n(&d["gap_entries"]),
            n(&d["events_in_gaps"]),
            n(&d["queued"]),
            d["last_error"]
                .as_str()
                .map(|e| format!("\n    last error: {e}"))
                .unwrap_or_default(),
            d["signing_refused"]
                .as_str()
                .map(|e| format!("\n    ALARM: {e}"))
                .unwrap_or_default()
        );
    }
    let r = &s["rollup"];
    if r.is_object() {
        out += &format!(
            "rollup       deltas dropped {} (their rows are summed from the journal instead)\n",
            n(&r["messages_dropped"])
        );
        for (db, d) in r["databases"].as_object().cloned().unwrap_or_default() {
            // The rollups' own idea of the head may trail the chain's: the
            // chain's head is the one the watermark catches up with.
            let chain_head = s["databases"][&db]["head_seq"].as_i64();
            let head = d["head"].as_i64().max(chain_head);
            let behind = match (d["watermark"].as_i64(), head) {
                (Some(w), Some(h)) if w < h => " (catching up: committed rows reach the rollups every rollup.flush_interval_ms, 2 s by default)",
                _ => "",
            };
            out += &format!(
                "  {db:<20} watermark {} of head {}{behind}  from deltas {}  from the journal {}{}\n",
                d["watermark"],
                head.map_or_else(|| "?".to_owned(), |h| h.to_string()),
                n(&d["applied_rows"]),
                n(&d["folded_rows"]),
                d["last_error"]
                    .as_str()
                    .map(|e| format!("\n    last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
    for (db, v) in s["vacuum"]["last"].as_object().cloned().unwrap_or_default() {
        out += &format!(
            "vacuum       {db}: retention {} days, last run removed {} rows\n",
            n(&v["retention_days"]),
            n(&v["removed"])
        );
    }
    let p = &s["policy"];
    if p.is_object() {
        out += &format!(
            "policy       reads {}  change notifications {}  databases listened to {}\n",
            n(&p["reloads"]),
            n(&p["notifications"]),
            n(&p["listening"])
        );
    }
    out += &format!("watchers     {} connected\n", n(&s["watchers"]));
    out
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn a_watermark_behind_the_chain_head_says_it_catches_up() {
        let status = json!({
            "databases": {"odoo": {"head_seq": 40}},
            "rollup": {"databases": {"odoo": {"watermark": 30, "head": 30}}},
            "watchers": 1,
        });
        let text = render(&status);
        assert!(
            text.contains("watermark 30 of head 40 (catching up"),
            "{text}"
        );
        assert!(text.contains("watchers     1 connected"), "{text}");
        let caught_up = json!({
            "databases": {"odoo": {"head_seq": 40}},
            "rollup": {"databases": {"odoo": {"watermark": 40, "head": 40}}},
        });
        assert!(!render(&caught_up).contains("catching up"));
    }
}
