"""Bad bytes from the network never take the broker down (ARCHITECTURE.md principle 5).

Each case sends something broken on a raw socket and accepts either an error
response or a closed connection; then a fresh confluent-kafka client on a new
connection must still produce and consume.
"""

from __future__ import annotations

import os
import socket

import pytest

import kwire
from helpers import ck_producer, consume, create_topic, produce_all, unique_topic


@pytest.fixture(scope="module")
def bad_input_broker(riffle_bin, tmp_path_factory):
    from conftest import Broker
    b = Broker(tmp_path_factory.mktemp("bad-input"), name="bad-input broker")
    b.start()
    yield b
    if b.alive():
        rc = b.stop()
        assert rc == 0, f"broker exited with {rc} on SIGTERM after the bad-input tests"


def assert_still_serving(b) -> None:
    assert b.alive(), f"broker process died (exit {b.proc.returncode})"
    topic = unique_topic("after-bad")
    create_topic(b.bootstrap, topic)
    produce_all(ck_producer(b.bootstrap), topic, [{"value": b"still here"}])
    assert consume(b.bootstrap, topic, 1)[0].value() == b"still here"


def test_garbage_bytes(bad_input_broker):
    with kwire.connect(bad_input_broker.port) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert kwire.outcome_after(s) == "closed"
    with kwire.connect(bad_input_broker.port) as s:
        # A plausible size followed by random bytes: not a request header.
        s.sendall(kwire.int32(64) + os.urandom(64))
        assert kwire.outcome_after(s) in ("closed", "response")
    assert_still_serving(bad_input_broker)


def test_two_gib_frame(bad_input_broker):
    with kwire.connect(bad_input_broker.port) as s:
        s.sendall(b"\x7f\xff\xff\xff" + b"\x00\x12\x00\x00" + b"\x00" * 100)
        # Kafka refuses frames over socket.request.max.bytes at once; the
        # broker must not wait for (or allocate) 2 GiB.
        assert kwire.outcome_after(s) == "closed"
    assert_still_serving(bad_input_broker)


def test_negative_frame_size(bad_input_broker):
    with kwire.connect(bad_input_broker.port) as s:
        s.sendall(b"\xff\xff\xff\xfe" + b"\x00" * 16)
        assert kwire.outcome_after(s) == "closed"
    assert_still_serving(bad_input_broker)


def test_truncated_request(bad_input_broker):
    with kwire.connect(bad_input_broker.port) as s:
        s.sendall(kwire.int32(100) + b"\x00\x03\x00\x01" + b"\x00" * 16)  # 20 of 100 bytes
        s.shutdown(socket.SHUT_WR)
        assert kwire.outcome_after(s) == "closed"
    # The same, closing the socket entirely.
    s = kwire.connect(bad_input_broker.port)
    s.sendall(kwire.int32(100) + b"\x00" * 20)
    s.close()
    assert_still_serving(bad_input_broker)


def test_unknown_api_key(bad_input_broker):
    with kwire.connect(bad_input_broker.port) as s:
        s.sendall(kwire.frame(kwire.header_v1(9999, 0, 42) + b"\x00" * 8))
        assert kwire.outcome_after(s) in ("closed", "response")
    assert_still_serving(bad_input_broker)


def test_metadata_huge_topic_array(bad_input_broker):
    # docs/known-issues.md: kafka-protocol 0.18 would try to allocate ~150 GB
    # for this 4-byte body and abort the process.
    with kwire.connect(bad_input_broker.port) as s:
        s.sendall(kwire.frame(kwire.header_v1(kwire.API_KEY_METADATA, 1, 43) + b"\x7f\xff\xff\xff"))
        assert kwire.outcome_after(s) in ("closed", "response")
    assert_still_serving(bad_input_broker)


def test_many_bad_connections_then_good(bad_input_broker):
    # A bounded burst of mixed junk on many connections.
    payloads = [b"\x00", b"\x00\x00\x00\x04\x00\x12", os.urandom(40), b"\x00\x00\x00\x08" + b"\xff" * 8,
                kwire.frame(kwire.header_v1(kwire.API_KEY_METADATA, 99, 1)),
                kwire.frame(kwire.header_v1(0, 3, 1) + b"\xff" * 30)]
    for i in range(60):
        s = kwire.connect(bad_input_broker.port)
        try:
            s.sendall(payloads[i % len(payloads)])
        finally:
            s.close()
    assert_still_serving(bad_input_broker)


@pytest.mark.parametrize("version", [127, 5000])
def test_api_versions_unsupported_version(bad_input_broker, version):
    # KIP-511 / Kafka's behaviour: an ApiVersions request at a version the
    # broker does not know gets a v0 response with UNSUPPORTED_VERSION and the
    # supported ranges, so the client can retry at a version both support.
    with kwire.connect(bad_input_broker.port) as s:
        s.sendall(kwire.api_versions_request(version, 77))
        corr, err, ranges = kwire.parse_api_versions_v0(kwire.recv_frame(s))
    assert corr == 77
    assert err == kwire.ERROR_UNSUPPORTED_VERSION
    assert kwire.API_KEY_API_VERSIONS in ranges, ranges
    lo, hi = ranges[kwire.API_KEY_API_VERSIONS]
    assert lo == 0 and hi >= 3
    for key in (0, 1, 2, 3):  # Produce, Fetch, ListOffsets, Metadata
        assert key in ranges, f"api key {key} missing from {ranges}"
    assert_still_serving(bad_input_broker)


def test_api_versions_supported_version_v0(bad_input_broker):
    with kwire.connect(bad_input_broker.port) as s:
        s.sendall(kwire.api_versions_request(0, 5))
        corr, err, ranges = kwire.parse_api_versions_v0(kwire.recv_frame(s))
    assert (corr, err) == (5, 0)
    for key in (0, 1, 2, 3, 18, 19, 20, 32, 33, 37, 21, 23, 35, 44, 60):
        assert key in ranges, f"api key {key} missing from ApiVersions: {sorted(ranges)}"
