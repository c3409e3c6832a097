#!/usr/bin/env python3
"""Consumer groups survive the loss of their coordinator: a real 3-broker Sluice cluster
on loopback, a confluent-kafka (librdkafka) consumer group of two members reading an RF3
topic and committing synchronously, then SIGKILL of the group's coordinator broker.

Checked:
  - FindCoordinator / DescribeGroups name the leader of the group's __consumer_offsets
    partition, and a broker that is not the coordinator answers NOT_COORDINATOR
    (librdkafka follows it without the test noticing; checked by the coordinator moving);
  - after the kill the group carries on with a new coordinator (another broker), commits
    succeed there again, and the time from the kill to the first acknowledged commit is
    reported;
  - committed offsets are intact: whenever a member is handed a partition (after the
    failover one member leaves without committing its last records, and the other takes
    its partitions on the new coordinator) it starts at the last acknowledged commit or
    later, never before it (no reprocessing beyond the last commit) and never past what
    was processed (no skipped records);
  - every produced record is consumed; the killed broker restarts and rejoins, and the
    group's committed offsets then equal the end of every partition;
  - then a broker that is not the coordinator (a follower of the offsets partition) is
    SIGKILLed while commits go on every 100 ms: they must keep being acknowledged (longest
    gap reported, at most 10 s), and it is restarted.

Usage (needs confluent-kafka, e.g. the interop venv target/interop/venv):
  SLUICE_BIN=target/debug/sluice python3 scripts/cluster/group-failover.py [classic|consumer]...
runs the classic group protocol and the KIP-848 consumer protocol (default: both), each on
a fresh cluster.
Env: SLUICE_BIN (default <repo>/target/debug/sluice), GROUP_FAILOVER_PORT_BASE (default:
free ports the OS picks; else Kafka ports base+1..3, inter-broker base+101..103, admin
base+551..553),
GROUP_FAILOVER_DEADLINE_S (default 300, for all runs), GROUP_FAILOVER_KEEP=1 keeps the data dirs.
Exits 0 when every check passes, 1 otherwise; bounded by the deadline. Every broker it
starts is stopped by PID and its data directory removed.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SLUICE_BIN", os.path.join(REPO, "target", "debug", "sluice"))
BASE = os.environ.get("GROUP_FAILOVER_PORT_BASE")
DEADLINE_S = float(os.environ.get("GROUP_FAILOVER_DEADLINE_S", "300"))
KEEP = os.environ.get("GROUP_FAILOVER_KEEP") == "1"
BROKERS = (1, 2, 3)
PARTITIONS = 4
FIRST_BATCH = 3000
SECOND_BATCH = 1000
COMMIT_EVERY = 25
STARTED = time.time()


def log(*a):
    print("[group-failover %6.1fs]" % (time.time() - STARTED), *a, flush=True)


def remaining():
    return DEADLINE_S - (time.time() - STARTED)


def free_ports(n):
    """n distinct ports free on 127.0.0.1 now (the OS picks them)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# Per broker: (Kafka port, inter-broker port, admin port).
if BASE:
    PORTS = {b: (int(BASE) + b, int(BASE) + 100 + b, int(BASE) + 550 + b) for b in BROKERS}
else:
    _free = free_ports(3 * len(BROKERS))
    PORTS = {b: tuple(_free[3 * i:3 * i + 3]) for i, b in enumerate(BROKERS)}


def kafka_port(b):
    return PORTS[b][0]


def bootstrap(brokers=BROKERS):
    return ",".join("127.0.0.1:%d" % kafka_port(b) for b in brokers)


class Cluster:
    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="groups-failover-")
        self.procs = {}
        voters = ",".join("%d@127.0.0.1:%d" % (b, PORTS[b][1]) for b in BROKERS)
        for b in BROKERS:
            with open(os.path.join(self.root, "b%d.toml" % b), "w") as f:
                f.write(
                    "[engine]\ndata_dir = \"%s\"\nshards = 1\n"
                    "[server]\nnode_id = %d\nlisteners = \"127.0.0.1:%d\"\n"
                    "admin_listener = \"127.0.0.1:%d\"\n"
                    "[cluster]\nreplication_listener = \"127.0.0.1:%d\"\nvoters = \"%s\"\n"
                    "default_replication_factor = 3\nmin_insync_replicas = 2\n"
                    % (os.path.join(self.root, "d%d" % b), b, kafka_port(b), PORTS[b][2],
                       PORTS[b][1], voters))

    def start(self, b):
        out = open(os.path.join(self.root, "log%d" % b), "a")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.procs[b] = subprocess.Popen(
            [BIN, "serve", "--config", os.path.join(self.root, "b%d.toml" % b)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        out.close()

    def kill(self, b):
        p = self.procs.pop(b, None)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

    def stop_all(self):
        for b in list(self.procs):
            self.kill(b)
        if KEEP:
            log("data and logs kept in", self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def tail(self, b, n=30):
        try:
            with open(os.path.join(self.root, "log%d" % b)) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def wait_for(what, cond, timeout):
    end = time.time() + min(timeout, max(remaining(), 1))
    while time.time() < end:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # not up yet; retry until the bound
            pass
        time.sleep(0.25)
    raise TimeoutError("timed out waiting for " + what)


def coordinator_of(admin, group):
    """The coordinator broker id AdminClient finds (FindCoordinator + DescribeGroups)."""
    fut = admin.describe_consumer_groups([group], request_timeout=5)[group]
    return fut.result(timeout=10).coordinator.id


def kstr(v):
    b = v.encode()
    return struct.pack(">h", len(b)) + b


def raw_heartbeat(port, group):
    """Heartbeat v0 for an unknown member, straight on the wire: the group's coordinator
    answers UNKNOWN_MEMBER_ID (25), every other broker NOT_COORDINATOR (16)."""
    body = kstr(group) + struct.pack(">i", 1) + kstr("nobody")
    req = struct.pack(">hhi", 12, 0, 7) + kstr("group-failover") + body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
    corr, code = struct.unpack(">ih", buf[4:10])
    assert corr == 7
    return code


def check_not_coordinator(group, coordinator, brokers, failures):
    want = {b: 25 if b == coordinator else 16 for b in brokers}
    codes = {}
    for _ in range(20):  # a coordinator still loading answers 14 (load in progress) first
        codes = {b: raw_heartbeat(kafka_port(b), group) for b in brokers}
        if codes == want:
            break
        time.sleep(0.25)
    log("raw Heartbeat v0 error codes by broker", codes, "(coordinator %d)" % coordinator)
    if codes != want:
        failures.append("Heartbeat error codes by broker %s, expected %s" % (codes, want))


def commits_through_follower_loss(cluster, admin, group, topic, offsets, failures):
    """Commits (outside the group protocol, of the offsets already committed) every 100 ms
    while a broker that is not the coordinator - a follower of the group's offsets
    partition - is SIGKILLed: the commits must carry on within a few seconds (the follower
    leaves the ISR), not stall for replica.lag.time.max.ms. The broker is restarted after."""
    coord = coordinator_of(admin, group)
    follower = next(b for b in BROKERS if b != coord)
    c = Consumer({"bootstrap.servers": bootstrap(), "group.id": group, "enable.auto.commit": False})
    tps = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
    acks, killed = [], None
    start = time.time()
    while time.time() - start < 16 and remaining() > 0:
        if killed is None and time.time() - start > 2:
            # Quiet first, so the follower has acked everything when it dies (a caught-up
            # dead follower is the case that once held the high watermark for 30 s).
            time.sleep(1.5)
            cluster.kill(follower)
            killed = time.time()
        try:
            if all(tp.error is None for tp in c.commit(offsets=tps, asynchronous=False)):
                acks.append(time.time())
        except KafkaException:
            pass
        time.sleep(0.1)
    c.close()
    after = [t for t in acks if killed is not None and t > killed]
    span = [t for t in acks if killed is not None and t <= killed][-1:] + after
    gap = max((b - a for a, b in zip(span, span[1:])), default=float("inf"))
    log("broker %d (not the coordinator, %d) SIGKILLed: %d commits acknowledged after it, "
        "longest gap %.2fs" % (follower, coord, len(after), gap))
    if len(after) < 10 or gap > 10:
        failures.append("commits stalled after a follower broker was killed: %d acked after, longest gap %.2fs"
                        % (len(after), gap))
    cluster.start(follower)
    wait_for("broker %d back" % follower, lambda: len(admin.list_topics(timeout=2).brokers) == 3, 60)
    return gap


class Member(threading.Thread):
    """One group member: polls, 'processes' (records what it saw) and commits
    synchronously every COMMIT_EVERY records and when partitions are revoked."""

    def __init__(self, name, group, topic, shared, protocol):
        super().__init__(daemon=True)
        self.name, self.topic, self.shared = name, topic, shared
        self.stop = threading.Event()
        self.leave = threading.Event()
        self.assigned = set()
        self.since_commit = 0
        self.pending = {}  # partition -> next offset to commit (processed)
        config = {
            "bootstrap.servers": bootstrap(),
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 2000,
        }
        if protocol == "classic":
            config.update({"session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                           "partition.assignment.strategy": "range"})
        else:  # KIP-848: the coordinator assigns, sessions are the broker's
            config["group.protocol"] = "consumer"
        self.c = Consumer(config)

    def commit(self):
        if not self.pending:
            return True
        offsets = [TopicPartition(self.topic, p, o) for p, o in self.pending.items()]
        try:
            result = self.c.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            self.shared.event("commit-failed", self.name, str(e))
            return False
        ok = [tp for tp in result if tp.error is None]
        with self.shared.lock:
            for tp in ok:
                self.shared.acked[tp.partition] = max(self.shared.acked.get(tp.partition, 0), tp.offset)
                self.pending.pop(tp.partition, None)
            self.shared.commits_ok += 1
            self.shared.last_commit_ok = time.time()
        if len(ok) != len(result):
            self.shared.event("commit-partly-failed", self.name, [str(tp.error) for tp in result if tp.error])
        return len(ok) == len(result)

    def on_assign(self, c, parts):
        with self.shared.lock:
            for tp in parts:
                self.assigned.add(tp.partition)
                self.shared.awaiting_first[(self.name, tp.partition)] = dict(self.shared.acked)
        self.shared.event("assigned", self.name, sorted(tp.partition for tp in parts))

    def on_revoke(self, c, parts):
        # What this member processed is committed before the partitions move on - except
        # when it leaves as if it crashed: then its last records are processed again
        # from its last acknowledged commit.
        if not self.leave.is_set():
            self.commit()
        with self.shared.lock:
            for tp in parts:
                self.assigned.discard(tp.partition)
                self.pending.pop(tp.partition, None)
                self.shared.awaiting_first.pop((self.name, tp.partition), None)
        self.shared.event("revoked", self.name, sorted(tp.partition for tp in parts))

    def run(self):
        self.c.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        try:
            while not self.stop.is_set() and remaining() > 0:
                if self.leave.is_set():
                    break
                m = self.c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    self.shared.event("consume-error", self.name, str(m.error()))
                    continue
                p, o = m.partition(), m.offset()
                self.shared.processed(self.name, p, o, int(m.value()))
                self.pending[p] = o + 1
                self.since_commit += 1
                time.sleep(0.002)  # a slow consumer: the run spans the kill
                if self.since_commit >= COMMIT_EVERY:
                    self.since_commit = 0
                    self.commit()
            if not self.leave.is_set():
                self.commit()
        finally:
            self.c.close()  # LeaveGroup (revokes first: on_revoke commits)
            self.shared.event("closed", self.name)


class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}  # partition -> highest acknowledged committed offset
        self.seen = {}  # value -> [(partition, offset, member)]
        self.done = {}  # partition -> highest processed offset + 1
        self.awaiting_first = {}  # (member, partition) -> acked snapshot at assignment
        self.violations = []
        self.commits_ok = 0
        self.last_commit_ok = 0.0
        self.events = []

    def event(self, kind, *args):
        with self.lock:
            self.events.append((time.time(), kind, args))
        if kind not in ("commit-failed",) or len([e for e in self.events if e[1] == kind]) <= 5:
            log(kind, *args)

    def processed(self, member, p, o, value):
        with self.lock:
            first = self.awaiting_first.pop((member, p), None)
            if first is not None:
                low = first.get(p, 0)
                high = self.done.get(p, 0)
                if not (low <= o <= high):
                    self.violations.append(
                        "%s started partition %d at offset %d; acknowledged commit %d, processed up to %d"
                        % (member, p, o, low, high))
                log("%s starts partition %d at %d (acked commit %d, processed end %d)"
                    % (member, p, o, low, high))
            self.seen.setdefault(value, []).append((p, o, member))
            self.done[p] = max(self.done.get(p, 0), o + 1)


def produce(topic, start, count):
    p = Producer({"bootstrap.servers": bootstrap(), "acks": "all", "linger.ms": 5,
                  "enable.idempotence": True, "message.timeout.ms": 60000})
    acked = []
    errors = []

    def cb(err, m):
        if err:
            errors.append(str(err))
        else:
            acked.append(int(m.value()))

    for i in range(start, start + count):
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=str(i).encode(), on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(max(min(60, remaining()), 1))
    if left or errors:
        raise RuntimeError("produce: %d unflushed, errors %s" % (left, errors[:3]))
    return acked


def main():
    if not os.access(BIN, os.X_OK):
        print("no sluice binary at %s (set SLUICE_BIN)" % BIN, file=sys.stderr)
        return 2
    protocols = sys.argv[1:] or ["classic", "consumer"]
    failures = []
    for protocol in protocols:
        if protocol not in ("classic", "consumer"):
            print("usage: group-failover.py [classic|consumer]...", file=sys.stderr)
            return 2
        if remaining() <= 0:
            failures.append("%s: no time left" % protocol)
            continue
        log("==== group protocol:", protocol)
        failures += ["%s: %s" % (protocol, f) for f in run(protocol)]
    if failures:
        for f in failures:
            log("FAIL", f)
        return 1
    log("PASS")
    return 0


def run(protocol):
    """One failover run on a fresh cluster; returns the failures."""
    cluster = Cluster()
    failures = []
    members = []
    try:
        for b in BROKERS:
            cluster.start(b)
        admin = AdminClient({"bootstrap.servers": bootstrap()})
        wait_for("3 live brokers", lambda: len(admin.list_topics(timeout=2).brokers) == 3, 60)
        log("cluster up in", cluster.root)
        topic, group = "gf-%d" % int(time.time()), "gf-group-%d" % int(time.time())
        for f in admin.create_topics([NewTopic(topic, PARTITIONS, 3)], request_timeout=20).values():
            f.result(30)
        wait_for("topic leaders", lambda: all(
            p.leader >= 0 for p in admin.list_topics(topic, timeout=2).topics[topic].partitions.values()), 30)
        produced = produce(topic, 0, FIRST_BATCH)
        log("produced", len(produced), "records (acks=all)")

        shared = Shared()
        members = [Member("m1", group, topic, shared, protocol),
                   Member("m2", group, topic, shared, protocol)]
        for m in members:
            m.start()
        wait_for("both members assigned", lambda: all(m.assigned for m in members), 60)
        wait_for("some commits", lambda: shared.commits_ok >= 4 and len(shared.seen) >= 500, 60)

        coord = wait_for("the group's coordinator", lambda: coordinator_of(admin, group), 20)
        log("coordinator of", group, "is broker", coord)
        check_not_coordinator(group, coord, BROKERS, failures)
        with shared.lock:
            acked_at_kill = dict(shared.acked)
            seen_at_kill = len(shared.seen)
        killed_at = time.time()
        cluster.kill(coord)
        log("SIGKILLed broker", coord, "(coordinator); acknowledged commits", acked_at_kill,
            "records processed", seen_at_kill)

        # The group carries on: commits are acknowledged again, by a new coordinator.
        survivors = [b for b in BROKERS if b != coord]
        admin2 = AdminClient({"bootstrap.servers": bootstrap(survivors)})
        wait_for("a commit after the kill", lambda: shared.last_commit_ok > killed_at, 60)
        recovery = shared.last_commit_ok - killed_at
        log("first acknowledged commit %.2fs after the kill" % recovery)
        new_coord = wait_for("the new coordinator",
                             lambda: coordinator_of(admin2, group) in survivors and coordinator_of(admin2, group), 30)
        log("new coordinator is broker", new_coord)
        if new_coord == coord:
            failures.append("coordinator did not move off the killed broker")
        check_not_coordinator(group, new_coord, survivors, failures)

        # Hand m2's partitions to m1 through the new coordinator, m2 leaving without
        # committing what it processed since its last commit: m1 must start each at the
        # last acknowledged commit (checked in Shared.processed).
        wait_for("more processing on the new coordinator", lambda: len(shared.seen) >= seen_at_kill + 200, 60)
        members[1].leave.set()
        members[1].join(max(min(30, remaining()), 1))
        wait_for("m1 owns every partition", lambda: len(members[0].assigned) == PARTITIONS, 60)

        t0 = time.time()
        produced += produce(topic, FIRST_BATCH, SECOND_BATCH)
        produce_s = time.time() - t0
        log("produced %d more records (acks=all, new producer) with broker %d down in %.2fs"
            % (SECOND_BATCH, coord, produce_s))
        if produce_s > 15:
            # Once 26 s: the dead broker, caught up when it died, was proposed back into the
            # ISR of the partitions it followed and held their high watermark.
            failures.append("acks=all produce with a broker down took %.1fs" % produce_s)
        total = FIRST_BATCH + SECOND_BATCH
        wait_for("every record consumed", lambda: len(shared.seen) >= total, 90)
        members[0].stop.set()
        members[0].join(max(min(30, remaining()), 1))

        cluster.start(coord)
        wait_for("the killed broker back", lambda: len(admin2.list_topics(timeout=2).brokers) == 3, 60)
        log("broker", coord, "restarted and registered")

        # Committed offsets, read back through whichever broker coordinates now.
        md = admin2.list_topics(topic, timeout=10)
        check = Consumer({"bootstrap.servers": bootstrap(), "group.id": group,
                          "enable.auto.commit": False})
        committed = wait_for("committed offsets", lambda: check.committed(
            [TopicPartition(topic, p) for p in md.topics[topic].partitions], timeout=5), 30)
        # Leaders move while the restarted broker re-registers: a lookup may meet a stale
        # leader (NOT_LEADER_OR_FOLLOWER) and is retried.
        ends = wait_for("partition ends", lambda: {
            p: check.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
            for p in md.topics[topic].partitions}, 30)
        check.close()
        final_coord = coordinator_of(admin2, group)
        check_not_coordinator(group, final_coord, BROKERS, failures)
        got = {tp.partition: tp.offset for tp in committed}
        # ListGroups goes to every broker; only the coordinator may list the group.
        listed = admin2.list_consumer_groups(request_timeout=10).result(timeout=15)
        copies = [g for g in listed.valid if g.group_id == group]
        log("ListGroups over all brokers: %d listing(s) of the group, errors %s"
            % (len(copies), [str(e) for e in listed.errors]))
        if len(copies) != 1 or listed.errors:
            failures.append("ListGroups listed the group %d times (errors %s)" % (len(copies), listed.errors))
        follower_gap = commits_through_follower_loss(cluster, admin2, group, topic, got, failures)
        log("final coordinator", final_coord, "committed", got, "ends", ends)

        # ---- checks
        missing = set(produced) - set(shared.seen)
        if missing:
            failures.append("%d produced records never consumed (e.g. %s)" % (len(missing), sorted(missing)[:5]))
        if len(set(produced)) != total:
            failures.append("producer acknowledged %d distinct of %d records" % (len(set(produced)), total))
        if got != ends:
            failures.append("committed offsets %s differ from the partition ends %s" % (got, ends))
        failures.extend(shared.violations)
        reprocessed = sum(len(v) - 1 for v in shared.seen.values())
        if reprocessed > COMMIT_EVERY * PARTITIONS:
            failures.append("%d records processed twice, more than the uncommitted tail allows" % reprocessed)
        commit_failures = len([e for e in shared.events if e[1] == "commit-failed"])
        moved = [e for e in shared.events if e[1] == "assigned"]
        if len(moved) < 3:
            failures.append("expected a reassignment after the failover, saw %d assignments" % len(moved))
        log("RESULT records %d, reprocessed after reassignment %d, commits ok %d, commit errors %d, "
            "coordinator %d -> %d, first commit after kill %.2fs, longest commit gap with a follower killed %.2fs"
            % (total, reprocessed, shared.commits_ok, commit_failures, coord, new_coord, recovery,
               follower_gap))
    except Exception as e:  # a timeout or client error is a failed run, with the logs
        failures.append("%s: %s" % (type(e).__name__, e))
    finally:
        for m in members:
            m.stop.set()
        for m in members:
            if m.is_alive():
                m.join(10)
        if failures:
            for b in BROKERS:
                log("--- broker %d log tail\n%s" % (b, cluster.tail(b)))
        cluster.stop_all()
    return failures


if __name__ == "__main__":
    sys.exit(main())
