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
    // The reply is the file itself, laid out one field, head or row per line
    // (`ExportFile::write_json`) up to the end of the connection, or one
    // error line. It is written out as it comes, never held whole.
    let (rows, range) = super::runtime()?.block_on(async {
        let mut lines = super::control_request(&args.control, &request).await?;
        let first = lines
            .next_line()
            .await?
            .context("the collector closed the connection without a reply")?;
        if first != "{" {
            let value: serde_json::Value =
                serde_json::from_str(&first).context("unreadable reply")?;
            bail!("{}", value["message"].as_str().unwrap_or("export refused"));
        }
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&args.output)
                .with_context(|| format!("cannot create {}", args.output.display()))?,
        );
        writeln!(file, "{first}")?;
        // For the summary: the range, and the lines of the rows array.
        let (mut rows, mut in_rows, mut range) = (0u64, false, serde_json::Value::Null);
        while let Some(line) = lines.next_line().await? {
            writeln!(file, "{line}")?;
            let field = line.trim_start();
            if let Some(value) = field.strip_prefix("\"range\": ") {
                range = serde_json::from_str(value.trim_end_matches(',')).unwrap_or_default();
            }
            if field.starts_with("\"rows\": [") {
                in_rows = !field.ends_with("],"); // not `"rows": [],`
            } else if in_rows && field.starts_with(']') {
                in_rows = false;
            } else if in_rows {
                rows += 1;
            }
        }
        file.flush()?;
        anyhow::Ok((rows, range))
    })?;
    eprintln!(
        "wrote {rows} rows of {} (seq {} to {}) to {}",
        args.db,
        range["from"],
        range["to"],
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
