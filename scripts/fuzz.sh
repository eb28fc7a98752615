#!/usr/bin/env bash
# A bounded, coverage-guided fuzz run of the datagram decoder (fuzz/),
# on stable Rust: cargo-fuzz needs a nightly compiler for its sanitizer
# flags, but libFuzzer's coverage instrumentation (SanitizerCoverage) is
# reachable through stable `-C passes` / `-C llvm-args`, and libfuzzer-sys
# builds libFuzzer itself. No AddressSanitizer: the decoder is safe Rust,
# so what is hunted is a panic (or an abort from a bad allocation size).
#
#   scripts/fuzz.sh [RUNS]    (default 2,000,000 inputs, about 10 s; at most 120 s)
#
# The corpus is kept in fuzz/corpus/datagram (seeded from the golden
# vectors); inputs that find new coverage are added to a scratch copy, not
# to the repository. A crash leaves its input in fuzz/artifacts/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-2000000}"
export RUSTFLAGS="-C passes=sancov-module -C llvm-args=-sanitizer-coverage-level=4 \
 -C llvm-args=-sanitizer-coverage-inline-8bit-counters -C llvm-args=-sanitizer-coverage-pc-table \
 -C llvm-args=-sanitizer-coverage-trace-compares -C debug-assertions -C overflow-checks"
# An explicit --target keeps the flags off build scripts and proc macros.
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --manifest-path fuzz/Cargo.toml --bin datagram --target "$host"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp fuzz/corpus/datagram/* "$work"/
mkdir -p fuzz/artifacts
fuzz/target/"$host"/release/datagram "$work" -runs="$runs" -max_total_time=120 -max_len=16384 \
    -seed=1 -artifact_prefix=fuzz/artifacts/ -print_final_stats=1
echo "fuzz: $runs inputs, no crash"
