"""Online partition moves between shards under a real producer (Sluice only).

librdkafka produces with acks=all while the partition is moved back and forth between two
shards through `sluice admin move-partition`: once not idempotent (a duplicate written by
a retry would show here, not be hidden by the broker's dedup), once idempotent (its
producer state must travel with the partition: a lost sequence history would fail the
next batch with OUT_OF_ORDER_SEQUENCE_NUMBER). Afterwards every
acknowledged record must be in the log exactly once, at the offset its acknowledgement
gave, in production order, and no delivery may have failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

# Bounds: the producer runs at most PRODUCE_SECONDS and RECORDS_MAX records; MOVES moves.
# Paced at about 20 records per millisecond at most, so the run lasts as long as the moves.
PRODUCE_SECONDS = 20
RECORDS_MAX = 300_000
RECORDS_PER_PAUSE = 20
MOVES = 16
MOVE_PAUSE_S = 0.4


def _admin_addr() -> str | None:
    state = os.environ.get("INTEROP_BROKER_STATE")
    ctl = os.environ.get("INTEROP_BROKER_CTL", "")
    if not state or not ctl.endswith("sluice-broker.sh"):
        return None
    addr = "127.0.0.1:9644"
    try:
        with open(os.path.join(state, "sluice.toml")) as f:
            for line in f:
                key, _, value = line.partition("=")
                if key.strip() == "admin_listener" and value.strip().strip('"'):
                    addr = value.strip().strip('"').split("://")[-1]
    except OSError:
        return None
    return addr


def _status(admin: str) -> dict:
    with urllib.request.urlopen(f"http://{admin}/status", timeout=10) as r:
        return json.load(r)


def _owner(admin: str, topic: str, partition: int) -> int | None:
    for shard in _status(admin)["shards"]:
        for p in shard["partition_list"]:
            if p["topic"] == topic and p["partition"] == partition:
                return shard["shard"]
    return None


def _move(admin: str, topic: str, partition: int, to: int) -> dict:
    out = subprocess.run(
        [os.environ["SLUICE_BIN"], "admin", "--admin", admin, "move-partition",
         "--topic", topic, "--partition", str(partition), "--to-shard", str(to), "--json"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"move to shard {to} failed: {out.stderr}"
    return json.loads(out.stdout)


@pytest.fixture
def sluice_admin():
    admin = _admin_addr()
    if admin is None or not os.environ.get("SLUICE_BIN"):
        pytest.skip("needs the managed sluice broker (shards and its admin endpoint)")
    shards = len(_status(admin)["shards"])
    if shards < 2:
        pytest.skip(f"the broker runs {shards} shard; a move needs two")
    return admin


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_partition_moves_back_and_forth_under_acks_all_producer(bootstrap, new_topic, sluice_admin, idempotent):
    topic = new_topic(1)
    acked: list[tuple[int, bytes]] = []
    failed: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            acked.append((msg.offset(), msg.value()))

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": idempotent,
        "linger.ms": 2,
        "message.timeout.ms": 60000,
        "log_level": 3,
    })
    stop = threading.Event()
    moves: list[dict] = []
    move_error: list[str] = []

    def mover():
        try:
            for i in range(MOVES):
                if stop.is_set():
                    return
                time.sleep(MOVE_PAUSE_S)
                here = _owner(sluice_admin, topic, 0)
                assert here is not None, "the partition is on no shard in /status"
                to = 1 if here == 0 else 0
                report = _move(sluice_admin, topic, 0, to)
                assert report["moved"] and report["to_shard"] == to, report
                moves.append(report)
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            move_error.append(repr(e))

    # Make sure the partition is open somewhere before the mover looks for it.
    producer.produce(topic, value=b"first", partition=0, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    t = threading.Thread(target=mover, daemon=True)
    t.start()
    sent = 1
    deadline = time.monotonic() + PRODUCE_SECONDS
    while time.monotonic() < deadline and sent < RECORDS_MAX and (t.is_alive() or len(moves) < 2):
        try:
            producer.produce(topic, value=b"v%09d" % sent, partition=0, on_delivery=on_delivery)
            sent += 1
        except BufferError:
            producer.poll(0.01)
            continue
        if sent % RECORDS_PER_PAUSE == 0:
            producer.poll(0.001)
    stop.set()
    t.join(60)
    assert producer.flush(60) == 0, "records still unacknowledged after 60 s"
    assert not move_error, move_error
    assert not failed, f"{len(failed)} deliveries failed, first: {failed[:3]}"
    assert len(moves) >= 4, f"only {len(moves)} moves happened while producing"
    assert len(acked) == sent

    # Everything acknowledged is there once, at its acknowledged offset, in order.
    acked.sort()
    offsets = [o for o, _ in acked]
    assert offsets == list(range(sent)), "acknowledged offsets are not 0..n-1 without gaps"
    values = [v for _, v in acked]
    assert values == [b"first"] + [b"v%09d" % i for i in range(1, sent)], "acknowledged order differs from production order"

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-check",
        "enable.auto.commit": False,
        "log_level": 3,
    })
    consumer.assign([TopicPartition(topic, 0, 0)])
    read: list[tuple[int, bytes]] = []
    read_deadline = time.monotonic() + 60
    while len(read) < sent and time.monotonic() < read_deadline:
        for m in consumer.consume(num_messages=10000, timeout=1.0):
            assert m.error() is None, m.error()
            read.append((m.offset(), m.value()))
    consumer.close()
    assert read == acked, f"log differs from what was acknowledged ({len(read)} read, {sent} acked)"
    worst_ms = max(m["move_us"] for m in moves) / 1000
    print(f"\n{sent} records acked, {len(moves)} moves, slowest move {worst_ms:.1f} ms")
