"""Fetch long-poll: with no data the broker holds a Fetch for about max_wait_ms (it must
not answer an empty fetch at once: min_bytes=1 is not met), and a fetch waiting at the
log end is answered promptly when a record arrives."""

import threading
import time

import pytest

import rawkafka
from clients import Out
from conftest import CLIENT_NAMES

PROMPT_MS = 1000  # data must reach a waiting fetch within this after the producer's ack


def test_empty_fetch_waits_for_max_wait(clients, new_topic, bootstrap):
    topic = new_topic(1)
    clients["librdkafka"].produce(topic, [Out(None, b"x", partition=0)])
    res = rawkafka.fetch(bootstrap, topic, 0, offset=1, max_wait_ms=3000)
    assert res.error_code == 0
    assert res.high_watermark == 1
    assert rawkafka.batches(res.records) == []
    assert 2.5 <= res.elapsed_s <= 8, f"empty fetch with max_wait_ms=3000 answered after {res.elapsed_s:.3f} s"


def test_waiting_fetch_returns_promptly_when_data_arrives(clients, new_topic, bootstrap):
    topic = new_topic(1)
    # A first record makes sure the partition serves fetches before the timed one
    # (a just-created topic can answer NOT_LEADER_OR_FOLLOWER for a moment).
    clients["librdkafka"].produce(topic, [Out(None, b"first", partition=0)])
    acked = {}

    def produce_later():
        time.sleep(1.5)
        clients["librdkafka"].produce(topic, [Out(None, b"arrives", partition=0)], acks="all")
        acked["t"] = time.monotonic()

    t = threading.Thread(target=produce_later)
    t.start()
    try:
        res = rawkafka.fetch(bootstrap, topic, 0, offset=1, max_wait_ms=15000)
        answered = time.monotonic()
    finally:
        t.join(60)
    assert res.error_code == 0
    bs = rawkafka.batches(res.records)
    assert [b.base_offset for b in bs] == [1], f"fetch answered with batches {bs} after {res.elapsed_s:.3f} s"
    assert "t" in acked
    late_ms = (answered - acked["t"]) * 1000
    assert late_ms < PROMPT_MS, f"waiting fetch answered {late_ms:.0f} ms after the produce was acked"


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_consumer_long_poll_gets_new_record_promptly(clients, new_topic, client):
    topic = new_topic(1)
    clients["librdkafka"].produce(topic, [Out(None, b"old", partition=0)])
    ms = clients[client].longpoll(topic, 0, b"fresh-" + client.encode(), delay_s=2.0, wait_max_ms=10000)
    assert ms < PROMPT_MS, f"{client} saw the record {ms:.0f} ms after its ack (fetch.max.wait 10 s)"
