"""A minimal Kafka wire client for the two things no client library exposes:
the RecordBatch headers the broker actually serves (compression codec, CRC-32C),
and how long the broker holds a Fetch (long-poll timing).

Only Fetch v4 (the oldest version Kafka 4.x clients use) is implemented.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import NamedTuple, Optional

import crc32c

FETCH = 1


class Batch(NamedTuple):
    base_offset: int
    magic: int
    crc_ok: bool
    compression: int  # attributes & 7: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd
    last_offset_delta: int
    record_count: int


class FetchResult(NamedTuple):
    error_code: int
    high_watermark: int
    records: bytes
    elapsed_s: float


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"broker closed the connection after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def fetch(bootstrap: str, topic: str, partition: int, offset: int, max_wait_ms: int,
          min_bytes: int = 1, max_bytes: int = 8 << 20, socket_timeout_s: Optional[float] = None) -> FetchResult:
    host, port = bootstrap.rsplit(":", 1)
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0)  # replica, wait, min, max, isolation
    body += struct.pack(">i", 1) + _string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes)
    header = struct.pack(">hhi", FETCH, 4, 7) + _string("sluice-interop-raw")
    frame = header + body
    timeout = socket_timeout_s if socket_timeout_s is not None else max_wait_ms / 1000 + 15
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        t0 = time.monotonic()
        s.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _recv_exact(s, 4))
        resp = _recv_exact(s, size)
        elapsed = time.monotonic() - t0
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return vals

    (corr,) = take(">i")
    assert corr == 7, f"correlation id {corr} != 7"
    take(">i")  # throttle
    (ntopics,) = take(">i")
    assert ntopics == 1, f"{ntopics} topics in fetch response"
    (tlen,) = take(">h")
    pos += tlen
    (nparts,) = take(">i")
    assert nparts == 1, f"{nparts} partitions in fetch response"
    pid, err, hwm, _lso = take(">ihqq")
    assert pid == partition
    (naborted,) = take(">i")
    if naborted > 0:
        pos += naborted * 16
    (rlen,) = take(">i")
    records = b"" if rlen < 0 else resp[pos:pos + rlen]
    return FetchResult(err, hwm, records, elapsed)


def batches(records: bytes) -> list[Batch]:
    """Parses the complete RecordBatches in a Fetch response; a trailing partial batch
    (allowed by the protocol when max_bytes cuts it) is ignored."""
    out = []
    pos = 0
    while pos + 61 <= len(records):
        base_offset, length, _epoch, magic = struct.unpack_from(">qiib", records, pos)
        end = pos + 12 + length
        if end > len(records):
            break
        (crc,) = struct.unpack_from(">I", records, pos + 17)
        attributes, last_delta = struct.unpack_from(">hi", records, pos + 21)
        (count,) = struct.unpack_from(">i", records, pos + 57)
        crc_ok = crc32c.crc32c(records[pos + 21:end]) == crc
        out.append(Batch(base_offset, magic, crc_ok, attributes & 7, last_delta, count))
        pos = end
    return out
