"""One adapter per real client, all with the same small surface, so each test can be run
with every producer/consumer combination and hold them to the same expectations.

- ``Librdkafka``   confluent-kafka (librdkafka bundled in the wheel)
- ``KafkaPython``  kafka-python (pure Python)
- ``JavaClient``   Apache Kafka Java client, via the Maven-built driver (java/)

Records are ``Rec`` tuples; keys, values and header values are ``bytes`` or ``None``
(null), and an empty ``bytes`` is distinct from ``None`` everywhere.
Every call is bounded by a deadline.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import confluent_kafka
import kafka
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

Header = tuple[str, Optional[bytes]]


class Rec(NamedTuple):
    partition: int
    offset: int
    timestamp: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple[Header, ...]


@dataclass
class Out:
    """A record to produce. partition None lets the client's partitioner pick."""

    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple[Header, ...] = ()
    partition: Optional[int] = None
    timestamp: Optional[int] = None


class Ack(NamedTuple):
    partition: int
    offset: int
    timestamp: int


@dataclass
class Offsets:
    """ListOffsets answers as one client sees them. times maps target ts -> offset or None."""

    earliest: int
    latest: int
    times: dict[int, Optional[int]] = field(default_factory=dict)


@dataclass
class SeekResult:
    op: str
    position: int  # after "end" only
    offsets: list[int]
    values: list[Optional[bytes]]


class Timeout(AssertionError):
    pass


# ---------------------------------------------------------------- librdkafka


class Librdkafka:
    name = "librdkafka"

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def _conf(self, extra: dict) -> dict:
        conf = {
            "bootstrap.servers": self.bootstrap,
            "socket.timeout.ms": 30000,
            "log_level": 3,
        }
        conf.update(extra)
        return conf

    def create_topic(self, topic: str, partitions: int) -> None:
        admin = AdminClient(self._conf({}))
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                      request_timeout=30)
        futures[topic].result(timeout=40)

    def partitions_of(self, topic: str) -> dict[int, int]:
        """partition -> leader id, waiting (bounded) until every partition has a leader."""
        admin = AdminClient(self._conf({}))
        deadline = time.monotonic() + 20
        while True:
            md = admin.list_topics(topic=topic, timeout=15)
            t = md.topics.get(topic)
            if t is not None and t.error is None and t.partitions and all(p.leader >= 0 for p in t.partitions.values()):
                return {p.id: p.leader for p in t.partitions.values()}
            if time.monotonic() > deadline:
                raise Timeout(f"librdkafka metadata for {topic}: {t and t.error}")
            time.sleep(0.2)

    def produce(self, topic: str, records: list[Out], **conf) -> list[Ack]:
        # murmur2_random is the Java client's keyed partitioner; librdkafka's default
        # (consistent_random, CRC32) would put keys elsewhere. One request in flight per
        # connection: without idempotence (which needs InitProducerId) librdkafka may
        # reorder batches it retries, and the tests assert offsets in send order.
        c = {"partitioner": "murmur2_random", "message.timeout.ms": 60000, "linger.ms": 5,
             "max.in.flight.requests.per.connection": 1}
        c.update(conf)
        p = confluent_kafka.Producer(self._conf(c))
        acks: list[Optional[Ack]] = [None] * len(records)
        errors: list[str] = []

        def on_delivery(i):
            def cb(err, msg):
                if err is not None:
                    errors.append(f"record {i}: {err}")
                else:
                    ts_type, ts = msg.timestamp()
                    acks[i] = Ack(msg.partition(), msg.offset(), ts)
            return cb

        for i, r in enumerate(records):
            kwargs = {"key": r.key, "value": r.value, "on_delivery": on_delivery(i)}
            if r.partition is not None:
                kwargs["partition"] = r.partition
            if r.timestamp is not None:
                kwargs["timestamp"] = r.timestamp
            if r.headers:
                kwargs["headers"] = list(r.headers)
            for _ in range(1000):  # bounded retry on a full local queue
                try:
                    p.produce(topic, **kwargs)
                    break
                except BufferError:
                    p.poll(0.05)
            else:
                raise Timeout("librdkafka local queue stayed full")
            p.poll(0)
        left = p.flush(60)
        assert left == 0, f"librdkafka: {left} records undelivered after 60 s"
        assert not errors, f"librdkafka delivery errors: {errors[:5]}"
        assert all(a is not None for a in acks), "librdkafka: missing delivery reports"
        return acks  # type: ignore[return-value]

    def _consumer(self, conf: dict) -> confluent_kafka.Consumer:
        c = {
            "group.id": "interop-unused",  # librdkafka requires one; assign() joins no group
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
        c.update(conf)
        return confluent_kafka.Consumer(self._conf(c))

    def consume(self, topic: str, partitions: list[int], count: int, timeout_s: float = 60,
                start: Optional[int] = None, **conf) -> list[Rec]:
        c = self._consumer(conf)
        try:
            off = confluent_kafka.OFFSET_BEGINNING if start is None else start
            c.assign([confluent_kafka.TopicPartition(topic, p, off) for p in partitions])
            out: list[Rec] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for m in c.consume(num_messages=1000, timeout=0.2):
                    if m.error() is not None:
                        raise AssertionError(f"librdkafka consume error: {m.error()}")
                    out.append(_rec_from_confluent(m))
            return out
        finally:
            c.close()

    def offsets(self, topic: str, partition: int, times: list[int]) -> tuple[Offsets, Offsets]:
        """(consumer API view, AdminClient ListOffsets view)."""
        c = self._consumer({})
        try:
            tp = confluent_kafka.TopicPartition(topic, partition)
            lo, hi = c.get_watermark_offsets(tp, timeout=30, cached=False)
            cons = Offsets(lo, hi)
            for t in times:
                r = c.offsets_for_times([confluent_kafka.TopicPartition(topic, partition, t)], timeout=30)[0]
                assert r.error is None, f"offsets_for_times({t}): {r.error}"
                cons.times[t] = None if r.offset < 0 else r.offset
        finally:
            c.close()
        admin = AdminClient(self._conf({}))

        def list_one(spec) -> int:
            tp = confluent_kafka.TopicPartition(topic, partition)
            fut = admin.list_offsets({tp: spec}, request_timeout=30)
            return next(iter(fut.values())).result(timeout=40).offset

        adm = Offsets(list_one(OffsetSpec.earliest()), list_one(OffsetSpec.latest()))
        for t in times:
            o = list_one(OffsetSpec.for_timestamp(t))
            adm.times[t] = None if o < 0 else o
        return cons, adm

    def seek(self, topic: str, partition: int, ops: list[str], take: int) -> list[SeekResult]:
        c = self._consumer({})
        results = []
        try:
            tp = confluent_kafka.TopicPartition(topic, partition, confluent_kafka.OFFSET_BEGINNING)
            c.assign([tp])
            # seek() needs an active fetcher for the partition: wait until the first record arrives.
            first = _poll_n(c, 1, 20)
            assert first, "librdkafka: nothing to read before seeking"
            for op in ops:
                want = take
                if op.startswith("seek:"):
                    c.seek(confluent_kafka.TopicPartition(topic, partition, int(op[5:])))
                elif op == "beginning":
                    c.seek(confluent_kafka.TopicPartition(topic, partition, confluent_kafka.OFFSET_BEGINNING))
                elif op == "end":
                    c.seek(confluent_kafka.TopicPartition(topic, partition, confluent_kafka.OFFSET_END))
                    want = 0
                else:
                    raise ValueError(op)
                if want == 0:
                    # librdkafka has no position until a record is consumed after the seek:
                    # check nothing is delivered, then append a record and see that it is
                    # the first one delivered; its offset is the position the seek set.
                    extra = _poll_n(c, 1, 1.0)
                    assert not extra, f"librdkafka: records after seek to end: {[m.offset() for m in extra]}"
                    self.produce(topic, [Out(None, b"after-end", partition=partition)])
                    msgs = _poll_n(c, 1, 20)
                    assert [m.value() for m in msgs] == [b"after-end"], f"after seek to end got {msgs}"
                    results.append(SeekResult(op, msgs[0].offset(), [], []))
                else:
                    msgs = _poll_n(c, want, 20)
                    results.append(SeekResult(op, -1, [m.offset() for m in msgs], [m.value() for m in msgs]))
        finally:
            c.close()
        return results

    def longpoll(self, topic: str, partition: int, value: bytes, delay_s: float, wait_max_ms: int) -> float:
        """ms from the producer's ack to the consumer's receipt, with a consumer waiting in a long fetch."""
        c = self._consumer({"fetch.wait.max.ms": wait_max_ms})
        try:
            c.assign([confluent_kafka.TopicPartition(topic, partition, confluent_kafka.OFFSET_END)])
            return _longpoll(lambda: [_rec_from_confluent(m) for m in c.consume(100, 0.05) if not m.error()],
                             lambda: self.produce(topic, [Out(None, value, partition=partition)], **{"acks": "all"}),
                             delay_s, value)
        finally:
            c.close()


def _poll_n(c: confluent_kafka.Consumer, n: int, timeout_s: float) -> list:
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error() is not None:
            raise AssertionError(f"librdkafka consume error: {m.error()}")
        got.append(m)
    return got


def _rec_from_confluent(m) -> Rec:
    return Rec(m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value(),
               tuple((k, v) for k, v in (m.headers() or [])))


def _longpoll(poll, produce, delay_s: float, value: bytes) -> float:
    # Let the consumer settle into its long fetch first.
    deadline = time.monotonic() + delay_s
    while time.monotonic() < deadline:
        early = poll()
        assert not early, f"unexpected records before produce: {early[:3]}"
    produce()
    acked = time.monotonic()
    deadline = acked + 40
    while time.monotonic() < deadline:
        recs = poll()
        if recs:
            assert recs[0].value == value, f"long-poll got {recs[0]!r}"
            return (time.monotonic() - acked) * 1000.0
    raise Timeout("record never arrived within 40 s")


# ---------------------------------------------------------------- kafka-python


class KafkaPython:
    name = "kafka-python"

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def create_topic(self, topic: str, partitions: int) -> None:
        admin = kafka.KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30000)
        try:
            admin.create_topics([kafka.admin.NewTopic(topic, partitions, 1)], timeout_ms=30000)
        finally:
            admin.close()

    def partitions_of(self, topic: str) -> dict[int, int]:
        c = self._consumer({})
        try:
            deadline = time.monotonic() + 20
            while True:
                parts = c.partitions_for_topic(topic)
                if parts:
                    cluster = c._client.cluster  # noqa: SLF001 - the leader is only exposed here
                    leaders = {p: cluster.leader_for_partition(kafka.TopicPartition(topic, p)) for p in parts}
                    if all(v is not None and v >= 0 for v in leaders.values()):
                        return leaders
                if time.monotonic() > deadline:
                    raise Timeout(f"kafka-python metadata for {topic}: {parts}")
                c._client.cluster.request_update()  # noqa: SLF001
                c.poll(timeout_ms=200)
        finally:
            c.close()

    def produce(self, topic: str, records: list[Out], **conf) -> list[Ack]:
        c = {"linger_ms": 5, "request_timeout_ms": 30000, "max_block_ms": 30000}
        c.update(conf)
        p = kafka.KafkaProducer(bootstrap_servers=self.bootstrap, **c)
        try:
            futs = [p.send(topic, value=r.value, key=r.key, headers=list(r.headers) or None,
                           partition=r.partition, timestamp_ms=r.timestamp) for r in records]
            p.flush(timeout=60)
            out = []
            for f in futs:
                m = f.get(timeout=60)
                out.append(Ack(m.partition, m.offset, m.timestamp))
            return out
        finally:
            p.close(timeout=10)

    def _consumer(self, conf: dict) -> kafka.KafkaConsumer:
        c = {"enable_auto_commit": False, "auto_offset_reset": "earliest", "group_id": None,
             "request_timeout_ms": 30000}
        c.update(conf)
        return kafka.KafkaConsumer(bootstrap_servers=self.bootstrap, **c)

    def consume(self, topic: str, partitions: list[int], count: int, timeout_s: float = 60,
                start: Optional[int] = None, **conf) -> list[Rec]:
        c = self._consumer(conf)
        try:
            tps = [kafka.TopicPartition(topic, p) for p in partitions]
            c.assign(tps)
            if start is None:
                c.seek_to_beginning(*tps)
            else:
                for tp in tps:
                    c.seek(tp, start)
            out: list[Rec] = []
            deadline = time.monotonic() + timeout_s
            while len(out) < count and time.monotonic() < deadline:
                for tp, msgs in c.poll(timeout_ms=200, max_records=5000).items():
                    out.extend(_rec_from_kafka_python(m) for m in msgs)
            # poll() groups by partition; keep a stable order for comparisons.
            return out
        finally:
            c.close()

    def offsets(self, topic: str, partition: int, times: list[int]) -> tuple[Offsets, Offsets]:
        c = self._consumer({})
        try:
            tp = kafka.TopicPartition(topic, partition)
            o = Offsets(c.beginning_offsets([tp], timeout_ms=30000)[tp], c.end_offsets([tp], timeout_ms=30000)[tp])
            for t in times:
                r = c.offsets_for_times({tp: t}, timeout_ms=30000)[tp]
                o.times[t] = None if r is None else r.offset
            return o, o
        finally:
            c.close()

    def seek(self, topic: str, partition: int, ops: list[str], take: int) -> list[SeekResult]:
        c = self._consumer({})
        tp = kafka.TopicPartition(topic, partition)
        results = []
        try:
            c.assign([tp])
            for op in ops:
                want = take
                if op.startswith("seek:"):
                    c.seek(tp, int(op[5:]))
                elif op == "beginning":
                    c.seek_to_beginning(tp)
                elif op == "end":
                    c.seek_to_end(tp)
                    want = 0
                else:
                    raise ValueError(op)
                if want == 0:
                    results.append(SeekResult(op, c.position(tp, timeout_ms=30000), [], []))
                    continue
                got = []
                deadline = time.monotonic() + 20
                while len(got) < want and time.monotonic() < deadline:
                    for msgs in c.poll(timeout_ms=200, max_records=want - len(got)).values():
                        got.extend(msgs)
                got = got[:want]
                results.append(SeekResult(op, -1, [m.offset for m in got], [m.value for m in got]))
        finally:
            c.close()
        return results

    def longpoll(self, topic: str, partition: int, value: bytes, delay_s: float, wait_max_ms: int) -> float:
        c = self._consumer({"fetch_max_wait_ms": wait_max_ms})
        tp = kafka.TopicPartition(topic, partition)
        try:
            c.assign([tp])
            c.seek_to_end(tp)
            c.position(tp, timeout_ms=30000)

            def poll():
                return [_rec_from_kafka_python(m) for ms in c.poll(timeout_ms=50).values() for m in ms]

            return _longpoll(poll, lambda: Librdkafka(self.bootstrap).produce(
                topic, [Out(None, value, partition=partition)], acks="all"), delay_s, value)
        finally:
            c.close()


def _rec_from_kafka_python(m) -> Rec:
    return Rec(m.partition, m.offset, m.timestamp, m.key, m.value, tuple((k, v) for k, v in (m.headers or [])))


# ---------------------------------------------------------------- Java


def _hex(b: Optional[bytes]) -> str:
    return "~" if b is None else b.hex()


def _unhex(s: str) -> Optional[bytes]:
    return None if s == "~" else bytes.fromhex(s)


class JavaClient:
    name = "java"

    def __init__(self, bootstrap: str, classpath: str):
        self.bootstrap = bootstrap
        self.classpath = classpath

    def run(self, command: str, *args: str, stdin: str = "", props: Optional[dict] = None,
            timeout_s: float = 180) -> list[list[str]]:
        argv = [os.environ.get("JAVA", "java"), "-Xmx512m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", self.classpath, "dev.sluice.interop.Driver", command, "--bootstrap", self.bootstrap, *args]
        for k, v in (props or {}).items():
            argv += ["--prop", f"{k}={v}"]
        try:
            p = subprocess.run(argv, input=stdin.encode(), capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise Timeout(f"java {command} did not finish in {timeout_s} s; stderr: {(e.stderr or b'')[-2000:]!r}")
        lines = [l.split("\t") for l in p.stdout.decode().splitlines() if l]
        errs = [l for l in lines if l[0] == "error"]
        if p.returncode != 0 or errs:
            raise AssertionError(f"java {command} failed (exit {p.returncode}): {errs}\n"
                                 f"stderr tail: {p.stderr.decode(errors='replace')[-3000:]}")
        return lines

    def create_topic(self, topic: str, partitions: int) -> None:
        self.run("create-topic", "--topic", topic, "--partitions", str(partitions))

    def partitions_of(self, topic: str) -> dict[int, int]:
        lines = self.run("describe", "--topic", topic)
        return {int(l[1]): int(l[2]) for l in lines if l[0] == "partition"}

    def produce(self, topic: str, records: list[Out], **conf) -> list[Ack]:
        buf = []
        for r in records:
            hs = ",".join(f"{k.encode().hex()}:{_hex(v)}" for k, v in r.headers)
            buf.append(f"{-1 if r.partition is None else r.partition}\t{-1 if r.timestamp is None else r.timestamp}"
                       f"\t{_hex(r.key)}\t{_hex(r.value)}\t{hs}\n")
        c = {"linger.ms": "5"}
        c.update({k: str(v) for k, v in conf.items()})
        lines = self.run("produce", "--topic", topic, stdin="".join(buf), props=c)
        acks = [Ack(int(l[1]), int(l[2]), int(l[3])) for l in lines if l[0] == "ack"]
        assert len(acks) == len(records), f"java produce: {len(acks)} acks for {len(records)} records"
        return acks

    def consume(self, topic: str, partitions: list[int], count: int, timeout_s: float = 60,
                start: Optional[int] = None, **conf) -> list[Rec]:
        args = ["--topic", topic, "--partitions", ",".join(map(str, partitions)), "--count", str(count),
                "--timeout-ms", str(int(timeout_s * 1000))]
        if start is not None:
            args += ["--start", str(start)]
        lines = self.run("consume", *args, props={k: str(v) for k, v in conf.items()}, timeout_s=timeout_s + 60)
        out = []
        for l in lines:
            if l[0] != "rec":
                continue
            headers = ()
            if l[7]:
                headers = tuple((bytes.fromhex(k).decode(), _unhex(v)) for k, v in (h.split(":") for h in l[7].split(",")))
            out.append(Rec(int(l[1]), int(l[2]), int(l[3]), _unhex(l[5]), _unhex(l[6]), headers))
        return out

    def offsets(self, topic: str, partition: int, times: list[int]) -> tuple[Offsets, Offsets]:
        lines = self.run("offsets", "--topic", topic, "--partition", str(partition),
                         "--times", ",".join(map(str, times)))
        d = {l[0]: l for l in lines}
        cons = Offsets(int(d["consumer-earliest"][1]), int(d["consumer-latest"][1]))
        adm = Offsets(int(d["admin-earliest"][1]), int(d["admin-latest"][1]))
        for l in lines:
            if l[0] == "consumer-time":
                cons.times[int(l[1])] = None if l[2] == "~" else int(l[2])
            elif l[0] == "admin-time":
                adm.times[int(l[1])] = None if int(l[2]) < 0 else int(l[2])
        return cons, adm

    def seek(self, topic: str, partition: int, ops: list[str], take: int) -> list[SeekResult]:
        lines = self.run("seek", "--topic", topic, "--partition", str(partition), "--ops", ",".join(ops),
                         "--take", str(take))
        out = []
        for l in lines:
            if l[0] == "seek":
                offs = [int(x) for x in l[3].split(",") if x]
                vals = [_unhex(x) for x in l[4].split(",")] if l[4] else []
                out.append(SeekResult(l[1], int(l[2]), offs, vals))
        return out

    def longpoll(self, topic: str, partition: int, value: bytes, delay_s: float, wait_max_ms: int) -> float:
        lines = self.run("longpoll", "--topic", topic, "--partition", str(partition), "--value", value.hex(),
                         "--delay-ms", str(int(delay_s * 1000)), props={"fetch.max.wait.ms": str(wait_max_ms)})
        (l,) = [l for l in lines if l[0] == "longpoll"]
        assert _unhex(l[4]) == value, f"java long-poll got {l}"
        return float(l[1])


# ---------------------------------------------------------------- franz-go


class FranzGo(JavaClient):
    """franz-go (github.com/twmb/franz-go) through the Go driver in ../go, which speaks the
    Java driver's line protocol, so every adapter method is shared with JavaClient."""

    name = "franz-go"

    def __init__(self, bootstrap: str, binary: str):
        super().__init__(bootstrap, classpath="")
        self.binary = binary

    def run(self, command: str, *args: str, stdin: str = "", props: Optional[dict] = None,
            timeout_s: float = 180) -> list[list[str]]:
        argv = [self.binary, command, "--bootstrap", self.bootstrap, *args]
        for k, v in (props or {}).items():
            argv += ["--prop", f"{k}={v}"]
        try:
            p = subprocess.run(argv, input=stdin.encode(), capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise Timeout(f"franz-go {command} did not finish in {timeout_s} s; stderr: {(e.stderr or b'')[-2000:]!r}")
        lines = [l.split("\t") for l in p.stdout.decode().splitlines() if l]
        errs = [l for l in lines if l[0] == "error"]
        if p.returncode != 0 or errs:
            raise AssertionError(f"franz-go {command} failed (exit {p.returncode}): {errs}\n"
                                 f"stderr tail: {p.stderr.decode(errors='replace')[-3000:]}")
        return lines

    def offsets(self, topic: str, partition: int, times: list[int]) -> tuple[Offsets, Offsets]:
        cons, adm = super().offsets(topic, partition, times)
        # kadm.ListOffsetsAfterMilli answers the end offset when no record is at or after the
        # timestamp (its documented fallback); the end offset never names a record, so it
        # means "past the end" exactly like the -1 other clients surface as None.
        adm.times = {ts: None if off is None or off >= adm.latest else off for ts, off in adm.times.items()}
        return cons, adm
