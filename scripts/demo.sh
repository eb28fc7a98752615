#!/usr/bin/env bash
# Runs the collector against the local PostgreSQL and shows events arriving:
# sets up a database `egress_demo`, starts the collector on sockets under
# /tmp/egress-demo, sends events with egress-loadgen while `watch` tails them,
# verifies the chain, and stops. Needs the `postgres` superuser on
# /var/run/postgresql (override with DEMO_PG_SUPERUSER_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
superuser=${DEMO_PG_SUPERUSER_URL:-"host=/var/run/postgresql user=postgres"}
dir=/tmp/egress-demo
cargo build --release --bins -q
bin=target/release
mkdir -p "$dir"

psql -q "$superuser dbname=postgres" -c "DROP DATABASE IF EXISTS egress_demo WITH (FORCE)" -c "CREATE DATABASE egress_demo"
$bin/egress-collector setup --database-url "$superuser dbname=egress_demo"

$bin/egress-collector run --socket "$dir/ingest.sock" --control "$dir/control.sock" \
    --state-dir "$dir/state" --default-db egress_demo \
    --database-url "host=/var/run/postgresql user=egress_collector dbname={db}" 2>"$dir/collector.log" &
collector=$!
trap 'kill $collector 2>/dev/null; wait $collector 2>/dev/null' EXIT
until [ -S "$dir/control.sock" ]; do sleep 0.1; done

$bin/egress-collector watch --control "$dir/control.sock" --db egress_demo &
watcher=$!
sleep 0.5
$bin/egress-loadgen --socket "$dir/ingest.sock" --db egress_demo --events 20 --clients 2 --rate 10
sleep 1
kill $watcher
echo
$bin/egress-collector status --control "$dir/control.sock"
$bin/egress-collector verify --database-url "host=/var/run/postgresql user=egress_collector dbname=egress_demo"
