"""Committed offsets survive a broker SIGKILL + restart: they are appended to the internal
__consumer_offsets log (durable before OffsetCommit is answered) and replayed at start-up.
Runs near the end (it restarts the broker) and only when run.sh manages the broker."""

import os
import subprocess
import time

import pytest

from confluent_kafka.admin import AdminClient

from clients import Out
from groups_util import Member, consumer_protocol_member, poll_until


def ctl(verb: str) -> None:
    subprocess.run([os.environ["INTEROP_BROKER_CTL"], verb, os.environ["INTEROP_BROKER_STATE"]],
                   check=True, timeout=120)


@pytest.mark.skipif(not os.environ.get("INTEROP_BROKER_CTL"), reason="broker not managed by run.sh (BROKER=external)")
def test_committed_offsets_survive_sigkill(clients, new_topic, bootstrap):
    partitions = 3
    topic = new_topic(partitions)
    group = f"{topic}-g"
    clients["librdkafka"].produce(topic, [Out(None, f"a{i}".encode(), partition=i % partitions) for i in range(600)],
                                  acks="all")
    c = Member("librdkafka", bootstrap, group, topic)
    got: dict = {}
    try:
        poll_until([c], lambda: len(got.get(0, [])) >= 600, 60, "consumed", got)
        c.commit()
        expected = {p: 200 for p in range(partitions)}
        assert c.committed(list(range(partitions))) == expected
    finally:
        c.close()

    ctl("kill9")
    ctl("start")

    after = [Out(None, f"b{i}".encode(), partition=i % partitions) for i in range(90)]
    clients["librdkafka"].produce(topic, after, acks="all")
    c2 = Member("librdkafka", bootstrap, group, topic)
    got2: dict = {}
    try:
        poll_until([c2], lambda: len(got2.get(0, [])) >= len(after), 60, "resumed after restart", got2)
        assert c2.committed(list(range(partitions))) == expected
        assert sorted(v for _, _, v in got2[0]) == sorted(r.value for r in after)
    finally:
        c2.close()


@pytest.mark.skipif(not os.environ.get("INTEROP_BROKER_CTL"), reason="broker not managed by run.sh (BROKER=external)")
@pytest.mark.parametrize("client", ["java", "librdkafka"])
def test_consumer_protocol_member_carries_on_across_sigkill(clients, new_topic, bootstrap, client):
    """A KIP-848 member that stays up while the broker is SIGKILLed and restarted: it
    carries on and resumes at its committed offsets (nothing lost, nothing twice). The
    group's KIP-848 records in __consumer_offsets bring the member back at start-up, as on
    Apache Kafka; a client that rejoins instead (new id, epoch 0) passes too."""
    partitions = 3
    topic = new_topic(partitions)
    group = f"{topic}-g"
    before = [Out(None, f"a{i}".encode(), partition=i % partitions) for i in range(600)]
    clients["librdkafka"].produce(topic, before, acks="all")
    m = consumer_protocol_member(client, bootstrap, group, topic)
    try:
        got: dict = {}
        poll_until([m], lambda: len(got.get(0, [])) >= len(before), 90, "consumed", got)
        m.commit()
        assert m.committed(list(range(partitions))) == {p: 200 for p in range(partitions)}

        ctl("kill9")
        ctl("start")

        # The member's next heartbeats find the restored group; wait until ListGroups shows
        # it with a member.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        last_check = [0.0]

        def rejoined() -> bool:
            if time.monotonic() - last_check[0] < 1:
                return False
            last_check[0] = time.monotonic()
            listed = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
            state = {g.group_id: str(g.state).upper() for g in listed.valid}.get(group, "")
            return state != "" and "EMPTY" not in state and "DEAD" not in state and bool(m.seen_assignment)

        poll_until([m], rejoined, 90, "member rejoined after the restart")
        after = [Out(None, f"b{i}".encode(), partition=i % partitions) for i in range(90)]
        clients["librdkafka"].produce(topic, after, acks="all")
        got2: dict = {}
        poll_until([m], lambda: len(got2.get(0, [])) >= len(after), 120, "resumed after restart", got2)
        try:  # 1.5 s more: anything beyond would be a duplicate
            poll_until([m], lambda: False, 1.5, "settle", got2)
        except AssertionError as e:
            if "not reached" not in str(e):
                raise
        assert sorted(v for _, _, v in got2[0]) == sorted(r.value for r in after), \
            "after the restart the member must read exactly the records it had not committed"
    finally:
        m.close()
