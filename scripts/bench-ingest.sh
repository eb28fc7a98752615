#!/usr/bin/env bash
# bench-ingest.sh: sustained ingest benchmark of egress-collector, in one command.
#
# Builds the release binaries, then BENCH_RUNS times (default 3): creates a fresh
# bench database, runs `egress-collector setup`, starts the release collector,
# drives it with egress-loadgen at full speed for about BENCH_SECONDS (default 60),
# and measures
#   - events/s reaching the database: call rows committed / wall time from the
#     start of the load to the last commit (polled with SQL every 0.5 s),
#   - loss, fully accounted: hook-side drops (loadgen's report) and collector-side
#     gap entries, checked against the identity calls + gaps = events attempted,
#   - the collector's peak RSS (VmHWM from /proc/<pid>/status),
#   - where the machine's CPU went: user + system time of the collector, of
#     PostgreSQL (every postgres process, so other users of the server count
#     too) and of the load generator, in microseconds per committed call.
# Prints each run and the median, and writes docs/PERFORMANCE.md.
#
# Needs: a local PostgreSQL reachable as a superuser (trust auth), psql, cargo.
# Settings (environment): BENCH_RUNS, BENCH_SECONDS, BENCH_CLIENTS (default 4),
# BENCH_EVENTS (events per client; default: calibrated for BENCH_SECONDS),
# BENCH_RATE (events/s per client; default: full speed; when set, BENCH_EVENTS
# defaults to BENCH_RATE x BENCH_SECONDS),
# BENCH_DB (default egress_bench; dropped and recreated!), PGHOST (default
# /var/run/postgresql), BENCH_PG_SUPERUSER (default postgres), BENCH_OUTPUT
# (default docs/PERFORMANCE.md; "-" to skip writing it), BENCH_APPEND=1 (add a
# results section to an existing page instead of rewriting it), BENCH_NO_BUILD=1
# (use the release binaries already built).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
RUNS=${BENCH_RUNS:-3}
SECONDS_TARGET=${BENCH_SECONDS:-60}
CLIENTS=${BENCH_CLIENTS:-4}
DB=${BENCH_DB:-egress_bench}
PGHOST=${PGHOST:-/var/run/postgresql}
SUPERUSER=${BENCH_PG_SUPERUSER:-postgres}
OUTPUT=${BENCH_OUTPUT:-docs/PERFORMANCE.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

say() { printf '%s\n' "$*" >&2; }
die() { say "bench-ingest: $*"; exit 1; }

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d postgres "$@"; }
psql_bench() { psql -X -q -tA -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d "$DB" "$@"; }

# Integer field of a flat JSON object: jnum KEY JSON.
jnum() { printf '%s' "$2" | grep -o "\"$1\":[0-9]*" | head -n1 | cut -d: -f2; }

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    say "== building release binaries"
    cargo build --release -p egress-collector -p egress-hook --bins >&2
fi
[ -x "$BIN/egress-collector" ] || die "$BIN/egress-collector missing after the build"
[ -x "$BIN/egress-loadgen" ] || die "$BIN/egress-loadgen missing after the build"
psql_admin -c 'SELECT 1' >/dev/null || die "cannot reach PostgreSQL at $PGHOST as $SUPERUSER"

QLEN=$(cat /proc/sys/net/unix/max_dgram_qlen 2>/dev/null || echo unknown)
if [ "$QLEN" != unknown ] && [ "$QLEN" -lt 512 ]; then
    say "warning: net.unix.max_dgram_qlen is $QLEN (CI uses 512): expect more hook-side drops"
fi

WORK=$(mktemp -d /tmp/egress-bench.XXXXXX)
COLLECTOR_PID=
cleanup() {
    if [ -n "$COLLECTOR_PID" ] && kill -0 "$COLLECTOR_PID" 2>/dev/null; then
        kill -TERM "$COLLECTOR_PID" 2>/dev/null || true
        wait "$COLLECTOR_PID" 2>/dev/null || true
    fi
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

fresh_database() {
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" -c "CREATE DATABASE \"$DB\"" >/dev/null
    "$BIN/egress-collector" setup --database-url "host=$PGHOST user=$SUPERUSER dbname=$DB" >/dev/null
}

start_collector() { # start_collector LOGFILE
    rm -f "$WORK/ingest.sock" "$WORK/control.sock"
    mkdir -p "$WORK/state"
    "$BIN/egress-collector" run \
        --socket "$WORK/ingest.sock" --control "$WORK/control.sock" --state-dir "$WORK/state" \
        --database-url "host=$PGHOST user=egress_collector dbname={db}" \
        --default-db "$DB" 2>"$1" &
    COLLECTOR_PID=$!
    for _ in $(seq 300); do
        [ -S "$WORK/ingest.sock" ] && [ -S "$WORK/control.sock" ] && return 0
        kill -0 "$COLLECTOR_PID" 2>/dev/null || { cat "$1" >&2; die "the collector exited at start"; }
        sleep 0.1
    done
    cat "$1" >&2
    die "the collector did not create its sockets within 30 s"
}

stop_collector() {
    kill -TERM "$COLLECTOR_PID"
    wait "$COLLECTOR_PID" || die "the collector did not exit 0 after SIGTERM"
    COLLECTOR_PID=
}

peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$COLLECTOR_PID/status"; }

# CPU time (user + system, in clock ticks) of the collector, and of every
# postgres process alive now.
collector_ticks() { awk '{ print $14 + $15 }' "/proc/$COLLECTOR_PID/stat"; }
postgres_ticks() {
    local stat total=0
    for stat in /proc/[0-9]*/stat; do
        [ "$(cat "${stat%/stat}/comm" 2>/dev/null)" = postgres ] || continue
        total=$((total + $(awk '{ print $14 + $15 }' "$stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
# User + system seconds of this shell's finished children so far, into
# CHILDREN_S (`times` must run in this shell: a subshell has no children yet).
children_seconds() {
    times >"$WORK/times"
    CHILDREN_S=$(tail -n1 "$WORK/times" | awk '{ gsub(/s/, "", $1); gsub(/s/, "", $2);
        split($1, u, "m"); split($2, s, "m"); printf "%.3f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
}

now_ns() { date +%s%N; }

# One measured load. Prints:
# calls attempted sent dropped gaps seconds rate rss_kib loadgen_ms client_reasons collector_reasons
# collector_us postgres_us loadgen_us (CPU per committed call)
measure() { # measure EVENTS_PER_CLIENT LOGFILE
    local events=$1 log=$2
    fresh_database
    start_collector "$log"
    local attempted=$((events * CLIENTS))
    local t0 report c0 p0 l0
    c0=$(collector_ticks)
    p0=$(postgres_ticks)
    children_seconds
    l0=$CHILDREN_S
    t0=$(now_ns)
    report=$("$BIN/egress-loadgen" --socket "$WORK/ingest.sock" --db "$DB" \
        --events "$events" --clients "$CLIENTS" --linger-ms 10000 --json ${RATE_ARGS[@]+"${RATE_ARGS[@]}"})
    local l1
    children_seconds
    l1=$CHILDREN_S
    # Poll until every event is accounted for; the load's end is the last
    # moment the count of committed rows grew.
    local calls=0 gaps=0 last=-1 t_last=$t0 stable_since
    stable_since=$(now_ns)
    while :; do
        read -r calls gaps < <(psql_bench -F ' ' -c \
            "SELECT count(*) FILTER (WHERE kind = 'call'), coalesce(sum(gap_count), 0) FROM egress.journal")
        local t
        t=$(now_ns)
        if [ "$calls" != "$last" ]; then
            last=$calls
            t_last=$t
            stable_since=$t
        fi
        [ $((calls + gaps)) -ge "$attempted" ] && break
        # Nothing new for 30 s: report what is there (the accounting check fails).
        [ $((t - stable_since)) -gt 30000000000 ] && break
        sleep 0.5
    done
    local rss collector_reasons c1 p1 tck
    c1=$(collector_ticks)
    p1=$(postgres_ticks)
    tck=$(getconf CLK_TCK)
    rss=$(peak_rss_kib)
    collector_reasons=$(psql_bench -c "SELECT string_agg(gap_reason || ':' || n, ',' ORDER BY gap_reason)
        FROM (SELECT gap_reason, sum(gap_count) AS n FROM egress.journal
              WHERE kind = 'gap' AND gap_reason NOT IN ($HOOK_REASONS) GROUP BY 1) AS g")
    stop_collector
    local secs rate reasons
    secs=$(awk -v a="$t0" -v b="$t_last" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    rate=$(awk -v n="$calls" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    reasons=$(printf '%s' "$report" | grep -o '"dropped_by_reason":{[^}]*}' | sed 's/"dropped_by_reason"://; s/[{}"]//g')
    echo "$calls $attempted $(jnum sent "$report") $(jnum dropped "$report") $gaps $secs $rate $rss" \
        "$(jnum elapsed_ms "$report") ${reasons:-none} ${collector_reasons:-none}" \
        "$(awk -v n="$calls" -v c=$((c1 - c0)) -v p=$((p1 - p0)) -v l0="$l0" -v l1="$l1" -v t="$tck" \
            'BEGIN { n = (n > 0 ? n : 1); printf "%.1f %.1f %.1f", c / t * 1e6 / n, p / t * 1e6 / n, (l1 - l0) * 1e6 / n }')"
}

HOOK_REASONS="'socket_missing','buffer_full','too_large','permission_denied','send_error'"
RATE_ARGS=()
PACE='at full speed (no `--rate`)'
if [ -n "${BENCH_RATE:-}" ]; then
    RATE_ARGS=(--rate "$BENCH_RATE")
    PACE="paced at \`--rate $BENCH_RATE\` events/s per client"
fi

if [ -n "${BENCH_EVENTS:-}" ]; then
    EVENTS=$BENCH_EVENTS
elif [ -n "${BENCH_RATE:-}" ]; then
    EVENTS=$((BENCH_RATE * SECONDS_TARGET))
else
    # At full speed the clients send (or drop) faster than anything is
    # committed: size the load by how fast they get through their events.
    say "== calibrating (a short run to size a ~${SECONDS_TARGET} s load)"
    CALIBRATION_EVENTS=50000
    measure "$CALIBRATION_EVENTS" "$WORK/calibration.log" >"$WORK/calibration"
    read -r c _ _ _ _ s r _ ms _ <"$WORK/calibration"
    [ "$r" -gt 0 ] || die "calibration committed nothing ($c rows in $s s); see the collector log"
    [ "${ms:-0}" -gt 0 ] || ms=1
    EVENTS=$(( CALIBRATION_EVENTS * 1000 * SECONDS_TARGET / ms ))
    say "   each client got through $CALIBRATION_EVENTS events in $ms ms ($r calls/s committed)" \
        "-> $EVENTS events per client"
fi

say "== $RUNS runs: $CLIENTS clients x $EVENTS events, ${BENCH_RATE:-full speed}${BENCH_RATE:+ events/s per client}"
RESULTS=()
for i in $(seq "$RUNS"); do
    measure "$EVENTS" "$WORK/run-$i.log" >"$WORK/result-$i"
    line=$(cat "$WORK/result-$i")
    RESULTS+=("$line")
    read -r calls attempted sent dropped gaps secs rate rss ms reasons creasons cpu_c cpu_p cpu_l <<<"$line"
    accounted=no
    [ $((calls + gaps)) -eq "$attempted" ] && accounted=yes
    say "   run $i: $rate calls/s ($calls calls in $secs s), attempted $attempted, sent $sent," \
        "dropped by clients $dropped ($reasons), events in gaps $gaps (collector-side: $creasons)," \
        "accounted: $accounted," \
        "peak RSS $((rss / 1024)) MiB, load ran $ms ms," \
        "CPU us per call: collector $cpu_c, PostgreSQL $cpu_p, loadgen $cpu_l"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
MEDIAN_RATE=$(for l in "${RESULTS[@]}"; do echo "$l" | awk '{print $7}'; done | median)
MEDIAN_RSS=$(for l in "${RESULTS[@]}"; do echo "$l" | awk '{print $8}'; done | median)
MEDIAN_LOSS=$(for l in "${RESULTS[@]}"; do echo "$l" | awk '{ printf "%.2f\n", 100 * ($2 - $1) / $2 }'; done | median)
MEDIAN_CPU_C=$(for l in "${RESULTS[@]}"; do echo "$l" | awk '{print $12}'; done | median)
MEDIAN_CPU_P=$(for l in "${RESULTS[@]}"; do echo "$l" | awk '{print $13}'; done | median)
MEDIAN_CPU_L=$(for l in "${RESULTS[@]}"; do echo "$l" | awk '{print $14}'; done | median)
MEDIAN_COLLECTOR_LOSS=$(for l in "${RESULTS[@]}"; do echo "$l" | awk '{ printf "%.2f\n", 100 * ($5 - $4) / $2 }'; done | median)
say "== median: $MEDIAN_RATE calls/s committed, $MEDIAN_LOSS % of events in gaps, peak RSS $((MEDIAN_RSS / 1024)) MiB," \
    "CPU us per call: collector $MEDIAN_CPU_C, PostgreSQL $MEDIAN_CPU_P, loadgen $MEDIAN_CPU_L"

[ "$OUTPUT" = "-" ] && exit 0

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
PGVER=$(psql_admin -tA -c 'SHOW server_version')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)

# The page's opening: what, how, on which machine. With BENCH_APPEND=1 and an
# existing page, only a results section is added (e.g. a paced run after the
# full-speed one).
header() {
    cat <<HEADER
# Performance

Sustained ingest of \`egress-collector\`, measured by \`scripts/bench-ingest.sh\`
(run it again to refresh this page; every figure below was written by it).

## What is measured

- **Committed calls per second**: call rows in \`egress.journal\` divided by the
  wall time from the start of the load to the last commit, with hash chaining,
  one transaction per batch, on the local PostgreSQL.
- **Loss, accounted**: events the clients dropped (their own report, by reason)
  plus events the collector recorded as gap entries; the run checks the
  accounting identity *call rows + sum(gap_count) = events attempted*.
- **Peak RSS** of the collector process (\`VmHWM\` from \`/proc/<pid>/status\`).
- **CPU per committed call**: user + system time of the collector, of
  PostgreSQL (every \`postgres\` process: other users of the server count
  too) and of the load generator during the run, divided by call rows.

## How

Release build. For each run: a fresh database, \`egress-collector setup\`, a
fresh collector (\`run\`, defaults), then \`egress-loadgen\` with \`--clients N\`,
\`--events M\` and \`--linger-ms 10000\`, at full speed or paced with \`--rate\`
(each results section says which). Runs per configuration: $RUNS; the
median is reported. The load generator, the collector and PostgreSQL share
the machine, so at full speed they compete for its CPUs: full speed is
deliberate overload, showing that loss stays accounted for and what the
collector holds meanwhile; the sustained capacity is the highest paced rate
that loses nothing.

## Machine

- CPUs: $(nproc) ($CPU)
- Memory: $MEM
- PostgreSQL: $PGVER
- Kernel: $(uname -r); \`net.unix.max_dgram_qlen\` = $QLEN
- Rust: $(rustc --version)
- Load average when the page was written: $(cut -d' ' -f1-3 /proc/loadavg)
HEADER
}

results() {
    cat <<RESULTS

## Results: $CLIENTS clients $PACE

Commit $COMMIT, measured $(date -u +%Y-%m-%d). $CLIENTS clients × $EVENTS events
(about $SECONDS_TARGET s of load).

Median: **$MEDIAN_RATE committed calls/s**, $MEDIAN_LOSS % of attempted events
in gap entries ($MEDIAN_COLLECTOR_LOSS % lost inside the collector, the rest
dropped by the clients when the socket's receive queue was full), collector
peak RSS $((MEDIAN_RSS / 1024)) MiB, CPU per committed call (µs): collector
$MEDIAN_CPU_C, PostgreSQL $MEDIAN_CPU_P, load generator $MEDIAN_CPU_L. A run is
accounted for exactly when its "accounted" column says yes.

| run | committed calls/s | calls | seconds | attempted | accepted by the socket | dropped by clients | lost in the collector | accounted | peak RSS (MiB) | CPU µs/call: collector, PostgreSQL, loadgen |
|---|---|---|---|---|---|---|---|---|---|---|
RESULTS
    local i=0 l
    for l in "${RESULTS[@]}"; do
        i=$((i + 1))
        read -r calls attempted sent dropped gaps secs rate rss ms reasons creasons cpu_c cpu_p cpu_l <<<"$l"
        accounted=no
        [ $((calls + gaps)) -eq "$attempted" ] && accounted=yes
        echo "| $i | $rate | $calls | $secs | $attempted | $sent | $dropped ($reasons) |" \
            "$((gaps - dropped)) ($creasons) | $accounted | $((rss / 1024)) | $cpu_c, $cpu_p, $cpu_l |"
    done
}

if [ "${BENCH_APPEND:-0}" = 1 ] && [ -f "$OUTPUT" ]; then
    results >>"$OUTPUT"
else
    { header; results; } >"$OUTPUT"
fi
say "== wrote $OUTPUT"
