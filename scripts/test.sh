#!/usr/bin/env bash
# Runs every test of the project. Needs a local PostgreSQL reachable as the
# `postgres` superuser over /var/run/postgresql (override with PGHOST/PGUSER).
set -euo pipefail
cd "$(dirname "$0")/.."
# End-to-end tests start the real binaries: build them first.
cargo build --workspace --bins
cargo test --workspace
