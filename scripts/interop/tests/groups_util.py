"""Consumer-group helpers for the group tests: subscribe()-style consumers of librdkafka
(confluent-kafka) and kafka-python, driven from one thread, every wait bounded."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import Callable

import confluent_kafka
import kafka

# Short sessions and poll intervals so a member that is gone is noticed within a test's
# time; the broker's lower bound for session.timeout.ms is 1 s.
SESSION_MS = 10000
HEARTBEAT_MS = 1000
MAX_POLL_MS = 30000


def rdk_consumer(bootstrap: str, group: str, **extra) -> confluent_kafka.Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": HEARTBEAT_MS,
        "max.poll.interval.ms": MAX_POLL_MS,
        "socket.timeout.ms": 30000,
        "log_level": 3,
    }
    conf.update(extra)
    return confluent_kafka.Consumer(conf)


def kp_consumer(bootstrap: str, group: str, **extra) -> kafka.KafkaConsumer:
    conf = {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": SESSION_MS,
        "heartbeat_interval_ms": HEARTBEAT_MS,
        "max_poll_interval_ms": MAX_POLL_MS,
        "request_timeout_ms": 30000,
    }
    conf.update(extra)
    return kafka.KafkaConsumer(**conf)


class Member:
    """One group member, whichever client: poll() returns [(partition, offset, value)]."""

    def __init__(self, client: str, bootstrap: str, group: str, topic: str, **extra):
        self.client = client
        self.topic = topic
        if client == "librdkafka":
            self.c = rdk_consumer(bootstrap, group, **extra)
        else:
            self.c = kp_consumer(bootstrap, group, **extra)
        self.c.subscribe([topic])
        self.seen_assignment: set[int] = set()

    def poll(self, timeout_s: float = 0.2) -> list[tuple[int, int, bytes]]:
        out = []
        if self.client == "librdkafka":
            for m in self.c.consume(num_messages=1000, timeout=timeout_s):
                if m.error() is not None:
                    raise AssertionError(f"librdkafka consume error: {m.error()}")
                out.append((m.partition(), m.offset(), m.value()))
        else:
            for _tp, msgs in self.c.poll(timeout_ms=int(timeout_s * 1000), max_records=1000).items():
                out.extend((m.partition, m.offset, m.value) for m in msgs)
        return out

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment() if tp.topic == self.topic}

    def commit(self) -> None:
        if self.client == "librdkafka":
            self.c.commit(asynchronous=False)
        else:
            self.c.commit()

    def committed(self, partitions: list[int]) -> dict[int, int]:
        if self.client == "librdkafka":
            got = self.c.committed([confluent_kafka.TopicPartition(self.topic, p) for p in partitions], timeout=30)
            return {tp.partition: tp.offset for tp in got}
        return {p: self.c.committed(kafka.TopicPartition(self.topic, p)) for p in partitions}

    def close(self) -> None:
        self.c.close()


def poll_until(members: list[Member], done: Callable[[], bool], timeout_s: float, what: str,
               sink: dict | None = None) -> None:
    """Polls every member in its own thread (as applications do: one member's JoinGroup
    waits for the others to rejoin) until done(); records go to sink[member index]. Each
    thread refreshes its member's `seen_assignment` after every poll, and done() reads that
    rather than the (not thread-safe) kafka-python consumer."""
    stop = threading.Event()
    errors: list[str] = []
    lock = threading.Lock()

    def run(i: int, m: Member) -> None:
        try:
            while not stop.is_set():
                got = m.poll(0.1)
                m.seen_assignment = m.assignment()
                with lock:
                    if sink is not None:
                        sink.setdefault(i, []).extend(got)
                    elif got:
                        errors.append(f"member {i} got {len(got)} records while none were expected")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"member {i}: {e!r}")

    threads = [threading.Thread(target=run, args=(i, m), daemon=True) for i, m in enumerate(members)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    ok = False
    try:
        while time.monotonic() < deadline and not errors:
            with lock:
                if done():
                    ok = True
                    break
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, f"{what}: {errors[:3]}"
    assert ok, f"{what}: not reached in {timeout_s} s; assignments {[sorted(m.seen_assignment) for m in members]}"


def split_evenly(members: list[Member], partitions: int) -> Callable[[], bool]:
    def check() -> bool:
        sets = [m.seen_assignment for m in members]
        if any(not s for s in sets):
            return False
        union = set().union(*sets)
        return union == set(range(partitions)) and sum(len(s) for s in sets) == partitions
    return check


def rdk_consumer_protocol(bootstrap: str, group: str, **extra) -> confluent_kafka.Consumer:
    """librdkafka with the KIP-848 consumer protocol: the broker assigns; session and
    heartbeat timing come from the broker, so those settings are not allowed here."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": MAX_POLL_MS,
        "socket.timeout.ms": 30000,
        "log_level": 3,
    }
    conf.update(extra)
    return confluent_kafka.Consumer(conf)


class RdkConsumerProtocolMember(Member):
    """A librdkafka member on group.protocol=consumer (same surface as Member)."""

    def __init__(self, bootstrap: str, group: str, topic: str, **extra):  # noqa: D107 - no super(): own conf
        self.client = "librdkafka"
        self.topic = topic
        self.c = rdk_consumer_protocol(bootstrap, group, **extra)
        self.c.subscribe([topic])
        self.seen_assignment = set()


class JavaMember:
    """A Java-client member: the driver's `group` command in its own process, controlled
    over stdin; its stdout events are collected by a reader thread. Same surface as Member."""

    def __init__(self, bootstrap: str, group: str, topic: str, props: dict | None = None, pattern: str = ""):
        cp = os.environ["INTEROP_JAVA_CP"]
        argv = [os.environ.get("JAVA", "java"), "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", cp, "dev.sluice.interop.Driver", "group", "--bootstrap", bootstrap,
                "--group", group, "--max-ms", "280000"]
        argv += ["--pattern", pattern] if pattern else ["--topic", topic]
        for k, v in (props or {}).items():
            argv += ["--prop", f"{k}={v}"]
        self.topic = topic
        self.seen_assignment: set[int] = set()
        self._lock = threading.Lock()
        self._records: list[tuple[int, int, bytes]] = []
        self._assignment: set[int] = set()
        self._replies: list[list[str]] = []
        self._errors: list[str] = []
        self._closed = False
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, bufsize=1)
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            f = line.rstrip("\n").split("\t")
            with self._lock:
                if f[0] == "rec":
                    self._records.append((int(f[1]), int(f[2]), bytes.fromhex(f[3])))
                elif f[0] == "assignment":
                    # Partition numbers; "topic:partition" for a --pattern member.
                    self._assignment = {x if ":" in x else int(x) for x in f[1].split(",") if x}
                elif f[0] == "error":
                    self._errors.append("\t".join(f[1:]))
                else:
                    self._replies.append(f)

    def _read_stderr(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            with self._lock:
                self._stderr.append(line)
                del self._stderr[:-200]

    def _check(self) -> None:
        with self._lock:
            if self._errors:
                raise AssertionError(f"java member failed: {self._errors}; stderr {''.join(self._stderr)[-2000:]}")
        if self.p.poll() is not None and not self._closed:
            raise AssertionError(f"java member exited ({self.p.returncode}); stderr {''.join(self._stderr)[-2000:]}")

    def poll(self, timeout_s: float = 0.2) -> list[tuple[int, int, bytes]]:
        deadline = time.monotonic() + timeout_s
        while True:
            self._check()
            with self._lock:
                if self._records or time.monotonic() >= deadline:
                    out, self._records = self._records, []
                    return out
            time.sleep(0.02)

    def assignment(self) -> set[int]:
        with self._lock:
            return set(self._assignment)

    def _ask(self, command: str, reply: str, timeout_s: float = 60) -> list[str]:
        assert self.p.stdin is not None
        self.p.stdin.write(command + "\n")
        self.p.stdin.flush()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check()
            with self._lock:
                for i, f in enumerate(self._replies):
                    if f[0] == reply:
                        return self._replies.pop(i)
            time.sleep(0.02)
        raise AssertionError(f"java member: no {reply!r} within {timeout_s} s")

    def commit(self) -> None:
        self._ask("commit", "committed")

    def committed(self, partitions: list[int]) -> dict[int, int]:
        f = self._ask("committed " + ",".join(map(str, partitions)), "committed-offsets")
        return {int(p): int(o) for p, o in (kv.split(":") for kv in f[1].split(",") if kv)}

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self.p.poll() is None:
                self._ask("close", "closed", timeout_s=60)
        finally:
            self._closed = True
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)


def consumer_protocol_member(client: str, bootstrap: str, group: str, topic: str, **extra):
    """A group.protocol=consumer member of `client` ("java" or "librdkafka")."""
    if client == "java":
        return JavaMember(bootstrap, group, topic, {"group.protocol": "consumer", **extra})
    return RdkConsumerProtocolMember(bootstrap, group, topic, **extra)


class RdkPatternMember(RdkConsumerProtocolMember):
    """A librdkafka consumer-protocol member subscribed to a regex ("^..."), which
    librdkafka sends to the broker; its assignment is reported as "topic:partition"."""

    def assignment(self) -> set:
        return {f"{tp.topic}:{tp.partition}" for tp in self.c.assignment()}
