#!/usr/bin/env bash
# Checks packaging/: the example configuration passes `run --check`, the
# systemd unit passes `systemd-analyze verify` with no warning, and the
# sysctl drop-in names a key this kernel has. Run by .ci/run; needs
# systemd-analyze (Debian/Ubuntu package `systemd`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p egress-collector --bin egress-collector
bin=target/debug/egress-collector

echo "== packaging/egress-collector.toml: run --check"
env -u EGRESS_CONFIG "$bin" run --config packaging/egress-collector.toml --check

echo "== packaging/*.service: systemd-analyze verify"
if ! command -v systemd-analyze >/dev/null; then
    echo "systemd-analyze not found: install the systemd package (apt-get install systemd)" >&2
    exit 1
fi
# The unit names /usr/local/bin/egress-collector, where the README installs
# it. It is verified inside a scratch root holding that binary and the
# system's own units (for the targets it orders itself against), so that
# nothing is installed on this machine.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp "$bin" "$root/usr/local/bin/egress-collector"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
for unit in packaging/*.service; do
    cp "$unit" "$root/etc/systemd/system/"
    # verify exits 0 on unknown keys and bad values too, with a warning:
    # any output at all fails the check.
    if ! out=$(systemd-analyze verify --root="$root" "$(basename "$unit")" 2>&1) || [ -n "$out" ]; then
        echo "$unit: systemd-analyze verify:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$unit: OK"
done

echo "== packaging/sysctl.d: keys this kernel knows"
for conf in packaging/sysctl.d/*.conf; do
    grep -Ev '^\s*(#|$)' "$conf" | while IFS='=' read -r key _; do
        key=$(echo "$key" | tr -d ' ')
        if [ ! -e "/proc/sys/${key//.//}" ]; then
            echo "$conf: no such sysctl: $key" >&2
            exit 1
        fi
    done
    echo "$conf: OK"
done
