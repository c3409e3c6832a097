#!/usr/bin/env python3
"""Failover checker for a 3-broker cluster (Sluice or Apache Kafka) driven by
scripts/cluster/{sluice,kafka}-cluster.sh.

An acks=all producer (librdkafka via confluent-kafka) writes sequence-numbered records at
a fixed rate, round-robin over the partitions of a fresh topic (RF 3,
min.insync.replicas=2), while a schedule of faults runs:

  kill     SIGKILL the current leader of partition 0 (from Metadata)
  restart  start the killed broker again (the cluster script waits until it answers)
  cut      isolate a broker's network (the leader of partition 0 by default)
  heal     undo the cut

Every delivery report is recorded. Afterwards every partition is read from the beginning
up to its high watermark and checked:
  - every acknowledged record is in the log exactly once, at the offset its delivery
    report named (lost or misplaced acked records fail the run; so does any duplicate
    when idempotence is on);
  - duplicates of records that were never acknowledged are reported separately (allowed
    without idempotence: a retried batch whose first answer was lost);
  - recovery time per fault: from the fault until the producer's next successful ack on
    each partition the fault touched (partitions whose leader or ISR held the broker).

  scripts/cluster/failover-check.py --cluster scripts/cluster/kafka-cluster.sh [--start]
        [--quick | --duration 60] [--no-idempotence] [--partitions 3] [--rate 300]
        [--schedule kill@8,restart@18,cut@30,heal@42] [--max-recovery-s 3] [--json out.json]

--start makes a fresh cluster in a temporary workdir and stops it at the end (CI);
without it the cluster must be running (`<cluster script> start <workdir>`).
Faults wait for a full ISR first; a late schedule moves later events and the end by as
much (at most MAX_SHIFT_S), so every fault lasts as scheduled.
--quick: ~35 s in all (the CI mode). Prints one JSON summary on stdout. Exit status: 0 pass,
1 acknowledged data lost/misplaced/duplicated or the log could not be read back,
2 a touched partition did not recover before the end (or slower than --max-recovery-s),
3 setup failed. Every loop is bounded by time and count; faults are undone on any exit.
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def ensure_client():
    """Run under the interop suite's venv (target/interop/venv: the same pinned clients and
    stamp as scripts/interop/run.sh), creating or updating it when needed."""
    work = os.environ.get("INTEROP_WORK", os.path.join(REPO, "target", "interop"))
    venv = os.path.realpath(os.path.join(work, "venv"))
    if os.path.realpath(sys.prefix) == venv:
        return
    py = os.path.join(venv, "bin", "python")
    req = os.path.join(REPO, "scripts", "interop", "requirements.txt")
    stamp = os.path.join(venv, ".requirements.sha256")
    with open(req, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    have = open(stamp).read().strip() if os.path.exists(stamp) else ""
    if not os.access(py, os.X_OK) or have != want:
        print(f"failover-check: installing Python clients into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--disable-pip-version-check", "-r", req],
                       check=True)
        with open(stamp, "w") as f:
            f.write(want + "\n")
    os.execv(py, [py] + sys.argv)


ensure_client()
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

DEFAULT_SCHEDULE = "kill@8,restart@18,cut@30,heal@42"
QUICK_SCHEDULE = "kill@4,restart@9,cut@15,heal@21"
VERIFY_TIMEOUT_S = 60  # reading the topic back
FLUSH_TIMEOUT_S = 30  # waiting for outstanding delivery reports at the end
CLUSTER_CMD_TIMEOUT_S = 150  # one cluster-script call (restart waits for readiness)
MAX_SHIFT_S = 60  # how much later than scheduled the run may end
ISR_WAIT_S = 30  # before a fault: waiting for every replica back in the ISR
METADATA_ATTEMPTS = 10


def log(msg):
    print(f"failover-check: {msg}", file=sys.stderr, flush=True)


class Cluster:
    """The cluster script: every fault goes through it, so Sluice and Kafka are driven alike."""

    def __init__(self, script, env):
        self.script, self.env = script, env
        self.kind = os.path.basename(script).split("-")[0]
        self.warnings = []  # e.g. a cut by ports only (no cgroup v2 here)

    def run(self, *args):
        out = subprocess.run([self.script, *args], env=self.env, capture_output=True, text=True,
                             timeout=CLUSTER_CMD_TIMEOUT_S)
        if out.returncode != 0:
            raise RuntimeError(f"{self.script} {' '.join(args)} failed: {out.stderr.strip()}")
        for line in out.stderr.splitlines():
            if "WARNING" in line:
                log(line)
                self.warnings.append(line)
        return out.stdout.strip()


class Recorder:
    """Delivery reports, written by the producer thread, read after it stopped."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}  # seq -> (partition, offset, t)
        self.failed = {}  # seq -> error name
        self.ack_times = {}  # partition -> [t, ...] in arrival order
        self.errors = {}  # error name -> count (delivery failures and client errors)

    def report(self, seq, err, msg, t):
        with self.lock:
            if err is None:
                p = msg.partition()
                self.acked[seq] = (p, msg.offset(), t)
                self.ack_times.setdefault(p, []).append(t)
            else:
                self.failed[seq] = err.name()
                self.errors[err.name()] = self.errors.get(err.name(), 0) + 1

    def client_error(self, err):
        with self.lock:
            key = f"client:{err.name()}"
            self.errors[key] = self.errors.get(key, 0) + 1


def produce_loop(args, topic, run_id, rec, stop, t0, counters, timeline):
    conf = {"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 5,
            "enable.idempotence": args.idempotence, "error_cb": rec.client_error}
    p = Producer(conf)
    interval = 1.0 / args.rate
    max_records = int(args.rate * (args.produce_s + MAX_SHIFT_S)) + 1
    seq = 0
    while seq < max_records and not stop.is_set():
        now = time.monotonic()
        if now >= timeline.end:  # moved later (bounded) when the schedule runs late
            break
        due = t0 + seq * interval
        if now < due:
            p.poll(min(due - now, 0.005))
            continue
        part = seq % args.partitions
        try:
            p.produce(topic, value=f"{run_id}:{seq}".encode(), partition=part,
                      on_delivery=lambda err, msg, s=seq: rec.report(s, err, msg, time.monotonic()))
            seq += 1
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    counters["produced"] = seq
    remaining = p.flush(FLUSH_TIMEOUT_S)
    if remaining:
        # Bounded end: what is still queued or in flight is given up (reported as failed
        # with a purge error); it may or may not be in the log, like any unacked record.
        p.purge(in_queue=True, in_flight=True)
        p.flush(5)
    counters["unresolved_at_flush"] = remaining


def metadata(admin, topic):
    """{partition: (leader, [isr])} for the topic; retried because a broker may be down."""
    last = None
    for _ in range(METADATA_ATTEMPTS):
        try:
            md = admin.list_topics(topic, timeout=5).topics[topic]
            if md.error is None and md.partitions:
                parts = {p: (pm.leader, list(pm.isrs)) for p, pm in md.partitions.items()}
                if all(leader >= 0 for leader, _ in parts.values()):
                    return parts
            last = md.error
        except Exception as e:  # noqa: BLE001 - KafkaException, timeouts: retry
            last = e
        time.sleep(0.5)
    raise RuntimeError(f"no metadata with leaders for {topic}: {last}")


def create_topic(admin, topic, partitions):
    futures = admin.create_topics([NewTopic(topic, partitions, 3, config={"min.insync.replicas": "2"})],
                                  operation_timeout=30, request_timeout=30)
    futures[topic].result(60)
    return metadata(admin, topic)


class Timeline:
    """When producing ends. A fault waits for a fully replicated topic and a restart for
    the broker to answer, so the schedule can run late; then every later event and the end
    move by the same amount (at most MAX_SHIFT_S), so each fault still lasts as long as
    scheduled and the run still ends with the scheduled quiet period."""

    def __init__(self, t0, produce_s):
        self.t0, self.produce_s, self.shift = t0, produce_s, 0.0

    @property
    def end(self):
        return self.t0 + self.produce_s + self.shift

    def wait_until(self, at, stop):
        while time.monotonic() < self.t0 + at + self.shift and not stop.is_set():
            time.sleep(0.05)

    def late_by(self, at):
        late = time.monotonic() - (self.t0 + at + self.shift)
        if late > 0:
            self.shift = min(MAX_SHIFT_S, self.shift + late)


def reachable(addr):
    try:
        socket.create_connection(addr, timeout=1.0).close()
        return True
    except OSError:
        return False


def wait_full_isr(admin, topic, stop):
    """Metadata once every partition has all 3 replicas in its ISR (bounded by ISR_WAIT_S):
    a fault on a cluster still recovering from the previous one would measure that one."""
    deadline = time.monotonic() + ISR_WAIT_S
    while True:
        parts = metadata(admin, topic)
        if all(len(isr) >= 3 for _, isr in parts.values()) or time.monotonic() > deadline or stop.is_set():
            return parts
        time.sleep(0.25)


def run_schedule(args, cluster, admin, topic, timeline, stop, events, undo):
    """Runs the faults at their times (relative to the start of producing) and records each."""
    killed, cut = None, None
    for action, at in args.schedule:
        timeline.wait_until(at, stop)
        if stop.is_set():
            return
        ev = {"action": action, "at_s": None, "node": None, "leader_of": [], "in_isr_of": []}
        if action in ("kill", "cut"):
            parts = wait_full_isr(admin, topic, stop)
            ev["isr_before"] = {str(p): isr for p, (_, isr) in parts.items()}
            timeline.late_by(at)
            if action == "cut" and args.cut_target == "follower":
                leader, isr = parts[0]
                node = next(n for n in isr if n != leader)
            else:
                node = parts[0][0]
            ev["node"] = node
            ev["leader_of"] = sorted(p for p, (leader, _) in parts.items() if leader == node)
            ev["in_isr_of"] = sorted(p for p, (leader, isr) in parts.items() if leader != node and node in isr)
            broker = admin.list_topics(timeout=10).brokers[node]
            addr = (broker.host, broker.port)
        elif action == "restart":
            if killed is None:
                raise RuntimeError("restart scheduled before any kill")
            ev["node"] = killed
        elif action == "heal":
            if cut is None:
                raise RuntimeError("heal scheduled before any cut")
            ev["node"] = cut
        ev["start"] = time.monotonic()
        ev["at_s"] = round(ev["start"] - timeline.t0, 3)
        log(f"t={ev['at_s']:.1f}s {action} node {ev['node']}")
        if action == "kill":
            undo["restart"].add(ev["node"])
            cluster.run("kill", str(ev["node"]))
            killed = ev["node"]
        elif action == "restart":
            cluster.run("restart", str(ev["node"]))
            undo["restart"].discard(ev["node"])
        elif action == "cut":
            undo["heal"].add(ev["node"])
            cluster.run("cut", str(ev["node"]))
            cut = ev["node"]
            ev["done"] = time.monotonic()
            # The cut must really isolate: a new connection to the broker has to hang.
            if reachable(addr):
                raise RuntimeError(f"node {ev['node']} still accepts connections after `cut`")
            events.append(ev)
            continue
        elif action == "heal":
            cluster.run("heal", str(ev["node"]))
            undo["heal"].discard(ev["node"])
        ev["done"] = time.monotonic()
        events.append(ev)
        if action == "restart":
            timeline.late_by(at)


def read_back(args, topic):
    """Every record of every partition, up to the high watermark at the time of reading."""
    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"failover-check-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": True})
    deadline = time.monotonic() + VERIFY_TIMEOUT_S
    high = {}
    for p in range(args.partitions):
        while True:
            try:
                high[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                break
            except Exception:  # noqa: BLE001 - a broker still starting; bounded by the deadline
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    c.assign([TopicPartition(topic, p, 0) for p in range(args.partitions)])
    records = {p: [] for p in range(args.partitions)}  # (offset, value)
    done = {p for p in range(args.partitions) if high[p] == 0}
    while len(done) < args.partitions and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                log(f"consumer: {msg.error()}")
            elif msg.offset() >= high[msg.partition()]:
                done.add(msg.partition())
            continue
        records[msg.partition()].append((msg.offset(), msg.value()))
        if msg.offset() + 1 >= high[msg.partition()]:
            done.add(msg.partition())
    c.close()
    return records, high, sorted(set(range(args.partitions)) - done)


def verify(args, run_id, rec, records):
    prefix = f"{run_id}:".encode()
    where = {}  # seq -> [(partition, offset)]
    foreign = 0
    for p, recs in records.items():
        for off, value in recs:
            if value is None or not value.startswith(prefix):
                foreign += 1
                continue
            where.setdefault(int(value[len(prefix):]), []).append((p, off))
    lost, misplaced, acked_dups = [], [], []
    for seq, (p, off, _) in rec.acked.items():
        places = where.get(seq, [])
        if (p, off) not in places:
            (misplaced if places else lost).append({"seq": seq, "acked_at": [p, off], "found_at": places})
        elif len(places) > 1:
            acked_dups.append({"seq": seq, "acked_at": [p, off], "found_at": places})
    unacked_written, unacked_dups = 0, 0
    for seq, places in where.items():
        if seq not in rec.acked:
            unacked_written += 1
            unacked_dups += len(places) > 1
    return {"lost_acked": len(lost), "misplaced_acked": len(misplaced),
            "acked_with_extra_copies": len(acked_dups), "unacked_in_log": unacked_written,
            "unacked_duplicated": unacked_dups, "foreign_records": foreign,
            "examples": {"lost": lost[:5], "misplaced": misplaced[:5], "acked_dups": acked_dups[:5]}}


STALL_MIN_S = 1.0  # a trailing gap shorter than this is the normal spacing of acks


def stall(times, start, fault_end):
    """(recovery_s, stall_s, recovered_only_after_undo) of one partition for one fault.

    The stall is the longest gap between acks from the fault until the fault ended (the
    fault itself counting as the first point); recovery is when that stall ended, relative
    to the fault. With no acks at all, or when the partition was still stalled when the
    fault ended, recovery is the first ack after it (None if none came): recovery only
    after the restart/heal. The first ack after the fault alone would mislead: a partition
    whose ISR held the broker can still ack a few in-flight records and then stall until
    the ISR shrinks."""
    pts = [start] + [t for t in times if start <= t <= fault_end]
    longest, ended = 0.0, start
    for a, b in zip(pts, pts[1:]):
        if b - a > longest:
            longest, ended = b - a, b
    trailing = fault_end - pts[-1]
    if trailing > longest and trailing >= STALL_MIN_S:
        later = [t for t in times if t > fault_end]
        if not later:
            return None, round(trailing, 3), False
        return round(later[0] - start, 3), round(later[0] - pts[-1], 3), True
    return round(ended - start, 3), round(longest, 3), False


def recovery(args, rec, events, t_end):
    """Per fault (kill, cut) and partition: the stall the fault caused and when it ended
    (see stall()); per restart/heal: the longest gap between acks until the next event."""
    undo_of = {"kill": "restart", "cut": "heal"}
    out = []
    for i, ev in enumerate(events):
        nxt = events[i + 1]["start"] if i + 1 < len(events) else t_end
        row = {"action": ev["action"], "node": ev["node"], "at_s": ev["at_s"],
               "command_s": round(ev["done"] - ev["start"], 3)}
        if ev["action"] in undo_of:
            # A kill lasts until the restarted broker answers (its JVM or binary needs
            # seconds to start, so the restart command's start would be too early); a
            # cut ends when heal starts.
            fault_end = next((e["done" if ev["action"] == "kill" else "start"] for e in events[i + 1:]
                              if e["action"] == undo_of[ev["action"]] and e["node"] == ev["node"]), t_end)
            touched = ev["leader_of"] + ev["in_isr_of"]
            rec_s, stall_s, after_undo = {}, {}, []
            for p in range(args.partitions):
                rec_s[p], stall_s[p], late = stall(rec.ack_times.get(p, []), ev["start"], fault_end)
                if late:
                    after_undo.append(p)
            tr = [rec_s[p] for p in touched]
            row.update({
                "lasted_s": round(fault_end - ev["start"], 3),
                "leader_of": ev["leader_of"], "in_isr_of": ev["in_isr_of"],
                "recovery_s": {str(p): v for p, v in rec_s.items()},
                "stall_s": {str(p): v for p, v in stall_s.items()},
                "touched_recovery_max_s": None if any(v is None for v in tr) else max(tr, default=0.0),
                "touched_unrecovered": [p for p in touched if rec_s[p] is None],
                "touched_recovered_only_after_undo": [p for p in touched if p in after_undo],
            })
        else:
            gap = {}
            for p in range(args.partitions):
                window = [ev["start"]] + [t for t in rec.ack_times.get(p, []) if ev["start"] <= t <= nxt] + [nxt]
                gap[p] = round(max(b - a for a, b in zip(window, window[1:])), 3)
            row["max_ack_gap_s"] = {str(p): v for p, v in gap.items()}
        out.append(row)
    return out


def parse_schedule(text):
    out = []
    for item in text.split(","):
        action, _, at = item.strip().partition("@")
        if action not in ("kill", "restart", "cut", "heal") or not at:
            raise argparse.ArgumentTypeError(f"bad schedule item {item!r} (want kill|restart|cut|heal@seconds)")
        out.append((action, float(at)))
    return sorted(out, key=lambda a: a[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cluster", required=True, help="scripts/cluster/sluice-cluster.sh or kafka-cluster.sh")
    ap.add_argument("--start", action="store_true", help="start a fresh cluster in a temp dir, stop it at the end")
    ap.add_argument("--bootstrap", help="default: `<cluster> bootstrap`")
    ap.add_argument("--quick", action="store_true", help="CI mode: ~35 s in all")
    ap.add_argument("--duration", type=float, help="seconds of producing (default 54, quick 27)")
    ap.add_argument("--schedule", type=parse_schedule, help=f"default {DEFAULT_SCHEDULE}, quick {QUICK_SCHEDULE}")
    ap.add_argument("--no-idempotence", dest="idempotence", action="store_false")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rate", type=float, default=300, help="records/s over all partitions")
    ap.add_argument("--cut-target", choices=["leader", "follower"], default="leader",
                    help="which broker `cut` isolates: partition 0's leader or a follower in its ISR")
    ap.add_argument("--max-recovery-s", type=float,
                    help="fail (exit 2) when a touched partition took longer, for the faults of --max-recovery-for")
    ap.add_argument("--max-recovery-for", default="kill",
                    help="comma-separated fault kinds --max-recovery-s applies to (default kill: after a cut "
                         "of the leader, librdkafka with default timeouts waits for the isolated broker "
                         "until the cut heals - 42 s against Kafka here)")
    ap.add_argument("--json", help="also write the summary here")
    args = ap.parse_args()
    args.produce_s = args.duration or (27 if args.quick else 54)
    args.schedule = args.schedule or parse_schedule(QUICK_SCHEDULE if args.quick else DEFAULT_SCHEDULE)
    if args.schedule[-1][1] >= args.produce_s:
        ap.error("every scheduled fault must fall inside --duration")

    if any(a == "cut" for a, _ in args.schedule) and not shutil.which("iptables"):
        ap.error("the schedule cuts a broker's network, which needs iptables (apt-get install iptables) "
                 "and root; or leave `cut` out of --schedule")
    env = dict(os.environ)
    cluster = Cluster(os.path.abspath(args.cluster), env)
    workdir = None
    stop = threading.Event()
    undo = {"heal": set(), "restart": set()}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    status, summary = 3, {}
    try:
        if args.start:
            workdir = tempfile.mkdtemp(prefix=f"failover-{cluster.kind}.")
            os.rmdir(workdir)  # the cluster script wants an absent or empty dir
            env["CLUSTER_DIR"] = workdir
            log(f"starting a {cluster.kind} cluster in {workdir}")
            cluster.run("start", workdir)
        args.bootstrap = args.bootstrap or cluster.run("bootstrap")
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        run_id = uuid.uuid4().hex[:12]
        topic = f"failover-{run_id}"
        initial = create_topic(admin, topic, args.partitions)
        log(f"topic {topic}: leaders/ISR {initial}; producing {args.produce_s:.0f} s at {args.rate:.0f} rec/s, "
            f"idempotence {'on' if args.idempotence else 'off'}")

        rec, counters, events = Recorder(), {}, []
        timeline = Timeline(time.monotonic() + 0.5, args.produce_s)
        producer = threading.Thread(target=produce_loop, args=(args, topic, run_id, rec, stop, timeline.t0,
                                                               counters, timeline))
        producer.start()
        try:
            run_schedule(args, cluster, admin, topic, timeline, stop, events, undo)
        except BaseException:
            stop.set()  # the producer stops at once instead of at the end of its time
            raise
        finally:
            producer.join(args.produce_s + MAX_SHIFT_S + FLUSH_TIMEOUT_S + 30)
            stop.set()
        for node in sorted(undo["heal"]):
            cluster.run("heal", str(node))
        undo["heal"].clear()
        for node in sorted(undo["restart"]):
            cluster.run("restart", str(node))
        undo["restart"].clear()

        records, high, unread = read_back(args, topic)
        checks = verify(args, run_id, rec, records)
        faults = recovery(args, rec, events, timeline.end)
        # With idempotence the broker must also have dropped every retried duplicate.
        bad_data = checks["lost_acked"] or checks["misplaced_acked"] or unread or (
            args.idempotence and (checks["acked_with_extra_copies"] or checks["unacked_duplicated"]))
        slow = []
        for f in faults:
            if f["action"] not in ("kill", "cut"):
                continue
            worst = f["touched_recovery_max_s"]
            # Unrecovered by the end of the run, or slower than asked.
            limit = args.max_recovery_s if f["action"] in args.max_recovery_for.split(",") else None
            if worst is None or (limit is not None and worst > limit):
                slow.append(f"{f['action']} node {f['node']}: {worst}")
        status = 1 if bad_data else 2 if slow else 0
        for f in faults:
            if f["action"] in ("kill", "cut"):
                log(f"{f['action']} node {f['node']} at {f['at_s']:.1f}s (lasted {f['lasted_s']:.1f}s): "
                    f"recovery {f['recovery_s']} touched {f['leader_of']}+{f['in_isr_of']}, "
                    f"recovered only after undo: {f['touched_recovered_only_after_undo']}")
        log(f"acked {len(rec.acked)}, lost {checks['lost_acked']}, misplaced {checks['misplaced_acked']}, "
            f"acked dup {checks['acked_with_extra_copies']}, unacked dup {checks['unacked_duplicated']}")
        summary = {
            "pass": status == 0, "broker": cluster.kind, "topic": topic, "partitions": args.partitions,
            "idempotence": args.idempotence, "rate": args.rate, "produce_s": round(timeline.end - timeline.t0, 3),
            "schedule_shift_s": round(timeline.shift, 3),
            "produced": counters.get("produced"), "acked": len(rec.acked), "failed": len(rec.failed),
            "unresolved_at_flush": counters.get("unresolved_at_flush"),
            "errors": rec.errors, "high_watermarks": high, "unread_partitions": unread,
            "read_back": sum(len(v) for v in records.values()), **checks,
            "faults": faults, "slow_or_unrecovered": slow, "warnings": cluster.warnings,
        }
    except Exception as e:  # noqa: BLE001 - report, undo, exit 3
        summary = {"pass": False, "error": f"{type(e).__name__}: {e}"}
        status = 3
    finally:
        stop.set()
        for node in sorted(undo["heal"]):
            try:
                cluster.run("heal", str(node))
            except Exception as e:  # noqa: BLE001
                log(f"heal {node} failed: {e}")
        if workdir:
            try:
                cluster.run("stop")
            except Exception as e:  # noqa: BLE001
                log(f"stop failed: {e}")
            if status == 0:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                log(f"cluster logs kept in {workdir}")
        elif undo["restart"]:
            log(f"nodes left down: {sorted(undo['restart'])}")
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
