#!/usr/bin/env bash
# Runs scripts/test.sh as a new host would, without changing this one:
#   - from a fresh clone of this checkout's HEAD (committed files only;
#     the build cache in ./target is reused through CARGO_TARGET_DIR);
#   - in a new network namespace, where net.unix.max_dgram_qlen is the
#     kernel's default of 10 (it is per namespace: the host's stays as is);
#   - against a private PostgreSQL cluster (own data and socket directory,
#     no TCP) in which a superuser role named `odoo` exists, as on a host
#     where Odoo's role was made a superuser.
# Needs root (unshare, and initdb as the `postgres` user). .ci/run runs it.
# EGRESS_TESTS_KEEP_QLEN=1 keeps the queue at 10, as a host where test.sh
# cannot raise it: the tests that need a deep queue then print SKIP lines.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

work=$(mktemp -d /tmp/egress-fresh-host.XXXXXX)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cleanup() {
    if [ -f "$work/pg/data/postmaster.pid" ]; then
        runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "== fresh clone of $(git rev-parse --short HEAD) in $work/clone"
git clone -q --no-hardlinks "$repo" "$work/clone"

echo "== private PostgreSQL in $work/pg (socket only), with a superuser role odoo"
mkdir -p "$work/pg"
chown postgres: "$work/pg"
chmod 755 "$work"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg/data" -U postgres --auth=trust >/dev/null
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -s start \
    -o "-c listen_addresses='' -c unix_socket_directories='$work/pg' -c max_connections=200 -c fsync=off"
psql -q -h "$work/pg" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'odoo') THEN CREATE ROLE odoo SUPERUSER LOGIN; END IF; END \$\$"

cd "$work/clone"
export PGHOST="$work/pg" CARGO_TARGET_DIR="$repo/target"
netns=(unshare --net)
if ! command -v ip >/dev/null || ! unshare --net ip link set lo up 2>/dev/null; then
    # The Python tests need a loopback interface, which `ip` (iproute2) raises.
    echo "warning: cannot create a network namespace with loopback here (needs CAP_SYS_ADMIN" \
        "and iproute2); running at this host's queue length, $(cat /proc/sys/net/unix/max_dgram_qlen)"
    netns=()
fi

echo "== scripts/test.sh in a new network namespace"
status=0
"${netns[@]}" bash -c '
    ip link set lo up 2>/dev/null
    echo "net.unix.max_dgram_qlen here: $(cat /proc/sys/net/unix/max_dgram_qlen)"
    scripts/test.sh
' || status=$?

# The other way a host at 10 goes: test.sh cannot raise the queue (not
# root), and the tests that need it must say SKIP, not fail. Only those two
# test binaries, already built: seconds.
if [ "${#netns[@]}" -gt 0 ]; then
    echo "== at queue length 10 without raising it: the deep-queue tests SKIP"
    skips="$work/skips"
    "${netns[@]}" env EGRESS_TESTS_SKIP_LOG="$skips" \
        cargo test -q -p egress-tests --test coverage --test ingest -- \
        workers_are_recorded_with_their_hook_mode a_paced_load_is_journaled_exactly_once >/dev/null ||
        status=1
    cat "$skips"
    [ "$(grep -c '^SKIP ' "$skips" 2>/dev/null)" = 2 ] || { echo "FAILED: expected 2 SKIP lines"; status=1; }
fi
exit $status
