//! The Trust Report: its versioned model (docs/REPORT_FORMAT.md), the
//! verdict, and its assembly from the rollups (never from the journal,
//! except the comparison scan `Source::JournalScan` that the benchmark and
//! the tests use to show both give the same answer).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::delta::{day_of, Event, DAY_US};
use crate::error::{Error, Result};
/// The last `verify` run, as the report carries it (read by `store`).
pub use crate::store::VerifyResult;
use crate::store::{self, GroupRow, ReportData, Source};

pub const REPORT_FORMAT: &str = "egress-audit-report";
/// Bumped when a field changes meaning or goes away; added fields keep it.
pub const REPORT_VERSION: u32 = 1;
/// Rows per table; the rest are counted in `more_rows`.
pub const DEFAULT_TABLE_ROWS: usize = 50;

use egress_proto::settings::truthy;
pub use egress_proto::settings::{KEY_ENABLED, KEY_RETENTION, KEY_STRICT};
/// The settings the report shows.
const SETTING_KEYS: [&str; 3] = [KEY_ENABLED, KEY_STRICT, KEY_RETENTION];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub version: u32,
    pub database: String,
    pub generated_at_us: i64,
    /// `rollups`; `journal_scan` only in comparisons.
    pub source: String,
    pub period: Period,
    pub verdict: Verdict,
    pub summary: Summary,
    /// `vendor`, `third_party`, `local`, `unknown` (present ones only).
    pub classes: BTreeMap<String, Totals>,
    /// MIT-bound: class `vendor`.
    pub vendor: Table,
    pub third_party: Table,
    pub unknown: Table,
    /// Loopback, private networks, this deployment's own services. Added
    /// in version 1 (absent from earlier documents: read as empty).
    #[serde(default)]
    pub local: Table,
    pub trust: Trust,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// Midnight UTC of the first day covered (rollups are per UTC day).
    pub since_us: i64,
    /// Days covered, today included.
    pub days: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `ok`, `warning` or `alert`.
    pub level: String,
    /// The most severe line.
    pub headline: String,
    /// Every line, most severe first.
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub calls: i64,
    pub bytes_out: i64,
    pub bytes_in: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub calls: i64,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub errors: i64,
    /// Distinct destination hosts.
    pub destinations: i64,
    /// Distinct attributed addons.
    pub addons: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub rows: Vec<TableRow>,
    /// Rows not listed (the table is cut at the busiest rows).
    pub more_rows: u64,
    /// Over every row, listed or not.
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRow {
    pub component: Option<String>,
    pub host: Option<String>,
    pub addon: Option<String>,
    pub calls: i64,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub errors: i64,
    pub last_seen_us: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// Calls attributed to the audit addon itself: must be 0.
    pub self_egress_calls: i64,
    pub last_verify: Option<VerifyResult>,
    pub signed_head: Option<SignedHeadAge>,
    pub gaps: Gaps,
    pub capture: SettingHistory,
    pub strict_mode: SettingHistory,
    pub retention: Retention,
    pub rollups: Coverage,
    /// Added in version 1 (absent from earlier documents: read as none).
    #[serde(default)]
    pub coverage: CaptureCoverage,
    /// The signer refused to sign a head inconsistent with one it signed
    /// before, and no operator has resumed signing since (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_alarm: Option<SigningAlarm>,
    /// Why the database-level promises are void, e.g. "Odoo's role odoo is
    /// a superuser" (empty: they hold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boundary_void: Vec<String>,
    /// Forensic body capture: on now (a red chip) or switched or read in
    /// the period (absent: never switched on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forensic: Option<Forensic>,
}

/// Forensic body capture in the report: whether it is on now, for what,
/// until when and by whom, and every switch and read in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forensic {
    /// On now (and not yet past its expiry).
    pub active: bool,
    pub host: Option<String>,
    pub addon: Option<String>,
    pub channel: Option<String>,
    pub expires_at_us: Option<i64>,
    /// Who switched it to its current state.
    pub changed_by: String,
    /// The journal entry that did.
    pub entry_seq: i64,
    /// `forensic_capture` entries in the period.
    pub switches: Vec<ForensicEntry>,
    /// `forensic_read` entries in the period.
    pub reads: Vec<ForensicEntry>,
}

impl Forensic {
    /// `host=api.example.com channel=http`: the parts of the scope named.
    pub fn scope(&self) -> String {
        [
            ("host", &self.host),
            ("addon", &self.addon),
            ("channel", &self.channel),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForensicEntry {
    pub seq: i64,
    pub at_us: i64,
    /// `enable`, `disable`, `expire` or `read`.
    pub action: String,
    pub by: String,
    /// For a read: the call whose body was read.
    pub call_seq: Option<i64>,
}

fn forensic(
    state: Option<&crate::store::ForensicStateRow>,
    events: &[Event],
    now_us: i64,
) -> Option<Forensic> {
    let entries = |kind: &str| -> Vec<ForensicEntry> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| {
                let detail: serde_json::Value = e
                    .detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or_default();
                ForensicEntry {
                    seq: e.seq,
                    at_us: e.recorded_at_us,
                    action: detail["action"].as_str().unwrap_or("").to_owned(),
                    by: detail["by"].as_str().unwrap_or("").to_owned(),
                    call_seq: detail["seq"].as_i64(),
                }
            })
            .collect()
    };
    let switches = entries("forensic_capture");
    let reads = entries("forensic_read");
    if state.is_none() && switches.is_empty() && reads.is_empty() {
        return None;
    }
    let mut out = Forensic {
        switches,
        reads,
        ..Forensic::default()
    };
    if let Some((active, host, addon, channel, expires, by, seq)) = state {
        out.active = *active && expires.is_some_and(|e| e > now_us);
        out.host.clone_from(host);
        out.addon.clone_from(addon);
        out.channel.clone_from(channel);
        out.expires_at_us = *expires;
        out.changed_by.clone_from(by);
        out.entry_seq = *seq;
    }
    Some(out)
}

/// The latest refusal of the signer (an `alarm` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningAlarm {
    /// The seq of the alarm entry.
    pub seq: i64,
    pub at_us: i64,
    /// The first seq the signer found inconsistent with what it signed.
    pub first_bad_seq: Option<i64>,
    pub reason: String,
}

/// The alarm when the latest `alarm` entry is a refusal (a resume ends it).
fn signing_alarm(event: &Event) -> Option<SigningAlarm> {
    let detail: serde_json::Value = serde_json::from_str(event.detail.as_deref()?).ok()?;
    (detail["alarm"] == "signing_refused").then(|| SigningAlarm {
        seq: event.seq,
        at_us: event.recorded_at_us,
        first_bad_seq: detail["first_bad_seq"].as_i64(),
        reason: detail["reason"].as_str().unwrap_or_default().to_owned(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHeadAge {
    pub seq: i64,
    pub signed_at_us: i64,
    pub age_secs: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gaps {
    pub entries: i64,
    pub events: i64,
    pub by_reason: BTreeMap<String, i64>,
}

/// A boolean setting: its value now, whether it was ever in the other state
/// during the period, and every change journaled in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingHistory {
    /// None when Odoo's settings could not be read.
    pub now: Option<bool>,
    /// Whether it was `true` at some time in the period (None: unknown).
    pub on_in_period: Option<bool>,
    /// Whether it was `false` at some time in the period (None: unknown).
    pub off_in_period: Option<bool>,
    pub changes: Vec<SettingChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingChange {
    pub seq: i64,
    pub at_us: i64,
    pub old: Option<String>,
    pub new: Option<String>,
    /// The Odoo user's login when Odoo reported the change.
    pub user: Option<String>,
    /// `odoo` or `collector` (seen in the database).
    pub reported_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// None when Odoo's settings could not be read; 0 keeps everything.
    pub days: Option<u32>,
    pub last_vacuum: Option<VacuumSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VacuumSummary {
    pub seq: i64,
    pub at_us: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub rows: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// The last journal seq in the rollups.
    pub watermark: i64,
    pub updated_at_us: i64,
}

/// The Odoo workers seen sending events for this database in the period
/// (`egress.worker_seen`), by hook mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureCoverage {
    /// Workers whose last event falls in the period (to within the
    /// collector's 30 s refresh of a worker's row).
    pub workers: i64,
    /// Hook mode (`native`, `python`, `rust`; `unknown` before the worker's
    /// `Hello` reached the collector) → workers.
    pub by_mode: BTreeMap<String, i64>,
    /// The latest of their last events; null without workers.
    pub last_seen_us: Option<i64>,
}

/// How far back a report looks: `7d`, `24h`, `2w`, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    All,
    Micros(i64),
}

impl std::str::FromStr for Since {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Since::All);
        }
        let bad = || format!("{text:?} is not a period like 7d, 24h, 2w or all");
        let (number, unit) = text.split_at(text.len().saturating_sub(1));
        let n: i64 = number.parse().map_err(|_| bad())?;
        let hour = 3_600_000_000;
        let us = match unit {
            "h" => n.checked_mul(hour),
            "d" => n.checked_mul(DAY_US),
            "w" => n.checked_mul(7 * DAY_US),
            _ => None,
        }
        .filter(|us| *us >= 0)
        .ok_or_else(bad)?;
        Ok(Since::Micros(us))
    }
}

impl Since {
    /// The first UTC day covered at `now_us`.
    pub fn first_day(self, now_us: i64) -> i32 {
        match self {
            Since::All => 0,
            Since::Micros(us) => day_of(now_us.saturating_sub(us)).max(0),
        }
    }
}

/// Reads and assembles the report of `database` at the current time.
pub async fn build(
    client: &mut tokio_postgres::Client,
    database: &str,
    since: Since,
    source: Source,
) -> Result<Report> {
    let now_us = store::to_micros(SystemTime::now());
    let first_day = since.first_day(now_us);
    let data = store::report_data(client, first_day, source, &SETTING_KEYS).await?;
    Ok(assemble(
        database,
        data,
        first_day,
        now_us,
        source,
        DEFAULT_TABLE_ROWS,
    ))
}

fn opt(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// Pure: the report from what was read.
pub fn assemble(
    database: &str,
    data: ReportData,
    first_day: i32,
    now_us: i64,
    source: Source,
    table_rows: usize,
) -> Report {
    let mut summary = Summary::default();
    let mut classes: BTreeMap<String, Totals> = BTreeMap::new();
    let mut hosts = BTreeSet::new();
    let mut addons = BTreeSet::new();
    let mut self_egress = 0;
    let mut tables: BTreeMap<&str, Vec<&GroupRow>> = BTreeMap::new();
    for g in &data.groups {
        summary.calls += g.calls;
        summary.bytes_out += g.bytes_out;
        summary.bytes_in += g.bytes_in;
        summary.errors += g.errors;
        self_egress += g.self_egress;
        if !g.host.is_empty() {
            hosts.insert(g.host.as_str());
        }
        if !g.addon.is_empty() {
            addons.insert(g.addon.as_str());
        }
        let totals = classes.entry(g.class.clone()).or_default();
        totals.calls += g.calls;
        totals.bytes_out += g.bytes_out;
        totals.bytes_in += g.bytes_in;
        tables.entry(g.class.as_str()).or_default().push(g);
    }
    summary.destinations = hosts.len() as i64;
    summary.addons = addons.len() as i64;
    let mut table = |class: &str| -> Table {
        let mut rows = tables.remove(class).unwrap_or_default();
        rows.sort_by(|a, b| {
            b.calls.cmp(&a.calls).then_with(|| {
                (&a.component, &a.host, &a.addon).cmp(&(&b.component, &b.host, &b.addon))
            })
        });
        let totals = classes.get(class).cloned().unwrap_or_default();
        let more_rows = rows.len().saturating_sub(table_rows) as u64;
        Table {
            rows: rows
                .into_iter()
                .take(table_rows)
                .map(|g| TableRow {
                    component: opt(&g.component),
                    host: opt(&g.host),
                    addon: opt(&g.addon),
                    calls: g.calls,
                    bytes_out: g.bytes_out,
                    bytes_in: g.bytes_in,
                    errors: g.errors,
                    last_seen_us: g.last_seen_us,
                })
                .collect(),
            more_rows,
            totals,
        }
    };
    let vendor = table("vendor");
    let third_party = table("third_party");
    let unknown = table("unknown");
    let local = table("local");

    let mut gaps = Gaps::default();
    for (reason, entries, events) in &data.gaps {
        gaps.entries += entries;
        gaps.events += events;
        *gaps.by_reason.entry(reason.clone()).or_default() += events;
    }
    let settings: Option<BTreeMap<String, String>> =
        data.settings.map(|pairs| pairs.into_iter().collect());
    let setting = |key: &str| settings.as_ref().map(|s| s.get(key).cloned());
    let capture = history(
        &data.events,
        KEY_ENABLED,
        setting(KEY_ENABLED).map(|v| v.is_none_or(|v| truthy(&v))),
        true,
    );
    let strict_mode = history(
        &data.events,
        KEY_STRICT,
        setting(KEY_STRICT).map(|v| v.is_some_and(|v| truthy(&v))),
        false,
    );
    let retention = Retention {
        days: setting(KEY_RETENTION).map(|v| v.and_then(|v| v.trim().parse().ok()).unwrap_or(0)),
        last_vacuum: data.last_vacuum.as_ref().and_then(vacuum_summary),
    };
    let trust = Trust {
        self_egress_calls: self_egress,
        last_verify: data.last_verify,
        signed_head: data.signed_head.map(|(seq, at)| SignedHeadAge {
            seq,
            signed_at_us: at,
            age_secs: (now_us - at).max(0) / 1_000_000,
        }),
        gaps,
        capture,
        strict_mode,
        retention,
        rollups: Coverage {
            watermark: data.rollup_state.0,
            updated_at_us: data.rollup_state.1,
        },
        coverage: capture_coverage(&data.workers),
        signing_alarm: data.last_alarm.as_ref().and_then(signing_alarm),
        forensic: forensic(data.forensic_state.as_ref(), &data.events, now_us),
        boundary_void: data
            .odoo_role
            .iter()
            .flat_map(|(role, powers)| {
                powers
                    .iter()
                    .map(move |p| format!("Odoo's role {role} {p}"))
            })
            .collect(),
    };
    let verdict = verdict(&summary, &vendor, &unknown, &trust);
    Report {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        database: database.into(),
        generated_at_us: now_us,
        source: source.as_str().into(),
        period: Period {
            since_us: i64::from(first_day) * DAY_US,
            days: i64::from(day_of(now_us)) - i64::from(first_day) + 1,
        },
        verdict,
        summary,
        classes,
        vendor,
        third_party,
        unknown,
        local,
        trust,
    }
}

/// The changes of one boolean setting in the period, and whether it was
/// on or off at any time in it. Its state at the start of the period is the
/// old value of the first change in it, or, without one, its value now.
fn history(events: &[Event], key: &str, now: Option<bool>, default: bool) -> SettingHistory {
    let changes: Vec<SettingChange> = events
        .iter()
        .filter(|e| e.kind == "config_change")
        .filter_map(|e| {
            let detail: Value = serde_json::from_str(e.detail.as_deref()?).ok()?;
            (detail["key"].as_str()? == key).then(|| SettingChange {
                seq: e.seq,
                at_us: e.recorded_at_us,
                old: detail["old"].as_str().map(str::to_owned),
                new: detail["new"].as_str().map(str::to_owned),
                user: detail["user"]
                    .as_str()
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned),
                reported_by: detail["reported_by"].as_str().map(str::to_owned),
            })
        })
        .collect();
    let value = |v: &Option<String>| v.as_deref().map_or(default, truthy);
    let start = match changes.first() {
        Some(first) => Some(value(&first.old)),
        None => now,
    };
    let states: Option<Vec<bool>> = start.map(|s| {
        std::iter::once(s)
            .chain(changes.iter().map(|c| value(&c.new)))
            .collect()
    });
    SettingHistory {
        now,
        on_in_period: states.as_ref().map(|s| s.contains(&true)),
        off_in_period: states.as_ref().map(|s| s.contains(&false)),
        changes,
    }
}

fn capture_coverage(workers: &[(String, i64, i64)]) -> CaptureCoverage {
    let mut coverage = CaptureCoverage::default();
    for (mode, n, last_seen_us) in workers {
        coverage.workers += n;
        let mode = if mode.is_empty() { "unknown" } else { mode };
        *coverage.by_mode.entry(mode.to_owned()).or_default() += n;
        coverage.last_seen_us = coverage.last_seen_us.max(Some(*last_seen_us));
    }
    coverage
}

fn vacuum_summary(event: &Event) -> Option<VacuumSummary> {
    let detail: Value = serde_json::from_str(event.detail.as_deref()?).ok()?;
    Some(VacuumSummary {
        seq: event.seq,
        at_us: event.recorded_at_us,
        first_seq: detail["first_seq"].as_i64()?,
        last_seq: detail["last_seq"].as_i64()?,
        rows: detail["rows"].as_i64()?,
    })
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The verdict: alerts, then warnings, then what is fine.
fn verdict(summary: &Summary, vendor: &Table, unknown: &Table, trust: &Trust) -> Verdict {
    let mut alerts = Vec::new();
    let mut warnings = Vec::new();
    let mut fine = Vec::new();
    if trust.self_egress_calls > 0 {
        alerts.push(format!(
            "ALERT: the audit addon made {} itself.",
            plural(trust.self_egress_calls, "network call", "network calls")
        ));
    }
    if let Some(a) = &trust.signing_alarm {
        alerts.push(match a.first_bad_seq {
            Some(seq) => format!(
                "ALERT: the signer refused to sign: the journal was rewritten or cut at or before seq {seq}."
            ),
            None => "ALERT: the signer refused to sign: the journal was rewritten or cut.".into(),
        });
    }
    if let Some(f) = trust.forensic.as_ref().filter(|f| f.active) {
        alerts.push(format!(
            "ALERT: forensic body capture is ON for {} (enabled by {}, journal row {}).",
            f.scope(),
            f.changed_by,
            f.entry_seq
        ));
    }
    if !trust.boundary_void.is_empty() {
        alerts.push(format!(
            "ALERT: {}: code in Odoo can rewrite unsigned journal rows without a trace.",
            trust.boundary_void.join("; ")
        ));
    }
    if let Some(v) = trust.last_verify.as_ref().filter(|v| !v.verified) {
        alerts.push(match v.broken_seq {
            Some(seq) => {
                format!("ALERT: the last verification found the chain broken at seq {seq}.")
            }
            None => "ALERT: the last verification found the chain broken.".into(),
        });
    }
    if unknown.totals.calls > 0 {
        warnings.push(format!(
            "{} went to unknown destinations.",
            plural(unknown.totals.calls, "call", "calls")
        ));
    }
    if trust.gaps.events > 0 {
        warnings.push(format!(
            "{} could not be recorded (gaps): the record of this period is incomplete.",
            plural(trust.gaps.events, "event", "events")
        ));
    }
    if trust.capture.off_in_period == Some(true) {
        warnings.push(
            "Capture was switched off during this period: calls made meanwhile were not recorded."
                .into(),
        );
    }
    if summary.calls == 0 {
        fine.push("No network calls were recorded in this period.".into());
    } else if vendor.totals.calls == 0 {
        fine.push("Nothing went to MIT.".into());
    } else if unknown.totals.calls > 0 {
        fine.push("Of the known destinations, only licence metadata goes to MIT.".into());
    } else {
        fine.push("Only licence metadata goes to MIT.".into());
    }
    let level = if !alerts.is_empty() {
        "alert"
    } else if !warnings.is_empty() {
        "warning"
    } else {
        "ok"
    };
    let lines: Vec<String> = alerts.into_iter().chain(warnings).chain(fine).collect();
    Verdict {
        level: level.into(),
        headline: lines[0].clone(),
        lines,
    }
}

/// The report as one JSON document.
pub fn to_json(report: &Report) -> Result<String> {
    serde_json::to_string_pretty(report).map_err(|e| Error::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 20_000 * DAY_US + 3_600_000_000;

    fn group(class: &str, host: &str, addon: &str, calls: i64, self_egress: i64) -> GroupRow {
        GroupRow {
            class: class.into(),
            component: String::new(),
            host: host.into(),
            addon: addon.into(),
            calls,
            bytes_out: calls * 10,
            bytes_in: calls,
            errors: 0,
            self_egress,
            last_seen_us: NOW - 5,
        }
    }

    fn report(data: ReportData) -> Report {
        assemble("db", data, 19_994, NOW, Source::Rollups, 2)
    }

    fn change(seq: i64, key: &str, old: Option<&str>, new: Option<&str>) -> Event {
        Event {
            seq,
            recorded_at_us: NOW - 1000,
            kind: "config_change".into(),
            detail: Some(
                serde_json::json!({"key": key, "old": old, "new": new, "user": "admin",
                    "reported_by": "odoo"})
                .to_string(),
            ),
        }
    }

    #[test]
    fn periods_parse_and_start_at_midnight_utc() {
        assert_eq!("7d".parse::<Since>().unwrap(), Since::Micros(7 * DAY_US));
        assert_eq!("all".parse::<Since>().unwrap(), Since::All);
        assert!("7x".parse::<Since>().is_err() && "d".parse::<Since>().is_err());
        assert!("-1d".parse::<Since>().is_err());
        let since: Since = "7d".parse().unwrap();
        assert_eq!(since.first_day(NOW), 19_993);
        let r = report(ReportData::default());
        assert_eq!((r.period.since_us, r.period.days), (19_994 * DAY_US, 7));
    }

    #[test]
    fn a_clean_period_says_only_licence_metadata_goes_to_mit() {
        let r = report(ReportData {
            groups: vec![
                group("vendor", "license.example", "mit_maildesk", 3, 0),
                group("third_party", "smtp.gmail.com", "mail", 40, 0),
                group("local", "localhost", "base", 5, 0),
            ],
            ..ReportData::default()
        });
        assert_eq!(r.verdict.level, "ok");
        assert_eq!(r.verdict.headline, "Only licence metadata goes to MIT.");
        assert_eq!(r.summary.calls, 48);
        assert_eq!((r.summary.destinations, r.summary.addons), (3, 3));
        assert_eq!(r.vendor.totals.calls, 3);
        assert_eq!(
            r.third_party.rows[0].host.as_deref(),
            Some("smtp.gmail.com")
        );
        assert_eq!(r.classes["local"].calls, 5);
        // Local calls are counted and listed: every call is in a table.
        assert_eq!(r.local.rows[0].host.as_deref(), Some("localhost"));
        assert_eq!(r.local.totals.calls, 5);
        let listed: i64 = [&r.vendor, &r.third_party, &r.unknown, &r.local]
            .iter()
            .map(|t| t.totals.calls)
            .sum();
        assert_eq!(listed, r.summary.calls);
    }

    #[test]
    fn a_document_without_the_local_table_reads_as_empty() {
        let r = report(ReportData::default());
        let mut doc = serde_json::to_value(&r).unwrap();
        doc.as_object_mut().unwrap().remove("local");
        let read: Report = serde_json::from_value(doc).unwrap();
        assert_eq!(read.local, Table::default());
    }

    #[test]
    fn self_egress_is_the_headline_and_unknown_destinations_are_counted() {
        let r = report(ReportData {
            groups: vec![
                group("vendor", "license.example", "mit_network_audit", 2, 2),
                group("unknown", "203.0.113.9", "x", 4, 0),
                group("unknown", "198.51.100.1", "y", 1, 0),
                group("unknown", "198.51.100.2", "y", 1, 0),
            ],
            ..ReportData::default()
        });
        assert_eq!(r.verdict.level, "alert");
        assert_eq!(
            r.verdict.headline,
            "ALERT: the audit addon made 2 network calls itself."
        );
        assert!(r
            .verdict
            .lines
            .contains(&"6 calls went to unknown destinations.".to_string()));
        assert_eq!((r.unknown.rows.len(), r.unknown.more_rows), (2, 1));
        assert_eq!(r.unknown.totals.calls, 6);
        assert_eq!(r.trust.self_egress_calls, 2);
    }

    #[test]
    fn capture_history_comes_from_the_changes_and_the_current_setting() {
        let events = vec![
            change(5, KEY_ENABLED, Some("True"), Some("False")),
            change(9, KEY_ENABLED, Some("False"), Some("True")),
            change(11, "egress.component:x", None, Some("{}")),
        ];
        let r = report(ReportData {
            events,
            settings: Some(vec![(KEY_ENABLED.into(), "True".into())]),
            ..ReportData::default()
        });
        let c = &r.trust.capture;
        assert_eq!(c.changes.len(), 2);
        assert_eq!(c.changes[0].user.as_deref(), Some("admin"));
        assert_eq!(
            (c.now, c.on_in_period, c.off_in_period),
            (Some(true), Some(true), Some(true))
        );
        assert_eq!(r.verdict.level, "warning");
        // No change and settings unreadable: unknown, not a guess.
        let r = report(ReportData::default());
        assert_eq!(r.trust.capture.now, None);
        assert_eq!(r.trust.capture.off_in_period, None);
        assert_eq!(r.trust.strict_mode.now, None);
        assert_eq!(r.trust.retention.days, None);
        // Readable but absent: the defaults (capture on, not strict, keep all).
        let r = report(ReportData {
            settings: Some(vec![]),
            ..ReportData::default()
        });
        assert_eq!(r.trust.capture.off_in_period, Some(false));
        assert_eq!(r.trust.strict_mode.now, Some(false));
        assert_eq!(r.trust.retention.days, Some(0));
    }

    #[test]
    fn gaps_vacuums_heads_and_verification_reach_the_trust_chips() {
        let r = report(ReportData {
            gaps: vec![
                ("socket_missing".into(), 2, 17),
                ("mailbox_full".into(), 1, 3),
            ],
            last_vacuum: Some(Event {
                seq: 900,
                recorded_at_us: NOW - 10,
                kind: "vacuum".into(),
                detail: Some(r#"{"first_seq":1,"last_seq":99,"rows":99,"anchor":"00"}"#.into()),
            }),
            signed_head: Some((850, NOW - 120_000_000)),
            last_verify: Some(VerifyResult {
                checked_at_us: NOW,
                verified: false,
                rows_checked: 10,
                first_seq: Some(1),
                last_seq: None,
                broken_seq: Some(11),
                message: "x".into(),
            }),
            ..ReportData::default()
        });
        assert_eq!((r.trust.gaps.entries, r.trust.gaps.events), (3, 20));
        assert_eq!(r.trust.retention.last_vacuum.as_ref().unwrap().last_seq, 99);
        assert_eq!(r.trust.signed_head.as_ref().unwrap().age_secs, 120);
        assert_eq!(
            r.verdict.headline,
            "ALERT: the last verification found the chain broken at seq 11."
        );
        assert!(r.verdict.lines.iter().any(|l| l.starts_with("20 events")));
    }

    #[test]
    fn coverage_counts_the_workers_seen_by_hook_mode() {
        let r = report(ReportData {
            workers: vec![
                (String::new(), 1, NOW - 90),
                ("native".into(), 3, NOW - 10),
                ("python".into(), 1, NOW - 50),
            ],
            ..ReportData::default()
        });
        let c = &r.trust.coverage;
        assert_eq!((c.workers, c.last_seen_us), (5, Some(NOW - 10)));
        assert_eq!(
            c.by_mode,
            BTreeMap::from([
                ("native".to_string(), 3),
                ("python".to_string(), 1),
                ("unknown".to_string(), 1)
            ])
        );
        let none = report(ReportData::default()).trust.coverage;
        assert_eq!((none.workers, none.last_seen_us), (0, None));
    }

    #[test]
    fn a_document_from_before_coverage_still_reads() {
        let mut old: Value =
            serde_json::from_str(&to_json(&report(ReportData::default())).unwrap()).unwrap();
        old["trust"].as_object_mut().unwrap().remove("coverage");
        let back: Report = serde_json::from_value(old).unwrap();
        assert_eq!(back.trust.coverage, CaptureCoverage::default());
    }

    #[test]
    fn the_json_round_trips() {
        let r = report(ReportData::default());
        let text = to_json(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert!(text.contains("\"format\": \"egress-audit-report\""));
    }
}
