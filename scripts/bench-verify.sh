#!/usr/bin/env bash
# bench-verify.sh: the three verifiers on one 1,000,000-row journal. One command:
#
#   1. builds the release collector and egress-verify;
#   2. creates BENCH_DB (dropped and recreated!) and runs `egress-collector setup`;
#   3. writes BENCH_ROWS (default 1,000,000) realistic rows, chained, with a
#      head signed every 10,000 rows (collector/benches/verify_journal.rs);
#   4. times `egress-collector verify` on the database, BENCH_RUNS times;
#   5. starts the collector on the bench's state directory and times
#      `egress-collector export` of the whole journal, once;
#   6. times `egress-verify FILE --hmac-key` (BENCH_RUNS times) and
#      `verify_export.py FILE --hmac-key` (BENCH_PY_RUNS times, default 3) on
#      that export.
# Prints a table (median of the runs, rows/s, CPU time, peak RSS of the
# timed process, load average before each run) for docs/PERFORMANCE-signer.md.
# With BENCH_BEFORE_REV=<git revision>, the three verifiers of that revision
# are built too (from `git archive`, under BENCH_DIR) and timed on the same
# journal and export, alternating run by run with the current ones, so that
# both see the same load.
#
# Needs: a local PostgreSQL reachable as a superuser (trust auth), psql, cargo,
# python3 (with `cryptography` to check Ed25519), GNU time (/usr/bin/time),
# and about 6 GB of disk. Settings (environment): BENCH_ROWS, BENCH_RUNS
# (default 5), BENCH_PY_RUNS, BENCH_DB (default egress_bench_verify), PGHOST
# (default /var/run/postgresql), BENCH_PG_SUPERUSER (default postgres),
# BENCH_PROFILE=compact (gap rows only), BENCH_DIR (where the state and the
# export go; default target/tmp/bench-verify), BENCH_KEEP=1 (keep the database
# and the export), BENCH_REUSE=1 (time an existing BENCH_DB and export again).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
ROWS=${BENCH_ROWS:-1000000}
RUNS=${BENCH_RUNS:-5}
PY_RUNS=${BENCH_PY_RUNS:-3}
DB=${BENCH_DB:-egress_bench_verify}
PGHOST=${PGHOST:-/var/run/postgresql}
SUPERUSER=${BENCH_PG_SUPERUSER:-postgres}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
DIR=$(realpath -m "${BENCH_DIR:-$TARGET_DIR/tmp/bench-verify}")
URL="host=$PGHOST user=$SUPERUSER dbname=$DB"
EXPORT=$DIR/export-$DB.json
HMAC_KEY=$DIR/state/keys/$DB.hmac
COLLECTOR_PID=

say() { printf '%s\n' "$*" >&2; }
die() { say "bench-verify: $*"; exit 1; }

cleanup() {
    if [ -n "$COLLECTOR_PID" ] && kill -0 "$COLLECTOR_PID" 2>/dev/null; then
        kill "$COLLECTOR_PID" && wait "$COLLECTOR_PID" || true
    fi
    if [ "${BENCH_KEEP:-0}" != 1 ] && [ "${BENCH_REUSE:-0}" != 1 ]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
        rm -f "$EXPORT"
    fi
}
trap cleanup EXIT

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d postgres "$@"; }
psql_bench() { psql -X -q -tA -v ON_ERROR_STOP=1 -h "$PGHOST" -U "$SUPERUSER" -d "$DB" "$@"; }

say "== building the release collector and egress-verify"
cargo build --release -p egress-collector -p egress-signer --bins >&2
BEFORE=
if [ -n "${BENCH_BEFORE_REV:-}" ]; then
    BEFORE=$DIR/before-$(git rev-parse --short "$BENCH_BEFORE_REV")
    say "== building $BENCH_BEFORE_REV's verifiers in $BEFORE"
    if [ ! -x "$BEFORE/target/release/egress-verify" ]; then
        mkdir -p "$BEFORE/src"
        git archive "$BENCH_BEFORE_REV" | tar -x -C "$BEFORE/src"
        (cd "$BEFORE/src" && CARGO_TARGET_DIR="$BEFORE/target" \
            cargo build --release -p egress-collector -p egress-signer --bins >&2)
    fi
fi
psql_admin -c 'SELECT 1' >/dev/null || die "cannot reach PostgreSQL at $PGHOST as $SUPERUSER"
mkdir -p "$DIR"

if [ "${BENCH_REUSE:-0}" != 1 ]; then
    say "== creating $DB and writing $ROWS rows"
    psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null
    psql_admin -c "CREATE DATABASE \"$DB\"" >/dev/null
    psql_bench -c "CREATE TABLE public.ir_config_parameter (id serial PRIMARY KEY,
        key varchar NOT NULL UNIQUE, value text NOT NULL)" >/dev/null
    "$BIN/egress-collector" setup --database-url "$URL" >&2
    rm -rf "$DIR/state"
    EGRESS_BENCH_DATABASE_URL="$URL" EGRESS_BENCH_STATE="$DIR/state" EGRESS_BENCH_ROWS="$ROWS" \
        EGRESS_BENCH_PROFILE="${BENCH_PROFILE:-}" \
        cargo bench -q -p egress-collector --bench verify_journal >&2
    psql_bench -c "VACUUM ANALYZE egress.journal" >/dev/null
fi
[ "$(psql_bench -c 'SELECT count(*) FROM egress.journal')" = "$ROWS" ] \
    || die "$DB does not hold $ROWS rows (BENCH_REUSE with another BENCH_ROWS?)"
JOURNAL_SIZE=$(psql_bench -c "SELECT pg_size_pretty(pg_total_relation_size('egress.journal'))")

# Runs a command under GNU time; prints "wall user sys maxrss_kb load1".
timed() {
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -f "%e %U %S %M $load" -o "$DIR/time.txt" "$@" >"$DIR/out.txt" 2>&1 \
        || { cat "$DIR/out.txt" >&2; die "failed: $*"; }
    cat "$DIR/time.txt"
}

# Times verifier $2 (collector, verify or python) $1 times, and the same of
# BENCH_BEFORE_REV right after each run when given; the arguments follow.
# Sets NOW and THEN to the lines of `timed`.
alternate() {
    local runs=$1 which=$2
    shift 2
    NOW= THEN=
    for _ in $(seq 1 "$runs"); do
        NOW+=$(timed $(verifier "$which" "$BIN" signer/python) "$@")$'\n'
        if [ -n "$BEFORE" ]; then
            THEN+=$(timed $(verifier "$which" "$BEFORE/target/release" "$BEFORE/src/signer/python") "$@")$'\n'
        fi
    done
    printf '%s' "$NOW$THEN" >&2
}

verifier() {
    case $1 in
        collector) echo "$2/egress-collector verify" ;;
        verify) echo "$2/egress-verify" ;;
        python) echo "python3 $3/verify_export.py" ;;
    esac
}

# One table row from the lines of `timed`: median wall, rows/s at the median,
# all walls, median CPU (user + sys), peak RSS, load averages seen.
row() {
    local what=$1 lines=$2
    [ -n "$lines" ] || return 0
    printf '%s' "$lines" | awk -v what="$what" -v rows="$ROWS" '
        function thousands(x,   s) { s = sprintf("%d", x); while (s ~ /[0-9]{4}/) sub(/[0-9]{3}($|,)/, ",&", s); return s }
        { wall[NR] = $1; cpu[NR] = $2 + $3; rss = ($4 > rss ? $4 : rss); load = load sep $5; sep = ", "
          walls = walls wsep sprintf("%.2f", $1); wsep = ", " }
        END {
            n = asort(wall, w); asort(cpu, c); m = int((n + 1) / 2)
            printf "| %s | %s | **%.2f s** | **%s** | %.2f s | %.0f MB | %s |\n",
                what, walls, w[m], thousands(rows / w[m]), c[m], rss / 1024, load
        }'
}

say "== egress-collector verify, $RUNS runs"
alternate "$RUNS" collector --database-url "$URL" --no-record
VERIFY=$NOW VERIFY_BEFORE=$THEN

if [ "${BENCH_REUSE:-0}" != 1 ] || [ ! -s "$EXPORT" ]; then
    say "== egress-collector export (a collector runs on the bench's state directory)"
    SCRATCH=$(mktemp -d /tmp/egress-bench-verify.XXXXXX)
    "$BIN/egress-collector" run --socket "$SCRATCH/ingest.sock" --control "$SCRATCH/control.sock" \
        --state-dir "$DIR/state" --database-url "host=$PGHOST user=egress_collector dbname={db}" \
        --default-db "$DB" 2>"$SCRATCH/collector.log" &
    COLLECTOR_PID=$!
    for _ in $(seq 1 100); do [ -S "$SCRATCH/control.sock" ] && break; sleep 0.1; done
    [ -S "$SCRATCH/control.sock" ] || { cat "$SCRATCH/collector.log" >&2; die "no control socket"; }
    EXPORT_TIME=$(timed "$BIN/egress-collector" export --control "$SCRATCH/control.sock" \
        --db "$DB" -o "$EXPORT")
    kill "$COLLECTOR_PID" && wait "$COLLECTOR_PID" || true
    COLLECTOR_PID=
    rm -rf "$SCRATCH"
    say "   $EXPORT_TIME"
fi
EXPORT_SIZE=$(stat -c %s "$EXPORT")

say "== egress-verify, $RUNS runs"
alternate "$RUNS" verify "$EXPORT" --hmac-key "$HMAC_KEY"
RUST=$NOW RUST_BEFORE=$THEN
say "== verify_export.py, $PY_RUNS runs"
alternate "$PY_RUNS" python "$EXPORT" --hmac-key "$HMAC_KEY"
PY=$NOW PY_BEFORE=$THEN

cat <<EOF
Journal: $ROWS rows (${BENCH_PROFILE:-realistic}), $JOURNAL_SIZE in PostgreSQL; export file
$(( EXPORT_SIZE / 1000000 )) MB ($(( EXPORT_SIZE / ROWS )) bytes/row).
Machine: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), \
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), \
PostgreSQL $(psql_bench -c 'SHOW server_version'), $(python3 --version).
${EXPORT_TIME:+Export (egress-collector export, wall user sys maxrss load): $EXPORT_TIME}

| verifier | runs (wall) | median | rows/s | CPU (user + sys, median) | peak RSS | load average before each run |
|---|---|---|---|---|---|---|
$(row "\`egress-collector verify\` (database)" "$VERIFY")
$(row "\`egress-verify --hmac-key\` (export file)" "$RUST")
$(row "\`verify_export.py --hmac-key\` (export file)" "$PY")
$(row "before: \`egress-collector verify\`" "$VERIFY_BEFORE")
$(row "before: \`egress-verify --hmac-key\`" "$RUST_BEFORE")
$(row "before: \`verify_export.py --hmac-key\`" "$PY_BEFORE")
EOF
