"""gzip, snappy, lz4 and zstd batches produced by one client and read by every other.
A raw Fetch also checks that the broker serves the batches with the producer's codec
and a valid CRC-32C (the batch is stored as sent, not re-encoded)."""

import pytest

import rawkafka
from clients import Out
from conftest import CLIENT_NAMES

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
COUNT = 500


def producer_conf(client: str, codec: str) -> dict:
    if client == "kafka-python":
        return {"compression_type": codec, "linger_ms": 20}
    return {"compression.type": codec, "linger.ms": 20}


@pytest.mark.parametrize("producer", CLIENT_NAMES)
@pytest.mark.parametrize("codec", list(CODECS))
def test_compressed_batches_cross_client(clients, new_topic, bootstrap, codec, producer):
    topic = new_topic(1)
    sent = [Out(f"k{i}".encode(), f"{codec}/{producer}/{i:05d}/".encode() + b"compressible " * 40,
                (("i", str(i).encode()),), partition=0) for i in range(COUNT)]
    acks = clients[producer].produce(topic, sent, **producer_conf(producer, codec))
    assert [a.offset for a in acks] == list(range(COUNT))

    # Raw view of what the broker serves.
    seen = []
    offset = 0
    for _ in range(COUNT):  # bounded: each fetch advances by at least one batch
        res = rawkafka.fetch(bootstrap, topic, 0, offset, max_wait_ms=100)
        assert res.error_code == 0, f"fetch error {res.error_code}"
        bs = rawkafka.batches(res.records)
        assert bs, f"no complete batch at offset {offset}"
        seen.extend(bs)
        offset = bs[-1].base_offset + bs[-1].last_offset_delta + 1
        if offset >= COUNT:
            break
    assert offset == COUNT
    assert all(b.magic == 2 for b in seen), [b.magic for b in seen]
    assert all(b.crc_ok for b in seen), "batch CRC-32C mismatch in fetched data"
    assert {b.compression for b in seen} == {CODECS[codec]}, f"served codecs {[b.compression for b in seen]}"
    assert sum(b.record_count for b in seen) == COUNT

    expected = [(a.offset, r.key, r.value, r.headers) for r, a in zip(sent, acks)]
    for consumer in CLIENT_NAMES:
        got = clients[consumer].consume(topic, [0], count=COUNT, timeout_s=60)
        assert [(r.offset, r.key, r.value, r.headers) for r in got] == expected, \
            f"{consumer} read back {len(got)} records that differ from {producer}'s {codec} batch"
