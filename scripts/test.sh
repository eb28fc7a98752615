#!/usr/bin/env bash
# Runs every test of the project. Needs a local PostgreSQL reachable as the
# `postgres` superuser over /var/run/postgresql (or the socket directory in
# PGHOST), and, for the Python package, python3 >= 3.10 with maturin, pytest,
# aiosmtpd, requests, urllib3 and cryptography (.ci/run installs them).
#
# Every suite runs even when an earlier one fails; the exit status is 1 when
# any failed, and the last lines say which. Tests that need a deep datagram
# queue (net.unix.max_dgram_qlen >= 512) run when it is, or when this script
# can raise it (as root); otherwise they print a SKIP line at the end.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
suite() {
    local name=$1
    shift
    echo "== $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

# The kernel's default queue of 10 datagrams per Unix socket makes senders
# drop (and count) events in bursts; the load tests expect none dropped.
want_qlen=512
qlen=$(cat /proc/sys/net/unix/max_dgram_qlen 2>/dev/null || echo 0)
skip_log=$(mktemp)
trap 'rm -f "$skip_log"' EXIT
if [ "$qlen" -lt "$want_qlen" ]; then
    if [ "$(id -u)" = 0 ] && [ -z "${EGRESS_TESTS_KEEP_QLEN:-}" ] &&
        sysctl -q -w net.unix.max_dgram_qlen=$want_qlen 2>/dev/null; then
        echo "raised net.unix.max_dgram_qlen from $qlen to $want_qlen (in this network namespace)"
    else
        echo "net.unix.max_dgram_qlen is $qlen and stays so: tests that need $want_qlen will SKIP"
        export EGRESS_TESTS_SKIP_LOG=$skip_log
    fi
fi

# End-to-end tests start the real binaries: build them first.
if ! cargo build --workspace --bins; then
    echo "FAILED: cargo build --workspace --bins (no test can run)"
    exit 1
fi
suite "cargo test" cargo test --workspace --no-fail-fast

# The Python package (hook-client/python), built from this tree into a scratch
# virtualenv that sees the system's test tools, then its tests, which read
# events back through the real collector built above.
python_suite() {
    local venv=target/python-test-venv
    python3 -m venv --clear --system-site-packages "$venv" &&
        "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
            --no-deps ./hook-client/python &&
        "$venv/bin/python" -m pytest -q -p no:cacheprovider hook-client/python/tests tests/odoo
}
suite "python" python_suite

# The Odoo addon's own tests, in a real Odoo: only when ODOO_BIN names one
# (see tests/odoo/run.sh); otherwise it says plainly that they were skipped.
suite "odoo addon" tests/odoo/run.sh

echo
if [ -s "$skip_log" ]; then
    cat "$skip_log"
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "All suites passed."
