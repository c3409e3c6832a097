"""Consumer-group helpers for the group tests: subscribe()-style consumers of librdkafka
(confluent-kafka) and kafka-python, driven from one thread, every wait bounded."""

from __future__ import annotations

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
