//! `egress-collector export`: a signed export file of a database's journal,
//! built and signed by the running collector (docs/EXPORT_FORMAT.md), to be
//! checked with `egress-verify` or `verify_export.py`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use egress_collector::control::Request;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// The Odoo database.
    #[arg(long)]
    db: String,
    /// First seq to export (default: the first row).
    #[arg(long, default_value_t = 1)]
    from: i64,
    /// Last seq to export (default: the journal's end).
    #[arg(long)]
    to: Option<i64>,
    /// Where to write the file.
    #[arg(short = 'o', long)]
    output: PathBuf,
}

pub fn main(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Export {
        db: args.db.clone(),
        from: args.from,
        to: args.to,
    };
    // The reply is the file itself (one row per line) up to the end of the
    // connection, or one error line.
    let text = super::runtime()?.block_on(async {
        let mut lines = super::control_request(&args.control, &request).await?;
        let mut text = String::new();
        while let Some(line) = lines.next_line().await? {
            text.push_str(&line);
            text.push('\n');
        }
        anyhow::Ok(text)
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).context("unreadable reply")?;
    if value["type"] == "error" {
        bail!("{}", value["message"].as_str().unwrap_or("export refused"));
    }
    let mut file = std::fs::File::create(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    file.write_all(text.as_bytes())?;
    eprintln!(
        "wrote {} rows of {} (seq {} to {}) to {}",
        value["rows"].as_array().map_or(0, Vec::len),
        args.db,
        value["range"]["from"],
        value["range"]["to"],
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
