//! The rollup invariant, written here independently of the collector's own
//! SQL: every rollup row equals the aggregate of the journal rows it sums,
//! compared row by row (both directions of EXCEPT), for calls, gaps and
//! events; and the watermark, to know when the rollups have caught up.

use std::time::Duration;

use crate::{wait_until, TestDb};

/// The journal's calls as the rollups must sum them: per UTC day of
/// recorded_at, absent text as '', absent class as 'unknown'; an error is an
/// error_class or a status of 400 or more.
const CALLS_FROM_JOURNAL: &str = "\
SELECT (recorded_at AT TIME ZONE 'UTC')::date AS day, coalesce(addon, '') AS addon, \
       coalesce(component, '') AS component, coalesce(class, 'unknown') AS class, \
       coalesce(channel, '') AS channel, coalesce(host, '') AS host, \
       count(*)::bigint AS calls, sum(coalesce(bytes_out, 0))::bigint AS bytes_out, \
       sum(coalesce(bytes_in, 0))::bigint AS bytes_in, \
       count(*) FILTER (WHERE error_class IS NOT NULL OR coalesce(status, 0) >= 400)::bigint AS errors, \
       count(*) FILTER (WHERE self_egress IS TRUE)::bigint AS self_egress, \
       min(recorded_at) AS first_seen, max(recorded_at) AS last_seen \
FROM egress.journal WHERE kind = 'call' GROUP BY 1, 2, 3, 4, 5, 6";

const CALLS_FROM_ROLLUP: &str = "\
SELECT day, addon, component, class, channel, host, calls, bytes_out, bytes_in, errors, \
       self_egress, first_seen, last_seen FROM egress.rollup";

const GAPS_FROM_JOURNAL: &str = "\
SELECT (recorded_at AT TIME ZONE 'UTC')::date AS day, coalesce(gap_reason, '') AS reason, \
       count(*)::bigint AS entries, sum(coalesce(gap_count, 0))::bigint AS events, \
       min(recorded_at) AS first_seen, max(recorded_at) AS last_seen \
FROM egress.journal WHERE kind = 'gap' GROUP BY 1, 2";

const GAPS_FROM_ROLLUP: &str =
    "SELECT day, reason, entries, events, first_seen, last_seen FROM egress.rollup_gap";

const EVENTS_FROM_JOURNAL: &str = "\
SELECT seq, recorded_at, kind, detail FROM egress.journal \
WHERE kind IN ('config_change', 'vacuum', 'alarm')";

const EVENTS_FROM_ROLLUP: &str = "SELECT seq, recorded_at, kind, detail FROM egress.rollup_event";

/// The last seq the rollups hold.
pub fn watermark(db: &TestDb) -> i64 {
    db.sql()
        .int("SELECT watermark FROM egress.rollup_state WHERE id")
}

/// Waits until the rollups hold the whole journal; returns whether they do.
pub fn wait_caught_up(db: &TestDb, timeout: Duration) -> bool {
    let (mark, head) = wait_until(
        timeout,
        || (watermark(db), db.head_seq()),
        |(mark, head)| mark == head,
    );
    mark == head
}

/// Rows that differ between the rollups and the journal's aggregate, one
/// line each, at most 20 per table and side (empty: the invariant holds).
pub fn mismatches(db: &TestDb) -> Vec<String> {
    let mut out = Vec::new();
    for (what, journal, rollup) in [
        ("calls", CALLS_FROM_JOURNAL, CALLS_FROM_ROLLUP),
        ("gaps", GAPS_FROM_JOURNAL, GAPS_FROM_ROLLUP),
        ("events", EVENTS_FROM_JOURNAL, EVENTS_FROM_ROLLUP),
    ] {
        for (side, left, right) in [("journal", journal, rollup), ("rollup", rollup, journal)] {
            let sql = format!(
                "SELECT row_to_json(x)::text FROM (({left}) EXCEPT ({right})) x ORDER BY 1 LIMIT 20"
            );
            for row in db.sql().query(&sql) {
                out.push(format!(
                    "{what}: only in the {side}: {}",
                    row.get::<_, String>(0)
                ));
            }
        }
    }
    out
}

/// Rows in the call rollups (for "the rollups are not empty").
pub fn rollup_rows(db: &TestDb) -> i64 {
    db.sql().int("SELECT count(*) FROM egress.rollup")
}
