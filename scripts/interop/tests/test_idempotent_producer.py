"""Idempotent producers with their default settings (Java: enable.idempotence=true;
kafka-python 3.x likewise): InitProducerId, then produce; every record lands once, in
order, and every client reads it back."""

from __future__ import annotations

import pytest

from clients import Out


@pytest.mark.parametrize("producer", ["java", "kafka-python"])
def test_default_idempotent_producer_produces(clients, new_topic, producer):
    partitions = 3
    topic = new_topic(partitions)
    sent = [Out(f"k{i}".encode(), f"v{i}".encode(), partition=i % partitions) for i in range(3000)]
    acks = clients[producer].produce(topic, sent)  # default config: idempotent
    by_partition: dict = {}
    for a in acks:
        by_partition.setdefault(a.partition, []).append(a.offset)
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p}: offsets not 0..n-1"
    got = clients["librdkafka"].consume(topic, list(range(partitions)), count=len(sent), timeout_s=60)
    assert sorted(r.value for r in got) == sorted(r.value for r in sent)
    assert len(got) == len(sent)


def test_java_producer_restart_gets_a_new_producer_id(clients, new_topic):
    """Two producer sessions one after the other: both succeed (a fresh id each)."""
    topic = new_topic(1)
    for session in range(2):
        acks = clients["java"].produce(topic, [Out(None, f"s{session}-{i}".encode(), partition=0) for i in range(100)])
        assert [a.offset for a in acks] == list(range(session * 100, session * 100 + 100))
