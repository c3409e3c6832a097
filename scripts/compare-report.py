#!/usr/bin/env python3
"""Writes bench/results/README.md from one scripts/compare-kafka.sh run: the machine's
limits, one row per (workload, broker mode), and links to the plots."""
import csv
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

out = Path(os.environ["OUT"])
runs = out / "runs"
modes = os.environ["MODES"].split()
workloads = os.environ["WORKLOADS"].split()
kafka = os.environ["KAFKA_VERSION"]

MODE_LABELS = {
    "kafka-default": f"Kafka {kafka}, default (no fsync: acked from the page cache)",
    "kafka-flush": f"Kafka {kafka}, log.flush.interval.messages=1 (fsync per produce batch)",
    "sluice-default": "Sluice, default = group commit (fdatasync before ack)",
    "sluice-nosync": "Sluice, durability none (O_DIRECT write before ack, no fdatasync)",
}
WORKLOAD_LABELS = {
    "1k-1p-flat": "1 KiB, 1 partition, flat out",
    "1k-16p-flat": "1 KiB, 16 partitions, 2 producers, flat out",
    "1k-e2e-50mbs": "1 KiB, 4 partitions, fixed 50 MB/s, end-to-end",
    "100b-flat": "100 B, 1 partition, flat out",
    "keyed-1000p": "1 KiB keyed (100k keys), 1,000 partitions, fixed 10 MB/s, end-to-end",
}

limits = json.loads((runs / "limits.json").read_text())
cpu = {}
with open(runs / "broker-cpu.tsv") as f:
    for row in csv.DictReader(f, delimiter="\t"):
        cpu[(row["mode"], row["workload"])] = row


def mb(bps):
    return bps / 1e6 if bps else None


def fmt(v, digits=2):
    return "-" if v is None else f"{v:,.{digits}f}"


cpu_model = "unknown"
try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
except OSError:
    pass

disk_w, disk_r, net = (
    mb(limits.get(k))
    for k in ("disk_write_bytes_per_second", "disk_read_bytes_per_second", "loopback_bytes_per_second")
)
lines = [
    "# Sluice vs Apache Kafka: side-by-side results",
    "",
    f"Written by `scripts/compare-kafka.sh` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
    f"Sluice {os.environ.get('SLUICE_REV', '?')}, Apache Kafka {kafka} (single-node KRaft, run from its Maven "
    "artifacts), load generator `sluice bench`.",
    "",
    f"Machine: {os.cpu_count()} cores ({cpu_model}), {platform.system()} {platform.release()}. "
    f"Broker pinned to cpu {os.environ['BROKER_CPUS']}, load generator to cpu {os.environ['CLIENT_CPUS']}. "
    f"Each run: {os.environ['DURATION']} including {os.environ['WARMUP']} of warm-up (excluded from every figure), "
    "acks=all, a fresh broker and data dir per run.",
    "",
    "Load average (1/5/15 min) on the machine, which other work shared: "
    + "; ".join(
        line.strip()
        for line in ((runs / "loadavg.txt").read_text() if (runs / "loadavg.txt").exists() else "not recorded").splitlines()
    )
    + ".",
    "",
    "## The machine's own limits (measured in the same run)",
    "",
    "| limit | MB/s | measured with |",
    "|---|---:|---|",
    f"| disk sequential write, O_DIRECT | {fmt(disk_w, 0)} | {limits.get('disk_tool')} |",
    f"| disk sequential read, O_DIRECT | {fmt(disk_r, 0)} | {limits.get('disk_tool')} |",
    f"| loopback TCP | {fmt(net, 0)} | {limits.get('loopback_tool')} |",
    "",
    "## Results",
    "",
    "Throughput counts acknowledged record values (10^6 bytes per MB) in the measured window. Latencies in ms: "
    "*ack* from each record's intended send time (at a fixed rate its scheduled time, so a stall is not hidden) "
    "to its produce ack; *e2e* from the intended send time to the consumer's receipt. Broker CPU is the broker "
    "process's user+system CPU over the whole run (topic creation included); CPU-s/GB divides it by the value "
    "bytes acknowledged, and records per CPU-s divides the records acknowledged by it.",
    "",
    "| workload | broker | records/s | MB/s | % of disk write | % of loopback | ack p50 | ack p99 | ack p99.9 "
    "| ack max | e2e p50 | e2e p99 | e2e p99.9 | broker CPU-s | CPU-s/GB | records per CPU-s | acked = sent |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
]
for w in workloads:
    for m in modes:
        label = MODE_LABELS.get(m, m)
        row = cpu.get((m, w), {})
        f = runs / m / w / f"{m}.json"
        if not f.exists():
            status = row.get("status") or "not run"
            if m.startswith("sluice") and "did not start" in status:
                status = "not available (sluice serve did not start)"
            lines.append(f"| {WORKLOAD_LABELS.get(w, w)} | {label} | {status} |" + " |" * 14)
            continue
        s = json.loads(f.read_text())
        rate = s["produce"]["megabytes_per_second"]
        gb = s["bytes_sent"] / 1e9 if s["records_failed"] == 0 else None
        cpu_s = float(row["broker_cpu_seconds"]) if row.get("broker_cpu_seconds") else None
        per_gb = cpu_s / gb if cpu_s is not None and gb else None
        per_cpu = s["records_acknowledged"] / cpu_s if cpu_s else None
        ok = (
            "yes"
            if s["records_acknowledged"] == s["records_sent"] and s["records_failed"] == 0
            else f"NO ({s['records_failed']} failed)"
        )
        if s.get("fell_behind_schedule"):
            ok += ", fell behind the schedule"
        if s.get("consumers_incomplete"):
            ok += ", consumers incomplete"
        if row.get("status", "ok") != "ok":
            ok += f", {row['status']}"
        pa, e2e = s["produce_ack"], s["end_to_end"]

        def e(k):
            return fmt(e2e[k]) if e2e["count"] else "-"

        def a(k):
            return fmt(pa[k]) if pa["count"] else "-"

        if pa["count"] == 0:
            ok += ", no record sent after warm-up was acknowledged before the run ended"

        lines.append(
            f"| {WORKLOAD_LABELS.get(w, w)} | {label} | {fmt(s['produce']['records_per_second'], 0)} | {fmt(rate, 1)} "
            f"| {fmt(100 * rate / disk_w if disk_w else None, 0)}% | {fmt(100 * rate / net if net else None, 1)}% "
            f"| {a('p50_ms')} | {a('p99_ms')} | {a('p999_ms')} | {a('max_ms')} "
            f"| {e('p50_ms')} | {e('p99_ms')} | {e('p999_ms')} | {fmt(cpu_s, 1)} | {fmt(per_gb, 1)} | {fmt(per_cpu, 0)} | {ok} |"
        )

lines += ["", "## Percentile spectra", ""]
for w in workloads:
    for metric in ("produce-ack", "end-to-end"):
        svg = out / f"{w}.{metric}.svg"
        if svg.exists():
            png = svg.with_suffix(".png")
            extra = f" ([png]({png.name}))" if png.exists() else ""
            lines.append(f"- {WORKLOAD_LABELS.get(w, w)}, {metric}: [{svg.name}]({svg.name}){extra}")
lines += [
    "",
    "Per run: `runs/<mode>/<workload>.txt` (console table), `runs/<mode>/<workload>/<mode>.json` (summary), "
    "`runs/<mode>/<workload>/*.hgrm` (HdrHistogram percentile distributions, ms), `runs/broker-cpu.tsv`, "
    "`runs/limits.json`.",
    "",
    "## Reading these numbers",
    "",
    "- Durability differs by mode and each row says which: Kafka's default acknowledges from the page cache; "
    "`log.flush.interval.messages=1` makes it fsync after every append (one per produce batch), the closest match "
    "to Sluice's fdatasync-before-ack default.",
    "- This is a 2-core virtual machine, shared with other work (builds, tests) while the run went on: absolute "
    "figures are noisy, and the load generator has one core, which can be the bottleneck in flat-out runs. "
    "Compare rows within one table, not across machines or runs.",
    "- `% of disk write` and `% of loopback` divide the produce MB/s by the limits above.",
    "- Every broker is started fresh for each run and every partition gets one primed record before the clock "
    "starts. A JVM broker is still compiling its hot paths in the first seconds; with short runs a fixed-rate "
    "workload that falls behind then carries the backlog through the whole measured window, and because latency "
    "counts from the scheduled send time, that backlog is in the percentiles. Longer runs "
    "(`--duration 60s --warmup 20s`) separate start-up from steady state.",
    "- The bench's consumers send full fetch requests (no incremental fetch sessions, KIP-227) naming every assigned "
    "partition; with 1,000 partitions that costs a broker more per fetch than a Java consumer would.",
    "- \"fell behind the schedule\": the producer could not send every record at its scheduled time; the achieved "
    "rate is the records/s column.",
]
(out / "README.md").write_text("\n".join(lines) + "\n")
