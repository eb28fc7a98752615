#!/usr/bin/env bash
# Runs every test of the project. Needs a local PostgreSQL reachable as the
# `postgres` superuser over /var/run/postgresql (override with PGHOST/PGUSER),
# and, for the Python package, python3 >= 3.10 with maturin, pytest, aiosmtpd,
# requests, urllib3 and cryptography (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
# End-to-end tests start the real binaries: build them first.
cargo build --workspace --bins
cargo test --workspace
# The Python package (hook-client/python), built from this tree into a scratch
# virtualenv that sees the system's test tools, then its tests, which read
# events back through the real collector built above.
venv=target/python-test-venv
python3 -m venv --clear --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation \
    --no-deps ./hook-client/python
"$venv/bin/python" -m pytest -q -p no:cacheprovider hook-client/python/tests tests/odoo
# The Odoo addon's own tests, in a real Odoo: only when ODOO_BIN names one
# (see tests/odoo/run.sh); otherwise it says plainly that they were skipped.
tests/odoo/run.sh
