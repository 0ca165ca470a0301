"""The few Kafka requests the metadata-quorum benchmark sends, by hand.

Standard library only (struct and socket), so the benchmark needs no pip
packages. Each request is encoded at one fixed version, the oldest the
broker accepts for it, because those are the simplest layouts:

- Metadata v1 (broker listener): the brokers and the controller id.
- CreateTopics v2 (broker listener): the topic whose config is altered.
- IncrementalAlterConfigs v0 (broker listener): one SET of one topic config,
  which the active controller commits as one ConfigRecord.
- DescribeQuorum v1 (controller listener, flexible encoding): the leader
  (v1 because the leader fills in v1's replica timestamps).

A `Connection` is one keep-alive TCP connection with TCP_NODELAY, so a timed
request costs one round trip and no connection set-up, like the keep-alive
HTTP connection used for etcd.
"""

import socket
import struct

METADATA = 3
CREATE_TOPICS = 19
INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_QUORUM = 55

NONE = 0
TOPIC_ALREADY_EXISTS = 36
NOT_CONTROLLER = 41

RESOURCE_TOPIC = 2
OP_SET = 0

METADATA_TOPIC = "__cluster_metadata"


class KafkaError(Exception):
    """An error code in a response, with its name when known."""

    NAMES = {
        7: "REQUEST_TIMED_OUT",
        36: "TOPIC_ALREADY_EXISTS",
        41: "NOT_CONTROLLER",
        6: "NOT_LEADER_OR_FOLLOWER",
        15: "COORDINATOR_NOT_AVAILABLE",
    }

    def __init__(self, api, code, message=None):
        self.code = code
        name = self.NAMES.get(code, "error")
        super().__init__(f"{api}: {name} ({code}){': ' + message if message else ''}")


# ---- encoding ---------------------------------------------------------


def _string(s):
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _uvarint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _compact_string(s):
    b = s.encode()
    return _uvarint(len(b) + 1) + b


def _header(api_key, version, correlation_id, client_id, flexible):
    h = struct.pack(">hhi", api_key, version, correlation_id) + _string(client_id)
    if flexible:
        h += _uvarint(0)  # no tagged fields
    return h


# ---- decoding ---------------------------------------------------------


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, fmt):
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def i8(self):
        return self.take(">b")

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def i64(self):
        return self.take(">q")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s

    def uvarint(self):
        shift = 0
        n = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def compact_string(self):
        n = self.uvarint() - 1
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s

    def compact_array_len(self):
        return self.uvarint() - 1

    def skip_tagged(self):
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.pos += self.uvarint()  # size, then the bytes


# ---- connection -------------------------------------------------------


class Connection:
    """One keep-alive connection; requests are sent one at a time."""

    def __init__(self, host, port, timeout_s=10.0, client_id="raft-bench"):
        self.addr = (host, port)
        self.sock = socket.create_connection(self.addr, timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self.correlation_id = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"{self.addr} closed the connection")
            buf += chunk
        return bytes(buf)

    def call(self, api_key, version, body, flexible=False):
        """Sends one request and returns a Reader over the response body."""
        self.correlation_id += 1
        cid = self.correlation_id
        payload = _header(api_key, version, cid, self.client_id, flexible) + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._recv_exact(4))
        r = Reader(self._recv_exact(size))
        got = r.i32()
        if got != cid:
            raise ConnectionError(f"correlation id {got}, expected {cid}")
        if flexible:
            r.skip_tagged()
        return r

    # ---- the requests ----

    def controller_id(self):
        """Metadata v1 with no topics: the controller id the broker names."""
        r = self.call(METADATA, 1, struct.pack(">i", 0))
        for _ in range(r.i32()):
            r.i32()  # node_id
            r.string()  # host
            r.i32()  # port
            r.string()  # rack
        return r.i32()

    def create_topic(self, name, timeout_ms=10_000):
        """CreateTopics v2, one partition, replication factor 1."""
        body = (
            struct.pack(">i", 1)
            + _string(name)
            + struct.pack(">ihii", 1, 1, 0, 0)  # partitions, rf, no assignments, no configs
            + struct.pack(">ib", timeout_ms, 0)
        )
        r = self.call(CREATE_TOPICS, 2, body)
        r.i32()  # throttle_time_ms
        r.i32()  # one topic
        r.string()
        code = r.i16()
        message = r.string()
        if code not in (NONE, TOPIC_ALREADY_EXISTS):
            raise KafkaError("CreateTopics", code, message)
        return code

    def alter_topic_config(self, topic, name, value):
        """IncrementalAlterConfigs v0: SET one config of one topic."""
        body = (
            struct.pack(">ib", 1, RESOURCE_TOPIC)
            + _string(topic)
            + struct.pack(">i", 1)
            + _string(name)
            + struct.pack(">b", OP_SET)
            + _string(value)
            + struct.pack(">b", 0)  # validate_only
        )
        r = self.call(INCREMENTAL_ALTER_CONFIGS, 0, body)
        r.i32()  # throttle_time_ms
        r.i32()  # one resource
        code = r.i16()
        message = r.string()
        if code != NONE:
            raise KafkaError("IncrementalAlterConfigs", code, message)

    def describe_quorum(self):
        """DescribeQuorum v1 on a controller listener.

        Returns a dict: error_code (of the partition), leader_id,
        leader_epoch, high_watermark and voters (a list of
        (replica_id, log_end_offset)). Only the leader answers with
        error_code 0 and the voters; a follower answers
        NOT_LEADER_OR_FOLLOWER and may still name the leader it knows.
        A top-level error raises KafkaError.
        """
        body = (
            _uvarint(2)
            + _compact_string(METADATA_TOPIC)
            + _uvarint(2)
            + struct.pack(">i", 0)
            + _uvarint(0)  # partition tags
            + _uvarint(0)  # topic tags
            + _uvarint(0)  # request tags
        )
        r = self.call(DESCRIBE_QUORUM, 1, body, flexible=True)
        code = r.i16()
        if code != NONE:
            raise KafkaError("DescribeQuorum", code)
        if r.compact_array_len() < 1:
            raise KafkaError("DescribeQuorum", -1, "no topic in the response")
        r.compact_string()
        if r.compact_array_len() < 1:
            raise KafkaError("DescribeQuorum", -1, "no partition in the response")
        r.i32()  # partition_index
        out = {
            "error_code": r.i16(),
            "leader_id": r.i32(),
            "leader_epoch": r.i32(),
            "high_watermark": r.i64(),
            "voters": [],
        }
        for _ in range(max(0, r.compact_array_len())):
            replica_id = r.i32()
            log_end_offset = r.i64()
            r.i64()  # last_fetch_timestamp (v1)
            r.i64()  # last_caught_up_timestamp (v1)
            r.skip_tagged()
            out["voters"].append((replica_id, log_end_offset))
        return out
