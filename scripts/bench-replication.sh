#!/usr/bin/env bash
# Replication benchmark, one machine: a 3-broker cluster per broker kind (from
# scripts/cluster/<kind>-cluster.sh, fresh data dirs), acks=all with librdkafka for
# replication factor 3 next to replication factor 1 on the same cluster - throughput,
# broker CPU-s/GB (summed over the three brokers), p50/p99/p99.9 produce latency at a fixed
# rate - and the failover time after SIGKILL of partition 0's leader (kill -> next ack).
# Prints one markdown table for all kinds. See scripts/bench-replication.py for the method.
#
#   scripts/bench-replication.sh [--brokers "sluice kafka"] [--seconds 10] [--rate 200]
#                                [--latency-seconds 8] [--out bench/results/replication.md]
#
# SLUICE_BIN as for scripts/cluster/sluice-cluster.sh (default target/release/sluice).
# Bounded: each measurement by its seconds and a record count; clusters stopped by PID and
# their data dirs deleted on any exit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BROKERS="sluice kafka"
SECONDS_FLAT=10
RATE=200
LAT_SECONDS=8
OUT=""
while (($#)); do
    case "$1" in
        --brokers) BROKERS="$2"; shift 2 ;;
        --seconds) SECONDS_FLAT="$2"; shift 2 ;;
        --rate) RATE="$2"; shift 2 ;;
        --latency-seconds) LAT_SECONDS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) sed -n '2,15p' "$0" >&2; exit 2 ;;
    esac
done
log() { echo "bench-replication: $*" >&2; }

# confluent-kafka from the interop venv (same pins as scripts/interop/run.sh).
PY="$ROOT/target/interop/venv/bin/python"
if ! "$PY" -c 'import confluent_kafka' 2>/dev/null; then
    PY=python3
    "$PY" -c 'import confluent_kafka' 2>/dev/null || { log "confluent-kafka missing: run scripts/interop/run.sh once (it makes target/interop/venv)"; exit 1; }
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-replication.XXXXXX")"
CLUSTER=""
cleanup() {
    if [[ -n "$CLUSTER" ]]; then CLUSTER_DIR="$WORK/$KIND" "$CLUSTER" stop >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ROWS="$WORK/rows.md"
FAILOVER="$WORK/failover.md"
: >"$ROWS"
: >"$FAILOVER"
for KIND in $BROKERS; do
    CLUSTER="$ROOT/scripts/cluster/$KIND-cluster.sh"
    [[ -x "$CLUSTER" ]] || { log "unknown broker kind $KIND"; exit 2; }
    log "$KIND: starting 3 brokers"
    export CLUSTER_DIR="$WORK/$KIND"
    "$CLUSTER" start "$CLUSTER_DIR"
    pids="$("$CLUSTER" pid 1),$("$CLUSTER" pid 2),$("$CLUSTER" pid 3)"
    log "$KIND: measuring (pids $pids, load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$PY" "$ROOT/scripts/bench-replication.py" --broker "$KIND" --bootstrap "$("$CLUSTER" bootstrap)" \
        --pids "$pids" --cluster "$CLUSTER" --seconds "$SECONDS_FLAT" --rate "$RATE" \
        --latency-seconds "$LAT_SECONDS" 2>"$WORK/$KIND.json.log" | tee -a "$WORK/$KIND.rows" >&2 \
        || { cat "$WORK/$KIND.json.log" >&2; exit 1; }
    grep -v '^FAILOVER' "$WORK/$KIND.rows" >>"$ROWS" || true
    grep '^FAILOVER' "$WORK/$KIND.rows" | sed 's/^FAILOVER //' >>"$FAILOVER" || true
    grep '^{' "$WORK/$KIND.json.log" >&2 || true
    "$CLUSTER" stop
    CLUSTER=""
done

{
    echo "acks=all, 1 KiB records, 3 partitions, 3 brokers on one machine ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end)."
    echo "After a 5 s unreported warm-up at that rate: latency at ${RATE} records/s, linger.ms=0, max 5 requests in flight, ${LAT_SECONDS} s (first second dropped), then flat out for ${SECONDS_FLAT} s, linger.ms=5."
    echo "CPU-s/GB: utime+stime of all three brokers per GB of record values acked."
    echo
    echo "| broker | RF | MB/s | records/s | broker CPU-s | broker CPU-s/GB | latency rate | p50 ms | p99 ms | p99.9 ms | acked |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    cat "$ROWS"
    echo
    echo "Failover: SIGKILL of partition 0's leader while producing 500 records/s (idempotent, acks=all); time from the kill to the next ack."
    echo
    echo "| broker | killed node | partition 0 s | all partitions s | failed deliveries |"
    echo "|---|---|---|---|---|"
    cat "$FAILOVER"
} | tee "${OUT:-/dev/null}"
