#!/usr/bin/env bash
# Runs the collector against the local PostgreSQL and shows events arriving:
# builds the binaries, sets up a scratch database `egress_demo_<pid>` (and a
# stand-in for Odoo's role, `egress_demo_odoo_<pid>`), starts the collector
# on sockets in a scratch directory, sends events with egress-loadgen while
# `watch` tails them, shows `status`, verifies the chain, then removes the
# database, the role and the directory. With --keep it leaves them and
# prints how to remove them. Needs the `postgres` superuser on
# /var/run/postgresql (override with DEMO_PG_SUPERUSER_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
case "${1:-}" in
    --keep) keep=true ;;
    "") ;;
    *) echo "usage: scripts/demo.sh [--keep]" >&2; exit 2 ;;
esac
superuser=${DEMO_PG_SUPERUSER_URL:-"host=/var/run/postgresql user=postgres"}
db=egress_demo_$$
odoo_role=egress_demo_odoo_$$
dir=$(mktemp -d /tmp/egress-demo.XXXXXX)
say() { printf '\n== %s\n' "$*"; }

say "Building the release binaries (the first build takes several minutes)"
cargo build --release --bins
bin=target/release

collector=
cleanup() {
    if [ -n "$collector" ]; then
        kill "$collector" 2>/dev/null || true
        wait "$collector" 2>/dev/null || true
    fi
    if $keep; then
        say "Kept. To remove what the demo made:"
        echo "  psql \"$superuser dbname=postgres\" -c 'DROP DATABASE IF EXISTS $db WITH (FORCE)' -c 'DROP ROLE IF EXISTS $odoo_role'"
        echo "  rm -rf $dir"
    else
        say "Removing the database $db, the role $odoo_role and $dir"
        psql -q "$superuser dbname=postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" \
            -c "DROP ROLE IF EXISTS $odoo_role" || echo "could not remove them: see above"
        rm -rf "$dir"
    fi
}
trap cleanup EXIT

say "Creating the database $db and setting it up (egress-collector setup)"
psql -q "$superuser dbname=postgres" -c "CREATE DATABASE $db"
$bin/egress-collector setup --database-url "$superuser dbname=$db" --odoo-role "$odoo_role"

say "Starting the collector (sockets and state in $dir, log in $dir/collector.log)"
$bin/egress-collector run --socket "$dir/ingest.sock" --control "$dir/control.sock" \
    --state-dir "$dir/state" --default-db "$db" \
    --database-url "host=/var/run/postgresql user=egress_collector dbname={db}" 2>"$dir/collector.log" &
collector=$!
until [ -S "$dir/control.sock" ]; do
    if ! kill -0 "$collector" 2>/dev/null; then
        cat "$dir/collector.log" >&2
        collector=
        exit 1
    fi
    sleep 0.1
done

say "Sending 40 events from 2 simulated Odoo workers while watch shows them"
$bin/egress-collector watch --control "$dir/control.sock" --db "$db" &
watcher=$!
sleep 0.5
$bin/egress-loadgen --socket "$dir/ingest.sock" --db "$db" --events 20 --clients 2 --rate 10
sleep 1
kill "$watcher"
wait "$watcher" 2>/dev/null || true

say "The collector's counters (egress-collector status)"
$bin/egress-collector status --control "$dir/control.sock"

say "Verifying the chain (egress-collector verify)"
$bin/egress-collector verify --database-url "host=/var/run/postgresql user=egress_collector dbname=$db"
