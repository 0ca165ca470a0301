"""A tiny hand-written Kafka wire encoder/decoder for the compatibility suite.

The real clients under test hide the wire; these helpers let a test send
exactly the bytes it means to (bad input, unsupported versions) and let the
harness ask the broker whether it is ready without depending on any client
library. Only the handful of shapes the suite needs are here: request header
v1 and v2, ApiVersions v0/v3 and Metadata v1.

Every read is bounded by a socket timeout; nothing here waits forever.
"""

from __future__ import annotations

import socket
import struct

API_KEY_METADATA = 3
API_KEY_OFFSET_FOR_LEADER_EPOCH = 23
API_KEY_API_VERSIONS = 18

ERROR_UNSUPPORTED_VERSION = 35


def int16(v: int) -> bytes:
    return struct.pack(">h", v)


def int32(v: int) -> bytes:
    return struct.pack(">i", v)


def string(s: str | None) -> bytes:
    """A non-flexible (int16-length) nullable string."""
    if s is None:
        return int16(-1)
    b = s.encode()
    return int16(len(b)) + b


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def compact_string(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


def header_v1(api_key: int, api_version: int, correlation_id: int, client_id: str | None = "riffle-compat") -> bytes:
    return int16(api_key) + int16(api_version) + int32(correlation_id) + string(client_id)


def header_v2(api_key: int, api_version: int, correlation_id: int, client_id: str | None = "riffle-compat") -> bytes:
    # Request header v2 is v1 plus an (empty) tagged-field section.
    return header_v1(api_key, api_version, correlation_id, client_id) + uvarint(0)


def frame(payload: bytes) -> bytes:
    return int32(len(payload)) + payload


def connect(port: int, timeout_s: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.settimeout(timeout_s)
    return sock


class Closed(Exception):
    """The peer closed (or reset) the connection before a whole frame arrived."""


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = sock.recv(n - len(buf))
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(str(e)) from e
        if not chunk:
            raise Closed(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket, max_bytes: int = 64 * 1024 * 1024) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    if size < 0 or size > max_bytes:
        raise ValueError(f"response frame size {size} is implausible")
    return recv_exact(sock, size)


def outcome_after(sock: socket.socket, timeout_s: float = 10.0) -> str:
    """What the server did with a bad request: 'closed', 'response' or 'timeout'.

    'response' means at least one byte came back (an error response); the
    caller decides whether that is acceptable.
    """
    sock.settimeout(timeout_s)
    try:
        data = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return "closed"
    except socket.timeout:
        return "timeout"
    return "response" if data else "closed"


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"short response: wanted {n} bytes at {self.pos}, have {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def string(self) -> str | None:
        n = self.int16()
        if n < 0:
            return None
        return self.take(n).decode()


def api_versions_request(api_version: int, correlation_id: int) -> bytes:
    """An ApiVersions request at any version; v3+ shapes (header v2, compact body)."""
    if api_version >= 3:
        body = compact_string("riffle-compat") + compact_string("0.0.1") + uvarint(0)
        return frame(header_v2(API_KEY_API_VERSIONS, api_version, correlation_id) + body)
    return frame(header_v1(API_KEY_API_VERSIONS, api_version, correlation_id))


def parse_api_versions_v0(payload: bytes) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """(correlation_id, error_code, {api_key: (min, max)}) from a v0 response."""
    r = Reader(payload)
    correlation_id = r.int32()
    error_code = r.int16()
    count = r.int32()
    if count < 0 or count > 1000:
        raise ValueError(f"implausible api_keys count {count}")
    ranges = {}
    for _ in range(count):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        ranges[key] = (lo, hi)
    return correlation_id, error_code, ranges


def metadata_v1_request(correlation_id: int, topics: list[str] | None = None) -> bytes:
    if topics is None:
        body = int32(-1)
    else:
        body = int32(len(topics)) + b"".join(string(t) for t in topics)
    return frame(header_v1(API_KEY_METADATA, 1, correlation_id) + body)


def parse_metadata_v1_brokers(payload: bytes) -> tuple[int, list[tuple[int, str, int]], int]:
    """(correlation_id, [(node_id, host, port)], controller_id) from a v1 response."""
    r = Reader(payload)
    correlation_id = r.int32()
    count = r.int32()
    if count < 0 or count > 10000:
        raise ValueError(f"implausible broker count {count}")
    brokers = []
    for _ in range(count):
        node_id = r.int32()
        host = r.string()
        port = r.int32()
        r.string()  # rack
        brokers.append((node_id, host, port))
    controller_id = r.int32()
    return correlation_id, brokers, controller_id


def metadata_brokers(port: int, timeout_s: float = 5.0) -> list[tuple[int, str, int]]:
    """Ask for cluster metadata with Metadata v1; raises on any failure."""
    with connect(port, timeout_s) as sock:
        sock.sendall(metadata_v1_request(7))
        corr, brokers, _ = parse_metadata_v1_brokers(recv_frame(sock))
        if corr != 7:
            raise ValueError(f"correlation id {corr}, expected 7")
        return brokers


def int64(v: int) -> bytes:
    return struct.pack(">q", v)


def offset_for_leader_epoch_v3_request(correlation_id: int, topic: str,
                                       partitions: list[tuple[int, int, int]]) -> bytes:
    """partitions: [(partition, current_leader_epoch, leader_epoch)]; replica_id -1 (a consumer)."""
    body = int32(-1) + int32(1) + string(topic) + int32(len(partitions))
    for partition, current_epoch, epoch in partitions:
        body += int32(partition) + int32(current_epoch) + int32(epoch)
    return frame(header_v1(API_KEY_OFFSET_FOR_LEADER_EPOCH, 3, correlation_id) + body)


def parse_offset_for_leader_epoch_v3(payload: bytes) -> tuple[int, dict[tuple[str, int], tuple[int, int, int]]]:
    """(correlation_id, {(topic, partition): (error_code, leader_epoch, end_offset)})."""
    r = Reader(payload)
    correlation_id = r.int32()
    r.int32()  # throttle_time_ms
    out = {}
    for _ in range(r.int32()):
        topic = r.string()
        for _ in range(r.int32()):
            error_code = r.int16()
            partition = r.int32()
            leader_epoch = r.int32()
            (end_offset,) = struct.unpack(">q", r.take(8))
            out[(topic, partition)] = (error_code, leader_epoch, end_offset)
    return correlation_id, out


API_KEY_PRODUCE = 0


def produce_v3_request(correlation_id: int, topic: str, partition: int, records: bytes,
                       acks: int = -1, timeout_ms: int = 30000) -> bytes:
    body = (string(None) + int16(acks) + int32(timeout_ms) + int32(1) + string(topic) + int32(1)
            + int32(partition) + int32(len(records)) + records)
    return frame(header_v1(API_KEY_PRODUCE, 3, correlation_id) + body)


def parse_produce_v3(payload: bytes) -> tuple[int, dict[tuple[str, int], tuple[int, int]]]:
    """(correlation_id, {(topic, partition): (error_code, base_offset)})."""
    r = Reader(payload)
    correlation_id = r.int32()
    out = {}
    for _ in range(r.int32()):
        topic = r.string()
        for _ in range(r.int32()):
            partition = r.int32()
            error_code = r.int16()
            (base_offset,) = struct.unpack(">q", r.take(8))
            r.take(8)  # log_append_time_ms
            out[(topic, partition)] = (error_code, base_offset)
    r.int32()  # throttle_time_ms
    return correlation_id, out


def record_batch(values: list[bytes], timestamp_ms: int = 1_700_000_000_000) -> bytearray:
    """A valid magic-2 record batch (no compression), built by kafka-python's builder."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=timestamp_ms + i, key=None, value=v, headers=[])
    return b.build()
