"""Requests that clients send only in corner cases, checked on the wire.

OffsetForLeaderEpoch (KIP-101, KIP-320) is what a consumer uses to detect
log truncation after a leader change; with one broker no client sends it
in the other tests, so these cases send it directly.
"""

from __future__ import annotations

from kafka import KafkaAdminClient

import kwire
from helpers import ck_producer, consume, create_topic, produce_all, unique_topic, watermarks

FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
UNKNOWN_TOPIC_OR_PARTITION = 3


def leader_epoch(bootstrap: str, topic: str, partition: int = 0) -> int:
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (desc,) = a.describe_topics([topic])
        (p,) = [p for p in desc["partitions"] if p["partition_index"] == partition]
        return p["leader_epoch"]
    finally:
        a.close()


def ofle(port: int, topic: str, partitions: list[tuple[int, int, int]]) -> dict:
    with kwire.connect(port) as s:
        s.sendall(kwire.offset_for_leader_epoch_v3_request(11, topic, partitions))
        corr, result = kwire.parse_offset_for_leader_epoch_v3(kwire.recv_frame(s))
    assert corr == 11
    return result


def test_offset_for_leader_epoch(broker):
    topic = unique_topic("raw-ofle")
    create_topic(broker.bootstrap, topic)
    produce_all(ck_producer(broker.bootstrap), topic, [{"value": b"e"} for _ in range(5)])
    epoch = leader_epoch(broker.bootstrap, topic)
    assert epoch >= 0

    # The current epoch ends at the log end offset.
    r = ofle(broker.port, topic, [(0, epoch, epoch)])
    assert r[(topic, 0)] == (0, epoch, 5)
    # current_leader_epoch -1 skips the fencing check.
    r = ofle(broker.port, topic, [(0, -1, epoch)])
    assert r[(topic, 0)] == (0, epoch, 5)
    # A client that knows a newer leader epoch than the broker: UNKNOWN_LEADER_EPOCH.
    r = ofle(broker.port, topic, [(0, epoch + 1, epoch)])
    assert r[(topic, 0)][0] == UNKNOWN_LEADER_EPOCH
    if epoch > 0:
        # A client with a stale leader epoch: FENCED_LEADER_EPOCH.
        r = ofle(broker.port, topic, [(0, epoch - 1, epoch - 1)])
        assert r[(topic, 0)][0] == FENCED_LEADER_EPOCH
    # Unknown partition and unknown topic.
    r = ofle(broker.port, topic, [(9, -1, epoch)])
    assert r[(topic, 9)][0] == UNKNOWN_TOPIC_OR_PARTITION
    missing = unique_topic("raw-nosuch")
    r = ofle(broker.port, missing, [(0, -1, 0)])
    assert r[(missing, 0)][0] == UNKNOWN_TOPIC_OR_PARTITION


def test_offset_for_leader_epoch_newer_than_log(broker):
    # Kafka (LeaderEpochFileCache.endOffsetFor): an epoch larger than every
    # epoch in the log has no end offset: error NONE, epoch -1, offset -1.
    topic = unique_topic("raw-ofle-new")
    create_topic(broker.bootstrap, topic)
    produce_all(ck_producer(broker.bootstrap), topic, [{"value": b"e"} for _ in range(5)])
    epoch = leader_epoch(broker.bootstrap, topic)
    r = ofle(broker.port, topic, [(0, -1, epoch + 5)])
    assert r[(topic, 0)] == (0, -1, -1)


CORRUPT_MESSAGE = 2
INVALID_RECORD = 87


def raw_produce(port: int, topic: str, records: bytes) -> tuple[int, int]:
    with kwire.connect(port) as s:
        s.sendall(kwire.produce_v3_request(21, topic, 0, bytes(records)))
        corr, result = kwire.parse_produce_v3(kwire.recv_frame(s))
    assert corr == 21
    return result[(topic, 0)]


def test_produce_valid_batch_on_the_wire(broker):
    topic = unique_topic("raw-produce")
    create_topic(broker.bootstrap, topic)
    assert raw_produce(broker.port, topic, kwire.record_batch([b"a", b"b"])) == (0, 0)
    assert raw_produce(broker.port, topic, kwire.record_batch([b"c"])) == (0, 2)
    got = consume(broker.bootstrap, topic, 3)
    assert [m.value() for m in got] == [b"a", b"b", b"c"]


def test_produce_corrupt_batch_is_refused(broker):
    # A batch whose CRC32C does not match its contents: Kafka answers
    # CORRUPT_MESSAGE and appends nothing.
    topic = unique_topic("raw-crc")
    create_topic(broker.bootstrap, topic)
    batch = kwire.record_batch([b"hello", b"world"])
    batch[-3] ^= 0xFF  # inside the last record's value; the CRC covers it
    error, _ = raw_produce(broker.port, topic, batch)
    assert error == CORRUPT_MESSAGE
    assert watermarks(broker.bootstrap, topic) == (0, 0)
    # A truncated batch (its length field says more than is there). Kafka
    # finds no whole batch and answers INVALID_RECORD; CORRUPT_MESSAGE says
    # the same thing to a client.
    batch = kwire.record_batch([b"hello", b"world"])
    error, _ = raw_produce(broker.port, topic, batch[:-4])
    assert error in (CORRUPT_MESSAGE, INVALID_RECORD)
    assert watermarks(broker.bootstrap, topic) == (0, 0)
    # Still works for a good batch afterwards.
    assert raw_produce(broker.port, topic, kwire.record_batch([b"ok"])) == (0, 0)


def test_pipelined_requests_are_answered_in_order(broker):
    # Kafka answers the requests on one connection in the order they were
    # sent, and sends nothing at all for acks=0 produces; clients such as
    # librdkafka pipeline requests and match responses by that order.
    topic = unique_topic("raw-pipeline")
    create_topic(broker.bootstrap, topic)
    requests, expected = [], []
    for i in range(60):
        corr = 1000 + i
        kind = i % 4
        if kind == 0:
            requests.append(kwire.api_versions_request(0, corr))
        elif kind == 1:
            requests.append(kwire.metadata_v1_request(corr, [topic]))
        elif kind == 2:
            requests.append(kwire.produce_v3_request(corr, topic, 0, bytes(kwire.record_batch([b"p%d" % i]))))
        else:
            requests.append(kwire.produce_v3_request(corr, topic, 0, bytes(kwire.record_batch([b"z%d" % i])),
                                                     acks=0))
            continue  # no response for acks=0
        expected.append(corr)
    with kwire.connect(broker.port) as s:
        s.sendall(b"".join(requests))
        got = []
        for _ in expected:
            payload = kwire.recv_frame(s)
            got.append(kwire.Reader(payload).int32())
    assert got == expected
    # All 30 produces landed (acks=0 ones included), in request order.
    values = [m.value() for m in consume(broker.bootstrap, topic, 30)]
    assert values == [(b"p%d" if i % 4 == 2 else b"z%d") % i for i in range(60) if i % 4 in (2, 3)]
