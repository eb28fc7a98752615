//! `egress-collector report`: the Trust Report in the terminal, or as JSON
//! (docs/REPORT_FORMAT.md). Read from the rollups only: through the running
//! collector (which first brings them up to the journal's head), or
//! straight from the database with `--database-url`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use egress_collector::control::server::Request;
use egress_rollup::report::{CaptureCoverage, SettingHistory, Table};
use egress_rollup::{Report, Since, Source};

use super::time::utc;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The running collector's control socket (the default way).
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// Read the database directly instead (the collector's role, or any role
    /// that may read the egress schema); the rollups may then be up to a
    /// flush interval behind.
    #[arg(long, env = "EGRESS_REPORT_DATABASE_URL", conflicts_with = "control")]
    database_url: Option<String>,
    /// The Odoo database (default: the collector's default database, or the
    /// one in --database-url).
    #[arg(long)]
    db: Option<String>,
    /// How far back: 7d, 24h, 2w or all (whole UTC days: the rollups are per day).
    #[arg(long, default_value = "7d")]
    since: String,
    /// Print the report as JSON (docs/REPORT_FORMAT.md).
    #[arg(long)]
    json: bool,
    /// Answer from a scan of the whole journal instead of the rollups: only
    /// to compare the two (benchmark). Needs --database-url.
    #[arg(long, hide = true, requires = "database_url")]
    from_journal: bool,
}

pub fn main(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let since: Since = args.since.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let report = match &args.database_url {
        Some(url) => {
            super::runtime()?.block_on(direct(url, args.db.clone(), since, args.from_journal))?
        }
        None => {
            let reply = super::one_reply(
                &args.control,
                &Request::Report {
                    db: args.db.clone(),
                    since: args.since.clone(),
                },
            )?;
            serde_json::from_value(reply["report"].clone())
                .context("the collector's report does not parse (is it a different version?)")?
        }
    };
    if args.json {
        println!("{}", egress_rollup::report::to_json(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(ExitCode::SUCCESS)
}

async fn direct(
    url: &str,
    db: Option<String>,
    since: Since,
    from_journal: bool,
) -> anyhow::Result<Report> {
    let config: tokio_postgres::Config = url.parse().context("--database-url does not parse")?;
    let database = db
        .or_else(|| config.get_dbname().map(str::to_owned))
        .context("name the database with --db")?;
    let mut client = egress_collector::db::setup::connect(url).await?;
    let source = if from_journal {
        Source::JournalScan
    } else {
        Source::Rollups
    };
    egress_rollup::report::build(&mut client, &database, since, source)
        .await
        .context("cannot read the rollups (was `egress-collector setup` run on this database since the rollups were added?)")
}

/// `2025-11-28 12:59Z`
fn minute(us: i64) -> String {
    let full = utc(us);
    format!("{} {}Z", &full[..10], &full[11..16])
}

fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(width - 1).collect();
        out.push('…');
        out
    }
}

fn table(out: &mut String, title: &str, table: &Table) {
    out.push_str(&format!(
        "\n{title}: {}, {} out, {} in\n",
        super::count(table.totals.calls as u64, "call", "calls"),
        bytes(table.totals.bytes_out),
        bytes(table.totals.bytes_in)
    ));
    if table.rows.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    out.push_str(&format!(
        "  {:<28} {:<32} {:<20} {:>8} {:>10} {:>10}  {}\n",
        "component", "host", "addon", "calls", "out", "in", "last seen"
    ));
    for row in &table.rows {
        out.push_str(&format!(
            "  {:<28} {:<32} {:<20} {:>8} {:>10} {:>10}  {}\n",
            cut(row.component.as_deref().unwrap_or("-"), 28),
            cut(row.host.as_deref().unwrap_or("-"), 32),
            cut(row.addon.as_deref().unwrap_or("-"), 20),
            row.calls,
            bytes(row.bytes_out),
            bytes(row.bytes_in),
            minute(row.last_seen_us)
        ));
    }
    if table.more_rows > 0 {
        out.push_str(&format!("  … and {} more rows\n", table.more_rows));
    }
}

fn switch(history: &SettingHistory, on: &str, off: &str) -> String {
    let now = match history.now {
        Some(true) => on.to_owned(),
        Some(false) => off.to_owned(),
        None => "unknown (Odoo's settings are not readable)".to_owned(),
    };
    if history.changes.is_empty() {
        return format!("{now}, no change in the period");
    }
    let changes: Vec<String> = history
        .changes
        .iter()
        .map(|c| {
            format!(
                "{} → {} at {}{}",
                c.old.as_deref().unwrap_or("(default)"),
                c.new.as_deref().unwrap_or("(default)"),
                minute(c.at_us),
                c.user
                    .as_deref()
                    .map(|u| format!(" by {u}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!("{now} now; changes: {}", changes.join("; "))
}

/// `3 workers seen (2 native, 1 python), last 2025-11-28 12:59Z`
fn coverage(c: &CaptureCoverage) -> String {
    let Some(last) = c.last_seen_us.filter(|_| c.workers > 0) else {
        return "no worker seen in the period".into();
    };
    let modes: Vec<String> = c
        .by_mode
        .iter()
        .map(|(mode, n)| format!("{n} {mode}"))
        .collect();
    format!(
        "{} seen ({}), last {}",
        if c.workers == 1 {
            "1 worker".to_owned()
        } else {
            format!("{} workers", c.workers)
        },
        modes.join(", "),
        minute(last)
    )
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Trust Report — {} — {} days from {} (UTC days; generated {})\n\n",
        r.database,
        r.period.days,
        &utc(r.period.since_us)[..10],
        minute(r.generated_at_us)
    ));
    for line in &r.verdict.lines {
        out.push_str(&format!("  {line}\n"));
    }
    let s = &r.summary;
    out.push_str(&format!(
        "\n  calls {}   out {}   in {}   destinations {}   addons {}   errors {}\n",
        s.calls,
        bytes(s.bytes_out),
        bytes(s.bytes_in),
        s.destinations,
        s.addons,
        s.errors
    ));
    table(&mut out, "MIT-bound (vendor)", &r.vendor);
    table(&mut out, "Third party", &r.third_party);
    if r.unknown.totals.calls > 0 {
        table(&mut out, "Unknown destinations", &r.unknown);
    }
    // Counted in the totals above, so listed too: nothing is left out.
    table(
        &mut out,
        "Local (loopback, private networks, this database)",
        &r.local,
    );
    let t = &r.trust;
    out.push_str("\nTrust\n");
    out.push_str(&format!(
        "  self-egress   {} {}\n",
        t.self_egress_calls,
        if t.self_egress_calls == 0 {
            "calls (the audit addon made none, as it must)"
        } else {
            "calls by the audit addon itself: ALERT"
        }
    ));
    out.push_str(&format!(
        "  chain         {}\n",
        match &t.last_verify {
            Some(v) if v.verified => format!(
                "verified OK at {} ({})",
                minute(v.checked_at_us),
                super::count(v.rows_checked as u64, "row", "rows")
            ),
            Some(v) => format!("BROKEN at {}: {}", minute(v.checked_at_us), v.message),
            None => "no verification recorded (run `egress-collector verify`)".into(),
        }
    ));
    out.push_str(&format!(
        "  signed head   {}\n",
        match &t.signed_head {
            Some(h) => format!("seq {}, signed {} ago", h.seq, age(h.age_secs)),
            None => "none yet".into(),
        }
    ));
    if let Some(a) = &t.signing_alarm {
        out.push_str(&format!(
            "  signing       ALARM: refused at {} (alarm entry seq {}), first bad seq {}: {}\n",
            minute(a.at_us),
            a.seq,
            a.first_bad_seq
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            a.reason
        ));
    }
    if let Some(f) = &t.forensic {
        if f.active {
            out.push_str(&format!(
                "  forensic      ON: bodies captured for {} until {} (enabled by {}, journal row {})\n",
                f.scope(),
                minute(f.expires_at_us.unwrap_or(0)),
                f.changed_by,
                f.entry_seq
            ));
        } else {
            out.push_str(&format!(
                "  forensic      off (last switched by {}, journal row {})\n",
                f.changed_by, f.entry_seq
            ));
        }
        for r in &f.reads {
            out.push_str(&format!(
                "                body of row {} read {} by {} (journal row {})\n",
                r.call_seq.unwrap_or(0),
                minute(r.at_us),
                r.by,
                r.seq
            ));
        }
    }
    if !t.boundary_void.is_empty() {
        out.push_str(&format!(
            "  boundary      VOID: {} (raw SQL from Odoo can rewrite unsigned rows; signing and a witness still catch rewrites of signed rows)\n",
            t.boundary_void.join("; ")
        ));
    }
    out.push_str(&format!(
        "  gaps          {}\n",
        if t.gaps.events == 0 && t.gaps.entries == 0 {
            "none in the period".to_owned()
        } else {
            let reasons: Vec<String> = t
                .gaps
                .by_reason
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect();
            format!(
                "{} lost in {} ({})",
                super::count(t.gaps.events as u64, "event", "events"),
                super::count(t.gaps.entries as u64, "entry", "entries"),
                reasons.join(", ")
            )
        }
    ));
    out.push_str(&format!(
        "  capture       {}\n",
        switch(&t.capture, "on", "OFF")
    ));
    out.push_str(&format!("  coverage      {}\n", coverage(&t.coverage)));
    out.push_str(&format!(
        "  strict mode   {}\n",
        switch(&t.strict_mode, "on", "off")
    ));
    out.push_str(&format!(
        "  retention     {}{}\n",
        match t.retention.days {
            Some(0) => "keep everything".to_owned(),
            Some(1) => "1 day".to_owned(),
            Some(days) => format!("{days} days"),
            None => "unknown (Odoo's settings are not readable)".to_owned(),
        },
        match &t.retention.last_vacuum {
            Some(v) => format!(
                "; last vacuum {} removed seq {}–{} ({})",
                minute(v.at_us),
                v.first_seq,
                v.last_seq,
                super::count(v.rows as u64, "row", "rows")
            ),
            None => String::new(),
        }
    ));
    out.push_str(&format!(
        "  rollups       up to seq {}, updated {}\n",
        t.rollups.watermark,
        if t.rollups.updated_at_us > 0 {
            minute(t.rollups.updated_at_us)
        } else {
            "never".into()
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_like_a_person_would_write_them() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(12_345), "12.3 KB");
        assert_eq!(bytes(3_100_000_000), "3.1 GB");
        assert_eq!(age(59), "59 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(90_000), "25 h");
        assert_eq!(minute(1_764_334_773_123_000), "2025-11-28 12:59Z");
        assert_eq!(cut("abcdef", 4), "abc…");
    }

    #[test]
    fn coverage_names_the_workers_by_hook_mode() {
        let c = CaptureCoverage {
            workers: 3,
            by_mode: [("native".to_string(), 2), ("python".to_string(), 1)].into(),
            last_seen_us: Some(1_764_334_773_123_000),
        };
        assert_eq!(
            coverage(&c),
            "3 workers seen (2 native, 1 python), last 2025-11-28 12:59Z"
        );
        assert_eq!(
            coverage(&CaptureCoverage::default()),
            "no worker seen in the period"
        );
    }
}
