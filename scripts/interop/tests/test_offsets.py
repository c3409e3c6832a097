"""ListOffsets: earliest, latest and by timestamp (consumer APIs and the Java/librdkafka
AdminClient), over two batches; CreateTime timestamps read back unchanged."""

import pytest

from clients import Out
from conftest import CLIENT_NAMES

T0 = 1_600_000_000_000  # fixed CreateTime base, far from "now"
N = 20
# target timestamp -> offset of the first record with timestamp >= target (None: past the end)
LOOKUPS = {
    T0 - 5_000: 0,
    T0: 0,
    T0 + 1: 1,
    T0 + 5_000: 5,
    T0 + 9_999: 10,  # first record of the second batch
    T0 + 12_500: 13,
    T0 + 19_000: 19,
    T0 + 19_001: None,
}


@pytest.fixture(scope="module")
def timestamped_topic(clients, request):
    from conftest import RUN

    topic = f"{RUN}-list-offsets"
    clients["librdkafka"].create_topic(topic, 1)
    clients["librdkafka"].partitions_of(topic)
    first = [Out(f"k{i}".encode(), f"v{i}".encode(), partition=0, timestamp=T0 + i * 1000) for i in range(10)]
    second = [Out(f"k{i}".encode(), f"v{i}".encode(), partition=0, timestamp=T0 + i * 1000) for i in range(10, N)]
    a1 = clients["librdkafka"].produce(topic, first, **{"linger.ms": 50})
    # A second producer session, so the lookups span two batches. librdkafka for both:
    # this module is about ListOffsets, and other modules cover each client's produce path.
    a2 = clients["librdkafka"].produce(topic, second, **{"linger.ms": 50})
    assert [a.offset for a in a1 + a2] == list(range(N))
    assert [a.timestamp for a in a1 + a2] == [T0 + i * 1000 for i in range(N)]
    return topic


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_list_offsets_earliest_latest_and_by_timestamp(clients, timestamped_topic, client):
    views = clients[client].offsets(timestamped_topic, 0, list(LOOKUPS))
    for name, view in zip(("consumer", "admin"), views):
        assert (view.earliest, view.latest) == (0, N), f"{client} {name}: earliest/latest"
        assert view.times == LOOKUPS, f"{client} {name}: by timestamp"


@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_create_time_round_trips(clients, timestamped_topic, client):
    got = clients[client].consume(timestamped_topic, [0], count=N, timeout_s=60)
    assert [(r.offset, r.timestamp) for r in got] == [(i, T0 + i * 1000) for i in range(N)]
