"""Record edge cases: a ~900 KiB record, null keys, empty and null values and headers."""

import hashlib
import random

import pytest

from clients import Out
from conftest import CLIENT_NAMES

BIG = 900 * 1024


@pytest.mark.parametrize("producer", CLIENT_NAMES)
def test_900_kib_record(clients, new_topic, producer):
    topic = new_topic(1)
    big = random.Random(f"big-{producer}").randbytes(BIG)
    sent = [Out(b"small-before", b"a", partition=0), Out(b"big", big, partition=0),
            Out(b"small-after", b"b", partition=0)]
    acks = clients[producer].produce(topic, sent)
    assert [a.offset for a in acks] == [0, 1, 2]
    for consumer in CLIENT_NAMES:
        got = clients[consumer].consume(topic, [0], count=3, timeout_s=60)
        assert [(r.offset, r.key) for r in got] == [(0, b"small-before"), (1, b"big"), (2, b"small-after")], consumer
        assert len(got[1].value) == BIG, f"{consumer}: big value is {len(got[1].value)} bytes"
        assert hashlib.sha256(got[1].value).digest() == hashlib.sha256(big).digest(), f"{consumer}: big value differs"
        assert (got[0].value, got[2].value) == (b"a", b"b")


EDGE = [
    Out(None, b"null-key", partition=0),
    Out(b"empty-value", b"", partition=0),
    Out(b"null-value", None, partition=0),
    Out(None, None, partition=0),
    Out(b"", b"", partition=0),
    Out(b"", None, partition=0),
    Out(b"headers", b"v", (("null", None), ("empty", b""), ("dup", b"1"), ("dup", b"2"), ("bin", bytes(range(256)))),
        partition=0),
]


@pytest.mark.parametrize("producer", CLIENT_NAMES)
def test_null_keys_empty_and_null_values(clients, new_topic, producer):
    topic = new_topic(1)
    edge = EDGE
    if producer == "kafka-python":
        # kafka-python's send() refuses a record with neither key nor value, and a header
        # whose value is null (client-side rules, checked before anything is sent).
        edge = [Out(r.key, r.value, tuple(h for h in r.headers if h[1] is not None), r.partition)
                for r in EDGE if not (r.key is None and r.value is None)]
    acks = clients[producer].produce(topic, edge)
    assert [a.offset for a in acks] == list(range(len(edge)))
    expected = [(i, r.key, r.value, r.headers) for i, r in enumerate(edge)]
    for consumer in CLIENT_NAMES:
        got = clients[consumer].consume(topic, [0], count=len(edge), timeout_s=60)
        assert [(r.offset, r.key, r.value, r.headers) for r in got] == expected, f"{consumer} (from {producer})"
