#!/usr/bin/env python3
"""Kafka-protocol readiness probe for the cluster scripts, standard library only (the
scripts must work before any client venv exists).

  probe.py wait --bootstrap 127.0.0.1:29092,127.0.0.1:29093 --brokers 3 [--timeout 90]
      until every listed address answers ApiVersions (error 0) and its Metadata lists at
      least --brokers brokers and a controller; exit 1 on timeout (prints what it saw)
  probe.py metadata 127.0.0.1:29092
      one JSON line: {"brokers": [[id, host, port], ...], "controller_id": n}

Speaks ApiVersions v0 and Metadata v4 (non-flexible encodings; both Apache Kafka 4.x and
Sluice serve them). Every socket operation has a timeout and every loop a deadline.
"""
import argparse
import json
import socket
import struct
import sys
import time

API_VERSIONS, METADATA = 18, 3
IO_TIMEOUT_S = 2.0
MAX_RESPONSE_BYTES = 1 << 20  # a Metadata answer without topics is a few hundred bytes


def _request(addr, api_key, version, body, correlation_id):
    host, port = addr.rsplit(":", 1)
    client_id = b"sluice-cluster-probe"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    frame = header + body
    with socket.create_connection((host, int(port)), timeout=IO_TIMEOUT_S) as s:
        s.settimeout(IO_TIMEOUT_S)
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _read_exact(s, 4))[0]
        if size < 4 or size > MAX_RESPONSE_BYTES:
            raise ValueError(f"response size {size} out of range")
        payload = _read_exact(s, size)
    if struct.unpack(">i", payload[:4])[0] != correlation_id:
        raise ValueError("correlation id mismatch")
    return payload[4:]


def _read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("truncated response")
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        if self.pos + n > len(self.data):
            raise ValueError("truncated string")
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


def api_versions(addr):
    r = _Reader(_request(addr, API_VERSIONS, 0, b"", 1))
    error = r.take(">h")
    if error != 0:
        raise ValueError(f"ApiVersions error {error}")
    ranges = {}
    for _ in range(r.take(">i")):
        key, lo, hi = r.take(">hhh")
        ranges[key] = (lo, hi)
    return ranges


def metadata(addr):
    # Metadata v4: topics = null (all... but we stop reading after the controller id),
    # allow_auto_topic_creation = false.
    body = struct.pack(">i?", 0, False)  # an empty topic list: brokers + controller only
    r = _Reader(_request(addr, METADATA, 4, body, 2))
    r.take(">i")  # throttle_time_ms
    brokers = []
    for _ in range(r.take(">i")):
        node = r.take(">i")
        host = r.string()
        port = r.take(">i")
        r.string()  # rack
        brokers.append([node, host, port])
    r.string()  # cluster_id
    controller = r.take(">i")
    return {"brokers": sorted(brokers), "controller_id": controller}


def ready(addr, want_brokers):
    ranges = api_versions(addr)
    lo, hi = ranges.get(METADATA, (99, -1))
    if not lo <= 4 <= hi:
        raise ValueError(f"Metadata v4 not served (range {lo}..{hi})")
    md = metadata(addr)
    if len(md["brokers"]) < want_brokers:
        raise ValueError(f"metadata lists {len(md['brokers'])} brokers, want {want_brokers}")
    if md["controller_id"] < 0:
        raise ValueError("no controller yet")
    return md


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--bootstrap", required=True)
    w.add_argument("--brokers", type=int, default=3)
    w.add_argument("--timeout", type=float, default=90)
    m = sub.add_parser("metadata")
    m.add_argument("addr")
    args = ap.parse_args()
    if args.cmd == "metadata":
        print(json.dumps(metadata(args.addr)))
        return 0
    deadline = time.monotonic() + args.timeout
    pending = args.bootstrap.split(",")
    last = {}
    while pending and time.monotonic() < deadline:
        for addr in list(pending):
            try:
                ready(addr, args.brokers)
                pending.remove(addr)
            except (OSError, ValueError) as e:
                last[addr] = str(e)
        if pending:
            time.sleep(0.25)
    if pending:
        for addr in pending:
            print(f"probe: {addr} not ready after {args.timeout:.0f} s: {last.get(addr)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
