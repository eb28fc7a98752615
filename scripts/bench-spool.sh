#!/usr/bin/env bash
# bench-spool.sh: the spool's own write and replay rate during an outage
# (`cargo bench --bench spool`: 200,000 redacted calls appended with an
# fsync every 4,096, then replayed in batches of 4,096, median of 5 rounds)
# against PostgreSQL's own COPY of journal rows on the same machine
# (scripts/bench-pg-copy.sh), alternating: spool, COPY, spool. Prints each
# result; docs/PERFORMANCE.md quotes them.
# Settings: those of bench-pg-copy.sh (BENCH_EVENTS, BENCH_RUNS, BENCH_DB,
# PGHOST, BENCH_NO_BUILD=1 to use the release binaries already built).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    cargo build --release -p egress-collector -p egress-hook --bins >&2
fi
for round in spool copy spool; do
    printf '== %s (load average %s)\n' "$round" "$(cut -d' ' -f1 /proc/loadavg)"
    case $round in
        spool) cargo bench -q -p egress-collector --bench spool 2>/dev/null | grep '^spool:' ;;
        copy) BENCH_NO_BUILD=1 scripts/bench-pg-copy.sh 2>&1 | tail -n 4 ;;
    esac
done
