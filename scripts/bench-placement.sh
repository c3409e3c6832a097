#!/usr/bin/env bash
# What shard placement buys: the produce benchmark (`sluice bench`, 1 KiB records,
# acks=all, group commit) against a fresh `sluice serve` per run, with
#   1-shard       one shard on CPU 0                         ([engine] cores = [0])
#   2-shards      two shards on CPUs 0 and 1, partitions spread by the FNV hash
#   2-shards-pin  two shards, the bench topic pinned to shard 0 ([engine.pin])
#   1-shard-unpinned / 2-shards-unpinned   the same shard counts with pin_threads = false:
#                 the OS scheduler places the shard threads (what CPU pinning buys)
# and two workloads: flat out (throughput, broker CPU-seconds per GB) and a fixed rate
# (produce-ack p99.9, corrected for coordinated omission). Each case runs --repeat times;
# the table shows every run so the spread is visible.
#
#   scripts/bench-placement.sh [--duration 15s] [--warmup 3s] [--repeat 2] [--rate-mb 20]
#                              [--partitions 4] [--client-cpus 1] [--out DIR]
#
# CONFIGS (default: all five, space-separated) picks the cases. SLUICE_BIN (default
# target/release/sluice). Broker CPU time is utime+stime from
# /proc/<pid>/stat over the whole bench run; GB = record value bytes the bench sent.
# Every broker is started here and stopped by its PID; its data dir is deleted after.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SLUICE_BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"
DURATION=15s WARMUP=3s REPEAT=2 RATE_MB=20 PARTITIONS=4 CLIENT_CPUS=1
OUT="$(mktemp -d "${TMPDIR:-/tmp}/sluice-placement.XXXXXX")"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --rate-mb) RATE_MB="$2"; shift 2 ;;
    --partitions) PARTITIONS="$2"; shift 2 ;;
    --client-cpus) CLIENT_CPUS="$2"; shift 2 ;;
    --out) OUT="$2"; mkdir -p "$OUT"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$SLUICE_BIN" ] || { echo "SLUICE_BIN=$SLUICE_BIN is not executable (cargo build --release --bin sluice)" >&2; exit 2; }
CLK_TCK="$(getconf CLK_TCK)"
TOPIC_PREFIX=placement

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_seconds() { awk -v t="$CLK_TCK" '{ split($0, a, ") "); split(a[2], f, " "); printf "%.3f\n", (f[12] + f[13]) / t }' "/proc/$1/stat"; }

BROKER_PID=""
BROKER_DIR=""
stop_broker() {
  if [ -n "$BROKER_PID" ]; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=""
  fi
  if [ -n "$BROKER_DIR" ]; then rm -rf "$BROKER_DIR/data"; BROKER_DIR=""; fi
}
trap stop_broker EXIT

# start_broker CONFIG_NAME PORT -> sets BROKER_PID, BROKER_DIR
start_broker() {
  local name="$1" port="$2"
  BROKER_DIR="$OUT/$name-broker"
  mkdir -p "$BROKER_DIR/data"
  local engine
  case "$name" in
    1-shard) engine='cores = [0]' ;;
    2-shards) engine='cores = [0, 1]' ;;
    1-shard-unpinned) engine='shards = 1
pin_threads = false' ;;
    2-shards-unpinned) engine='shards = 2
pin_threads = false' ;;
    2-shards-pin) engine="cores = [0, 1]
[engine.pin]
\"$TOPIC_PREFIX-0\" = 0" ;;
    *) echo "unknown config $name" >&2; exit 2 ;;
  esac
  cat >"$BROKER_DIR/sluice.toml" <<TOML
[engine]
data_dir = "$BROKER_DIR/data"
$engine

[server]
listeners = "127.0.0.1:$port"
admin_listener = ""
TOML
  "$SLUICE_BIN" serve --config "$BROKER_DIR/sluice.toml" >"$BROKER_DIR/serve.log" 2>&1 </dev/null &
  BROKER_PID=$!
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$BROKER_DIR/serve.log" >&2
  echo "broker $name did not start" >&2
  exit 1
}

workload_args() {
  case "$1" in
    flat) echo "--producers 2" ;;
    rate) echo "--producers 1 --rate-mb $RATE_MB" ;;
  esac
}

RESULTS="$OUT/results.tsv"
printf 'config\tworkload\trun\tMB_s\tbroker_cpu_s\tcpu_s_per_GB\tp50_ms\tp99_ms\tp999_ms\tfailed\n' >"$RESULTS"
for workload in flat rate; do
  for config in ${CONFIGS:-1-shard 1-shard-unpinned 2-shards 2-shards-unpinned 2-shards-pin}; do
    for run in $(seq 1 "$REPEAT"); do
      port="$(free_port)"
      start_broker "$config" "$port"
      label="$config-$workload-$run"
      before="$(cpu_seconds "$BROKER_PID")"
      # shellcheck disable=SC2046
      "$SLUICE_BIN" bench run --bootstrap "127.0.0.1:$port" --label "$label" --quiet \
        --topic-prefix "$TOPIC_PREFIX" --partitions "$PARTITIONS" --record-size 1024 --acks all \
        --duration "$DURATION" --warmup "$WARMUP" --records 50000000 --cpus "$CLIENT_CPUS" \
        --out-dir "$OUT" $(workload_args "$workload") >"$OUT/$label.txt" 2>&1 || true
      after="$(cpu_seconds "$BROKER_PID")"
      stop_broker
      python3 - "$OUT/$label.json" "$config" "$workload" "$run" "$before" "$after" >>"$RESULTS" <<'PY'
import json, sys
path, config, workload, run, before, after = sys.argv[1:]
try:
    s = json.load(open(path))
except OSError:
    print(f"{config}\t{workload}\t{run}\t-\t-\t-\t-\t-\t-\tno summary")
    sys.exit()
cpu = float(after) - float(before)
gb = s["bytes_sent"] / 1e9
ack = s["produce_ack"]
print(f"{config}\t{workload}\t{run}\t{s['produce']['megabytes_per_second']:.1f}\t{cpu:.2f}\t"
      f"{cpu / gb if gb else float('nan'):.2f}\t{ack['p50_ms']:.2f}\t{ack['p99_ms']:.2f}\t{ack['p999_ms']:.2f}\t{s['records_failed']}")
PY
      tail -1 "$RESULTS" >&2
    done
  done
done

python3 - "$RESULTS" "$DURATION" "$WARMUP" "$RATE_MB" "$PARTITIONS" <<'PY'
import csv, sys
path, duration, warmup, rate, partitions = sys.argv[1:]
rows = list(csv.DictReader(open(path), delimiter="\t"))
print(f"\nproduce, 1 KiB records, acks=all, {partitions} partitions, {duration} runs ({warmup} warm-up); "
      f"flat = 2 producers flat out, rate = 1 producer at {rate} MB/s\n")
print("| config | workload | MB/s | broker CPU-s/GB | ack p50 ms | ack p99 ms | ack p99.9 ms |")
print("|---|---|---|---|---|---|---|")
groups = {}
for r in rows:
    groups.setdefault((r["config"], r["workload"]), []).append(r)
for (config, workload), rs in groups.items():
    col = lambda k: " / ".join(r[k] for r in rs)
    failed = sum(int(r["failed"]) for r in rs if r["failed"].isdigit())
    note = f" ({failed} failed)" if failed else ""
    print(f"| {config} | {workload}{note} | {col('MB_s')} | {col('cpu_s_per_GB')} | {col('p50_ms')} | {col('p99_ms')} | {col('p999_ms')} |")
print(f"\n(each cell: run 1 / run 2 ...; raw rows in {path})")
PY
