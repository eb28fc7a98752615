#!/usr/bin/env bash
# What one call costs the host at the rate an Odoo server makes calls: the
# collector's CPU time and that of the PostgreSQL backends it writes through,
# per call journaled, and how often the collector's threads were woken, while
# egress-loadgen sends at a steady pace (150 calls/s by default, two
# clients). At such rates each batch's fixed cost
# (wake-ups, a transaction) dominates, unlike at full speed
# (scripts/bench-ingest.sh). Results: docs/PERFORMANCE-odoo.md.
#
#   scripts/bench-paced.sh [--rate PER_CLIENT] [--events PER_CLIENT] [--rounds N]
#       [--collector PATH]... [--floor]
#
# Each --collector (default: this checkout's release build) is run in turn,
# round after round, so that two builds are compared in the same sitting.
# --floor adds, each round, what no collector can spend less than on such a
# call (the reference): the kernel's datagram hop at the same rate
# (scripts/bench_paced/transport.py: a bare sender and a receiver blocked in
# recv), and PostgreSQL writing the same journal rows in the same
# transactions, one COPY each, at the same pace (the first collector's rows
# of the round, one transaction per transaction it made).
# Needs the `postgres` superuser on /var/run/postgresql (DEMO_PG_SUPERUSER_URL
# overrides it, as for scripts/demo.sh); creates and removes a uniquely named
# database, role and directory per run.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=75 events=1500 rounds=3 collectors=() floor=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate=$2; shift ;;
        --events) events=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --collector) collectors+=("$2"); shift ;;
        --floor) floor=1 ;;
        *) echo "usage: scripts/bench-paced.sh [--rate N] [--events N] [--rounds N] [--collector PATH]... [--floor]" >&2; exit 2 ;;
    esac
    shift
done
superuser=${DEMO_PG_SUPERUSER_URL:-"host=/var/run/postgresql user=postgres"}
cargo build -q --release -p egress-collector -p egress-hook --bins
[ ${#collectors[@]} -gt 0 ] || collectors=(target/release/egress-collector)
loadgen=target/release/egress-loadgen

cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }
# Times the process's threads went to sleep and were woken.
wakeups() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/ {s += $2} END {printf "%d", s}'; }

run_once() {
    local collector=$1 tag=$$_$2 db role dir pid c0 p0 w0 c1 p1 w1 backends calls
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
    c0=$(cpu_ns "$pid") p0=$(pg_ns) w0=$(wakeups "$pid")
    "$loadgen" --socket "$dir/ingest.sock" --db "$db" --events "$events" --clients 2 --rate "$rate" >/dev/null
    # What was still gathering or being written.
    for _ in $(seq 50); do
        calls=$(psql -X -tA "$superuser dbname=$db" -c "SELECT count(*) FROM egress.journal WHERE kind = 'call'")
        [ "$calls" -ge $((2 * events)) ] && break
        sleep 0.1
    done
    c1=$(cpu_ns "$pid") p1=$(pg_ns) w1=$(wakeups "$pid")
    kill "$pid"
    wait "$pid" || true
    [ -z "${3:-}" ] || postgres_floor "$db" "$dir" "$calls" >"$3"
    psql -X -q "$superuser dbname=postgres" -c "DROP DATABASE $db WITH (FORCE)" -c "DROP ROLE IF EXISTS $role"
    rm -rf "$dir"
    printf '%s\t%s\t%d\t%d\t%d\t%s\n' "$2" "$collector" "$calls" $(( (c1 - c0) / 1000 / calls )) \
        $(( (p1 - p0) / 1000 / calls )) "$(awk -v w=$((w1 - w0)) -v n="$calls" 'BEGIN {printf "%.2f", w / n}')"
}

# PostgreSQL's own cost of the journal rows the collector wrote in $1: the
# same rows, in the same transactions (rows that share an xmin), copied
# into a table shaped like the journal (columns, key, indexes), one binary
# COPY per transaction, a transaction every 200 ms (ingest's gather) on one
# connection. The backend reads its own CPU time (/proc/self/schedstat).
# Prints its CPU µs per call.
postgres_floor() {
    local db=$1 dir=$2 calls=$3 batches n
    # Written and read by the server: it may pass through, not list.
    chmod 0711 "$dir"
    mkdir -m 0777 "$dir/floor"
    psql -X -q -v ON_ERROR_STOP=1 "$superuser dbname=$db" \
        -c "CREATE TABLE floor_journal (LIKE egress.journal INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)"
    # A file per transaction of the collector's, numbered in order, in one session.
    psql -X -q -tA -v ON_ERROR_STOP=1 -v dir="$dir/floor" "$superuser dbname=$db" <<'SQL'
SELECT format('COPY (SELECT * FROM egress.journal WHERE xmin = %L::xid ORDER BY seq) TO %L (FORMAT binary)',
              xmin, :'dir' || '/' || n)
FROM (SELECT xmin, row_number() OVER (ORDER BY min(seq)) AS n FROM egress.journal GROUP BY xmin) AS batch
ORDER BY n \gexec
SQL
    batches=$(find "$dir/floor" -type f | wc -l)
    {
        echo "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1);"
        for n in $(seq "$batches"); do
            echo "BEGIN; COPY floor_journal FROM '$dir/floor/$n' (FORMAT binary); COMMIT;"
            echo "SELECT pg_sleep(0.2);"
        done
        echo "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1);"
    } >"$dir/floor.sql"
    psql -X -q -tA -v ON_ERROR_STOP=1 "$superuser dbname=$db" -f "$dir/floor.sql" |
        awk -v n="$calls" 'NF {v[++k] = $1} END {printf "%d", (v[k] - v[1]) / 1000 / n}'
}

printf 'round\tcollector\tcalls\tcollector_us_per_call\tpostgres_us_per_call\tcollector_wakeups_per_call'
[ "$floor" = 0 ] && printf '\n' || printf '\tsend_us_per_call\n'
for round in $(seq "$rounds"); do
    floor_pg=
    [ "$floor" = 0 ] || floor_pg=$(mktemp /tmp/egress-paced-floor.XXXXXX)
    for i in "${!collectors[@]}"; do
        # The first collector's rows give the floor's COPYs.
        run_once "${collectors[$i]}" "$round" "$([ "$i" = 0 ] && echo "$floor_pg")"
    done
    if [ "$floor" = 1 ]; then
        # The floor's line: a bare receiver for a collector, a bare COPY for
        # its PostgreSQL, and the bare sender's CPU per send.
        python3 scripts/bench_paced/transport.py --rate $((2 * rate)) --count $((2 * events)) --size 660 |
            awk -v r="$round" -v n=$((2 * events)) -v pg="$(cat "$floor_pg")" \
                '{v[$1] = $2} END {printf "%s\tfloor\t%d\t%d\t%s\t%s\t%s\n", r, n,
                    v["receive_us_per_datagram"], pg, v["receiver_wakeups_per_datagram"], v["send_us_per_datagram"]}'
        rm -f "$floor_pg"
    fi
done
