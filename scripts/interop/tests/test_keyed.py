"""10,000 keyed records with headers over 3 partitions: each producer's records land on
the Java-compatible murmur2 partition, get contiguous offsets in send order, and every
consumer reads back exactly those records, in order, per partition."""

import collections

import pytest
from kafka.partitioner.default import murmur2

from clients import Out
from conftest import CLIENT_NAMES

COUNT = 10_000
PARTITIONS = 3


def expected_partition(key: bytes) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def records(producer: str) -> list[Out]:
    out = []
    for i in range(COUNT):
        key = f"key-{i % 997:04d}".encode()
        value = f"{producer}|{i:05d}|".encode() + bytes((i * 7 + j) % 256 for j in range(i % 64))
        headers = (("seq", str(i).encode()), ("producer", producer.encode()), ("empty", b""))
        out.append(Out(key, value, headers))
    return out


@pytest.mark.parametrize("producer", CLIENT_NAMES)
def test_keyed_records_with_headers_round_trip(clients, new_topic, producer):
    topic = new_topic(PARTITIONS)
    sent = records(producer)
    acks = clients[producer].produce(topic, sent)

    expected = collections.defaultdict(list)  # partition -> [(offset, key, value, headers)]
    for r, a in zip(sent, acks):
        assert a.partition == expected_partition(r.key), f"{r.key!r} went to {a.partition}"
        expected[a.partition].append((a.offset, r.key, r.value, r.headers))
    for p, recs in expected.items():
        offsets = [o for o, *_ in recs]
        assert offsets == list(range(len(recs))), f"partition {p}: offsets not contiguous in send order"
    assert sorted(expected) == list(range(PARTITIONS))

    for consumer in CLIENT_NAMES:
        got = clients[consumer].consume(topic, list(range(PARTITIONS)), count=COUNT, timeout_s=90)
        by_partition = collections.defaultdict(list)
        for r in got:
            by_partition[r.partition].append((r.offset, r.key, r.value, r.headers))
        assert len(got) == COUNT, f"{consumer} read {len(got)} of {COUNT}"
        for p in range(PARTITIONS):
            assert by_partition[p] == expected[p], f"{consumer}: partition {p} differs from what {producer} sent"
