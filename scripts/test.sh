#!/usr/bin/env bash
# The whole test suite, as CI runs it: lints, unit/property/crash/real-disk tests, the
# broker against malformed input, and real Kafka clients (librdkafka, kafka-python, the
# Java client) against the real `sluice serve` binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== fmt / clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace

echo "== real clients against sluice serve"
cargo build --bin sluice
SLUICE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/sluice" scripts/interop/run.sh
