#!/usr/bin/env python3
"""Group rebalance timing with librdkafka (confluent-kafka), as the groups issue asks:
a 10-member group over a 100-partition topic. For each protocol it measures, from the
moment the last member subscribes (join) or the leaving member's close() returns (leave),
until the members' assignments cover every partition exactly once with nobody left out:

  consumer  KIP-848 (group.protocol=consumer): the broker assigns; members reconcile on
            their heartbeats, so the broker's heartbeat interval bounds the time
  classic   JoinGroup/SyncGroup with the cooperative-sticky client-side assignor

  scripts/bench-rebalance.py --bootstrap 127.0.0.1:9092 [--broker-pid PID] [--runs 3]

Broker CPU-seconds over each measured window come from /proc/<pid>/stat. Every loop is
bounded by time. Needs `pip install confluent-kafka`.
"""
import argparse
import os
import threading
import time
import uuid

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Member:
    def __init__(self, bootstrap, group, topic, protocol):
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "log_level": 3}
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf.update({"partition.assignment.strategy": "cooperative-sticky",
                         "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
        self.c = confluent_kafka.Consumer(conf)
        self.c.subscribe([topic])
        self.assignment = frozenset()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            self.c.poll(0.05)
            self.assignment = frozenset(tp.partition for tp in self.c.assignment())

    def close(self):
        self.stop.set()
        self.thread.join(30)
        self.c.close()


def wait_balanced(members, partitions, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sets = [m.assignment for m in members]
        if all(sets) and sum(len(s) for s in sets) == partitions and len(frozenset().union(*sets)) == partitions:
            return time.monotonic()
        time.sleep(0.005)
    raise SystemExit(f"not balanced within {timeout_s} s: {[len(m.assignment) for m in members]}")


def one_run(args, admin, protocol):
    topic = f"rebalance-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(topic, args.partitions, 1)]).values():
        f.result(30)
    group = f"{topic}-{protocol}"
    members = []
    try:
        for _ in range(args.members - 1):
            members.append(Member(args.bootstrap, group, topic, protocol))
        wait_balanced(members, args.partitions, 120)
        cpu0 = cpu_seconds(args.broker_pid)
        t0 = time.monotonic()
        members.append(Member(args.bootstrap, group, topic, protocol))
        join_s = wait_balanced(members, args.partitions, 120) - t0
        join_cpu = cpu_seconds(args.broker_pid) - cpu0
        leaving = members.pop(0)
        leaving.close()
        cpu0 = cpu_seconds(args.broker_pid)
        t0 = time.monotonic()
        leave_s = wait_balanced(members, args.partitions, 120) - t0
        leave_cpu = cpu_seconds(args.broker_pid) - cpu0
        return join_s, join_cpu, leave_s, leave_cpu
    finally:
        for m in members:
            m.close()
        for f in admin.delete_topics([topic]).values():
            f.result(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--broker-pid", type=int, default=0)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--protocols", default="consumer,classic")
    args = ap.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    print(f"{args.members} members, {args.partitions} partitions, {args.runs} runs; seconds from the "
          f"10th join / a member's close() to every partition owned exactly once")
    print("| protocol | run | join s | broker CPU-s | leave s | broker CPU-s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for protocol in args.protocols.split(","):
        for run in range(args.runs):
            j, jc, l, lc = one_run(args, admin, protocol)
            print(f"| {protocol} | {run + 1} | {j:.2f} | {jc:.3f} | {l:.2f} | {lc:.3f} |", flush=True)


if __name__ == "__main__":
    main()
