"""Seek forwards, backwards, to the beginning, to the end, and past the end (the broker
answers OFFSET_OUT_OF_RANGE and the client resets to earliest)."""

import pytest

from clients import Out
from conftest import CLIENT_NAMES

N = 100


@pytest.fixture
def hundred(clients, new_topic):
    topic = new_topic(1)
    acks = clients["librdkafka"].produce(topic, [Out(None, f"v{i}".encode(), partition=0) for i in range(N)])
    assert [a.offset for a in acks] == list(range(N))
    return topic


OPS = ["seek:42", "seek:7", "end", "beginning", "seek:97", "seek:1000"]
EXPECTED = {
    "seek:42": [42, 43, 44],
    "seek:7": [7, 8, 9],
    "end": N,
    "beginning": [0, 1, 2],
    "seek:97": [97, 98, 99],
    "seek:1000": [0, 1, 2],  # out of range -> auto.offset.reset=earliest
}


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_seek(clients, hundred, client):
    results = clients[client].seek(hundred, 0, OPS, take=3)
    assert [r.op for r in results] == OPS
    for r in results:
        want = EXPECTED[r.op]
        if r.op == "end":
            assert r.position == want, f"{client}: position after seek to end"
        else:
            assert r.offsets == want, f"{client}: {r.op} read offsets {r.offsets}"
            assert r.values == [f"v{o}".encode() for o in want], f"{client}: {r.op} values"
