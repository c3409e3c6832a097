"""SIGKILL the broker right after acks=all produces, restart it on the same data dir:
every acknowledged record is there at the same offset with its timestamp, nothing else
is, lookups by timestamp still find them, and new records continue at the next offset. Runs last (it restarts the broker) and only when
run.sh manages the broker (INTEROP_BROKER_CTL)."""

import collections
import os
import subprocess

import pytest

from clients import Out

PARTITIONS = 3
# Two librdkafka producer sessions, acks=all: large batches, then one record per request.
# (This test is about durability; each client's own produce path is covered elsewhere.)
T0 = 1_700_000_000_000  # CreateTime of the first batched record; then +10 ms per record
SESSIONS = [("batched", 3000, {"acks": "all", "linger.ms": 20}),
            ("one-per-request", 500, {"acks": "all", "linger.ms": 0, "batch.num.messages": 1})]


def ctl(verb: str) -> None:
    subprocess.run([os.environ["INTEROP_BROKER_CTL"], verb, os.environ["INTEROP_BROKER_STATE"]],
                   check=True, timeout=120)


@pytest.mark.skipif(not os.environ.get("INTEROP_BROKER_CTL"), reason="broker not managed by run.sh (BROKER=external)")
def test_acked_records_survive_sigkill(clients, new_topic):
    topic = new_topic(PARTITIONS)
    expected = {}  # (partition, offset) -> (key, value, headers)
    stamped = collections.defaultdict(list)  # partition -> [(timestamp, offset)] of the batched session
    later = collections.defaultdict(list)  # partition -> [(offset, acked timestamp)] of the other session
    for session, n, conf in SESSIONS:
        sent = [Out(f"{session}-{i % 50}".encode(), f"{session}:{i}".encode(), (("s", session.encode()),),
                    timestamp=T0 + 10 * i if session == "batched" else None)
                for i in range(n)]
        acks = clients["librdkafka"].produce(topic, sent, **conf)
        for r, a in zip(sent, acks):
            assert (a.partition, a.offset) not in expected, f"offset {a} handed out twice"
            expected[(a.partition, a.offset)] = (r.key, r.value, r.headers)
            if r.timestamp is not None:
                stamped[a.partition].append((r.timestamp, a.offset))
            else:
                later[a.partition].append((a.offset, a.timestamp))
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
        ts_seen = {(r.partition, r.offset): r.timestamp for r in got}
        ts_wrong = [(p, o) for p, recs in stamped.items() for ts, o in recs if ts_seen[(p, o)] != ts]
        assert not ts_wrong, f"{consumer}: CreateTime changed after restart at {ts_wrong[:5]}"

    # ListOffsets after recovery: earliest/latest, and by timestamp (the time index came back):
    # a record's own timestamp, and one ms later, each find the first offset whose
    # timestamp is at or after the target.
    for p in range(PARTITIONS):
        by_offset = sorted((o, ts) for ts, o in stamped[p]) + sorted((o, ts) for o, ts in later[p])
        picks = [stamped[p][0][0], stamped[p][len(stamped[p]) // 2][0], stamped[p][-1][0]]
        targets = sorted(set(picks + [t + 1 for t in picks]))
        want = {t: next((o for o, ts in by_offset if ts >= t), None) for t in targets}
        view = clients["librdkafka"].offsets(topic, p, targets)[0]
        assert (view.earliest, view.latest) == (0, ends[p]), f"partition {p}: earliest/latest after restart"
        assert view.times == want, f"partition {p}: lookups by timestamp after restart"

    # The log goes on at the next offset.
    acks = clients["librdkafka"].produce(topic, [Out(None, b"after-restart", partition=p) for p in range(PARTITIONS)],
                                         acks="all")
    assert [(a.partition, a.offset) for a in acks] == [(p, ends[p]) for p in range(PARTITIONS)]
