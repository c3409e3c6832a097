"""CreateTopics and Metadata: every client creates a topic with N partitions and every
client sees exactly those partitions, each with a leader."""

import pytest
from confluent_kafka import KafkaError, KafkaException

from clients import Out
from conftest import CLIENT_NAMES, RUN

PARTITIONS_BY_CREATOR = {"librdkafka": 2, "kafka-python": 5, "java": 7, "franz-go": 4}


@pytest.mark.parametrize("creator", CLIENT_NAMES)
def test_create_topic_with_n_partitions(clients, creator):
    n = PARTITIONS_BY_CREATOR[creator]
    topic = f"{RUN}-created-by-{creator}"
    clients[creator].create_topic(topic, n)
    for viewer in CLIENT_NAMES:
        leaders = clients[viewer].partitions_of(topic)
        assert sorted(leaders) == list(range(n)), f"{viewer} sees partitions {sorted(leaders)} of {topic}, want 0..{n - 1}"
        assert all(l >= 0 for l in leaders.values()), f"{viewer}: leaderless partition in {leaders}"
    # The last partition is writable and readable.
    acks = clients["librdkafka"].produce(topic, [Out(b"k", b"last-partition", partition=n - 1)])
    assert [(a.partition, a.offset) for a in acks] == [(n - 1, 0)]
    recs = clients["java"].consume(topic, [n - 1], count=1, timeout_s=30)
    assert [(r.partition, r.offset, r.key, r.value) for r in recs] == [(n - 1, 0, b"k", b"last-partition")]


def test_create_existing_topic_fails_with_topic_already_exists(clients, new_topic):
    topic = new_topic(3)
    with pytest.raises(KafkaException) as e:
        clients["librdkafka"].create_topic(topic, 3)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, str(e.value)
