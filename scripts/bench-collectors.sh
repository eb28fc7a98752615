#!/usr/bin/env bash
# bench-collectors.sh: several collectors, one database (issue 17). Appends/s
# into one chain for 1, 2 and 3 collectors, paced and at full speed, with each
# collector's share, in one command.
#
# For each round (BENCH_RUNS, default 2; the order of 1, 2, 3 collectors
# alternates between rounds, and paced and full runs alternate within): a
# fresh database and `setup`, N fresh collectors (own socket, state directory
# and keys, --collector-id c1..cN), one egress-loadgen per collector
# (BENCH_CLIENTS workers each, default 2), all started together. Measured from
# the journal (`recorded_at`, `collector`):
#   - appends/s: call rows / wall time from the start of the senders to the
#     last row committed (polled every 0.2 s);
#   - the contended window: up to the moment the first collector appended its
#     last row, every collector still had work; in it, each collector's share
#     of the rows appended (fair = 1/N) and the window's appends/s.
# Full speed: BENCH_EVENTS calls per client (default 20000), no pacing. Paced:
# BENCH_RATE calls/s per client (default 500) for BENCH_PACED_SECONDS (default 6).
# Prints a Markdown table on stdout; the reference is the 1-collector run of
# the same round.
#
# Needs: PostgreSQL reachable as a superuser (trust auth), psql, the binaries
# in BENCH_BIN (default target/release; build them with
# `cargo build --release -p egress-collector -p egress-hook --bins`).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${BENCH_RUNS:-2}
CLIENTS=${BENCH_CLIENTS:-2}
EVENTS=${BENCH_EVENTS:-20000}
RATE=${BENCH_RATE:-500}
PACED_SECONDS=${BENCH_PACED_SECONDS:-6}
PGHOST=${PGHOST:-/var/run/postgresql}
SUPERUSER=${BENCH_PG_SUPERUSER:-postgres}
BIN=${BENCH_BIN:-target/release}
DB=${BENCH_DB:-egress_bench_collectors_$$}
WORK=$(mktemp -d /tmp/egress-bench-collectors.XXXXXX)
PIDS=()

say() { printf '%s\n' "$*" >&2; }
die() { say "bench-collectors: $*"; exit 1; }
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d postgres "$@"; }
psql_db() { psql -X -q -tA -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d "$DB" "$@"; }

[ -x "$BIN/egress-collector" ] && [ -x "$BIN/egress-loadgen" ] || die "no binaries in $BIN"

stop_all() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# run N MODE: prints "appends_per_s window_appends_per_s share1 share2 share3 rows"
# (appends/s over the whole run by the wall clock; the rest from the journal).
run() {
    local n=$1 mode=$2 i
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" -c "CREATE DATABASE \"$DB\"" >/dev/null
    "$BIN/egress-collector" setup --database-url "host=$PGHOST user=$SUPERUSER dbname=$DB" >/dev/null
    for i in $(seq "$n"); do
        local dir="$WORK/c$i"
        rm -rf "$dir" && mkdir -p "$dir/state"
        "$BIN/egress-collector" run --collector-id "c$i" \
            --socket "$dir/ingest.sock" --control "$dir/control.sock" --state-dir "$dir/state" \
            --database-url "host=$PGHOST user=egress_collector dbname={db}" \
            --default-db "$DB" 2>"$dir/log" &
        PIDS+=($!)
    done
    for i in $(seq "$n"); do
        for _ in $(seq 300); do
            [ -S "$WORK/c$i/ingest.sock" ] && [ -S "$WORK/c$i/control.sock" ] && break
            sleep 0.1
        done
        [ -S "$WORK/c$i/control.sock" ] || die "collector c$i did not start: $(cat "$WORK/c$i/log")"
    done
    local args=(--clients "$CLIENTS" --json)
    if [ "$mode" = paced ]; then
        args+=(--events $((RATE * PACED_SECONDS)) --rate "$RATE")
    else
        args+=(--events "$EVENTS")
    fi
    local loads=() t0 t1
    t0=$(date +%s.%N)
    for i in $(seq "$n"); do
        "$BIN/egress-loadgen" --socket "$WORK/c$i/ingest.sock" --db "$DB" "${args[@]}" \
            >"$WORK/c$i/load.json" &
        loads+=($!)
    done
    for pid in "${loads[@]}"; do wait "$pid"; done
    local sent=0
    for i in $(seq "$n"); do
        sent=$((sent + $(grep -o '"sent":[0-9]*' "$WORK/c$i/load.json" | head -n1 | cut -d: -f2)))
    done
    for _ in $(seq 600); do
        [ "$(psql_db -c "SELECT count(*) FROM egress.journal WHERE kind = 'call'")" -ge "$sent" ] && break
        sleep 0.2
    done
    t1=$(date +%s.%N)
    printf '%s ' "$(awk -v r="$sent" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", r / (b - a) }')"
    psql_db -F ' ' -c "
        WITH calls AS (SELECT collector, recorded_at FROM egress.journal WHERE kind = 'call'),
        ends AS (SELECT min(last_at) AS t FROM (SELECT max(recorded_at) AS last_at FROM calls GROUP BY collector) x),
        win AS (SELECT collector, count(*) AS n FROM calls, ends WHERE recorded_at <= ends.t GROUP BY collector)
        SELECT round((SELECT sum(n) FROM win) / greatest(extract(epoch FROM (SELECT t FROM ends) - min(recorded_at)), 0.001))::bigint,
               coalesce((SELECT round(100.0 * n / (SELECT sum(n) FROM win), 1) FROM win WHERE collector = 'c1'), 0),
               coalesce((SELECT round(100.0 * n / (SELECT sum(n) FROM win), 1) FROM win WHERE collector = 'c2'), 0),
               coalesce((SELECT round(100.0 * n / (SELECT sum(n) FROM win), 1) FROM win WHERE collector = 'c3'), 0),
               count(*)
        FROM calls"
    stop_all
}

say "bench-collectors: $RUNS rounds, $CLIENTS workers per collector; full: $EVENTS calls per worker; paced: $RATE calls/s per worker for ${PACED_SECONDS}s"
echo "| round | mode | collectors | appends/s (whole run) | vs 1 collector | appends/s (all busy) | share c1 / c2 / c3 (%) | calls |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq "$RUNS"); do
    if [ $((round % 2)) = 1 ]; then order="1 2 3"; else order="3 2 1"; fi
    declare -A ref=()
    results=()
    for n in $order; do
        for mode in full paced; do
            read -r rate window s1 s2 s3 rows < <(run "$n" "$mode")
            [ "$n" = 1 ] && ref[$mode]=$rate
            results+=("$n $mode $rate $window $s1 $s2 $s3 $rows")
            say "round $round: $n collector(s), $mode: $rate appends/s, shares $s1/$s2/$s3, $rows calls"
        done
    done
    for line in "${results[@]}"; do
        read -r n mode rate window s1 s2 s3 rows <<<"$line"
        shares=$s1
        [ "$n" -ge 2 ] && shares="$shares / $s2"
        [ "$n" -ge 3 ] && shares="$shares / $s3"
        ratio=$(awk -v a="$rate" -v b="${ref[$mode]}" 'BEGIN { printf "%.2f", a / b }')
        echo "| $round | $mode | $n | $rate | $ratio | $window | $shares | $rows |"
    done
done
