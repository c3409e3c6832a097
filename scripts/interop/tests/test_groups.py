"""Consumer groups (classic protocol) with real clients: partitions split among members,
a leaving member's partitions move to the survivor, committed offsets are where a new
consumer of the group resumes (across clients), and the group admin APIs see it."""

from __future__ import annotations

import collections
import os

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient

from clients import Out
from groups_util import Member, poll_until, split_evenly

PARTITIONS = 4

KP = "kafka-python"


def _settle(members, sink) -> None:
    """Polls 1.5 s more: any record beyond the expected ones would be a duplicate."""
    try:
        poll_until(members, lambda: False, 1.5, "settle", sink)
    except AssertionError as e:
        if "not reached" not in str(e):
            raise


@pytest.mark.parametrize("client", ["librdkafka", KP])
def test_two_members_own_distinct_partitions_no_loss_no_duplicates(clients, new_topic, bootstrap, client):
    topic = new_topic(PARTITIONS)
    group = f"{topic}-g"
    members = [Member(client, bootstrap, group, topic) for _ in range(2)]
    try:
        poll_until(members, split_evenly(members, PARTITIONS), 60, "both members assigned")
        owned = [m.seen_assignment for m in members]
        assert not (owned[0] & owned[1]), f"a partition is owned twice: {owned}"

        n = 4000
        sent = [Out(None, f"v{i}".encode(), partition=i % PARTITIONS) for i in range(n)]
        clients["librdkafka"].produce(topic, sent, acks="all")

        got: dict = {}
        poll_until(members, lambda: sum(len(v) for v in got.values()) >= n, 90, "all records consumed", got)
        # A little longer: anything more would be a duplicate.
        _settle(members, got)

        keys = [(p, o) for recs in got.values() for p, o, _ in recs]
        dups = [k for k, c in collections.Counter(keys).items() if c > 1]
        assert not dups, f"{len(dups)} records delivered twice, first {dups[:5]}"
        assert sorted(v for recs in got.values() for _, _, v in recs) == sorted(r.value for r in sent)
        for i, recs in got.items():
            parts = {p for p, _, _ in recs}
            assert parts <= owned[i], f"member {i} got partitions {parts} but owns {owned[i]}"
            assert recs, f"member {i} consumed nothing"
    finally:
        for m in members:
            m.close()


@pytest.mark.parametrize("client", ["librdkafka", KP])
def test_survivor_takes_all_partitions_when_a_member_leaves(clients, new_topic, bootstrap, client):
    topic = new_topic(PARTITIONS)
    group = f"{topic}-g"
    a, b = Member(client, bootstrap, group, topic), Member(client, bootstrap, group, topic)
    try:
        poll_until([a, b], split_evenly([a, b], PARTITIONS), 60, "both members assigned")
        b.close()  # LeaveGroup: the survivor rebalances at once, not after a session timeout
        poll_until([a], lambda: a.seen_assignment == set(range(PARTITIONS)), 30, "survivor owns everything")

        sent = [Out(None, f"after-{i}".encode(), partition=i % PARTITIONS) for i in range(400)]
        clients["librdkafka"].produce(topic, sent, acks="all")
        got: dict = {}
        poll_until([a], lambda: len(got.get(0, [])) >= len(sent), 60, "survivor consumed", got)
        assert sorted(v for _, _, v in got[0]) == sorted(r.value for r in sent)
    finally:
        a.close()


@pytest.mark.parametrize("first,second", [("librdkafka", "librdkafka"),
                                          ("librdkafka", "kafka-python"),
                                          ("kafka-python", "librdkafka")])
def test_new_consumer_resumes_from_committed_offsets(clients, new_topic, bootstrap, first, second):
    partitions = 2
    topic = new_topic(partitions)
    group = f"{topic}-g"
    before = [Out(None, f"before-{i}".encode(), partition=i % partitions) for i in range(1000)]
    clients["librdkafka"].produce(topic, before, acks="all")

    c1 = Member(first, bootstrap, group, topic)
    got: dict = {}
    try:
        poll_until([c1], lambda: len(got.get(0, [])) >= len(before), 60, "first consumer read everything", got)
        c1.commit()
        ends = {p: 500 for p in range(partitions)}
        assert c1.committed(list(range(partitions))) == ends
    finally:
        c1.close()

    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=30).result(timeout=40)
    states = {g.group_id: str(g.state) for g in listed.valid}
    assert group in states, f"ListGroups does not show {group}: {sorted(states)[:20]}"
    assert "EMPTY" in states[group].upper(), states[group]

    after = [Out(None, f"after-{i}".encode(), partition=i % partitions) for i in range(300)]
    clients["librdkafka"].produce(topic, after, acks="all")

    c2 = Member(second, bootstrap, group, topic)
    got2: dict = {}
    try:
        poll_until([c2], lambda: len(got2.get(0, [])) >= len(after), 60, "second consumer read the rest", got2)
        _settle([c2], got2)
        assert sorted(v for _, _, v in got2[0]) == sorted(r.value for r in after), \
            "the new consumer must start at the committed offsets: nothing before, nothing twice"
        assert min(o for _, o, _ in got2[0]) == 500
    finally:
        c2.close()


def test_offsets_topic_is_internal(clients, new_topic, bootstrap):
    topic = new_topic(1)
    c = Member("librdkafka", bootstrap, f"{topic}-g", topic)
    try:
        poll_until([c], lambda: c.seen_assignment == {0}, 60, "assigned")
        c.c.commit(offsets=[confluent_kafka.TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        c.close()
    if os.environ.get("INTEROP_BROKER_CTL", "").endswith("sluice-broker.sh"):
        # Sluice leaves it out of all-topics Metadata (Apache Kafka lists it, flagged internal).
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15)
        assert "__consumer_offsets" not in md.topics, "internal topic listed"
    with pytest.raises(Exception, match="(?i)invalid|topic"):
        clients["librdkafka"].produce("__consumer_offsets", [Out(None, b"x", partition=0)], acks="all",
                                      **{"message.timeout.ms": 5000})


def test_librdkafka_cooperative_sticky_rebalances_incrementally(clients, new_topic, bootstrap):
    """KIP-429 cooperative-sticky (client-side assignor, classic protocol): the broker
    passes the protocol through; the first member keeps the partitions it is not asked to
    give up (its assignment never drops to nothing), records are neither lost nor doubled,
    and the survivor takes everything back when the other leaves."""
    topic = new_topic(PARTITIONS)
    group = f"{topic}-g"
    extra = {"partition.assignment.strategy": "cooperative-sticky"}
    a = Member("librdkafka", bootstrap, group, topic, **extra)
    b = None
    try:
        poll_until([a], lambda: a.seen_assignment == set(range(PARTITIONS)), 60, "first member owns all")
        b = Member("librdkafka", bootstrap, group, topic, **extra)
        history: list[frozenset] = []
        split = split_evenly([a, b], PARTITIONS)

        def split_and_record() -> bool:
            history.append(frozenset(a.seen_assignment))
            return split()

        poll_until([a, b], split_and_record, 60, "both members assigned")
        assert all(h for h in history), f"the first member lost all its partitions mid-rebalance: {history}"
        owned = [set(a.seen_assignment), set(b.seen_assignment)]
        assert not (owned[0] & owned[1]), f"a partition is owned twice: {owned}"

        n = 4000
        sent = [Out(None, f"v{i}".encode(), partition=i % PARTITIONS) for i in range(n)]
        clients["librdkafka"].produce(topic, sent, acks="all")
        got: dict = {}
        poll_until([a, b], lambda: sum(len(v) for v in got.values()) >= n, 90, "all records consumed", got)
        _settle([a, b], got)
        keys = [(p, o) for recs in got.values() for p, o, _ in recs]
        assert len(keys) == len(set(keys)), "records delivered twice"
        assert sorted(v for recs in got.values() for _, _, v in recs) == sorted(r.value for r in sent)
        for i, recs in got.items():
            assert {p for p, _, _ in recs} <= owned[i]

        # b commits what it consumed and leaves: a takes b's partitions from the committed
        # offsets, so it reads nothing again.
        b.commit()
        b.close()
        b = None
        again: dict = {}
        poll_until([a], lambda: a.seen_assignment == set(range(PARTITIONS)), 30, "survivor owns everything", again)
        _settle([a], again)
        assert not again.get(0), f"survivor re-read {len(again.get(0, []))} committed records"
    finally:
        a.close()
        if b is not None:
            b.close()
