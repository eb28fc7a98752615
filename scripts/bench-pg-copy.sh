#!/usr/bin/env bash
# bench-pg-copy.sh: PostgreSQL's own cost of appending journal rows, the
# physical reference for the ingest benchmark (scripts/bench-ingest.sh).
#
# Journals BENCH_EVENTS (default 240,000) load-generator calls through the
# release collector at a paced rate, copies the call rows out with binary
# COPY, then times BENCH_RUNS (default 3) binary COPYs of them into an empty
# table shaped like egress.journal (same columns, same primary key), each
# after a TRUNCATE and a CHECKPOINT. One COPY, one transaction: the cheapest
# way PostgreSQL takes these rows, without the collector's batching,
# chaining or other statements. Prints rows/s and microseconds per row of
# each run and their median.
#
# Needs: a local PostgreSQL reachable as a superuser (trust auth), psql, cargo.
# Settings (environment): BENCH_EVENTS, BENCH_RUNS, BENCH_DB (default
# egress_bench_copy; dropped and recreated!), PGHOST (default
# /var/run/postgresql), BENCH_PG_SUPERUSER (default postgres),
# BENCH_NO_BUILD=1 (use the release binaries already built).
set -euo pipefail

cd "$(dirname "$0")/.."
EVENTS=${BENCH_EVENTS:-240000}
RUNS=${BENCH_RUNS:-3}
DB=${BENCH_DB:-egress_bench_copy}
PGHOST=${PGHOST:-/var/run/postgresql}
SUPERUSER=${BENCH_PG_SUPERUSER:-postgres}
BIN=${CARGO_TARGET_DIR:-$(pwd)/target}/release

say() { printf '%s\n' "$*" >&2; }
psql_db() { psql -X -q -tA -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d "$1" "${@:2}"; }

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build --release -p egress-collector -p egress-hook --bins >&2
fi

WORK=$(mktemp -d /tmp/egress-copy.XXXXXX)
chmod 0755 "$WORK"
COLLECTOR_PID=
cleanup() {
    if [ -n "$COLLECTOR_PID" ]; then kill -TERM "$COLLECTOR_PID" 2>/dev/null || true; fi
    psql_db postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

psql_db postgres -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" -c "CREATE DATABASE \"$DB\"" >/dev/null
"$BIN/egress-collector" setup --database-url "host=$PGHOST user=$SUPERUSER dbname=$DB" >/dev/null
"$BIN/egress-collector" run --socket "$WORK/ingest.sock" --control "$WORK/control.sock" \
    --state-dir "$WORK/state" --database-url "host=$PGHOST user=egress_collector dbname={db}" \
    --default-db "$DB" 2>"$WORK/collector.log" &
COLLECTOR_PID=$!
for _ in $(seq 300); do [ -S "$WORK/ingest.sock" ] && break; sleep 0.1; done
say "== journaling $EVENTS calls"
"$BIN/egress-loadgen" --socket "$WORK/ingest.sock" --db "$DB" --clients 4 \
    --events $((EVENTS / 4)) --rate 6000 --linger-ms 3000 >&2
sleep 3
kill -TERM "$COLLECTOR_PID"
wait "$COLLECTOR_PID" || true
COLLECTOR_PID=

# The server writes and reads the file itself: COPY is timed without the
# client protocol in the way.
mkdir "$WORK/copy"
chmod 0777 "$WORK/copy"
ROWS_FILE=$WORK/copy/rows.bin
psql_db "$DB" -c "COPY (SELECT * FROM egress.journal WHERE kind = 'call' ORDER BY seq) TO '$ROWS_FILE' (FORMAT binary)"
ROWS=$(psql_db "$DB" -c "SELECT count(*) FROM egress.journal WHERE kind = 'call'")
psql_db "$DB" -c "CREATE TABLE public.copy_target (LIKE egress.journal INCLUDING ALL)"
say "== $ROWS call rows, $(stat -c %s "$ROWS_FILE") bytes of binary COPY; $RUNS COPYs"
results=()
for run in $(seq "$RUNS"); do
    psql_db "$DB" -c "TRUNCATE public.copy_target" -c "CHECKPOINT" >/dev/null
    t0=$(date +%s%N)
    psql_db "$DB" -c "COPY public.copy_target FROM '$ROWS_FILE' (FORMAT binary)" >/dev/null
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    rate=$(( ROWS * 1000 / (ms > 0 ? ms : 1) ))
    us=$(awk -v ms="$ms" -v rows="$ROWS" 'BEGIN { printf "%.1f", ms * 1000 / rows }')
    say "   run $run: $rate rows/s ($ROWS rows in $ms ms, $us us/row), load average $(cut -d' ' -f1 /proc/loadavg)"
    results+=("$rate $us")
done
median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
say "== median: ${median% *} rows/s, ${median#* } us/row"
