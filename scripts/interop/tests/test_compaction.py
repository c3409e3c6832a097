"""Log compaction with real clients: keyed updates and tombstones (plain and compressed)
go into a compacted topic with short segments; once the cleaner has run, every consumer
reading from the beginning gets exactly the latest value per key at its original offset,
and tombstoned keys are gone after delete.retention.ms. A topic switched to compact with
IncrementalAlterConfigs is compacted too (its tombstones kept: default delete.retention.ms
is a day), and a keyless record is refused on a compacted topic."""

from __future__ import annotations

import time
from typing import Optional

import confluent_kafka
import kafka
import kafka.admin
import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from clients import Out
from conftest import RUN

KEYS = 30
ROUNDS = 4
SEGMENT_MS = 300
CLEAN_WAIT_S = 60
SENTINEL = b"~sentinel"
# Invalid record: Kafka's answer to a keyless record on a compacted topic.
INVALID_RECORD = 87


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})


def create(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    a = admin(bootstrap)  # the handle must outlive the future
    fut = a.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1, config=configs)], request_timeout=30)
    fut[name].result(timeout=40)


def produce_rounds(clients, topic: str, codec: str) -> dict[int, tuple[bytes, Optional[bytes]]]:
    """ROUNDS rounds of every key, each round in its own segment (segment.ms elapses
    between rounds); the last round tombstones every third key. Then a sentinel record
    rolls the last round's segment closed. Returns offset -> (key, value)."""
    model = {}
    for r in range(ROUNDS):
        recs = []
        for k in range(KEYS):
            value = None if (r == ROUNDS - 1 and k % 3 == 0) else f"value-{k}-round-{r}-".encode() * 8
            recs.append(Out(f"key-{k:03d}".encode(), value, partition=0))
        acks = clients["librdkafka"].produce(topic, recs, **{"compression.type": codec, "linger.ms": 20})
        for rec, ack in zip(recs, acks):
            model[ack.offset] = (rec.key, rec.value)
        time.sleep(SEGMENT_MS / 1000 + 0.2)
    ack = clients["librdkafka"].produce(topic, [Out(SENTINEL, b"end", partition=0)])[0]
    model[ack.offset] = (SENTINEL, b"end")
    return model


def latest_per_key(model, keep_tombstones: bool) -> list[tuple[int, bytes, Optional[bytes]]]:
    last = {}
    for offset in sorted(model):
        last[model[offset][0]] = offset
    return sorted((o, model[o][0], model[o][1]) for o in last.values()
                  if keep_tombstones or model[o][1] is not None)


def read_all(bootstrap: str, topic: str, end: int, timeout_s: float = 30):
    """Every record from the beginning up to offset `end` (inclusive), with librdkafka."""
    c = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "interop-unused",
                                  "enable.auto.commit": False, "log_level": 3,
                                  "enable.partition.eof": False})
    try:
        c.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        out = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (not out or out[-1][0] < end):
            for m in c.consume(num_messages=1000, timeout=0.2):
                assert m.error() is None, f"consume error: {m.error()}"
                out.append((m.offset(), m.key(), m.value()))
        return out
    finally:
        c.close()


def wait_until_compacted(bootstrap: str, topic: str, end: int, want, also=None) -> list:
    """Reads from the beginning until the log is `want` (or `also`, when given)."""
    deadline = time.monotonic() + CLEAN_WAIT_S
    got = []
    while time.monotonic() < deadline:
        got = read_all(bootstrap, topic, end)
        if got == want or (also is not None and got == also):
            return got
        time.sleep(0.5)
    raise AssertionError(f"{topic}: not compacted within {CLEAN_WAIT_S} s: read {len(got)} records, "
                         f"want {len(want)}; first extra: {[g for g in got if g not in want][:3]}")


def check_other_clients(clients, topic: str, want) -> None:
    """The compacted log (gaps between offsets, emptied batches) reads the same in Java
    and kafka-python."""
    for name in ("java", "kafka-python"):
        got = clients[name].consume(topic, [0], count=len(want), timeout_s=60)
        assert [(r.offset, r.key, r.value) for r in got] == want, f"{name} reads a different log"


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_compacted_topic_keeps_latest_value_per_key(clients, bootstrap, codec):
    topic = f"{RUN}-compact-{codec}"
    create(bootstrap, topic, {
        "cleanup.policy": "compact",
        "segment.ms": str(SEGMENT_MS),
        "min.cleanable.dirty.ratio": "0.01",
        "min.compaction.lag.ms": "0",
        "delete.retention.ms": "1000",
    })
    model = produce_rounds(clients, topic, codec)
    end = max(model)
    with_tombstones = latest_per_key(model, keep_tombstones=True)
    want = latest_per_key(model, keep_tombstones=False)
    assert len(want) < len(model) // 2
    # The first cleaning may keep the tombstones: Kafka counts delete.retention.ms from
    # the cleaning that first saw them, Sluice from their timestamp.
    wait_until_compacted(bootstrap, topic, end, want, also=with_tombstones)
    # A later cleaning, after delete.retention.ms, removes them: new keys make the log
    # dirty again (Kafka cleans only then), and a new sentinel rolls their segment.
    time.sleep(1.5)
    extra = [Out(f"extra-{k:03d}".encode(), b"x" * 100, partition=0) for k in range(KEYS)]
    for rec, ack in zip(extra, clients["librdkafka"].produce(topic, extra, **{"compression.type": codec})):
        model[ack.offset] = (rec.key, rec.value)
    time.sleep(SEGMENT_MS / 1000 + 0.2)
    # Its own key: a record in the active segment never supersedes anything yet.
    ack = clients["librdkafka"].produce(topic, [Out(SENTINEL + b"-2", b"end", partition=0)])[0]
    model[ack.offset] = (SENTINEL + b"-2", b"end")
    end = ack.offset
    want = latest_per_key(model, keep_tombstones=False)
    wait_until_compacted(bootstrap, topic, end, want)
    check_other_clients(clients, topic, want)


@pytest.mark.parametrize("api", ["IncrementalAlterConfigs", "AlterConfigs"])
def test_topic_altered_to_compact_is_compacted_and_keeps_fresh_tombstones(clients, bootstrap, api):
    topic = f"{RUN}-altered-compact-{api}"
    create(bootstrap, topic, {"segment.ms": str(SEGMENT_MS)})
    model = produce_rounds(clients, topic, "lz4")
    end = max(model)
    assert read_all(bootstrap, topic, end) == sorted((o, k, v) for o, (k, v) in model.items()), \
        "a delete-policy topic is not compacted"
    if api == "IncrementalAlterConfigs":  # librdkafka
        res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("min.cleanable.dirty.ratio", "0.01", incremental_operation=AlterConfigOpType.SET),
        ])
        a = admin(bootstrap)
        a.incremental_alter_configs([res])[res].result(timeout=30)
    else:  # kafka-python's admin client sends the legacy AlterConfigs (the whole set)
        kadmin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
        try:
            resp = kadmin.alter_configs([kafka.admin.ConfigResource(
                kafka.admin.ConfigResourceType.TOPIC, topic,
                configs={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})])
            errors = [r[0] for r in resp.resources] if hasattr(resp, "resources") else []
            assert all(e == 0 for e in errors), f"AlterConfigs errors: {resp}"
        finally:
            kadmin.close()
    # delete.retention.ms keeps its one-day default: tombstones stay, at their offsets.
    want = latest_per_key(model, keep_tombstones=True)
    assert any(v is None for _, _, v in want)
    wait_until_compacted(bootstrap, topic, end, want)


def test_keyless_record_is_refused_on_a_compacted_topic(bootstrap):
    topic = f"{RUN}-compact-keyless"
    create(bootstrap, topic, {"cleanup.policy": "compact"})
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "log_level": 3,
                                  "message.timeout.ms": 15000, "linger.ms": 0})
    results = []
    p.produce(topic, key=None, value=b"no key", partition=0,
              on_delivery=lambda err, msg: results.append(err))
    assert p.flush(30) == 0  # its own batch: the broker refuses whole batches
    p.produce(topic, key=b"k", value=b"keyed", partition=0,
              on_delivery=lambda err, msg: results.append(err))
    assert p.flush(30) == 0
    assert len(results) == 2
    assert results[0] is not None and results[0].code() == INVALID_RECORD, f"keyless: {results[0]}"
    assert results[1] is None, f"keyed record refused: {results[1]}"


def test_compaction_configs_are_described_with_kafka_defaults(bootstrap):
    topic = f"{RUN}-compact-describe"
    create(bootstrap, topic, {"cleanup.policy": "compact,delete", "min.compaction.lag.ms": "5000"})
    a = admin(bootstrap)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = a.describe_configs([res])[res].result(timeout=30)
    got = {k: configs[k].value for k in ("cleanup.policy", "min.compaction.lag.ms",
                                           "min.cleanable.dirty.ratio", "delete.retention.ms")}
    assert got == {"cleanup.policy": "compact,delete", "min.compaction.lag.ms": "5000",
                   "min.cleanable.dirty.ratio": "0.5", "delete.retention.ms": "86400000"}, got
    assert not configs["cleanup.policy"].is_default
    assert configs["delete.retention.ms"].is_default
