#!/usr/bin/env bash
# "Does it slow Odoo down?", measured: a real Odoo under load in three
# configurations, alternated round by round, each run on a fresh server:
#
#   A  without the addon (a database where mit_network_audit is not installed)
#   B  with the addon server-wide (--load=base,web,mit_network_audit) and the
#      native sender
#   C  the same with the pure-Python sender (egress_hook without its native
#      module: what a host without a wheel for its platform gets)
#
# on two routes of the fixture addon egress_bench (hook-client/odoo/
# bench_addons): /egress_bench/<auth>/nocall makes no outbound call,
# /egress_bench/<auth>/onecall makes exactly one (requests.get to a local
# responder); <auth> is Odoo's auth of the route, `none` (the lightest
# request on a database, where a per-request cost shows most) unless
# --auth public (the public user's usual work) is given. wrk drives
# each at saturation (--connections, 4 by default) against Odoo in prefork
# (--workers, 2 by default; --no-database-list, as production should, else
# Odoo opens a connection to `postgres` to list databases on every request).
# Each run reports req/s, p50 and p99; under B and
# C the one-call runs check that every call the responder answered was
# journaled once, attributed to egress_bench, with no gap. Then, with Odoo
# stopped, the collector's CPU time over --idle-seconds of no traffic (from
# /proc). The summary gives medians over rounds and the paired differences
# against A of the same round (docs/PERFORMANCE-odoo.md).
#
#   ODOO_BIN=/path/to/odoo-bin ODOO_PYTHON=/path/to/venv/bin/python scripts/bench-odoo.sh
#
# Options: --rounds N (5), --seconds S per route and run (10), --warmup S (3),
# --connections N (4), --workers N (2), --auth none|public (none),
# --idle-seconds S (60), --idle-only (only the idle collector: needs no Odoo).
# Environment as tests/odoo/run.sh: ODOO_BIN, ODOO_PYTHON, ODOO_ADDONS_PATH,
# PGHOST, PGPORT, PGUSER (a superuser), and BENCH_HTTP_PORT (18300).
# Needs wrk (Debian: apt-get install wrk) and cargo. Everything it creates
# (role, databases, directory) is uniquely named and removed at the end;
# KEEP=1 keeps the directory with the logs and results.
set -euo pipefail

rounds=5 seconds=10 warmup=3 connections=4 workers=2 auth=none idle_seconds=60 idle_only=false
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift ;;
        --seconds) seconds=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --connections) connections=$2; shift ;;
        --workers) workers=$2; shift ;;
        --auth) auth=$2; shift ;;
        --idle-seconds) idle_seconds=$2; shift ;;
        --idle-only) idle_only=true ;;
        *) echo "usage: scripts/bench-odoo.sh [--rounds N] [--seconds S] [--warmup S] [--connections N] [--workers N] [--auth none|public] [--idle-seconds S] [--idle-only]" >&2; exit 2 ;;
    esac
    shift
done
case "$auth" in none|public) ;; *) echo "--auth: none or public" >&2; exit 2 ;; esac
if ! $idle_only; then
    if [ -z "${ODOO_BIN:-}" ]; then
        echo "SKIPPED: the benchmark needs an Odoo: set ODOO_BIN (and ODOO_PYTHON), or pass --idle-only" >&2
        exit 2
    fi
    command -v wrk >/dev/null || { echo "scripts/bench-odoo.sh needs wrk (Debian: apt-get install wrk)" >&2; exit 2; }
fi

root=$(cd "$(dirname "$0")/.." && pwd)
# The datagram queue the packaging's sysctl drop-in asks for
# (packaging/sysctl): raised here when allowed, else said.
qlen=$(cat /proc/sys/net/unix/max_dgram_qlen 2>/dev/null || echo 0)
if [ "$qlen" -lt 512 ] && [ "$(id -u)" = 0 ] && sysctl -q -w net.unix.max_dgram_qlen=512 2>/dev/null; then
    qlen=512
fi
here=$root/scripts/bench_odoo
pghost=${PGHOST:-/var/run/postgresql}
pgport=${PGPORT:-5432}
superuser=${PGUSER:-postgres}
http_port=${BENCH_HTTP_PORT:-18300}
tag=$$
role=egress_bench_odoo_$tag
db_a=egress_bench_a_$tag
db_b=egress_bench_b_$tag
work=$(mktemp -d /tmp/egress-bench-odoo.XXXXXX)
collector_pid= responder_pid= odoo_pid=

psql_su() { psql -X -q -v ON_ERROR_STOP=1 "host=$pghost port=$pgport user=$superuser dbname=${1}" "${@:2}"; }
say() { printf '== %s\n' "$*"; }

stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}

cleanup() {
    stop_pid "$odoo_pid"
    stop_pid "$responder_pid"
    stop_pid "$collector_pid"
    psql_su postgres -c "DROP DATABASE IF EXISTS $db_a WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS $db_b WITH (FORCE)" -c "DROP ROLE IF EXISTS $role" \
        >/dev/null 2>&1 || echo "could not drop $db_a, $db_b or $role" >&2
    if [ "${KEEP:-}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

say "building the release collector (log: $work/build.log)"
(cd "$root" && cargo build -q --release -p egress-collector --bins) >"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
bin=$root/target/release

start_collector() {
    "$bin/egress-collector" run --socket "$work/ingest.sock" --control "$work/control.sock" \
        --state-dir "$work/state" --default-db "$db_b" \
        --database-url "host=$pghost port=$pgport user=egress_collector dbname={db}" \
        2>>"$work/collector.log" &
    collector_pid=$!
    for _ in $(seq 100); do [ -S "$work/control.sock" ] && return 0; sleep 0.1; done
    cat "$work/collector.log"
    echo "FAILED: the collector did not start" >&2
    exit 1
}

psql_su postgres -c "CREATE ROLE $role LOGIN CREATEDB NOSUPERUSER" \
    -c "CREATE DATABASE $db_b OWNER $role"

# The collector's CPU time (user + system) in nanoseconds, summed over its
# threads (/proc/PID/task/*/schedstat), and in clock ticks (/proc/PID/stat).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
# PostgreSQL's CPU time in nanoseconds: every server process (Odoo's own
# queries and the journal's writes).
pg_cpu_ns() {
    local total=0 pid
    for pid in $(pgrep -x postgres || true); do
        total=$((total + $(cpu_ns "$pid" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
# Odoo's CPU time in nanoseconds: its master and the workers it forked.
odoo_cpu_ns() {
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(cpu_ns "$pid" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

measure_idle() {
    say "the idle collector: $idle_seconds s with no traffic, from 35 s after the last"
    # What the last traffic leaves is done first: the rollups' flush, and
    # the workers' rows, written 30 s after their last call.
    sleep 35
    local ns0 ticks0 ns1 ticks1 hz
    ns0=$(cpu_ns "$collector_pid") ticks0=$(cpu_ticks "$collector_pid")
    sleep "$idle_seconds"
    ns1=$(cpu_ns "$collector_pid") ticks1=$(cpu_ticks "$collector_pid")
    hz=$(getconf CLK_TCK)
    awk -v ns=$((ns1 - ns0)) -v t=$((ticks1 - ticks0)) -v hz="$hz" -v s="$idle_seconds" 'BEGIN {
        printf "IDLE collector CPU over %d s: %.1f ms (schedstat) = %.4f %% of a core; %d ticks of 1/%d s (stat) = %.3f %%\n",
            s, ns / 1e6, 100 * ns / (s * 1e9), t, hz, 100 * t / hz / s }' | tee -a "$work/idle.txt"
}

if $idle_only; then
    "$bin/egress-collector" setup --database-url "host=$pghost port=$pgport user=$superuser dbname=$db_b" \
        --odoo-role "$role" >"$work/setup.log"
    start_collector
    # A database the collector writes to and watches (its settings, its
    # listener), as on a server between two bursts of traffic.
    (cd "$root" && cargo build -q --release -p egress-hook --bin egress-loadgen)
    "$bin/egress-loadgen" --socket "$work/ingest.sock" --db "$db_b" --events 20 --rate 100 >/dev/null
    measure_idle
    exit 0
fi

python=${ODOO_PYTHON:-python3}
odoo_bin=$(cd "$(dirname "$ODOO_BIN")" && pwd)/$(basename "$ODOO_BIN")
version=$("$python" "$odoo_bin" --version | awk '{print $NF}')
addons=$(dirname "$odoo_bin")/addons${ODOO_ADDONS_PATH:+,$ODOO_ADDONS_PATH},$root/hook-client/odoo,$root/hook-client/odoo/bench_addons

say "Odoo $version; egress_hook with its native module (B) and without it (C)"
"$python" -m pip install -q --target "$work/hook-native" "$root/hook-client/python" \
    >"$work/pip.log" 2>&1 || { cat "$work/pip.log"; exit 1; }
mkdir -p "$work/hook-python"
cp -r "$root/hook-client/python/python/egress_hook" "$work/hook-python/"
find "$work/hook-python" -name '_native*' -delete
PYTHONPATH=$work/hook-native "$python" -c 'import egress_hook, sys; sys.exit(not egress_hook.native_available())' \
    || { echo "FAILED: the native module does not load in $python" >&2; exit 1; }
PYTHONPATH=$work/hook-python "$python" -c 'import egress_hook, sys; sys.exit(egress_hook.native_available())' \
    || { echo "FAILED: C would not use the pure-Python sender" >&2; exit 1; }

odoo_init() {
    local db=$1; shift
    "$python" "$odoo_bin" -d "$db" -r "$role" --db_host "$pghost" --db_port "$pgport" \
        --addons-path "$addons" --http-port "$http_port" --stop-after-init --log-level=warn "$@" \
        >>"$work/init.log" 2>&1 || { tail -n 40 "$work/init.log"; echo "FAILED: Odoo init of $db" >&2; exit 1; }
}

say "databases $db_a (A: base, web, egress_bench) and $db_b (B, C: and mit_network_audit)"
psql_su postgres -c "CREATE DATABASE $db_a OWNER $role"
odoo_init "$db_a" -i base,web,egress_bench --load=base,web --without-demo=all
odoo_init "$db_b" -i base,web,egress_bench --load=base,web --without-demo=all
"$bin/egress-collector" setup --database-url "host=$pghost port=$pgport user=$superuser dbname=$db_b" \
    --odoo-role "$role" >"$work/setup.log"
start_collector
EGRESS_SOCKET=$work/ingest.sock EGRESS_CONTROL=$work/control.sock PYTHONPATH=$work/hook-native \
    odoo_init "$db_b" -i mit_network_audit --load=base,web

"$python" "$here/responder.py" "$work/responder.port" &
responder_pid=$!
for _ in $(seq 50); do [ -s "$work/responder.port" ] && break; sleep 0.1; done
rport=$(cat "$work/responder.port")
target=http://127.0.0.1:$rport/
responder_count() { curl -sf "http://127.0.0.1:$rport/count"; }
journal() {
    psql_su "$db_b" -tA -c "SELECT
        (SELECT count(*) FROM egress.journal WHERE kind = 'call' AND dst_port = $rport
            AND addon = 'egress_bench'),
        (SELECT coalesce(sum(gap_count), 0) FROM egress.journal WHERE kind = 'gap')"
}

start_odoo() {
    local config=$1 db load hook=
    case "$config" in
        A) db=$db_a load=base,web ;;
        B) db=$db_b load=base,web,mit_network_audit hook=$work/hook-native ;;
        C) db=$db_b load=base,web,mit_network_audit hook=$work/hook-python ;;
    esac
    PYTHONPATH=$hook EGRESS_SOCKET=$work/ingest.sock EGRESS_CONTROL=$work/control.sock \
        EGRESS_BENCH_TARGET=$target \
        "$python" "$odoo_bin" -d "$db" --db-filter "^$db\$" -r "$role" --db_host "$pghost" \
        --db_port "$pgport" --addons-path "$addons" --http-port "$http_port" \
        --workers "$workers" --max-cron-threads 0 --no-database-list --limit-request 10000000 \
        --limit-time-real 600 --limit-time-cpu 600 --load "$load" --log-level=warn \
        >>"$work/odoo-$config.log" 2>&1 &
    odoo_pid=$!
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$http_port/egress_bench/$auth/nocall" >/dev/null 2>&1 && return 0
        kill -0 "$odoo_pid" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 40 "$work/odoo-$config.log"
    echo "FAILED: Odoo ($config) did not answer" >&2
    exit 1
}

run_wrk() {
    wrk -t 2 -c "$connections" -d "${1}s" -s "$here/latency.lua" \
        "http://127.0.0.1:$http_port/egress_bench/$auth/$2" | awk '/^RESULT/ {print}'
}

results=$work/results.tsv
printf 'round\tconfig\troute\trps\tp50_us\tp99_us\trequests\terrors\tcalls\tjournaled\tgaps\todoo_cpu_ms\tcollector_cpu_ms\tpostgres_cpu_ms\n' >"$results"
configs=(A B C)
for round in $(seq "$rounds"); do
    # Each round starts with another configuration, and the routes swap
    # order every round, so neither order nor drift favours one.
    order=("${configs[@]:$(( (round - 1) % 3 ))}" "${configs[@]:0:$(( (round - 1) % 3 ))}")
    routes=(nocall onecall)
    [ $((round % 2)) = 0 ] && routes=(onecall nocall)
    for config in "${order[@]}"; do
        start_odoo "$config"
        for route in "${routes[@]}"; do run_wrk "$warmup" "$route" >/dev/null; done
        # What the warm-up's calls left to journal is done before a run starts.
        sleep 1
        for route in "${routes[@]}"; do
            calls0=$(responder_count)
            IFS='|' read -r journaled0 gaps0 <<<"$(journal)"
            odoo0=$(odoo_cpu_ns "$odoo_pid") coll0=$(cpu_ns "$collector_pid") pg0=$(pg_cpu_ns)
            line=$(run_wrk "$seconds" "$route")
            odoo_ms=$(( ($(odoo_cpu_ns "$odoo_pid") - odoo0) / 1000000 ))
            coll_ms=$(( ($(cpu_ns "$collector_pid") - coll0) / 1000000 ))
            pg_ms=$(( ($(pg_cpu_ns) - pg0) / 1000000 ))
            [ -n "$line" ] || { echo "FAILED: wrk reported nothing ($config, $route)" >&2; exit 1; }
            # Requests still in Odoo when wrk stopped finish first.
            sleep 1
            calls=$(( $(responder_count) - calls0 ))
            journaled=0 gaps=0
            if [ "$config" != A ]; then
                for _ in $(seq 100); do
                    IFS='|' read -r journaled1 gaps1 <<<"$(journal)"
                    journaled=$((journaled1 - journaled0)) gaps=$((gaps1 - gaps0))
                    [ "$journaled" -ge "$calls" ] && break
                    sleep 0.2
                done
            fi
            eval "${line#RESULT }"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$route" \
                "$rps" "$p50_us" "$p99_us" "$requests" "$errors" "$calls" "$journaled" "$gaps" \
                "$odoo_ms" "$coll_ms" "$pg_ms" \
                | tee -a "$results"
        done
        stop_odoo=$odoo_pid odoo_pid=
        stop_pid "$stop_odoo"
        # A worker that crashes and is respawned (a missing package of
        # Odoo's gevent worker, say) burns CPU in every configuration: its
        # figures would say nothing about the audit.
        if grep -aq 'Traceback (most recent call last)' "$work/odoo-$config.log"; then
            grep -aB 2 -A 20 'Traceback (most recent call last)' "$work/odoo-$config.log" | head -n 40
            echo "FAILED: Odoo ($config) logged a traceback: fix its environment first (log: $work/odoo-$config.log)" >&2
            exit 1
        fi
    done
done

echo
say "summary (Odoo $version, routes with auth=$auth, $workers workers, $connections connections, $rounds rounds of ${seconds} s per route; $(nproc) cores; max_dgram_qlen $qlen)"
status=0
python3 "$here/summarize.py" "$results" | tee "$work/summary.md" || status=1
measure_idle
[ "$status" = 0 ] || echo "FAILED: a call was not journaled (results: $results)" >&2
exit "$status"
