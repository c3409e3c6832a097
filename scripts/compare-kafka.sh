#!/usr/bin/env bash
# Side-by-side benchmark: the same `sluice bench` workloads against Apache Kafka 4.x (from
# Maven, via scripts/apache-kafka.sh) and against Sluice, each broker pinned to its own
# cores and the load generator to others, with the machine's own limits measured in the
# same run. Writes a markdown table, JSON summaries, .hgrm files and SVG plots.
#
#   scripts/compare-kafka.sh [--out bench/results] [--duration 20s] [--warmup 5s]
#                            [--broker-cpus 0] [--client-cpus 1] [--modes "kafka-default ..."]
#                            [--workloads "1k-1p-flat ..."]
#
# SLUICE_BIN: a built sluice binary (default: cargo build --release -p sluice).
# Every broker listens on 127.0.0.1 only, is started with a fresh data dir per workload
# and is stopped by PID; every bench run is bounded by --duration and a record count.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/bench/results"
DURATION="20s"
WARMUP="5s"
BROKER_CPUS="0"
CLIENT_CPUS="1"
MODES="kafka-default kafka-flush sluice-default sluice-nosync"
WORKLOADS="1k-1p-flat 1k-16p-flat 1k-e2e-50mbs 100b-flat keyed-1000p"
PORT_BASE="${PORT_BASE:-39092}"
FREE_BYTES_MIN=$((3 << 29))   # 1.5 GiB: below this a run is skipped
RUN_BYTES_MAX=$((2 << 30))    # value bytes one run may write, at most

while (($#)); do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --broker-cpus) BROKER_CPUS="$2"; shift 2 ;;
    --client-cpus) CLIENT_CPUS="$2"; shift 2 ;;
    --modes) MODES="$2"; shift 2 ;;
    --workloads) WORKLOADS="$2"; shift 2 ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
  esac
done

log() { echo "compare: $*" >&2; }

if [[ -z "${SLUICE_BIN:-}" ]]; then
  log "building sluice (release)"
  (cd "$ROOT" && cargo build --release -p sluice >&2)
  SLUICE_BIN="$ROOT/target/release/sluice"
fi
[[ -x "$SLUICE_BIN" ]] || { log "SLUICE_BIN=$SLUICE_BIN is not executable"; exit 1; }
KAFKA_VERSION="$("$ROOT/scripts/apache-kafka.sh" version)"
"$ROOT/scripts/apache-kafka.sh" fetch >/dev/null

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-compare.XXXXXX")"
BROKER_PID=""
stop_broker() {
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}
cleanup() { stop_broker; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

rm -rf "$OUT/runs"
mkdir -p "$OUT/runs"
CPU_TSV="$OUT/runs/broker-cpu.tsv"
printf 'mode\tworkload\tbroker_cpu_seconds\tstatus\n' >"$CPU_TSV"
CLK_TCK="$(getconf CLK_TCK)"

# utime + stime of a process and its threads, in seconds.
cpu_seconds() {
  awk -v t="$CLK_TCK" '{ split($0, a, ") "); split(a[2], f, " "); printf "%.3f\n", (f[12] + f[13]) / t }' "/proc/$1/stat"
}

free_bytes() { df -B1 --output=avail "$1" | tail -1 | tr -d ' '; }

# ---------------------------------------------------------------- machine limits
measure_limits() {
  local f="$WORK/limits.json" probe="$WORK/disk-probe" bytes=$((1 << 30))
  local write_bps="null" read_bps="null" disk_tool="dd bs=1M oflag/iflag=direct, queue depth 1"
  if command -v fio >/dev/null; then
    disk_tool="fio 1 MiB sequential, O_DIRECT, libaio iodepth 32"
    write_bps="$(fio --name=w --filename="$probe" --rw=write --bs=1M --size=$bytes --direct=1 --ioengine=libaio \
      --iodepth=32 --end_fsync=1 --output-format=json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw_bytes"])')"
    read_bps="$(fio --name=r --filename="$probe" --rw=read --bs=1M --size=$bytes --direct=1 --ioengine=libaio \
      --iodepth=32 --output-format=json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"])')"
  else
    local start end
    start=$(date +%s.%N)
    dd if=/dev/zero of="$probe" bs=1M count=$((bytes >> 20)) oflag=direct conv=fdatasync status=none
    end=$(date +%s.%N)
    write_bps=$(python3 -c "print(int($bytes / ($end - $start)))")
    start=$(date +%s.%N)
    dd if="$probe" of=/dev/null bs=1M iflag=direct status=none
    end=$(date +%s.%N)
    read_bps=$(python3 -c "print(int($bytes / ($end - $start)))")
  fi
  rm -f "$probe"
  local net_bps net_tool
  if command -v iperf3 >/dev/null; then
    # Best of three: on a shared machine a single sample mostly measures the neighbours.
    net_tool="iperf3, 1 stream, best of 3 x 3 s, server and client pinned like broker and bench"
    net_bps=0
    for attempt in 1 2 3; do
      taskset -c "$BROKER_CPUS" iperf3 -s -1 -B 127.0.0.1 -p $((PORT_BASE + 50 + attempt)) >/dev/null 2>&1 &
      sleep 0.5
      bps="$(taskset -c "$CLIENT_CPUS" iperf3 -c 127.0.0.1 -p $((PORT_BASE + 50 + attempt)) -t 3 -J | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8))')"
      ((bps > net_bps)) && net_bps=$bps
    done
  else
    net_tool="python3 socket, 1 stream, 1 MiB writes, 5 s"
    net_bps="$(BROKER_CPUS="$BROKER_CPUS" CLIENT_CPUS="$CLIENT_CPUS" PORT=$((PORT_BASE + 50)) python3 - <<'PY'
import os, socket, threading, time
port = int(os.environ["PORT"])
def cpus(v): return {int(c) for c in v.split(",")}
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(1)
got = [0]
def sink():
    os.sched_setaffinity(0, cpus(os.environ["BROKER_CPUS"]))
    c, _ = srv.accept(); buf = bytearray(1 << 20); view = memoryview(buf)
    while True:
        n = c.recv_into(view)
        if n == 0: break
        got[0] += n
t = threading.Thread(target=sink); t.start()
os.sched_setaffinity(0, cpus(os.environ["CLIENT_CPUS"]))
s = socket.create_connection(("127.0.0.1", port)); data = b"x" * (1 << 20)
start = time.monotonic(); end = start + 5
while time.monotonic() < end: s.sendall(data)
s.close(); t.join(); print(int(got[0] / (time.monotonic() - start)))
PY
)"
  fi
  cat >"$f" <<JSON
{"disk_write_bytes_per_second": $write_bps, "disk_read_bytes_per_second": $read_bps, "disk_tool": "$disk_tool",
 "loopback_bytes_per_second": $net_bps, "loopback_tool": "$net_tool"}
JSON
  cp "$f" "$OUT/runs/limits.json"
  log "limits: $(tr -d '\n' <"$f")"
}

# ---------------------------------------------------------------- brokers
start_broker() { # mode workload dir port
  local mode="$1" workload="$2" dir="$3" port="$4"
  case "$mode" in
    kafka-default) BROKER_PID="$("$ROOT/scripts/apache-kafka.sh" start --port "$port" --data-dir "$dir" --cpus "$BROKER_CPUS")" ;;
    kafka-flush) BROKER_PID="$("$ROOT/scripts/apache-kafka.sh" start --port "$port" --data-dir "$dir" --cpus "$BROKER_CPUS" --flush-every-message)" ;;
    sluice-default | sluice-nosync)
      local durability="group_commit" segment_bytes=$((64 << 20)) first_cpu="${BROKER_CPUS%%,*}"
      [[ "$mode" == sluice-nosync ]] && durability="none"
      # Sluice preallocates each segment; keep 1,000 partitions within the disk.
      [[ "$workload" == keyed-1000p ]] && segment_bytes=$((1 << 20))
      mkdir -p "$dir/data"
      cat >"$dir/sluice.toml" <<TOML
[engine]
data_dir = "$dir/data"
cores = [$first_cpu]
shards = 1
[engine.durability]
mode = "$durability"
[engine.log]
segment_bytes = $segment_bytes
[server]
listeners = "127.0.0.1:$port"
TOML
      nohup taskset -c "$BROKER_CPUS" "$SLUICE_BIN" serve --config "$dir/sluice.toml" >"$dir/serve.log" 2>&1 </dev/null &
      BROKER_PID=$!
      for _ in $(seq 1 100); do
        kill -0 "$BROKER_PID" 2>/dev/null || { BROKER_PID=""; return 1; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.2
      done
      stop_broker
      return 1 ;;
    *) log "unknown mode $mode"; return 1 ;;
  esac
}

# ---------------------------------------------------------------- workloads
workload_args() {
  case "$1" in
    1k-1p-flat) echo "--record-size 1024 --partitions 1 --producers 1" ;;
    1k-16p-flat) echo "--record-size 1024 --partitions 16 --producers 2" ;;
    1k-e2e-50mbs) echo "--record-size 1024 --partitions 4 --producers 1 --consumers 1 --rate-mb 50" ;;
    100b-flat) echo "--record-size 100 --partitions 1 --producers 1" ;;
    keyed-1000p) echo "--record-size 1024 --partitions 1000 --keys 100000 --producers 1 --consumers 1 --rate-mb 10" ;;
    *) return 1 ;;
  esac
}

echo "start: $(cat /proc/loadavg)" >"$OUT/runs/loadavg.txt"
measure_limits
port=$PORT_BASE
for mode in $MODES; do
  mkdir -p "$OUT/runs/$mode"
  for workload in $WORKLOADS; do
    args="$(workload_args "$workload")" || { log "unknown workload $workload"; exit 2; }
    free="$(free_bytes "$WORK")"
    if ((free < FREE_BYTES_MIN)); then
      log "$mode/$workload: skipped, less than 1.5 GiB free"
      printf '%s\t%s\t\tskipped: low disk\n' "$mode" "$workload" >>"$CPU_TSV"
      continue
    fi
    port=$((port + 2))
    dir="$WORK/$mode-$workload"
    if ! start_broker "$mode" "$workload" "$dir" "$port"; then
      log "$mode/$workload: broker did not start"
      printf '%s\t%s\t\tbroker did not start\n' "$mode" "$workload" >>"$CPU_TSV"
      rm -rf "$dir"
      continue
    fi
    log "$mode/$workload: broker pid $BROKER_PID on 127.0.0.1:$port"
    cpu_before="$(cpu_seconds "$BROKER_PID")"
    status="ok"
    # Count bound: at most RUN_BYTES_MAX (or half the free disk) of values per run,
    # whatever the broker's speed; a run that hits it says so in its JSON (records_sent).
    size="$(sed -E 's/.*--record-size ([0-9]+).*/\1/' <<<"$args")"
    run_bytes=$(( (free - (1 << 30)) / 2 ))
    ((run_bytes > RUN_BYTES_MAX)) && run_bytes=$RUN_BYTES_MAX
    records_max=$((run_bytes / size))
    # shellcheck disable=SC2086
    if ! timeout 600 "$SLUICE_BIN" bench run --bootstrap "127.0.0.1:$port" --label "$mode" \
        --topic-prefix "bench-$workload" $args --acks all --duration "$DURATION" --warmup "$WARMUP" \
        --records "$records_max" --request-timeout 120s --cpus "$CLIENT_CPUS" --out-dir "$OUT/runs/$mode/$workload" \
        >"$OUT/runs/$mode/$workload.txt" 2>"$WORK/bench.err"; then
      status="bench failed: $(tail -1 "$WORK/bench.err")"
    fi
    cpu_after="$(cpu_seconds "$BROKER_PID" 2>/dev/null || echo "$cpu_before")"
    printf '%s\t%s\t%s\t%s\n' "$mode" "$workload" "$(python3 -c "print(round($cpu_after - $cpu_before, 3))")" "$status" >>"$CPU_TSV"
    log "$mode/$workload: $status"
    cat "$OUT/runs/$mode/$workload.txt" >&2 || true
    stop_broker
    rm -rf "$dir"
  done
done

echo "end: $(cat /proc/loadavg)" >>"$OUT/runs/loadavg.txt"

# ---------------------------------------------------------------- plots and table
for workload in $WORKLOADS; do
  for metric in produce-ack end-to-end; do
    files=()
    for mode in $MODES; do
      f="$OUT/runs/$mode/$workload/$mode.json"
      [[ -f "$f" ]] && files+=("$f")
    done
    ((${#files[@]})) || continue
    "$SLUICE_BIN" bench plot --out "$OUT/$workload.$metric.svg" --metric "$metric" --title "$workload" "${files[@]}" >/dev/null 2>&1 \
      || rm -f "$OUT/$workload.$metric.svg"
    # PNG copies where librsvg is installed (Debian: librsvg2-bin).
    if [[ -f "$OUT/$workload.$metric.svg" ]] && command -v rsvg-convert >/dev/null; then
      rsvg-convert -o "$OUT/$workload.$metric.png" "$OUT/$workload.$metric.svg" || true
    fi
  done
done

SLUICE_REV="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
KAFKA_VERSION="$KAFKA_VERSION" MODES="$MODES" WORKLOADS="$WORKLOADS" OUT="$OUT" \
DURATION="$DURATION" WARMUP="$WARMUP" BROKER_CPUS="$BROKER_CPUS" CLIENT_CPUS="$CLIENT_CPUS" \
  python3 "$ROOT/scripts/compare-report.py"
log "wrote $OUT/README.md"
