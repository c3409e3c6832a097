"""SIGKILL the broker right after acks=all produces, restart it on the same data dir:
every acknowledged record is there at the same offset, nothing else is, and new
records continue at the next offset. Runs last (it restarts the broker) and only when
run.sh manages the broker (INTEROP_BROKER_CTL)."""

import collections
import os
import subprocess

import pytest

from clients import Out

PARTITIONS = 3
# Two librdkafka producer sessions, acks=all: large batches, then one record per request.
# (This test is about durability; each client's own produce path is covered elsewhere.)
SESSIONS = [("batched", 3000, {"acks": "all", "linger.ms": 20}),
            ("one-per-request", 500, {"acks": "all", "linger.ms": 0, "batch.num.messages": 1})]


def ctl(verb: str) -> None:
    subprocess.run([os.environ["INTEROP_BROKER_CTL"], verb, os.environ["INTEROP_BROKER_STATE"]],
                   check=True, timeout=120)


@pytest.mark.skipif(not os.environ.get("INTEROP_BROKER_CTL"), reason="broker not managed by run.sh (BROKER=external)")
def test_acked_records_survive_sigkill(clients, new_topic):
    topic = new_topic(PARTITIONS)
    expected = {}  # (partition, offset) -> (key, value, headers)
    for session, n, conf in SESSIONS:
        sent = [Out(f"{session}-{i % 50}".encode(), f"{session}:{i}".encode(), (("s", session.encode()),))
                for i in range(n)]
        acks = clients["librdkafka"].produce(topic, sent, **conf)
        for r, a in zip(sent, acks):
            assert (a.partition, a.offset) not in expected, f"offset {a} handed out twice"
            expected[(a.partition, a.offset)] = (r.key, r.value, r.headers)
    ends = collections.Counter(p for p, _ in expected)
    for p, n in ends.items():
        assert sorted(o for q, o in expected if q == p) == list(range(n)), f"partition {p}: acked offsets not contiguous"

    ctl("kill9")
    ctl("start")

    total = len(expected)
    for consumer in ("librdkafka", "java"):
        got = clients[consumer].consume(topic, list(range(PARTITIONS)), count=total, timeout_s=120)
        seen = {(r.partition, r.offset): (r.key, r.value, r.headers) for r in got}
        missing = sorted(set(expected) - set(seen))
        assert not missing, f"{consumer}: {len(missing)} acknowledged records lost after SIGKILL, first {missing[:5]}"
        wrong = [k for k in expected if seen[k] != expected[k]]
        assert not wrong, f"{consumer}: {len(wrong)} records changed after restart, first {wrong[:5]}"
        assert len(got) == total, f"{consumer}: {len(got) - total} records beyond the acknowledged ones"

    views = {p: clients["librdkafka"].offsets(topic, p, [])[0] for p in range(PARTITIONS)}
    assert {p: (v.earliest, v.latest) for p, v in views.items()} == {p: (0, ends[p]) for p in range(PARTITIONS)}

    # The log goes on at the next offset.
    acks = clients["librdkafka"].produce(topic, [Out(None, b"after-restart", partition=p) for p in range(PARTITIONS)],
                                         acks="all")
    assert [(a.partition, a.offset) for a in acks] == [(p, ends[p]) for p in range(PARTITIONS)]
