"""Consumer groups on the KIP-848 consumer protocol (group.protocol=consumer) with real
clients: the broker assigns (ConsumerGroupHeartbeat), members split the partitions with
no overlap, a leaving member's partitions go to the survivor, and committed offsets
(OffsetCommit/OffsetFetch with member epochs) are where a new member resumes. The Java
client (4.1) and librdkafka (confluent-kafka 2.16) both speak it."""

from __future__ import annotations

import collections

import pytest
from confluent_kafka import ConsumerGroupType
from confluent_kafka.admin import AdminClient

from clients import Out
from groups_util import JavaMember, RdkPatternMember, consumer_protocol_member, poll_until, split_evenly

PARTITIONS = 4
CLIENTS = ["java", "librdkafka"]


def _settle(members, sink) -> None:
    """Polls 1.5 s more: any record beyond the expected ones would be a duplicate."""
    try:
        poll_until(members, lambda: False, 1.5, "settle", sink)
    except AssertionError as e:
        if "not reached" not in str(e):
            raise


def _listed(bootstrap: str) -> dict:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=30).result(timeout=40)
    return {g.group_id: g for g in listed.valid}


@pytest.mark.parametrize("client", CLIENTS)
def test_kip848_two_members_split_partitions_no_loss_no_duplicates(clients, new_topic, bootstrap, client):
    topic = new_topic(PARTITIONS)
    group = f"{topic}-g"
    members = [consumer_protocol_member(client, bootstrap, group, topic) for _ in range(2)]
    try:
        poll_until(members, split_evenly(members, PARTITIONS), 90, "both members assigned")
        owned = [set(m.seen_assignment) for m in members]
        assert not (owned[0] & owned[1]), f"a partition is owned twice: {owned}"
        assert [len(o) for o in owned] == [2, 2], f"uniform assignor: two each, got {owned}"

        listed = _listed(bootstrap)
        assert group in listed, f"ListGroups does not show {group}"
        assert listed[group].type == ConsumerGroupType.CONSUMER, listed[group].type

        n = 4000
        sent = [Out(None, f"v{i}".encode(), partition=i % PARTITIONS) for i in range(n)]
        clients["librdkafka"].produce(topic, sent, acks="all")

        got: dict = {}
        poll_until(members, lambda: sum(len(v) for v in got.values()) >= n, 90, "all records consumed", got)
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


@pytest.mark.parametrize("client", CLIENTS)
def test_kip848_survivor_takes_all_partitions_when_a_member_leaves(clients, new_topic, bootstrap, client):
    topic = new_topic(PARTITIONS)
    group = f"{topic}-g"
    a = consumer_protocol_member(client, bootstrap, group, topic)
    b = consumer_protocol_member(client, bootstrap, group, topic)
    try:
        poll_until([a, b], split_evenly([a, b], PARTITIONS), 90, "both members assigned")
        b.close()  # member epoch -1: the survivor gets everything on its next heartbeat
        poll_until([a], lambda: a.seen_assignment == set(range(PARTITIONS)), 30, "survivor owns everything")

        sent = [Out(None, f"after-{i}".encode(), partition=i % PARTITIONS) for i in range(400)]
        clients["librdkafka"].produce(topic, sent, acks="all")
        got: dict = {}
        poll_until([a], lambda: len(got.get(0, [])) >= len(sent), 60, "survivor consumed", got)
        assert sorted(v for _, _, v in got[0]) == sorted(r.value for r in sent)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("first,second", [("java", "java"), ("librdkafka", "librdkafka"), ("java", "librdkafka")])
def test_kip848_new_member_resumes_from_committed_offsets(clients, new_topic, bootstrap, first, second):
    partitions = 2
    topic = new_topic(partitions)
    group = f"{topic}-g"
    before = [Out(None, f"before-{i}".encode(), partition=i % partitions) for i in range(1000)]
    clients["librdkafka"].produce(topic, before, acks="all")

    c1 = consumer_protocol_member(first, bootstrap, group, topic)
    got: dict = {}
    try:
        poll_until([c1], lambda: len(got.get(0, [])) >= len(before), 90, "first member read everything", got)
        c1.commit()  # OffsetCommit v9 with the member id and epoch
        assert c1.committed(list(range(partitions))) == {p: 500 for p in range(partitions)}
    finally:
        c1.close()

    listed = _listed(bootstrap)
    assert group in listed, f"ListGroups does not show {group}"
    assert "EMPTY" in str(listed[group].state).upper(), listed[group].state
    assert listed[group].type == ConsumerGroupType.CONSUMER, listed[group].type

    after = [Out(None, f"after-{i}".encode(), partition=i % partitions) for i in range(300)]
    clients["librdkafka"].produce(topic, after, acks="all")

    c2 = consumer_protocol_member(second, bootstrap, group, topic)
    got2: dict = {}
    try:
        poll_until([c2], lambda: len(got2.get(0, [])) >= len(after), 90, "second member read the rest", got2)
        _settle([c2], got2)
        assert sorted(v for _, _, v in got2[0]) == sorted(r.value for r in after), \
            "the new member must start at the committed offsets: nothing before, nothing twice"
        assert min(o for _, o, _ in got2[0]) == 500
    finally:
        c2.close()


def test_kip848_group_describes_as_a_consumer_group(new_topic, bootstrap):
    """ConsumerGroupDescribe through librdkafka's admin API: type, state, members and
    their assignments as the broker computed them."""
    topic = new_topic(PARTITIONS)
    group = f"{topic}-g"
    members = [consumer_protocol_member("librdkafka", bootstrap, group, topic) for _ in range(2)]
    try:
        poll_until(members, split_evenly(members, PARTITIONS), 90, "both members assigned")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        d = admin.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=40)
        assert d.type == ConsumerGroupType.CONSUMER, d.type
        assert "STABLE" in str(d.state).upper(), d.state
        assert len(d.members) == 2
        described = sorted(sorted(tp.partition for tp in m.assignment.topic_partitions) for m in d.members)
        assert described == sorted(sorted(m.seen_assignment) for m in members)
    finally:
        for m in members:
            m.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_kip848_static_member_gets_its_partitions_back(new_topic, bootstrap, client):
    """group.instance.id: a static member that closes leaves with member epoch -2; its
    partitions wait for it (the other member does not take them within a few heartbeats)
    and a new process with the same instance id gets the same partitions back."""
    topic = new_topic(PARTITIONS)
    group = f"{topic}-g"
    a = consumer_protocol_member(client, bootstrap, group, topic, **{"group.instance.id": "static-a"})
    b = consumer_protocol_member(client, bootstrap, group, topic, **{"group.instance.id": "static-b"})
    a2 = None
    try:
        poll_until([a, b], split_evenly([a, b], PARTITIONS), 90, "both members assigned")
        a_owned, b_owned = set(a.seen_assignment), set(b.seen_assignment)
        a.close()
        # Two heartbeat intervals (5 s each): b keeps exactly its own partitions.
        try:
            poll_until([b], lambda: b.seen_assignment != b_owned, 11, "b's assignment changes")
            raise AssertionError(f"b took the static member's partitions: {b.seen_assignment}")
        except AssertionError as e:
            if "not reached" not in str(e):
                raise
        a2 = consumer_protocol_member(client, bootstrap, group, topic, **{"group.instance.id": "static-a"})
        poll_until([a2, b], lambda: a2.seen_assignment == a_owned and b.seen_assignment == b_owned, 60,
                   "the returning static member owns its old partitions")
    finally:
        for m in (a, b, a2):
            if m is not None:
                m.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_kip848_regex_subscription_takes_matching_topics(clients, new_topic, bootstrap, client):
    """A server-side regex subscription (Java SubscriptionPattern, librdkafka "^..."): the
    broker resolves it against the topic list (RE2 syntax, whole-name match) and assigns
    the matching topics' partitions only."""
    a = new_topic(2, label=f"{client}-rx-a")
    b = new_topic(2, label=f"{client}-rx-b")
    other = new_topic(1, label=f"{client}-other")
    pattern = a[:-1].replace(".", "\\.") + ".*"
    group = f"{a}-g"
    if client == "java":
        m = JavaMember(bootstrap, group, "", {"group.protocol": "consumer"}, pattern=pattern)
    else:
        m = RdkPatternMember(bootstrap, group, "^" + pattern)
    try:
        expected = {f"{t}:{p}" for t in (a, b) for p in range(2)}
        poll_until([m], lambda: m.seen_assignment == expected, 90, "the matching topics assigned")
        sent = {}
        for t in (a, b, other):
            recs = [Out(None, f"{t}-{i}".encode(), partition=0) for i in range(100)]
            clients["librdkafka"].produce(t, recs, acks="all")
            sent[t] = [r.value for r in recs]
        got: dict = {}
        poll_until([m], lambda: len(got.get(0, [])) >= 200, 60, "records of the matching topics", got)
        _settle([m], got)
        assert sorted(v for _, _, v in got[0]) == sorted(sent[a] + sent[b]), "only the matching topics, once"
    finally:
        m.close()
