#!/usr/bin/env python3
"""Produce benchmark with librdkafka (confluent-kafka), as the protocol-server issue asks:
1 KiB records, acks=all, flat out to 1 and 16 partitions (records/s, MB/s, broker CPU-s/GB
sampled from /proc/<pid>/stat), then a fixed 5,000 records/s with linger.ms=0 (produce
latency from the intended send time to the delivery report: p50/p99/p99.9).

  scripts/bench-librdkafka.py --bootstrap 127.0.0.1:9092 --broker-pid <pid>

Every loop is bounded by count and time. Needs `pip install confluent-kafka`.
"""
import argparse, os, time, uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    # utime + stime of every thread of the broker (fields 14 and 15 of /proc/pid/stat)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def topic(admin, partitions):
    name = f"bench-{partitions}p-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(30)
    return name


def flat_out(args, admin, partitions):
    name = topic(admin, partitions)
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1048576, "queue.buffering.max.kbytes": 1048576,
                  "enable.idempotence": False, "partitioner": "random"})
    value = os.urandom(1024)
    acked = [0]

    def done(err, msg):
        if err is None:
            acked[0] += 1

    deadline = time.time() + args.seconds
    cpu0, t0, sent = cpu_seconds(args.broker_pid), time.time(), 0
    while sent < args.records and time.time() < deadline:
        try:
            p.produce(name, value=value, on_delivery=done)
            sent += 1
        except BufferError:
            p.poll(0.01)
        if sent % 1000 == 0:
            p.poll(0)
    p.flush(60)
    secs, cpu = time.time() - t0, cpu_seconds(args.broker_pid) - cpu0
    gb = acked[0] * 1024 / 1e9
    print(f"| {partitions} | {acked[0]} | {acked[0] / secs:,.0f} | {gb * 1e3 / secs:.1f} | {cpu:.2f} | {cpu / gb:.3f} |")


def fixed_rate(args, admin):
    name = topic(admin, 1)
    p = Producer({"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 0,
                  "enable.idempotence": False})
    value = os.urandom(1024)
    lat = []
    interval = 1.0 / args.rate
    start = time.perf_counter() + 0.5
    n = int(args.rate * args.latency_seconds)
    for i in range(n):
        intended = start + i * interval
        while True:
            now = time.perf_counter()
            if now >= intended:
                break
            p.poll(min(intended - now, 0.001))
        p.produce(name, value=value,
                  on_delivery=lambda err, msg, t=intended: lat.append(time.perf_counter() - t) if err is None else None)
        p.poll(0)
    p.flush(60)
    warm = int(args.rate * 1)  # first second is warm-up
    xs = sorted(lat[warm:]) if len(lat) > warm else sorted(lat)
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))] * 1e3
    print(f"| {args.rate} | {len(lat)} of {n} | {q(0.5):.2f} | {q(0.99):.2f} | {q(0.999):.2f} | {xs[-1] * 1e3:.2f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--broker-pid", type=int, required=True)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--latency-seconds", type=float, default=10)
    args = ap.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    print("| partitions | records acked | records/s | MB/s | broker CPU-s | broker CPU-s/GB |")
    print("|---|---|---|---|---|---|")
    for parts in (1, 16):
        flat_out(args, admin, parts)
    print()
    print("| rate (rec/s) | acked | p50 ms | p99 ms | p99.9 ms | max ms |")
    print("|---|---|---|---|---|---|")
    fixed_rate(args, admin)


if __name__ == "__main__":
    main()
