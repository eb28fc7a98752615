#!/usr/bin/env bash
# bench-report.sh: the Trust Report on a 10,000,000-row journal, answered from
# the rollups and, for comparison, by a scan of the whole journal. One command:
#
#   1. builds the release collector;
#   2. creates BENCH_DB (dropped and recreated!) and runs `egress-collector setup`;
#   3. writes BENCH_ROWS (default 10,000,000) journal-shaped rows spread over
#      BENCH_DAYS (default 90) days up to now, with scripts/bench-report-journal.sql
#      (placeholder hashes: that journal does not verify; it is for timing reads);
#   4. starts the release collector on it: its rollup actor finds the watermark
#      at 0 and folds the whole journal into the rollups, in transactions of
#      --rollup-catch-up-rows rows, exactly as after a restart; reports how long;
#   5. runs the benchmark (rollup/benches/report.rs): the report built from the
#      rollups and from a journal scan, for --since 7d, 30d and all;
#   6. times the whole command `egress-collector report --database-url … --json`
#      (process start, connection, reads, JSON) BENCH_CLI_RUNS times (default 20).
# Writes docs/PERFORMANCE-report.md (BENCH_OUTPUT; "-" to only print).
#
# Needs: a local PostgreSQL reachable as a superuser (trust auth), psql, cargo,
# and about 6 GB of disk. Settings (environment): BENCH_ROWS, BENCH_DAYS,
# BENCH_DB (default egress_bench_report), PGHOST (default /var/run/postgresql),
# BENCH_PG_SUPERUSER (default postgres), BENCH_CLI_RUNS, BENCH_OUTPUT,
# BENCH_KEEP=1 (keep the database afterwards), BENCH_REUSE=1 (measure an
# existing BENCH_DB again without rebuilding it), and EGRESS_BENCH_RUNS /
# EGRESS_BENCH_SCAN_RUNS for the benchmark binary.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROWS=${BENCH_ROWS:-10000000}
DAYS=${BENCH_DAYS:-90}
DB=${BENCH_DB:-egress_bench_report}
PGHOST=${PGHOST:-/var/run/postgresql}
SUPERUSER=${BENCH_PG_SUPERUSER:-postgres}
CLI_RUNS=${BENCH_CLI_RUNS:-20}
OUTPUT=${BENCH_OUTPUT:-docs/PERFORMANCE-report.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
URL="host=$PGHOST user=$SUPERUSER dbname=$DB"
SCRATCH=$(mktemp -d /tmp/egress-bench-report.XXXXXX)
COLLECTOR_PID=

say() { printf '%s\n' "$*" >&2; }
die() { say "bench-report: $*"; exit 1; }
now_ms() { date +%s%3N; }

cleanup() {
    if [ -n "$COLLECTOR_PID" ] && kill -0 "$COLLECTOR_PID" 2>/dev/null; then
        kill "$COLLECTOR_PID" && wait "$COLLECTOR_PID" || true
    fi
    rm -rf "$SCRATCH"
    if [ "${BENCH_KEEP:-0}" != 1 ] && [ "${BENCH_REUSE:-0}" != 1 ]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d postgres "$@"; }
psql_bench() { psql -X -q -tA -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d "$DB" "$@"; }

say "== building the release collector"
cargo build --release -p egress-collector --bins >&2
[ -x "$BIN/egress-collector" ] || die "$BIN/egress-collector missing after the build"
psql_admin -c 'SELECT 1' >/dev/null || die "cannot reach PostgreSQL at $PGHOST as $SUPERUSER"

if [ "${BENCH_REUSE:-0}" != 1 ]; then
    say "== creating $DB"
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
    psql_admin -c "CREATE DATABASE \"$DB\"" >/dev/null
    psql_bench -c "CREATE TABLE public.ir_config_parameter (id serial PRIMARY KEY,
        key varchar NOT NULL UNIQUE, value text NOT NULL)" >/dev/null
    "$BIN/egress-collector" setup --database-url "$URL" >&2

    say "== writing $ROWS journal rows over $DAYS days (scripts/bench-report-journal.sql)"
    started=$(now_ms)
    psql_bench -v rows="$ROWS" -v days="$DAYS" -f scripts/bench-report-journal.sql >/dev/null
    psql_bench -c "VACUUM ANALYZE egress.journal" >/dev/null
    GENERATE_S=$(( ($(now_ms) - started) / 1000 ))
    say "   $GENERATE_S s"

    say "== the collector folds the journal into the rollups from watermark 0"
    started=$(now_ms)
    "$BIN/egress-collector" run --socket "$SCRATCH/ingest.sock" --control "$SCRATCH/control.sock" \
        --state-dir "$SCRATCH/state" --database-url "host=$PGHOST user=egress_collector dbname={db}" \
        --default-db "$DB" --rollup-flush-ms 100 --rollup-catch-up-rows 500000 \
        2>"$SCRATCH/collector.log" &
    COLLECTOR_PID=$!
    while true; do
        mark=$(psql_bench -c "SELECT watermark FROM egress.rollup_state")
        [ "$mark" -ge "$ROWS" ] && break
        kill -0 "$COLLECTOR_PID" 2>/dev/null || { cat "$SCRATCH/collector.log" >&2; die "the collector died"; }
        sleep 0.2
    done
    FOLD_S=$(( ($(now_ms) - started) / 1000 ))
    kill "$COLLECTOR_PID" && wait "$COLLECTOR_PID" || true
    COLLECTOR_PID=
    say "   $FOLD_S s"
    psql_bench -c "ANALYZE egress.rollup; ANALYZE egress.rollup_gap; ANALYZE egress.rollup_event" >/dev/null
else
    GENERATE_S="(reused)"
    FOLD_S="(reused)"
fi

JOURNAL_SIZE=$(psql_bench -c "SELECT pg_size_pretty(pg_total_relation_size('egress.journal'))")
ROLLUP_SIZE=$(psql_bench -c "SELECT pg_size_pretty(pg_total_relation_size('egress.rollup') \
    + pg_total_relation_size('egress.rollup_gap') + pg_total_relation_size('egress.rollup_event'))")
ROLLUP_ROWS=$(psql_bench -c "SELECT count(*) FROM egress.rollup")

say "== the report, from the rollups and from a journal scan (rollup/benches/report.rs)"
BENCH_TABLE=$(EGRESS_BENCH_DATABASE_URL="$URL" cargo bench -q -p egress-rollup --bench report 2>/dev/null)
printf '%s\n' "$BENCH_TABLE" >&2

say "== the whole command, $CLI_RUNS times"
CLI_TIMES=()
for _ in $(seq 1 "$CLI_RUNS"); do
    started=$(date +%s%N)
    "$BIN/egress-collector" report --database-url "$URL" --since 7d --json >/dev/null
    CLI_TIMES+=($(( ($(date +%s%N) - started) / 100000 )))
done
CLI_SORTED=$(printf '%s\n' "${CLI_TIMES[@]}" | sort -n)
tenths() { awk -v t="$1" 'BEGIN { printf "%.1f", t / 10 }'; }
CLI_MIN=$(tenths "$(printf '%s\n' "$CLI_SORTED" | head -n1)")
CLI_MEDIAN=$(tenths "$(printf '%s\n' "$CLI_SORTED" | sed -n "$(( (CLI_RUNS + 1) / 2 ))p")")
CLI_MAX=$(tenths "$(printf '%s\n' "$CLI_SORTED" | tail -n1)")
say "   min $CLI_MIN ms, median $CLI_MEDIAN ms, max $CLI_MAX ms"
started=$(now_ms)
"$BIN/egress-collector" report --database-url "$URL" --since 7d --json --from-journal >/dev/null
CLI_SCAN_MS=$(( $(now_ms) - started ))
say "   the same command answered by a journal scan: $CLI_SCAN_MS ms"

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
PGVERSION=$(psql_bench -c "SHOW server_version")
SHARED=$(psql_bench -c "SHOW shared_buffers")

page() {
cat <<EOF
# Performance: the Trust Report

\`egress-collector report\` on a journal of $ROWS rows, answered from the
rollups, and the same question answered by a scan of the whole journal.
Every figure below was written by \`scripts/bench-report.sh\`; run it again to
refresh this page.

## What is measured

- **From the rollups**: \`report::build\` (what \`report\` runs): the
  period's call rollups grouped by class, component, host and addon, the
  gap rollups, the settings and vacuum events, the latest signed head and
  verification, the settings, the watermark, in one read-only snapshot;
  then the verdict and the tables. Measured in-process by
  \`rollup/benches/report.rs\` on one open connection, after one untimed run.
- **From a journal scan**: the same report with the call and gap sums and
  the events computed from \`egress.journal\` instead (\`Source::JournalScan\`,
  used only for this comparison and by the tests): every row of the period is read.
- **The whole command**: \`egress-collector report --database-url … --since 7d
  --json\`, wall time including process start, connection and JSON output.

The benchmark also checks that both sources give the same report.

## The journal

Built by \`scripts/bench-report-journal.sql\`: $ROWS rows spread evenly over
$DAYS days up to now (about $(( ROWS / DAYS )) a day), 99.5 % calls to 40
destinations (2 vendor, 28 third-party, 4 local, 6 unknown) from 25 addons
over 4 channels, with sizes, 1.9 % error statuses and 1 % failures; 0.47 %
gap entries; 0.05 % settings changes. **Its \`prev_hash\` and \`row_hash\` are
placeholders: this journal does not verify** (it times reads; the chain is
measured in docs/PERFORMANCE.md and docs/PERFORMANCE-signer.md). The rollups
were built from it by the collector itself: started on the database, its
rollup actor found the watermark at 0 and folded the journal in
transactions of 500,000 rows, as it does after a restart.

| | |
|---|---|
| journal rows | $ROWS ($JOURNAL_SIZE with its index) |
| call rollup rows | $ROLLUP_ROWS (all rollup tables: $ROLLUP_SIZE) |
| writing the journal (generate_series, then VACUUM ANALYZE) | $GENERATE_S s |
| folding it into the rollups (the collector's catch-up) | $FOLD_S s |

## Results

$BENCH_TABLE

The whole command (\`--since 7d\`), $CLI_RUNS runs: min $CLI_MIN ms, median
$CLI_MEDIAN ms, max $CLI_MAX ms. The same command answered by a journal scan
(\`--from-journal\`, hidden, for this comparison): $CLI_SCAN_MS ms.

## Machine

- CPUs: $CPUS ($CPU), shared with other builds while measuring
- Memory: $MEM
- PostgreSQL $PGVERSION, shared_buffers $SHARED (the distribution's defaults)
- Release build (\`cargo bench\` profile for the in-process figures)
EOF
}

if [ "$OUTPUT" = - ]; then
    page
else
    page >"$OUTPUT"
    say "== wrote $OUTPUT"
fi
