#!/usr/bin/env bash
# "Does it slow Odoo down?", measured: a real Odoo under load in three
# configurations, each round on fresh servers, driven in turn:
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
#
# A round starts the three servers side by side (each on its own ports; a
# server not driven sleeps), warms each up, then runs each route on the
# three back to back, the configurations' order rotating round by round
# and reversed on the second route: the runs compared are seconds apart, so
# the machine's drift (this is a shared VM) weighs on them alike.
# Each run reports req/s, p50 and p99; under B and C the one-call runs
# check that every call the responder answered was journaled once,
# attributed to egress_bench, with no gap. Then, with Odoo stopped, the
# collector's CPU time over --idle-seconds of no traffic (from /proc). The
# summary gives medians over rounds and the paired differences against A
# of the same round (docs/PERFORMANCE-odoo.md).
#
#   ODOO_BIN=/path/to/odoo-bin ODOO_PYTHON=/path/to/venv/bin/python scripts/bench-odoo.sh
#
# Options: --rounds N (5), --seconds S per route and run (10), --warmup S (3),
# --connections N (4), --workers N (2), --auth none|public (none),
# --idle-seconds S (60), --idle-only (only the idle collector: needs no Odoo),
# --instructions N (count instructions per request over N requests per route
# instead, under callgrind: needs valgrind), --idle-window S (10: with
# --instructions, how long each process is counted with nothing to do).
# Environment as tests/odoo/run.sh: ODOO_BIN, ODOO_PYTHON, ODOO_ADDONS_PATH,
# PGHOST, PGPORT, PGUSER (a superuser), and BENCH_HTTP_PORT (18300: A, B
# and C take it and the next two, their gevent ports 100 above).
# Needs wrk (Debian: apt-get install wrk) and cargo. Everything it creates
# (role, databases, directory) is uniquely named and removed at the end;
# KEEP=1 keeps the directory with the logs and results.
set -euo pipefail

rounds=5 seconds=10 warmup=3 connections=4 workers=2 auth=none idle_seconds=60 idle_only=false
instructions=0 idle_window=10
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
        --instructions) instructions=$2; shift ;;
        --idle-window) idle_window=$2; shift ;;
        *) echo "usage: scripts/bench-odoo.sh [--rounds N] [--seconds S] [--warmup S] [--connections N] [--workers N] [--auth none|public] [--idle-seconds S] [--idle-only] [--instructions N] [--idle-window S]" >&2; exit 2 ;;
    esac
    shift
done
case "$auth" in none|public) ;; *) echo "--auth: none or public" >&2; exit 2 ;; esac
if ! $idle_only; then
    if [ -z "${ODOO_BIN:-}" ]; then
        echo "SKIPPED: the benchmark needs an Odoo: set ODOO_BIN (and ODOO_PYTHON), or pass --idle-only" >&2
        exit 2
    fi
    if [ "$instructions" -gt 0 ]; then
        command -v callgrind_control >/dev/null \
            || { echo "scripts/bench-odoo.sh --instructions needs valgrind (Debian: apt-get install valgrind)" >&2; exit 2; }
    else
        command -v wrk >/dev/null || { echo "scripts/bench-odoo.sh needs wrk (Debian: apt-get install wrk)" >&2; exit 2; }
    fi
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
collector_pid= responder_pid=
declare -A odoo_pids=()

psql_su() { psql -X -q -v ON_ERROR_STOP=1 "host=$pghost port=$pgport user=$superuser dbname=${1}" "${@:2}"; }
say() { printf '== %s\n' "$*"; }

stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}

cleanup() {
    local config
    for config in "${!odoo_pids[@]}"; do stop_pid "${odoo_pids[$config]}"; done
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
# Installing modules leaves thousands of new rows: autovacuum would vacuum and
# analyse them during whichever run comes first (a sitting's first run spent
# twice the PostgreSQL CPU of the others), as pgbench vacuums before it
# measures.
for db in "$db_a" "$db_b"; do psql_su "$db" -c "VACUUM ANALYZE" >/dev/null; done

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

# How Odoo runs: in prefork under wrk; threaded and under callgrind for
# --instructions (count_round).
odoo_wrapper=() odoo_workers=$workers start_tries=300

# A, B and C listen side by side: each its HTTP port and its gevent port.
port_of() {
    case "$1" in A) echo "$http_port" ;; B) echo $((http_port + 1)) ;; C) echo $((http_port + 2)) ;; esac
}

start_odoo() {
    local config=$1 db load hook= port
    port=$(port_of "$config")
    case "$config" in
        A) db=$db_a load=base,web ;;
        B) db=$db_b load=base,web,mit_network_audit hook=$work/hook-native ;;
        C) db=$db_b load=base,web,mit_network_audit hook=$work/hook-python ;;
    esac
    PYTHONPATH=$hook EGRESS_SOCKET=$work/ingest.sock EGRESS_CONTROL=$work/control.sock \
        EGRESS_BENCH_TARGET=$target \
        "${odoo_wrapper[@]}" "$python" "$odoo_bin" -d "$db" --db-filter "^$db\$" -r "$role" --db_host "$pghost" \
        --db_port "$pgport" --addons-path "$addons" --http-port "$port" \
        --gevent-port $((port + 100)) \
        --workers "$odoo_workers" --max-cron-threads 0 --no-database-list --limit-request 10000000 \
        --limit-time-real 600 --limit-time-cpu 600 --load "$load" --log-level=warn \
        >>"$work/odoo-$config.log" 2>&1 &
    odoo_pids[$config]=$!
}

wait_odoo() {
    local config=$1 port
    port=$(port_of "$config")
    for _ in $(seq "$start_tries"); do
        curl -sf "http://127.0.0.1:$port/egress_bench/$auth/nocall" >/dev/null 2>&1 && return 0
        kill -0 "${odoo_pids[$config]}" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 40 "$work/odoo-$config.log"
    echo "FAILED: Odoo ($config) did not answer" >&2
    exit 1
}

stop_odoo() {
    local config=$1
    stop_pid "${odoo_pids[$config]}"
    unset "odoo_pids[$config]"
    # A worker that crashes and is respawned (a missing package of Odoo's
    # gevent worker, say) burns CPU in every configuration: its figures
    # would say nothing about the audit.
    if grep -aq 'Traceback (most recent call last)' "$work/odoo-$config.log"; then
        grep -aB 2 -A 20 'Traceback (most recent call last)' "$work/odoo-$config.log" | head -n 40
        echo "FAILED: Odoo ($config) logged a traceback: fix its environment first (log: $work/odoo-$config.log)" >&2
        exit 1
    fi
}

run_wrk() {
    wrk -t 2 -c "$connections" -d "${1}s" -s "$here/latency.lua" \
        "http://127.0.0.1:$(port_of "$2")/egress_bench/$auth/$3" | awk '/^RESULT/ {print}'
}

# What the responder and the journal hold before a run (snapshot), and after
# it, how many calls it made and how many of them were journaled (settle).
snapshot() {
    calls0=$(responder_count)
    IFS='|' read -r journaled0 gaps0 <<<"$(journal)"
}

settle() {
    local config=$1 journaled1 gaps1
    # Requests still in Odoo when the client stopped finish first.
    sleep 1
    calls=$(( $(responder_count) - calls0 ))
    journaled=0 gaps=0
    # Only B and C journal their calls as egress_bench's.
    if [ "$config" = B ] || [ "$config" = C ]; then
        for _ in $(seq 100); do
            IFS='|' read -r journaled1 gaps1 <<<"$(journal)"
            journaled=$((journaled1 - journaled0)) gaps=$((gaps1 - gaps0))
            [ "$journaled" -ge "$calls" ] && break
            sleep 0.2
        done
    fi
}

# One measured run of a route on a configuration's server, a line of results.
measure_run() {
    local round=$1 config=$2 route=$3 pid=${odoo_pids[$2]}
    local odoo0 coll0 pg0 line odoo_ms coll_ms pg_ms
    snapshot
    odoo0=$(odoo_cpu_ns "$pid") coll0=$(cpu_ns "$collector_pid") pg0=$(pg_cpu_ns)
    line=$(run_wrk "$seconds" "$config" "$route")
    odoo_ms=$(( ($(odoo_cpu_ns "$pid") - odoo0) / 1000000 ))
    coll_ms=$(( ($(cpu_ns "$collector_pid") - coll0) / 1000000 ))
    pg_ms=$(( ($(pg_cpu_ns) - pg0) / 1000000 ))
    [ -n "$line" ] || { echo "FAILED: wrk reported nothing ($config, $route)" >&2; exit 1; }
    settle "$config"
    local rps p50_us p99_us requests errors
    eval "${line#RESULT }"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$route" \
        "$rps" "$p50_us" "$p99_us" "$requests" "$errors" "$calls" "$journaled" "$gaps" \
        "$odoo_ms" "$coll_ms" "$pg_ms" \
        | tee -a "$results"
}

# -- --instructions N: instructions per request, counted by callgrind -------
# The machine's speed varies from run to run by more than the audit's
# per-request cost; the instructions a request executes do not. Each
# configuration's Odoo runs threaded under callgrind, uninstrumented until
# a measured stretch of N requests of a route (sent one after the other),
# which counts every instruction of the process. The reference: the
# one-call route's call in a plain Python process (plain_call.py),
# unpatched and captured by each sender.
cg_dir=$work/callgrind

# Run in the background only: it becomes the process ($!) callgrind_control
# talks to.
under_callgrind() {
    exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$cg_dir/callgrind.%p" "$@"
}

count_begin() {
    callgrind_control -z "$1" >/dev/null
    callgrind_control -i on "$1" >/dev/null
}

# PID: the instructions it executed since count_begin.
count_end() {
    local dump=
    callgrind_control -i off "$1" >/dev/null
    callgrind_control -d "$1" >/dev/null
    for _ in $(seq 100); do
        dump=$(ls "$cg_dir/callgrind.$1".*[0-9] 2>/dev/null || true)
        [ -n "$dump" ] && grep -q '^totals:' "$dump" && break
        sleep 0.1
    done
    awk '/^totals:/ {print $2}' "$dump"
    mv "$dump" "$dump.read"
}

# CONFIG ROUTE N: N requests, one after the other.
drive() {
    python3 -c 'import sys, urllib.request as u
for _ in range(int(sys.argv[2])):
    u.urlopen(sys.argv[1], timeout=600).read()' \
        "http://127.0.0.1:$(port_of "$1")/egress_bench/$auth/$2" "$3"
}

count_line() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" | tee -a "$results"
}

# ROUND CONFIG PID: the instructions of a process with nothing to do (its
# threads' timers), over --idle-window seconds. Under callgrind a request
# lasts hundreds of times longer than it does natively, and so would their
# share of it: the summary takes it out of the measured stretches, at this
# rate per second of their duration.
count_idle() {
    local ir
    count_begin "$3"
    sleep "$idle_window"
    ir=$(count_end "$3")
    count_line "$1" "$2" idle 0 "$ir" $((idle_window * 1000000000)) 0 0 0
}

# ROUND CONFIG ROUTE PID COMMAND...: one measured stretch, COMMAND sending
# the N requests or calls of PID, and its line of results.
count_stretch() {
    local round=$1 config=$2 route=$3 pid=$4 ir t0 t1
    shift 4
    snapshot
    count_begin "$pid"
    t0=$(date +%s%N)
    "$@"
    t1=$(date +%s%N)
    ir=$(count_end "$pid")
    settle "$config"
    count_line "$round" "$config" "$route" "$instructions" "$ir" $((t1 - t0)) "$calls" \
        "$journaled" "$gaps"
}

# The plain process's N calls: asked for on its standard input, answered
# when done (plain_call.py).
plain_go() {
    local line
    echo go >&"$plain_to"
    read -r line <&"$plain_from"
}

# ROUND MODE: the plain process's call, N times, counted.
count_plain() {
    local round=$1 mode=$2 hook=$work/hook-native pid line
    [ "$mode" = python ] && hook=$work/hook-python
    rm -f "$work/plain.in" "$work/plain.out"
    mkfifo "$work/plain.in" "$work/plain.out"
    PYTHONPATH=$hook under_callgrind "$python_exe" "$here/plain_call.py" "$mode" "$target" \
        "$work/ingest.sock" "$db_b" "$instructions" <"$work/plain.in" >"$work/plain.out" \
        2>>"$work/plain.log" &
    pid=$!
    exec {plain_to}>"$work/plain.in" {plain_from}<"$work/plain.out"
    read -r line <&"$plain_from"
    [ "$line" = ready ] || { cat "$work/plain.log"; echo "FAILED: plain_call.py $mode" >&2; exit 1; }
    sleep 1
    count_idle "$round" "plain-$mode" "$pid"
    count_stretch "$round" "plain-$mode" call "$pid" plain_go
    exec {plain_to}>&- {plain_from}<&-
    wait "$pid"
}

count_round() {
    local round=$1 config route
    shift
    # How long a dict look-up probes depends on the hash seed: one seed per
    # round, the same for every process of it, else that alone tells two
    # servers of the same code apart by 0.5 %.
    export PYTHONHASHSEED=$round
    for config in "$@"; do start_odoo "$config"; done
    for config in "$@"; do wait_odoo "$config"; done
    for config in "$@"; do
        for route in nocall onecall; do drive "$config" "$route" 20; done
    done
    sleep 1
    for config in "$@"; do count_idle "$round" "$config" "${odoo_pids[$config]}"; done
    for route in nocall onecall; do
        for config in "$@"; do
            count_stretch "$round" "$config" "$route" "${odoo_pids[$config]}" \
                drive "$config" "$route" "$instructions"
        done
    done
    for config in "$@"; do stop_odoo "$config"; done
    for mode in unpatched native python; do count_plain "$round" "$mode"; done
}

configs=(A B C)
if [ "$instructions" -gt 0 ]; then
    mkdir -p "$cg_dir"
    python_exe=$("$python" -c 'import sys; print(sys.executable)')
    python=$python_exe odoo_wrapper=(under_callgrind) odoo_workers=0 start_tries=3000
    results=$work/instructions.tsv
    printf 'round\tconfig\troute\trequests\tinstructions\twall_ns\tcalls\tjournaled\tgaps\n' >"$results"
    for round in $(seq "$rounds"); do
        count_round "$round" "${configs[@]:$(( (round - 1) % 3 ))}" "${configs[@]:0:$(( (round - 1) % 3 ))}"
    done
    echo
    say "summary (Odoo $version, routes with auth=$auth, threaded under callgrind, $rounds rounds of $instructions requests per route)"
    python3 "$here/summarize.py" --instructions "$results" | tee "$work/summary.md"
    exit "${PIPESTATUS[0]}"
fi

results=$work/results.tsv
printf 'round\tconfig\troute\trps\tp50_us\tp99_us\trequests\terrors\tcalls\tjournaled\tgaps\todoo_cpu_ms\tcollector_cpu_ms\tpostgres_cpu_ms\n' >"$results"
for round in $(seq "$rounds"); do
    # Each round starts with another configuration and runs the second
    # route in the reverse order, and the routes swap every round, so
    # neither order nor drift favours one.
    order=("${configs[@]:$(( (round - 1) % 3 ))}" "${configs[@]:0:$(( (round - 1) % 3 ))}")
    reverse=("${order[2]}" "${order[1]}" "${order[0]}")
    routes=(nocall onecall)
    [ $((round % 2)) = 0 ] && routes=(onecall nocall)
    for config in "${order[@]}"; do start_odoo "$config"; done
    for config in "${order[@]}"; do wait_odoo "$config"; done
    for config in "${order[@]}"; do
        for route in "${routes[@]}"; do run_wrk "$warmup" "$config" "$route" >/dev/null; done
    done
    # What the warm-up's calls left to journal is done before a run starts.
    sleep 1
    for config in "${order[@]}"; do measure_run "$round" "$config" "${routes[0]}"; done
    for config in "${reverse[@]}"; do measure_run "$round" "$config" "${routes[1]}"; done
    for config in "${order[@]}"; do stop_odoo "$config"; done
done

echo
say "summary (Odoo $version, routes with auth=$auth, $workers workers, $connections connections, $rounds rounds of ${seconds} s per route; $(nproc) cores; max_dgram_qlen $qlen)"
status=0
python3 "$here/summarize.py" "$results" | tee "$work/summary.md" || status=1
measure_idle
[ "$status" = 0 ] || echo "FAILED: a call was not journaled (results: $results)" >&2
exit "$status"
