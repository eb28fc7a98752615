//! `egress-collector forensic enable|disable|status|read`: the operator's
//! switch for forensic body capture, over the control socket (the running
//! collector alone holds the keys and writes the journal). A read is
//! journaled by the collector before it releases the body.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use egress_collector::control::server::{OdooUser, Request};
use serde_json::Value;

use super::time::utc;

#[derive(Debug, Args)]
pub struct ForensicArgs {
    #[command(subcommand)]
    command: ForensicCommand,
}

#[derive(Debug, Args)]
struct Common {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// The Odoo database.
    #[arg(long)]
    db: String,
}

#[derive(Debug, Subcommand)]
enum ForensicCommand {
    /// Capture the bodies of the calls in a scope (at least one of --host,
    /// --addon, --channel) for a bounded time; journaled.
    Enable {
        #[command(flatten)]
        common: Common,
        /// Only calls to this host.
        #[arg(long)]
        host: Option<String>,
        /// Only calls attributed to this addon.
        #[arg(long)]
        addon: Option<String>,
        /// Only calls on this channel (http, smtp, ...).
        #[arg(long)]
        channel: Option<String>,
        /// For how long: 90s, 30m, 2h, 7d (at most forensic.max_duration).
        #[arg(long = "for")]
        duration: String,
    },
    /// Stop capturing; journaled.
    Disable {
        #[command(flatten)]
        common: Common,
    },
    /// Whether capture is on, for what and until when.
    Status {
        #[command(flatten)]
        common: Common,
        /// The collector's reply as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Journal a read of journal row --seq's captured body, then print it
    /// (or write it to -o FILE). Exits 1 when the row has no body.
    Read {
        #[command(flatten)]
        common: Common,
        /// The journal row (the call) whose body to read.
        #[arg(long)]
        seq: i64,
        /// `request` or `response`; the request when absent (or the
        /// response when only that was captured).
        #[arg(long)]
        part: Option<String>,
        /// Write the body here (mode 0600) instead of standard output.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

pub fn main(args: ForensicArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ForensicCommand::Enable {
            common,
            host,
            addon,
            channel,
            duration,
        } => {
            let reply = super::one_reply(
                &common.control,
                &Request::ForensicEnable {
                    db: common.db.clone(),
                    host,
                    addon,
                    channel,
                    duration,
                    odoo: OdooUser::default(),
                },
            )?;
            println!("{}", describe(&common.db, &reply["state"]));
        }
        ForensicCommand::Disable { common } => {
            let reply = super::one_reply(
                &common.control,
                &Request::ForensicDisable {
                    db: common.db.clone(),
                    odoo: OdooUser::default(),
                },
            )?;
            println!("{}", describe(&common.db, &reply["state"]));
        }
        ForensicCommand::Status { common, json } => {
            let reply = super::one_reply(
                &common.control,
                &Request::ForensicStatus {
                    db: common.db.clone(),
                    odoo: OdooUser::default(),
                },
            )?;
            if json {
                println!("{reply}");
            } else {
                let now = reply["now_us"].as_i64().unwrap_or(0);
                let state = &reply["state"];
                let expired = state["active"] == true
                    && state["expires_at_us"].as_i64().is_some_and(|e| e <= now);
                println!(
                    "{}{}",
                    describe(&common.db, state),
                    if expired {
                        " (time up; switching off)"
                    } else {
                        ""
                    }
                );
            }
        }
        ForensicCommand::Read {
            common,
            seq,
            part,
            output,
        } => {
            let reply = super::one_reply(
                &common.control,
                &Request::ForensicRead {
                    db: common.db.clone(),
                    seq,
                    odoo: OdooUser::default(),
                },
            )?;
            let read = &reply["read"];
            let parts = read["parts"].as_array().cloned().unwrap_or_default();
            let wanted = part.as_deref().unwrap_or("request");
            let chosen = parts
                .iter()
                .find(|p| p["part"] == wanted)
                .or_else(|| if part.is_none() { parts.first() } else { None })
                .with_context(|| format!("row {seq} has no captured {wanted} body"))?;
            let body = hex::decode(chosen["body_hex"].as_str().unwrap_or(""))
                .context("unreadable body in the collector's reply")?;
            eprintln!(
                "{} body of row {seq}: {} of {} bytes{}, sha256 of the whole {}; this read is journal row {}",
                chosen["part"].as_str().unwrap_or("?"),
                chosen["captured_len"],
                chosen["total_len"],
                if chosen["truncated"] == true { " (truncated)" } else { "" },
                chosen["sha256"].as_str().unwrap_or("?"),
                read["read_entry_seq"],
            );
            match output {
                Some(path) => {
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut file = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    file.write_all(&body)?;
                }
                None => std::io::stdout().write_all(&body)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line: on (scope, until, by whom) or off.
fn describe(db: &str, state: &Value) -> String {
    if state.is_null() {
        return format!("forensic capture of {db}: off (never enabled)");
    }
    if state["active"] != true {
        return format!(
            "forensic capture of {db}: off (since {}, by {}; journal row {})",
            utc(state["changed_at_us"].as_i64().unwrap_or(0)),
            state["changed_by"].as_str().unwrap_or("?"),
            state["entry_seq"]
        );
    }
    let scope: Vec<String> = ["host", "addon", "channel"]
        .iter()
        .filter_map(|k| state[*k].as_str().map(|v| format!("{k}={v}")))
        .collect();
    format!(
        "forensic capture of {db}: ON for {} until {} (enabled by {}; journal row {}; bodies capped at {} bytes)",
        scope.join(" "),
        utc(state["expires_at_us"].as_i64().unwrap_or(0)),
        state["changed_by"].as_str().unwrap_or("?"),
        state["entry_seq"],
        state["max_body_bytes"]
    )
}
