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

echo "== a 3-broker cluster with real clients (failover, network cut, reassignment)"
# librdkafka acks=all producer while the leader is SIGKILLed and restarted and a broker's
# network is cut and healed: every acknowledged record exactly once at its offset, and
# clients producing again within 3 s of the kill.
SLUICE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/sluice" \
    scripts/cluster/failover-check.py --cluster scripts/cluster/sluice-cluster.sh \
    --start --quick --max-recovery-s 3
# Consumer groups (classic and KIP-848) keep their committed offsets when their
# coordinator broker is SIGKILLed; commits and acks=all go on with a broker down.
SLUICE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/sluice" \
    "$PWD/target/interop/venv/bin/python" scripts/cluster/group-failover.py
# franz-go's admin client moves a partition to another broker and elects its preferred
# leader (scripts/cluster/reassign).
SLUICE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/sluice" scripts/cluster/reassign-check.sh
