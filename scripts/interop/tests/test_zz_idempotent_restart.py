"""An idempotent librdkafka producer (enable.idempotence=true, acks=all) keeps producing
while the broker is SIGKILLed and restarted under it: the producer retries what was in
flight with the same producer id and sequence numbers, the restarted broker rebuilt its
producer state from the log, so every record is delivered exactly once - no duplicates,
no gaps, per-partition order kept, each at the offset its delivery report named.
Runs near the end (it restarts the broker) and only when run.sh manages the broker."""

import os
import subprocess
import threading
import time

import pytest
from confluent_kafka import Producer

PARTITIONS = 2
RECORDS = 6000  # per partition
PACE_S = 0.0005  # between records: the stream spans the kill and the restart


def ctl(verb: str) -> None:
    subprocess.run([os.environ["INTEROP_BROKER_CTL"], verb, os.environ["INTEROP_BROKER_STATE"]],
                   check=True, timeout=120)


@pytest.mark.skipif(not os.environ.get("INTEROP_BROKER_CTL"), reason="broker not managed by run.sh (BROKER=external)")
def test_idempotent_producer_across_sigkill_no_duplicates_no_gaps(clients, new_topic, bootstrap):
    topic = new_topic(PARTITIONS)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 2, "message.timeout.ms": 120000, "retry.backoff.ms": 100,
                  "reconnect.backoff.max.ms": 500})
    reports = {}  # (partition, seq) -> offset or error
    errors = []

    def on_delivery(err, msg):
        seq = int(msg.value().split(b":")[1])
        if err is not None:
            errors.append((msg.partition(), seq, str(err)))
        else:
            reports[(msg.partition(), seq)] = msg.offset()

    produced = threading.Event()

    def produce_all():
        for i in range(RECORDS):
            for part in range(PARTITIONS):
                while True:
                    try:
                        p.produce(topic, key=f"k{part}".encode(), value=f"p{part}:{i}".encode(),
                                  partition=part, on_delivery=on_delivery)
                        break
                    except BufferError:
                        p.poll(0.05)
            p.poll(0)
            time.sleep(PACE_S)
        produced.set()

    t = threading.Thread(target=produce_all)
    t.start()
    time.sleep(1.5)
    ctl("kill9")
    ctl("start")
    t.join(180)
    assert produced.is_set(), "producer loop did not finish in 180 s"
    left = p.flush(150)
    assert left == 0, f"{left} records still undelivered after flush"
    assert not errors, f"{len(errors)} delivery errors, first {errors[:5]}"
    assert len(reports) == RECORDS * PARTITIONS

    got = clients["librdkafka"].consume(topic, list(range(PARTITIONS)), count=RECORDS * PARTITIONS,
                                        timeout_s=90)
    for part in range(PARTITIONS):
        mine = [r for r in got if r.partition == part]
        seqs = [int(r.value.split(b":")[1]) for r in mine]
        dups = len(seqs) - len(set(seqs))
        assert dups == 0, f"partition {part}: {dups} duplicate records after the restart"
        assert seqs == list(range(RECORDS)), \
            f"partition {part}: records missing or out of order (got {len(seqs)}, first bad at " \
            f"{next((i for i, s in enumerate(seqs) if s != i), None)})"
        assert [r.offset for r in mine] == list(range(RECORDS)), f"partition {part}: offsets not contiguous"
        latest = clients["librdkafka"].offsets(topic, part, [])[0].latest
        assert latest == RECORDS, f"partition {part}: log end {latest}, want {RECORDS} (records beyond the acked ones)"
        wrong = [(s, r.offset) for s, r in zip(seqs, mine) if reports[(part, s)] != r.offset]
        assert not wrong, f"partition {part}: delivery reports named other offsets, first {wrong[:5]}"
