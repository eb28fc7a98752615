#!/usr/bin/env bash
# Runs the Odoo addon mit_network_audit's own tests in a real Odoo, against a
# real PostgreSQL and a real egress-collector.
#
#   ODOO_BIN=/path/to/odoo-bin ODOO_PYTHON=/path/to/venv/bin/python tests/odoo/run.sh
#
# ODOO_BIN          an existing odoo-bin (Odoo 17, 18 or 19); unset: skipped
# ODOO_PYTHON       that Odoo's interpreter (default: python3)
# ODOO_ADDONS_PATH  extra addons directories that Odoo needs (comma-separated)
# PGHOST, PGPORT    PostgreSQL (default: /var/run/postgresql, 5432)
# PGUSER            a PostgreSQL superuser (default: postgres): creates the
#                   database and Odoo's role, runs `egress-collector setup`
# ODOO_DB_ROLE      Odoo's database role, created if missing, never a
#                   superuser (default: egress_odoo_test)
# KEEP_DB=1         keep the test database (egress_odoo_test_<version>)
# ODOO_TEST_DB, ODOO_HTTP_PORT  another database name and HTTP port (default
#                   egress_odoo_test_<major>, 18000 + major), to run beside
#                   another checkout's tests
# ODOO_TEST_TAGS    the tests of passes 1 and 2 (default /mit_network_audit)
# EGRESS_HOOK_PATH  a directory holding this checkout's egress_hook already
#                   (pip install --target DIR ./hook-client/python): put
#                   first on PYTHONPATH instead of installing into ODOO_PYTHON
#
# It installs egress_hook into ODOO_PYTHON, creates a fresh database,
# initialises base and web, then runs `egress-collector setup` on it, starts a
# collector, then runs the addon's tests: installed from Apps before setup and
# with no collector (only the tests of that case), then with the collector,
# loaded from Apps (--load=base,web) and server-wide
# (--load=base,web,mit_network_audit), then uninstalls and reinstalls it.
# odoo-bin can exit 0 when tests fail, so each pass's log is read: any ERROR
# or CRITICAL line, any traceback (printed or logged, a thread's included),
# or a test summary other than "0 failed, 0 error(s)", fails the run.
set -euo pipefail

if [ -z "${ODOO_BIN:-}" ]; then
    echo "SKIPPED: the Odoo addon's tests need an Odoo: set ODOO_BIN (and ODOO_PYTHON) to run tests/odoo/run.sh"
    exit 0
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
python=${ODOO_PYTHON:-python3}
odoo_bin=$(cd "$(dirname "$ODOO_BIN")" && pwd)/$(basename "$ODOO_BIN")
pghost=${PGHOST:-/var/run/postgresql}
pgport=${PGPORT:-5432}
superuser=${PGUSER:-postgres}
role=${ODOO_DB_ROLE:-egress_odoo_test}
version=$("$python" "$odoo_bin" --version | awk '{print $NF}')
major=${version%%.*}
db=${ODOO_TEST_DB:-egress_odoo_test_${major}}
http_port=${ODOO_HTTP_PORT:-$((18000 + major))}
work=$(mktemp -d /tmp/egress-odoo-test.XXXXXX)
collector_pid=

psql_su() { psql -X -q -v ON_ERROR_STOP=1 "host=$pghost port=$pgport user=$superuser dbname=postgres" "$@"; }

cleanup() {
    if [ -n "$collector_pid" ]; then
        kill "$collector_pid" 2>/dev/null || true
        wait "$collector_pid" 2>/dev/null || true
    fi
    if [ "${KEEP_DB:-}" != 1 ]; then
        psql_su -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
    fi
}
trap cleanup EXIT

echo "== Odoo $version ($odoo_bin), database $db, work directory $work"
(cd "$root" && cargo build -q -p egress-collector -p egress-signer --bins)
bin=$root/target/debug
if [ -n "${EGRESS_HOOK_PATH:-}" ]; then
    export PYTHONPATH=$EGRESS_HOOK_PATH${PYTHONPATH:+:$PYTHONPATH}
else
    "$python" -m pip install -q "$root/hook-client/python"
fi

psql_su -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
        CREATE ROLE $role LOGIN CREATEDB NOSUPERUSER;
    END IF; END \$\$" \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
    -c "CREATE DATABASE $db OWNER $role"

addons=$(dirname "$odoo_bin")/addons${ODOO_ADDONS_PATH:+,$ODOO_ADDONS_PATH},$root/hook-client/odoo,$root/hook-client/odoo/test_addons
odoo() {
    "$python" "$odoo_bin" -d "$db" -r "$role" --db_host "$pghost" --db_port "$pgport" \
        --addons-path "$addons" --http-port "$http_port" --stop-after-init "$@"
}

# Reads a pass's log: odoo-bin's exit status is not enough.
check_log() {
    local log=$1 name=$2 summary failed errors tests
    summary=$(grep -aoE '[0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests' "$log" | tail -n 1 || true)
    if [ -z "$summary" ]; then
        tail -n 60 "$log"
        echo "FAILED ($name): no test summary in $log: did the tests run?"
        return 1
    fi
    read -r failed _ errors _ _ tests _ <<<"$summary"
    if grep -aiE 'mit_network_audit.*skip' "$log"; then
        echo "FAILED ($name): a test was skipped (log: $log)"
        return 1
    fi
    # A traceback anywhere fails the run, logged or not: an exception in a
    # thread (threading.excepthook) prints one with no ERROR line at all.
    if grep -aq 'Traceback (most recent call last)' "$log"; then
        grep -aB 2 -A 30 'Traceback (most recent call last)' "$log" | head -n 120
        echo "FAILED ($name): a traceback in the output (log: $log)"
        return 1
    fi
    if grep -aqE '^[0-9-]+ [0-9:,]+ [0-9]+ (ERROR|CRITICAL) ' "$log" || [ "$failed" != 0 ] \
        || [ "$errors" != 0 ] || [ "$tests" = 0 ]; then
        grep -aE ' (ERROR|CRITICAL) |^(FAIL|ERROR):|Traceback|Error' "$log" | head -n 80
        echo "FAILED ($name): $summary (log: $log)"
        return 1
    fi
    echo "passed ($name): $summary"
}

echo "== initialising base and web"
if ! odoo -i base,web --load=base,web --log-level=warn >"$work/init.log" 2>&1; then
    tail -n 40 "$work/init.log"
    echo "FAILED: Odoo could not initialise $db (log: $work/init.log)"
    exit 1
fi

# Pass 0: installed from Apps before `egress-collector setup` and with no
# collector: Odoo must work, and the Trust Report say what is missing.
echo "== pass 0: installed from Apps, no setup, no collector"
EGRESS_SOCKET=$work/ingest.sock EGRESS_CONTROL=$work/control.sock \
    odoo -i mit_network_audit,egress_test_caller --load=base,web --test-enable \
    --test-tags=mit_network_audit_without_collector --log-level=test >"$work/without.log" 2>&1 || true
status=0
check_log "$work/without.log" "Odoo $version, without collector" || status=1

echo "== egress-collector setup"
"$bin/egress-collector" setup --database-url "host=$pghost port=$pgport user=$superuser dbname=$db" \
    --odoo-role "$role"

"$bin/egress-collector" run --socket "$work/ingest.sock" --control "$work/control.sock" \
    --state-dir "$work/state" --default-db "$db" \
    --database-url "host=$pghost port=$pgport user=egress_collector dbname={db}" \
    2>"$work/collector.log" &
collector_pid=$!
for _ in $(seq 100); do [ -S "$work/control.sock" ] && break; sleep 0.1; done
[ -S "$work/control.sock" ] || { cat "$work/collector.log"; echo "FAILED: the collector did not start"; exit 1; }

export EGRESS_SOCKET=$work/ingest.sock EGRESS_CONTROL=$work/control.sock
export EGRESS_COLLECTOR_BIN=$bin/egress-collector EGRESS_VERIFY_BIN=$bin/egress-verify
export EGRESS_SUPERUSER_DSN="host=$pghost port=$pgport user=$superuser dbname=$db"

echo "== pass 1: from Apps (--load=base,web), with the collector"
odoo -u mit_network_audit --load=base,web --test-enable \
    --test-tags="${ODOO_TEST_TAGS:-/mit_network_audit}" --log-level=test >"$work/apps.log" 2>&1 || true
check_log "$work/apps.log" "Odoo $version, Apps install" || status=1

echo "== pass 2: server-wide (--load=base,web,mit_network_audit)"
odoo -u mit_network_audit --load=base,web,mit_network_audit --test-enable \
    --test-tags="${ODOO_TEST_TAGS:-/mit_network_audit}" --log-level=test >"$work/server_wide.log" 2>&1 || true
check_log "$work/server_wide.log" "Odoo $version, server-wide" || status=1

# Pass 3: a real uninstall from Apps and a reinstall, in one Odoo process
# (tests/odoo/uninstall_check.py): capture stops without a restart, the
# collector no longer holds the addon's settings, group members come back.
echo "== pass 3: uninstall from Apps, then reinstall"
if "$python" "$odoo_bin" shell -d "$db" -r "$role" --db_host "$pghost" --db_port "$pgport" \
    --addons-path "$addons" --http-port "$http_port" --load=base,web --log-level=warn \
    <"$root/tests/odoo/uninstall_check.py" >"$work/uninstall.log" 2>&1 \
    && grep -q "UNINSTALL CHECK PASSED" "$work/uninstall.log"; then
    echo "passed (Odoo $version, uninstall and reinstall)"
else
    tail -n 40 "$work/uninstall.log"
    echo "FAILED (Odoo $version, uninstall and reinstall) (log: $work/uninstall.log)"
    status=1
fi

echo "== the chain after both passes"
"$bin/egress-collector" verify --database-url "host=$pghost port=$pgport user=egress_collector dbname=$db" \
    || status=1
[ "$status" = 0 ] && echo "ALL PASSED: Odoo $version" || echo "FAILED: Odoo $version (logs in $work)"
exit "$status"
