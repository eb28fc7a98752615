#!/usr/bin/env bash
# What one call costs the host at the rate an Odoo server makes calls: the
# collector's CPU time and that of the PostgreSQL backends it writes through,
# per call journaled, while egress-loadgen sends at a steady pace (150
# calls/s by default, two clients). At such rates each batch's fixed cost
# (wake-ups, a transaction) dominates, unlike at full speed
# (scripts/bench-ingest.sh). Results: docs/PERFORMANCE-odoo.md.
#
#   scripts/bench-paced.sh [--rate PER_CLIENT] [--events PER_CLIENT] [--rounds N]
#       [--collector PATH]...
#
# Each --collector (default: this checkout's release build) is run in turn,
# round after round, so that two builds are compared in the same sitting.
# Needs the `postgres` superuser on /var/run/postgresql (DEMO_PG_SUPERUSER_URL
# overrides it, as for scripts/demo.sh); creates and removes a uniquely named
# database, role and directory per run.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=75 events=1500 rounds=3 collectors=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate=$2; shift ;;
        --events) events=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --collector) collectors+=("$2"); shift ;;
        *) echo "usage: scripts/bench-paced.sh [--rate N] [--events N] [--rounds N] [--collector PATH]..." >&2; exit 2 ;;
    esac
    shift
done
superuser=${DEMO_PG_SUPERUSER_URL:-"host=/var/run/postgresql user=postgres"}
cargo build -q --release -p egress-collector -p egress-hook --bins
[ ${#collectors[@]} -gt 0 ] || collectors=(target/release/egress-collector)
loadgen=target/release/egress-loadgen

cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }

run_once() {
    local collector=$1 tag=$$_$2 db role dir pid c0 p0 c1 p1 backends calls
    db=egress_paced_$tag role=egress_paced_odoo_$tag dir=$(mktemp -d /tmp/egress-paced.XXXXXX)
    psql -X -q "$superuser dbname=postgres" -c "CREATE DATABASE $db"
    "$collector" setup --database-url "$superuser dbname=$db" --odoo-role "$role" >/dev/null
    "$collector" run --socket "$dir/ingest.sock" --control "$dir/control.sock" \
        --state-dir "$dir/state" --default-db "$db" \
        --database-url "host=/var/run/postgresql user=egress_collector dbname={db}" 2>"$dir/log" &
    pid=$!
    until [ -S "$dir/control.sock" ]; do sleep 0.1; done
    sleep 2
    backends() {
        psql -X -tA "$superuser dbname=postgres" -c "SELECT pid FROM pg_stat_activity
            WHERE datname = '$db' AND usename = 'egress_collector'"
    }
    pg_ns() { local t=0 p; for p in $(backends); do t=$((t + $(cpu_ns "$p" || echo 0))); done; echo "$t"; }
    c0=$(cpu_ns "$pid") p0=$(pg_ns)
    "$loadgen" --socket "$dir/ingest.sock" --db "$db" --events "$events" --clients 2 --rate "$rate" >/dev/null
    # What was still gathering or being written.
    for _ in $(seq 50); do
        calls=$(psql -X -tA "$superuser dbname=$db" -c "SELECT count(*) FROM egress.journal WHERE kind = 'call'")
        [ "$calls" -ge $((2 * events)) ] && break
        sleep 0.1
    done
    c1=$(cpu_ns "$pid") p1=$(pg_ns)
    kill "$pid"
    wait "$pid" || true
    psql -X -q "$superuser dbname=postgres" -c "DROP DATABASE $db WITH (FORCE)" -c "DROP ROLE IF EXISTS $role"
    rm -rf "$dir"
    printf '%s\t%s\t%d\t%d\t%d\n' "$2" "$collector" "$calls" $(( (c1 - c0) / 1000 / calls )) $(( (p1 - p0) / 1000 / calls ))
}

printf 'round\tcollector\tcalls\tcollector_us_per_call\tpostgres_us_per_call\n'
for round in $(seq "$rounds"); do
    for collector in "${collectors[@]}"; do
        run_once "$collector" "$round"
    done
done
