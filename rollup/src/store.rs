//! All SQL of the rollups: the flush transaction (deltas, folds from the
//! journal, the watermark) and the Trust Report's reads. Identifiers are
//! never built from input.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, GenericClient, Transaction};

use crate::delta::{Delta, EVENT_KINDS};
use crate::error::{db, Result};
use crate::pending::{Pending, Step};

/// The fold of journal rows `$1..=$2` into the call rollups. Mirrors
/// `Delta::add` for calls exactly: the day is the UTC day of `recorded_at`,
/// absent text is '', an absent class is 'unknown', an error is an
/// error_class or a status of 400 or more.
const FOLD_CALLS: &str = "\
INSERT INTO egress.rollup AS r (day, addon, component, class, channel, host, \
    calls, bytes_out, bytes_in, errors, self_egress, first_seen, last_seen) \
SELECT (j.recorded_at AT TIME ZONE 'UTC')::date, coalesce(j.addon, ''), \
    coalesce(j.component, ''), coalesce(j.class, 'unknown'), coalesce(j.channel, ''), \
    coalesce(j.host, ''), count(*), coalesce(sum(j.bytes_out), 0), coalesce(sum(j.bytes_in), 0), \
    count(*) FILTER (WHERE j.error_class IS NOT NULL OR j.status >= 400), \
    count(*) FILTER (WHERE j.self_egress), min(j.recorded_at), max(j.recorded_at) \
FROM egress.journal j \
WHERE j.seq >= $1 AND j.seq <= $2 AND j.kind = 'call' \
GROUP BY 1, 2, 3, 4, 5, 6 \
ON CONFLICT (day, addon, component, class, channel, host) DO UPDATE SET \
    calls = r.calls + EXCLUDED.calls, bytes_out = r.bytes_out + EXCLUDED.bytes_out, \
    bytes_in = r.bytes_in + EXCLUDED.bytes_in, errors = r.errors + EXCLUDED.errors, \
    self_egress = r.self_egress + EXCLUDED.self_egress, \
    first_seen = least(r.first_seen, EXCLUDED.first_seen), \
    last_seen = greatest(r.last_seen, EXCLUDED.last_seen)";

const FOLD_GAPS: &str = "\
INSERT INTO egress.rollup_gap AS g (day, reason, entries, events, first_seen, last_seen) \
SELECT (j.recorded_at AT TIME ZONE 'UTC')::date, coalesce(j.gap_reason, ''), count(*), \
    coalesce(sum(j.gap_count), 0), min(j.recorded_at), max(j.recorded_at) \
FROM egress.journal j \
WHERE j.seq >= $1 AND j.seq <= $2 AND j.kind = 'gap' \
GROUP BY 1, 2 \
ON CONFLICT (day, reason) DO UPDATE SET \
    entries = g.entries + EXCLUDED.entries, events = g.events + EXCLUDED.events, \
    first_seen = least(g.first_seen, EXCLUDED.first_seen), \
    last_seen = greatest(g.last_seen, EXCLUDED.last_seen)";

const FOLD_EVENTS: &str = "\
INSERT INTO egress.rollup_event (seq, recorded_at, kind, detail) \
SELECT j.seq, j.recorded_at, j.kind, j.detail FROM egress.journal j \
WHERE j.seq >= $1 AND j.seq <= $2 AND j.kind = ANY($3) \
ON CONFLICT (seq) DO NOTHING";

/// A delta's calls, as parallel arrays (one statement per flush).
const APPLY_CALLS: &str = "\
INSERT INTO egress.rollup AS r (day, addon, component, class, channel, host, \
    calls, bytes_out, bytes_in, errors, self_egress, first_seen, last_seen) \
SELECT DATE '1970-01-01' + u.day, u.addon, u.component, u.class, u.channel, u.host, \
    u.calls, u.bytes_out, u.bytes_in, u.errors, u.self_egress, \
    TIMESTAMPTZ 'epoch' + u.first_us * INTERVAL '1 microsecond', \
    TIMESTAMPTZ 'epoch' + u.last_us * INTERVAL '1 microsecond' \
FROM unnest($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::int8[]) \
    AS u(day, addon, component, class, channel, host, calls, bytes_out, bytes_in, errors, \
         self_egress, first_us, last_us) \
ON CONFLICT (day, addon, component, class, channel, host) DO UPDATE SET \
    calls = r.calls + EXCLUDED.calls, bytes_out = r.bytes_out + EXCLUDED.bytes_out, \
    bytes_in = r.bytes_in + EXCLUDED.bytes_in, errors = r.errors + EXCLUDED.errors, \
    self_egress = r.self_egress + EXCLUDED.self_egress, \
    first_seen = least(r.first_seen, EXCLUDED.first_seen), \
    last_seen = greatest(r.last_seen, EXCLUDED.last_seen)";

const APPLY_GAPS: &str = "\
INSERT INTO egress.rollup_gap AS g (day, reason, entries, events, first_seen, last_seen) \
SELECT DATE '1970-01-01' + u.day, u.reason, u.entries, u.events, \
    TIMESTAMPTZ 'epoch' + u.first_us * INTERVAL '1 microsecond', \
    TIMESTAMPTZ 'epoch' + u.last_us * INTERVAL '1 microsecond' \
FROM unnest($1::int4[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[]) \
    AS u(day, reason, entries, events, first_us, last_us) \
ON CONFLICT (day, reason) DO UPDATE SET \
    entries = g.entries + EXCLUDED.entries, events = g.events + EXCLUDED.events, \
    first_seen = least(g.first_seen, EXCLUDED.first_seen), \
    last_seen = greatest(g.last_seen, EXCLUDED.last_seen)";

const APPLY_EVENTS: &str = "\
INSERT INTO egress.rollup_event (seq, recorded_at, kind, detail) \
SELECT u.seq, TIMESTAMPTZ 'epoch' + u.at_us * INTERVAL '1 microsecond', u.kind, u.detail \
FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[]) AS u(seq, at_us, kind, detail) \
ON CONFLICT (seq) DO NOTHING";

pub use egress_proto::time::{to_micros, to_system_time};

/// What one flush transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub watermark: i64,
    pub head: i64,
    /// Rows added from deltas, and rows folded from the journal.
    pub applied: u64,
    pub folded: u64,
    /// More rows wait beyond the watermark (the fold limit was reached).
    pub behind: bool,
}

/// One flush: locks the watermark (serialising the rollups of every
/// collector that writes this database), plans from it to the journal's
/// head, applies the steps and moves the watermark, in one transaction.
/// Segments the plan took are gone even if the transaction fails: their
/// rows are then folded from the journal by a later flush.
pub async fn flush(client: &mut Client, pending: &mut Pending, max_fold: i64) -> Result<Flushed> {
    let tx = client
        .transaction()
        .await
        .map_err(db("begin rollup flush"))?;
    let watermark: i64 = tx
        .query_one(
            "SELECT watermark FROM egress.rollup_state WHERE id FOR UPDATE",
            &[],
        )
        .await
        .map_err(db("lock rollup watermark"))?
        .get(0);
    let head: i64 = tx
        .query_one("SELECT coalesce(max(seq), 0) FROM egress.journal", &[])
        .await
        .map_err(db("read journal head"))?
        .get(0);
    let plan = pending.plan(watermark, head, max_fold);
    let mut flushed = Flushed {
        watermark: plan.watermark,
        head,
        behind: plan.behind,
        ..Flushed::default()
    };
    for step in plan.steps {
        match step {
            Step::Apply { delta, .. } => {
                flushed.applied += delta.rows;
                apply(&tx, &delta).await?;
            }
            Step::Fold { from, to } => {
                flushed.folded += (to - from + 1) as u64;
                fold(&tx, from, to).await?;
            }
        }
    }
    if plan.watermark != watermark {
        tx.execute(
            "UPDATE egress.rollup_state SET watermark = $1, updated_at = now() WHERE id",
            &[&plan.watermark],
        )
        .await
        .map_err(db("move rollup watermark"))?;
    }
    tx.commit().await.map_err(db("commit rollup flush"))?;
    Ok(flushed)
}

/// Folds journal rows `from..=to` into the rollups, straight from the journal.
pub async fn fold(tx: &Transaction<'_>, from: i64, to: i64) -> Result<()> {
    tx.execute(FOLD_CALLS, &[&from, &to])
        .await
        .map_err(db("fold calls from the journal"))?;
    tx.execute(FOLD_GAPS, &[&from, &to])
        .await
        .map_err(db("fold gaps from the journal"))?;
    let kinds: Vec<&str> = EVENT_KINDS.to_vec();
    tx.execute(FOLD_EVENTS, &[&from, &to, &kinds])
        .await
        .map_err(db("fold events from the journal"))?;
    Ok(())
}

/// Adds a delta to the rollups.
pub async fn apply(tx: &Transaction<'_>, delta: &Delta) -> Result<()> {
    if !delta.calls.is_empty() {
        let n = delta.calls.len();
        let mut day = Vec::with_capacity(n);
        let (mut addon, mut component, mut class, mut channel, mut host) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut calls, mut out, mut inb, mut errors, mut selfe, mut first, mut last) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for (k, s) in &delta.calls {
            day.push(k.day);
            addon.push(k.addon.as_str());
            component.push(k.component.as_str());
            class.push(k.class.as_str());
            channel.push(k.channel.as_str());
            host.push(k.host.as_str());
            calls.push(s.calls);
            out.push(s.bytes_out);
            inb.push(s.bytes_in);
            errors.push(s.errors);
            selfe.push(s.self_egress);
            first.push(s.first_seen_us);
            last.push(s.last_seen_us);
        }
        tx.execute(
            APPLY_CALLS,
            &[
                &day, &addon, &component, &class, &channel, &host, &calls, &out, &inb, &errors,
                &selfe, &first, &last,
            ],
        )
        .await
        .map_err(db("add calls to the rollups"))?;
    }
    if !delta.gaps.is_empty() {
        let (mut day, mut reason, mut entries, mut events, mut first, mut last) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for (k, s) in &delta.gaps {
            day.push(k.day);
            reason.push(k.reason.as_str());
            entries.push(s.entries);
            events.push(s.events);
            first.push(s.first_seen_us);
            last.push(s.last_seen_us);
        }
        tx.execute(
            APPLY_GAPS,
            &[&day, &reason, &entries, &events, &first, &last],
        )
        .await
        .map_err(db("add gaps to the rollups"))?;
    }
    if !delta.events.is_empty() {
        let seq: Vec<i64> = delta.events.iter().map(|e| e.seq).collect();
        let at: Vec<i64> = delta.events.iter().map(|e| e.recorded_at_us).collect();
        let kind: Vec<&str> = delta.events.iter().map(|e| e.kind.as_str()).collect();
        let detail: Vec<Option<&str>> = delta.events.iter().map(|e| e.detail.as_deref()).collect();
        tx.execute(APPLY_EVENTS, &[&seq, &at, &kind, &detail])
            .await
            .map_err(db("add events to the rollups"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------
// The Trust Report's reads.

/// One group of calls over the period: (class, component, host, addon) with
/// its sums and when it was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub class: String,
    pub component: String,
    pub host: String,
    pub addon: String,
    pub calls: i64,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub errors: i64,
    pub self_egress: i64,
    pub last_seen_us: i64,
}

/// Which data answers the report: the rollups (always), or a scan of the
/// whole journal (only to compare, in the benchmark and in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rollups,
    JournalScan,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rollups => "rollups",
            Source::JournalScan => "journal_scan",
        }
    }
}

const GROUPS_FROM_ROLLUPS: &str = "\
SELECT class, component, host, addon, sum(calls)::int8, sum(bytes_out)::int8, \
    sum(bytes_in)::int8, sum(errors)::int8, sum(self_egress)::int8, max(last_seen) \
FROM egress.rollup WHERE day >= DATE '1970-01-01' + $1::int4 \
GROUP BY class, component, host, addon";

const GROUPS_FROM_JOURNAL: &str = "\
SELECT coalesce(class, 'unknown'), coalesce(component, ''), coalesce(host, ''), \
    coalesce(addon, ''), count(*), coalesce(sum(bytes_out), 0)::int8, \
    coalesce(sum(bytes_in), 0)::int8, \
    count(*) FILTER (WHERE error_class IS NOT NULL OR status >= 400), \
    count(*) FILTER (WHERE self_egress), max(recorded_at) \
FROM egress.journal \
WHERE kind = 'call' AND recorded_at >= TIMESTAMPTZ 'epoch' + $1::int4 * INTERVAL '1 day' \
GROUP BY 1, 2, 3, 4";

const GAPS_FROM_ROLLUPS: &str = "\
SELECT reason, sum(entries)::int8, sum(events)::int8 FROM egress.rollup_gap \
WHERE day >= DATE '1970-01-01' + $1::int4 GROUP BY reason ORDER BY reason";

const GAPS_FROM_JOURNAL: &str = "\
SELECT coalesce(gap_reason, ''), count(*), coalesce(sum(gap_count), 0)::int8 \
FROM egress.journal \
WHERE kind = 'gap' AND recorded_at >= TIMESTAMPTZ 'epoch' + $1::int4 * INTERVAL '1 day' \
GROUP BY 1 ORDER BY 1";

const EVENTS_FROM_ROLLUPS: &str = "\
SELECT seq, recorded_at, kind, detail FROM egress.rollup_event \
WHERE recorded_at >= TIMESTAMPTZ 'epoch' + $1::int4 * INTERVAL '1 day' ORDER BY seq";

const EVENTS_FROM_JOURNAL: &str = "\
SELECT seq, recorded_at, kind, detail FROM egress.journal \
WHERE kind = ANY($2) AND recorded_at >= TIMESTAMPTZ 'epoch' + $1::int4 * INTERVAL '1 day' \
ORDER BY seq";

/// Workers seen in the period, per hook mode ('' before their `Hello`).
const WORKERS_SEEN: &str = "\
SELECT coalesce(hook_mode, ''), count(*), max(last_seen) FROM egress.worker_seen \
WHERE last_seen >= TIMESTAMPTZ 'epoch' + $1::int4 * INTERVAL '1 day' GROUP BY 1 ORDER BY 1";

/// The last run of `verify` (`egress.verify_result`), as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResult {
    pub checked_at_us: i64,
    pub verified: bool,
    pub rows_checked: i64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub broken_seq: Option<i64>,
    pub message: String,
}

/// Everything the report reads, in one consistent snapshot.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    pub groups: Vec<GroupRow>,
    /// (reason, entries, events)
    pub gaps: Vec<(String, i64, i64)>,
    /// Events in the period, by seq.
    pub events: Vec<crate::delta::Event>,
    /// The latest vacuum event, whenever it was.
    pub last_vacuum: Option<crate::delta::Event>,
    /// (seq, signed_at_us) of the latest signed head.
    pub signed_head: Option<(i64, i64)>,
    pub last_verify: Option<VerifyResult>,
    /// The audit settings in `egress.setting` (None: unreadable).
    pub settings: Option<Vec<(String, String)>>,
    /// (watermark, updated_at_us)
    pub rollup_state: (i64, i64),
    /// (hook mode, workers, last seen us) of the workers seen in the period.
    pub workers: Vec<(String, i64, i64)>,
    /// The latest `alarm` entry (the signer refused an inconsistent head,
    /// or an operator resumed signing), whenever it was.
    pub last_alarm: Option<crate::delta::Event>,
    /// Odoo's role (as `setup` recorded it) and what it may do that voids
    /// the database-level promises (`pg_roles`: superuser, create roles).
    pub odoo_role: Option<(String, Vec<String>)>,
    /// `egress.forensic_state`: (active, host, addon, channel, expires_at_us,
    /// changed_by, entry_seq); None before it was ever switched (or before
    /// `setup` created it).
    pub forensic_state: Option<ForensicStateRow>,
}

/// (active, host, addon, channel, expires_at_us, changed_by, entry_seq)
pub type ForensicStateRow = (
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    String,
    i64,
);

fn time_us(row: &tokio_postgres::Row, i: usize) -> i64 {
    row.get::<_, Option<SystemTime>>(i)
        .map(to_micros)
        .unwrap_or_default()
}

fn event(row: &tokio_postgres::Row) -> crate::delta::Event {
    crate::delta::Event {
        seq: row.get(0),
        recorded_at_us: time_us(row, 1),
        kind: row.get(2),
        detail: row.get(3),
    }
}

/// Reads the report's data for UTC days from `since_day` on.
pub async fn report_data(
    client: &mut Client,
    since_day: i32,
    source: Source,
    setting_keys: &[&str],
) -> Result<ReportData> {
    let tx = client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .map_err(db("begin report"))?;
    let (groups_sql, gaps_sql) = match source {
        Source::Rollups => (GROUPS_FROM_ROLLUPS, GAPS_FROM_ROLLUPS),
        Source::JournalScan => (GROUPS_FROM_JOURNAL, GAPS_FROM_JOURNAL),
    };
    let groups = tx
        .query(groups_sql, &[&since_day])
        .await
        .map_err(db("read call rollups"))?
        .iter()
        .map(|r| GroupRow {
            class: r.get(0),
            component: r.get(1),
            host: r.get(2),
            addon: r.get(3),
            calls: r.get(4),
            bytes_out: r.get(5),
            bytes_in: r.get(6),
            errors: r.get(7),
            self_egress: r.get(8),
            last_seen_us: time_us(r, 9),
        })
        .collect();
    let gaps = tx
        .query(gaps_sql, &[&since_day])
        .await
        .map_err(db("read gap rollups"))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let kinds: Vec<&str> = EVENT_KINDS.to_vec();
    let events = match source {
        Source::Rollups => tx.query(EVENTS_FROM_ROLLUPS, &[&since_day]).await,
        Source::JournalScan => tx.query(EVENTS_FROM_JOURNAL, &[&since_day, &kinds]).await,
    }
    .map_err(db("read settings and vacuum events"))?
    .iter()
    .map(event)
    .collect();
    let last_vacuum = tx
        .query_opt(
            "SELECT seq, recorded_at, kind, detail FROM egress.rollup_event \
             WHERE kind = 'vacuum' ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(db("read the last vacuum"))?
        .as_ref()
        .map(event);
    // By id, the primary key: heads are appended in the order they are signed.
    let signed_head = tx
        .query_opt(
            "SELECT seq, signed_at_us FROM egress.signed_head ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(db("read the latest signed head"))?
        .map(|r| (r.get(0), r.get(1)));
    let last_verify = tx
        .query_opt(
            "SELECT checked_at, verified, rows_checked, first_seq, last_seq, broken_seq, message \
             FROM egress.verify_result ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(db("read the last verification"))?
        .map(|r| VerifyResult {
            checked_at_us: time_us(&r, 0),
            verified: r.get(1),
            rows_checked: r.get(2),
            first_seq: r.get(3),
            last_seq: r.get(4),
            broken_seq: r.get(5),
            message: r.get(6),
        });
    let state = tx
        .query_one(
            "SELECT watermark, updated_at FROM egress.rollup_state WHERE id",
            &[],
        )
        .await
        .map_err(db("read rollup watermark"))?;
    let rollup_state = (state.get(0), time_us(&state, 1));
    // The same for either source: workers are not in the journal's rows.
    let workers = tx
        .query(WORKERS_SEEN, &[&since_day])
        .await
        .map_err(db("read the workers seen"))?
        .iter()
        .map(|r| (r.get(0), r.get(1), time_us(r, 2)))
        .collect();
    let last_alarm = tx
        .query_opt(
            "SELECT seq, recorded_at, kind, detail FROM egress.rollup_event \
             WHERE kind = 'alarm' ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(db("read the last alarm"))?
        .as_ref()
        .map(event);
    let odoo_role = tx
        .query_opt(
            "SELECT o.value, coalesce(r.rolsuper, false), coalesce(r.rolcreaterole, false), \
                    coalesce(r.rolbypassrls, false) \
             FROM egress.trust_option o \
             LEFT JOIN pg_catalog.pg_roles r ON r.rolname = o.value \
             WHERE o.key = 'odoo_role'",
            &[],
        )
        .await
        .map_err(db("read Odoo's role"))?
        .map(|r| {
            let powers = [
                (r.get::<_, bool>(1), "is a superuser"),
                (r.get::<_, bool>(2), "may create roles"),
                (r.get::<_, bool>(3), "bypasses row-level security"),
            ];
            let powers = powers
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, what)| what.to_string())
                .collect();
            (r.get::<_, String>(0), powers)
        });
    let settings = read_settings(&tx, setting_keys).await;
    let forensic_state = if tx
        .query_one(
            "SELECT pg_catalog.to_regclass('egress.forensic_state') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db("look for the forensic state"))?
        .get(0)
    {
        tx.query_opt(
            "SELECT active, host, addon, channel, expires_at, changed_by, entry_seq \
             FROM egress.forensic_state",
            &[],
        )
        .await
        .map_err(db("read the forensic state"))?
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get::<_, Option<SystemTime>>(4).map(to_micros),
                r.get(5),
                r.get(6),
            )
        })
    } else {
        None
    };
    tx.commit().await.map_err(db("end report"))?;
    Ok(ReportData {
        forensic_state,
        last_alarm,
        odoo_role,
        groups,
        gaps,
        events,
        last_vacuum,
        signed_head,
        last_verify,
        settings,
        rollup_state,
        workers,
    })
}

/// The audit settings as Odoo handed them over (the egress-owned inbox
/// `egress.setting`; never Odoo's own tables, whose triggers, policies or
/// views would run with the reader's rights), or None when they cannot be
/// read (no right to). A failed statement would end the transaction, hence
/// the look-up of the privilege first.
async fn read_settings(
    client: &impl GenericClient,
    keys: &[&str],
) -> Option<Vec<(String, String)>> {
    let readable: bool = client
        .query_one(
            "SELECT CASE WHEN pg_catalog.to_regclass('egress.current_setting') IS NULL THEN false \
             ELSE pg_catalog.has_table_privilege('egress.current_setting', 'SELECT') END",
            &[],
        )
        .await
        .ok()?
        .get(0);
    if !readable {
        return None;
    }
    let keys: Vec<&str> = keys.to_vec();
    let rows = client
        .query(
            "SELECT key, value FROM egress.current_setting \
             WHERE key = ANY($1) AND value IS NOT NULL",
            &[&keys],
        )
        .await
        .ok()?;
    Some(
        rows.iter()
            .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
            .collect(),
    )
}
