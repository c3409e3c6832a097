#!/usr/bin/env python3
"""Replication benchmark on a running 3-broker cluster (driven by scripts/bench-replication.sh):
acks=all producer with librdkafka (confluent-kafka), replication factor 3 next to
replication factor 1 on the same cluster:

  - flat out: 1 KiB records, linger.ms=5, bounded by --seconds and --records: MB/s and
    broker CPU-seconds per GB, summed over the three brokers (utime+stime of every thread,
    from /proc/<pid>/stat, as scripts/bench-librdkafka.py);
  - fixed rate (measured first, after a warm-up): --rate records/s, linger.ms=0, produce latency from the intended send time
    to the delivery report (p50/p99/p99.9; the first second is warm-up);
  - failover (RF 3): the leader of partition 0 is SIGKILLed through the cluster script while
    producing at --failover-rate; time from the kill to the next ack on partition 0 and on
    every partition; then the broker is restarted.

Prints markdown table rows (one per RF, then the failover row) on stdout and a JSON line
per measurement on stderr. Every loop is bounded by time and count.

  bench-replication.py --broker sluice --bootstrap ... --pids 1,2,3 --cluster scripts/cluster/sluice-cluster.sh
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

TICK = os.sysconf("SC_CLK_TCK")
RECORD = 1024
PARTITIONS = 3


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def make_topic(admin, rf):
    name = f"bench-rf{rf}-{uuid.uuid4().hex[:8]}"
    cfg = {"min.insync.replicas": "2" if rf >= 2 else "1"}
    admin.create_topics([NewTopic(name, PARTITIONS, rf, config=cfg)], operation_timeout=30)[name].result(60)
    # Wait until every partition has a leader (bounded).
    for _ in range(60):
        md = admin.list_topics(name, timeout=5).topics[name]
        if md.partitions and all(p.leader >= 0 for p in md.partitions.values()):
            return name
        time.sleep(0.25)
    raise RuntimeError(f"{name}: no leaders")


def flat_out(args, name):
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1048576, "queue.buffering.max.kbytes": 262144,
                  "enable.idempotence": False, "partitioner": "random"})
    value = os.urandom(RECORD)
    acked = [0]

    def done(err, _msg):
        if err is None:
            acked[0] += 1

    p.produce(name, value=value, on_delivery=done)  # connect before the clock starts
    p.flush(30)
    acked[0] = 0
    deadline = time.time() + args.seconds
    cpu0, t0, sent = cpu_seconds(args.pids), time.time(), 0
    while sent < args.records and time.time() < deadline:
        try:
            p.produce(name, value=value, on_delivery=done)
            sent += 1
        except BufferError:
            p.poll(0.005)
        if sent % 1000 == 0:
            p.poll(0)
    p.flush(60)
    secs, cpu = time.time() - t0, cpu_seconds(args.pids) - cpu0
    gb = acked[0] * RECORD / 1e9
    return {"acked": acked[0], "sent": sent, "seconds": round(secs, 2), "mb_s": round(gb * 1e3 / secs, 1),
            "records_s": round(acked[0] / secs), "cpu_s": round(cpu, 2),
            "cpu_s_per_gb": round(cpu / gb, 1) if gb else None}


def fixed_rate(args, name):
    # At most 5 requests in flight per connection (the Java client's default, and
    # librdkafka's with idempotence): with librdkafka's non-idempotent default of 1,000,000
    # and linger.ms=0 every record becomes its own request, a broker serves one request
    # per connection at a time, and once replication falls behind for a moment the backlog
    # sits in the broker's socket as one-record requests that can never be coalesced:
    # RF 3 Kafka here went to p50 1.4-4.8 s at 200-500 records/s.
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": args.linger_ms,
                  "enable.idempotence": False, "max.in.flight.requests.per.connection": 5})
    value = os.urandom(RECORD)
    lat = []
    # Warm every partition (metadata, connections, followers fetching) before the clock.
    for _ in range(3):
        for q in range(PARTITIONS):
            p.produce(name, value=value, partition=q)
        p.flush(30)
    interval = 1.0 / args.rate
    start = time.perf_counter() + 0.2
    n = int(args.rate * args.latency_seconds)
    for i in range(n):
        intended = start + i * interval
        while True:
            now = time.perf_counter()
            if now >= intended:
                break
            p.poll(min(intended - now, 0.001))
        p.produce(name, value=value, partition=i % PARTITIONS,
                  on_delivery=lambda err, msg, t=intended: lat.append(time.perf_counter() - t) if err is None else None)
        p.poll(0)
    p.flush(60)
    warm = int(args.rate)  # the first second
    xs = sorted(lat[warm:]) if len(lat) > warm else sorted(lat)
    if not xs:
        return {"acked": 0, "of": n}

    def q(f):
        return round(xs[min(len(xs) - 1, int(f * len(xs)))] * 1e3, 2)

    return {"acked": len(lat), "of": n, "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999),
            "max_ms": round(xs[-1] * 1e3, 2)}


def failover(args, admin):
    name = make_topic(admin, 3)
    leader = admin.list_topics(name, timeout=5).topics[name].partitions[0].leader
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    acks = {q: [] for q in range(PARTITIONS)}
    lost = [0]

    def done(err, msg):
        if err is None:
            acks[msg.partition()].append(time.monotonic())
        else:
            lost[0] += 1

    interval = 1.0 / args.failover_rate
    t0 = time.monotonic()
    kill_at, end = t0 + 3.0, t0 + args.failover_seconds
    times = {}

    def kill():
        # In its own thread, so the producer keeps polling and every delivery report is
        # stamped when it arrives, not when the kill command returns.
        times["kill"] = time.monotonic()
        subprocess.run([args.cluster, "kill", str(leader)], check=True, capture_output=True, timeout=60)
        times["gone"] = time.monotonic()

    killer = threading.Thread(target=kill)
    i = 0
    while time.monotonic() < end and i < args.failover_rate * args.failover_seconds:
        now = time.monotonic()
        if now >= kill_at and not killer.is_alive() and "kill" not in times:
            killer.start()
        due = t0 + i * interval
        if now < due:
            p.poll(min(due - now, 0.002))
            continue
        p.produce(name, value=b"x" * 100, partition=i % PARTITIONS, on_delivery=done)
        i += 1
        p.poll(0)
    p.flush(30)
    killer.join(60)
    subprocess.run([args.cluster, "restart", str(leader)], check=True, capture_output=True, timeout=180)

    def stall_end(q):
        # When the longest gap between acks after the kill ended, relative to the kill
        # (the kill counting as the first point); None if no ack came after the broker died.
        pts = [times["kill"]] + [t for t in acks[q] if t >= times["kill"]]
        if not any(t >= times["gone"] for t in pts[1:]):
            return None
        longest, ended = max((b - a, b) for a, b in zip(pts, pts[1:]))
        return round(ended - times["kill"], 3)

    per = {q: stall_end(q) for q in range(PARTITIONS)}
    worst = None if any(v is None for v in per.values()) else max(per.values())
    return {"killed": leader, "p0_s": per[0], "all_partitions_s": worst, "per_partition_s": per,
            "kill_command_s": round(times["gone"] - times["kill"], 3), "failed_deliveries": lost[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--pids", required=True, help="comma-separated broker pids")
    ap.add_argument("--cluster", required=True, help="cluster script (kill/restart for the failover run)")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--latency-seconds", type=float, default=8)
    ap.add_argument("--linger-ms", type=int, default=0, help="of the fixed-rate latency producer")
    ap.add_argument("--warmup-seconds", type=float, default=5)
    ap.add_argument("--failover-rate", type=int, default=500)
    ap.add_argument("--failover-seconds", type=float, default=25)
    args = ap.parse_args()
    args.pids = [int(x) for x in args.pids.split(",")]
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    # Warm-up at the latency rate, not reported: a fresh JVM runs the produce and
    # replication paths interpreted for its first seconds. Not flat out: the page-cache
    # writeback of a flat-out run shows up in the next latency run.
    warm = argparse.Namespace(**vars(args))
    warm.latency_seconds = args.warmup_seconds
    fixed_rate(warm, make_topic(admin, 3))
    # Latency first, on a quiet cluster: after a flat-out run the page cache writes back
    # gigabytes and the latency measures that.
    lats = {rf: fixed_rate(args, make_topic(admin, rf)) for rf in (1, 3)}
    for rf in (1, 3):
        flat = flat_out(args, make_topic(admin, rf))
        lat = lats[rf]
        print(json.dumps({"broker": args.broker, "rf": rf, "flat_out": flat, "fixed_rate": lat}), file=sys.stderr)
        print(f"| {args.broker} | {rf} | {flat['mb_s']} | {flat['records_s']:,} | {flat['cpu_s']} | "
              f"{flat['cpu_s_per_gb']} | {args.rate:,}/s | {lat.get('p50_ms')} | {lat.get('p99_ms')} | "
              f"{lat.get('p999_ms')} | {lat['acked']} of {lat['of']} |", flush=True)
    fo = failover(args, admin)
    print(json.dumps({"broker": args.broker, "failover": fo}), file=sys.stderr)
    print(f"FAILOVER | {args.broker} | {fo['killed']} | {fo['p0_s']} | {fo['all_partitions_s']} | "
          f"{fo['failed_deliveries']} |", flush=True)


if __name__ == "__main__":
    main()
