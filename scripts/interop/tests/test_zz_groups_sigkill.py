"""Committed offsets survive a broker SIGKILL + restart: they are appended to the internal
__consumer_offsets log (durable before OffsetCommit is answered) and replayed at start-up.
Runs near the end (it restarts the broker) and only when run.sh manages the broker."""

import os
import subprocess

import pytest

from clients import Out
from groups_util import Member, poll_until


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
