//! `egress-collector watch`: live tail of committed journal rows.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use egress_collector::control::server::Request;
use serde_json::Value;

use super::time::utc;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// Only this Odoo database (and `--since` reads its history).
    #[arg(long)]
    db: Option<String>,
    /// Only calls attributed to this addon.
    #[arg(long)]
    addon: Option<String>,
    /// Only calls to this host.
    #[arg(long)]
    host: Option<String>,
    /// Only this channel.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(egress_proto::event::CHANNELS))]
    channel: Option<String>,
    /// One JSON object per line instead of readable lines.
    #[arg(long)]
    json: bool,
    /// First print the last N rows of the journal.
    #[arg(long, default_value_t = 0)]
    since: u32,
}

pub fn main(args: WatchArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async {
        let request = Request::Watch {
            db: args.db.clone(),
            since: args.since,
        };
        let mut lines = super::control_request(&args.control, &request).await?;
        let stdout = std::io::stdout();
        while let Some(line) = lines.next_line().await? {
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let printed = match value["type"].as_str() {
                Some("row") if keep(&args, &value) => {
                    if args.json {
                        line
                    } else {
                        readable(&value)
                    }
                }
                Some("row") => continue,
                Some("skipped") => format!(
                    "… {} of rows skipped: this watcher fell behind",
                    super::count(value["batches"].as_u64().unwrap_or(0), "batch", "batches")
                ),
                Some("error") => bail!("{}", value["message"].as_str().unwrap_or("error")),
                Some("end") => bail!(
                    "watch stopped: {}; run `egress-collector watch` again once it is back",
                    value["reason"].as_str().unwrap_or("the collector ended it")
                ),
                _ => continue,
            };
            let mut out = stdout.lock();
            // A closed pipe (`watch | head`) ends the watch quietly.
            if writeln!(out, "{printed}")
                .and_then(|_| out.flush())
                .is_err()
            {
                return Ok(ExitCode::SUCCESS);
            }
        }
        bail!(
            "watch stopped: the collector at {} closed the connection (it stopped or restarted); \
             run `egress-collector watch` again once it is back",
            args.control.display()
        )
    })
}

fn keep(args: &WatchArgs, row: &Value) -> bool {
    let matches = |filter: &Option<String>, field: &str| {
        filter
            .as_ref()
            .is_none_or(|f| row[field].as_str() == Some(f.as_str()))
    };
    matches(&args.addon, "addon")
        && matches(&args.host, "host")
        && matches(&args.channel, "channel")
}

fn readable(row: &Value) -> String {
    let text = |field: &str| row[field].as_str().unwrap_or("").to_owned();
    let when = utc(row["recorded_at_us"].as_i64().unwrap_or(0));
    let head = format!("#{} {when} {}", row["seq"], text("database"));
    match row["kind"].as_str() {
        Some("gap") => format!(
            "{head} GAP {} lost ({}) worker {:016x}",
            super::count(row["gap_count"].as_u64().unwrap_or(0), "event", "events"),
            text("gap_reason"),
            row["worker_id"].as_i64().unwrap_or(0) as u64
        ),
        Some("config_change") => format!("{head} SETTING {}", text("detail")),
        _ => {
            let status = row["status"]
                .as_i64()
                .map(|s| s.to_string())
                .unwrap_or_else(|| text("error_class"));
            let alarm = if row["self_egress"] == true {
                "  !! SELF-EGRESS"
            } else {
                ""
            };
            format!(
                "{head} {:<6} {} {}:{}{} ← {} {} ↑{}B ↓{}B {}ms{alarm}",
                text("channel"),
                text("method"),
                text("host"),
                row["port"],
                text("path"),
                row["addon"].as_str().unwrap_or("?"),
                status,
                row["bytes_out"],
                row["bytes_in"],
                row["duration_us"].as_i64().unwrap_or(0) / 1000
            )
        }
    }
}
