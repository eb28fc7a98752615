//! `egress-collector export`: a signed export file of a database's journal,
//! built and signed by the running collector (docs/EXPORT_FORMAT.md), to be
//! checked with `egress-verify` or `verify_export.py`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use egress_collector::control::server::Request;
use tokio::io::{AsyncBufRead, Lines};

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
    /// Rows the collector reads per query (tests; the collector's default
    /// when absent).
    #[arg(long, hide = true)]
    chunk_rows: Option<u32>,
}

pub fn main(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Export {
        db: args.db.clone(),
        from: args.from,
        to: args.to,
        chunk_rows: args.chunk_rows,
    };
    let summary = super::runtime()?.block_on(async {
        let mut lines = super::control_request(&args.control, &request).await?;
        let mut file = PartialFile::create(&args.output)?;
        let summary = receive(&mut lines, file.writer()).await?;
        file.keep()?;
        anyhow::Ok(summary)
    })?;
    eprintln!(
        "wrote {} of {} (seq {} to {}) to {}",
        super::count(summary.rows as u64, "row", "rows"),
        args.db,
        summary.range["from"],
        summary.range["to"],
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What the summary line says of a received file.
#[derive(Debug, PartialEq)]
struct Received {
    rows: u64,
    range: serde_json::Value,
}

/// Copies the collector's reply to `out` as it comes, never holding it
/// whole. The reply is the file, laid out one field, head or row per line
/// (`egress_signer::export::write_opening` and the functions after it) up to
/// the end of the connection, or one error line. The collector streams the
/// file, so it can fail part way: it then sends an error line (which starts
/// with `{`, as no line of the file after its first does) and stops before
/// the file's last line, `}`. Both are errors here, as is a connection that
/// ends early.
async fn receive(
    lines: &mut Lines<impl AsyncBufRead + Unpin>,
    out: &mut impl Write,
) -> anyhow::Result<Received> {
    let reading = "reading the export from the collector";
    let first = lines
        .next_line()
        .await
        .context(reading)?
        .context("the collector closed the connection without a reply")?;
    if first != "{" {
        let why = error_message(&first).unwrap_or_else(|| "export refused".into());
        bail!("{why}");
    }
    writeln!(out, "{first}")?;
    // For the summary: the range, and the lines of the rows array.
    let (mut rows, mut in_rows, mut range) = (0u64, false, serde_json::Value::Null);
    let mut complete = false;
    while let Some(line) = lines.next_line().await.context(reading)? {
        if line.starts_with('{') {
            let why = error_message(&line).unwrap_or(line);
            bail!("the collector could not finish the export ({rows} rows received): {why}");
        }
        writeln!(out, "{line}")?;
        complete = line == "}";
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
    if !complete {
        bail!(
            "the export is incomplete: the collector closed the connection after {rows} rows, \
             before the end of the file (see the collector's log)"
        );
    }
    Ok(Received { rows, range })
}

/// The `message` of an error line.
fn error_message(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(value.get("message")?.as_str()?.to_owned())
}

/// The file being received, under a temporary name in the same directory:
/// renamed to its own name once complete (`keep`), removed otherwise, so
/// that a failed export never leaves a file that looks like one.
struct PartialFile {
    path: PathBuf,
    temporary: PathBuf,
    writer: Option<std::io::BufWriter<std::fs::File>>,
}

impl PartialFile {
    fn create(path: &Path) -> anyhow::Result<PartialFile> {
        let name = path
            .file_name()
            .with_context(|| format!("{} is not a file name", path.display()))?;
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(".{}.partial", std::process::id()));
        let temporary = path.with_file_name(temporary_name);
        let file = std::fs::File::create(&temporary)
            .with_context(|| format!("cannot create {}", temporary.display()))?;
        Ok(PartialFile {
            path: path.to_owned(),
            temporary,
            writer: Some(std::io::BufWriter::new(file)),
        })
    }

    fn writer(&mut self) -> &mut std::io::BufWriter<std::fs::File> {
        self.writer
            .as_mut()
            .expect("a partial file is written until kept")
    }

    fn keep(mut self) -> anyhow::Result<()> {
        let writer = self.writer.take().expect("kept once");
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.temporary, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    const FILE: &str = "{\n  \"format\": \"egress-audit-export\",\n  \"range\": {\"from\":1,\"to\":2,\"to_end\":true},\n  \"signed_heads\": [],\n  \"rows\": [\n    {\"seq\":1},\n    {\"seq\":2}\n  ],\n  \"signature\": \"00\"\n}\n";

    fn received(reply: &str) -> (anyhow::Result<Received>, Vec<u8>) {
        let mut out = Vec::new();
        let runtime = super::super::runtime().unwrap();
        let result = runtime.block_on(async {
            let mut lines = tokio::io::BufReader::new(reply.as_bytes()).lines();
            receive(&mut lines, &mut out).await
        });
        (result, out)
    }

    #[test]
    fn a_complete_file_is_copied_as_it_came() {
        let (result, out) = received(FILE);
        let summary = result.unwrap();
        assert_eq!(summary.rows, 2);
        assert_eq!(summary.range["to"], 2);
        assert_eq!(out, FILE.as_bytes());
    }

    #[test]
    fn a_refusal_a_failure_part_way_and_a_cut_reply_are_errors() {
        let refused = "{\"type\":\"error\",\"message\":\"no such database\"}\n";
        let err = received(refused).0.unwrap_err().to_string();
        assert_eq!(err, "no such database");

        let cut_at = FILE.find("    {\"seq\":2}").unwrap();
        let failed = format!(
            "{}\n{{\"type\":\"error\",\"message\":\"the export failed after 1 rows: database error\"}}\n",
            &FILE[..cut_at - 2]
        );
        let err = received(&failed).0.unwrap_err().to_string();
        assert!(err.contains("could not finish the export"), "{err}");
        assert!(err.contains("database error"), "{err}");

        let err = received(&FILE[..cut_at]).0.unwrap_err().to_string();
        assert!(err.contains("incomplete"), "{err}");
        assert!(err.contains("after 1 rows"), "{err}");
        let err = received(&FILE[..FILE.len() - 2]).0.unwrap_err().to_string();
        assert!(err.contains("incomplete"), "{err}");
    }

    #[test]
    fn only_a_kept_file_is_left() {
        let dir = std::env::temp_dir().join(format!("egress-export-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("export.json");
        let mut dropped = PartialFile::create(&path).unwrap();
        dropped.writer().write_all(b"{\n").unwrap();
        drop(dropped);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let mut kept = PartialFile::create(&path).unwrap();
        kept.writer().write_all(FILE.as_bytes()).unwrap();
        kept.keep().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), FILE);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
