"""kafka-python (pure Python, its own protocol code) against Riffle.

kafka-python negotiates every request version from ApiVersions, so it
exercises different versions and code paths than librdkafka.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kerrors
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec

from helpers import consume, unique_topic, wait_for

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
BASE_TS_MS = 1_650_000_000_000


def admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000,
                            client_id="compat-kafka-python")


def kp_create_topic(bootstrap: str, topic: str, partitions: int = 1, configs: dict | None = None) -> None:
    a = admin(bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1,
                                 "configs": configs or {}}}, wait_for_metadata=True)
    finally:
        a.close()


def kp_producer(bootstrap: str, **extra) -> KafkaProducer:
    # kafka-python 3 turns idempotence on by default, which needs
    # InitProducerId; Riffle does not have it yet (see
    # test_default_producer_settings), so the other tests turn it off.
    conf = dict(bootstrap_servers=bootstrap, enable_idempotence=False, request_timeout_ms=30000)
    conf.update(extra)
    return KafkaProducer(**conf)


def kp_consumer(bootstrap: str, **extra) -> KafkaConsumer:
    # group_id=None: no group coordinator involved, no commits.
    conf = dict(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                auto_offset_reset="earliest", consumer_timeout_ms=1000, request_timeout_ms=30000)
    conf.update(extra)
    return KafkaConsumer(**conf)


def kp_consume(bootstrap: str, topic: str, count: int, partition: int = 0, offset: int | None = None,
               timeout_s: float = 30.0) -> list:
    c = kp_consumer(bootstrap)
    try:
        tp = TopicPartition(topic, partition)
        c.assign([tp])
        if offset is None:
            c.seek_to_beginning(tp)
        else:
            c.seek(tp, offset)
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                out.extend(records)
        assert len(out) >= count, f"consumed {len(out)} of {count} from {topic}[{partition}]"
        return out[:count]
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_produce_consume_codec(broker, codec):
    topic = unique_topic(f"kp-{codec or 'none'}")
    kp_create_topic(broker.bootstrap, topic)
    p = kp_producer(broker.bootstrap, compression_type=codec, acks="all", linger_ms=20)
    sent = []
    for i in range(100):
        value = (f"kafka-python {codec} #{i} " + "y" * (i % 37)).encode()
        key = f"k{i}".encode() if i % 3 else None
        headers = [("idx", str(i).encode()), ("codec", str(codec).encode())]
        ts = BASE_TS_MS + i
        md = p.send(topic, value=value, key=key, headers=headers, timestamp_ms=ts).get(timeout=30)
        assert md.offset == i
        sent.append((key, value, headers, ts))
    p.flush(30)
    p.close(30)

    got = kp_consume(broker.bootstrap, topic, len(sent))
    for i, (rec, (key, value, headers, ts)) in enumerate(zip(got, sent)):
        assert rec.offset == i
        assert rec.key == key
        assert rec.value == value
        assert list(rec.headers) == headers
        assert rec.timestamp == ts
        assert rec.timestamp_type == 0  # CreateTime

    # And librdkafka reads what kafka-python wrote.
    ck = consume(broker.bootstrap, topic, len(sent))
    assert [m.value() for m in ck] == [s[1] for s in sent]


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(broker, acks):
    topic = unique_topic(f"kp-acks{acks}")
    kp_create_topic(broker.bootstrap, topic)
    p = kp_producer(broker.bootstrap, acks=acks)
    futures = [p.send(topic, value=f"a{i}".encode()) for i in range(30)]
    p.flush(30)
    for f in futures:
        f.get(timeout=30)
    p.close(30)
    got = kp_consume(broker.bootstrap, topic, 30)
    assert [r.value for r in got] == [f"a{i}".encode() for i in range(30)]


def test_admin_topics(broker):
    topic = unique_topic("kp-admin")
    a = admin(broker.bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1,
                                 "configs": {"retention.ms": "120000"}}}, wait_for_metadata=True)
        assert topic in a.list_topics()
        (desc,) = a.describe_topics([topic])
        assert desc["name"] == topic and desc["error_code"] == 0
        assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2]
        assert all(p["leader_id"] == 1 for p in desc["partitions"])

        with pytest.raises(kerrors.TopicAlreadyExistsError):
            a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
        with pytest.raises(kerrors.InvalidTopicError):
            a.create_topics({"no spaces allowed": {"num_partitions": 1, "replication_factor": 1}})
        with pytest.raises(kerrors.InvalidConfigurationError):
            a.create_topics({unique_topic("kp-badcfg"): {"num_partitions": 1, "replication_factor": 1,
                                                         "configs": {"retention.ms": "never"}}})
        validated = unique_topic("kp-validate")
        a.create_topics({validated: {"num_partitions": 1, "replication_factor": 1}}, validate_only=True)
        assert validated not in a.list_topics()

        configs = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                     config_filter="all")["topic"][topic]
        assert configs["retention.ms"]["value"] == "120000"
        assert configs["cleanup.policy"]["value"] == "delete"

        broker_cfg = a.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")],
                                        config_filter="all")["broker"]["1"]
        assert broker_cfg["num.partitions"]["value"] == "1"

        a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "240000"})])
        configs = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                     config_filter="all")["topic"][topic]
        assert configs["retention.ms"]["value"] == "240000"

        a.create_partitions({topic: 5})
        wait_for(lambda: len(a.describe_topics([topic])[0]["partitions"]) == 5, 30, "5 partitions")

        cluster = a.describe_cluster()
        assert cluster["cluster_id"]
        assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == \
            [(1, "127.0.0.1", broker.port)]

        a.delete_topics([topic])
        wait_for(lambda: topic not in a.list_topics(), 30, f"{topic} to disappear")
        with pytest.raises(kerrors.UnknownTopicOrPartitionError):
            a.delete_topics([topic])
    finally:
        a.close()


def test_describe_log_dirs(broker):
    topic = unique_topic("kp-logdirs")
    kp_create_topic(broker.bootstrap, topic, partitions=2)
    p = kp_producer(broker.bootstrap)
    for i in range(10):
        p.send(topic, value=b"z" * 100, partition=i % 2)
    p.flush(30)
    p.close(30)
    a = admin(broker.bootstrap)
    try:
        (per_broker,) = a.describe_log_dirs()
        assert per_broker["broker"] == 1
        dirs = per_broker["log_dirs"]
        assert len(dirs) == 1 and dirs[0]["error_code"] == 0
        assert dirs[0]["log_dir"] == str(broker.data_dir)
        topics = {t["name"]: t for t in dirs[0]["topics"]}
        assert topic in topics
        sizes = {p["partition_index"]: p["partition_size"] for p in topics[topic]["partitions"]}
        assert sorted(sizes) == [0, 1]
        assert all(s > 500 for s in sizes.values()), sizes
    finally:
        a.close()


def test_list_offsets_and_offsets_for_times(broker):
    topic = unique_topic("kp-offsets")
    kp_create_topic(broker.bootstrap, topic, partitions=2)
    p = kp_producer(broker.bootstrap)
    for i in range(10):
        p.send(topic, value=f"t{i}".encode(), partition=0, timestamp_ms=BASE_TS_MS + 1000 * i).get(timeout=30)
    p.close(30)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    c = kp_consumer(broker.bootstrap)
    try:
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert c.end_offsets([tp0, tp1]) == {tp0: 10, tp1: 0}
        found = c.offsets_for_times({tp0: BASE_TS_MS + 3500, tp1: BASE_TS_MS})
        assert found[tp0].offset == 4 and found[tp0].timestamp == BASE_TS_MS + 4000
        assert found[tp1] is None
        assert c.offsets_for_times({tp0: BASE_TS_MS + 100_000})[tp0] is None
    finally:
        c.close()

    a = admin(broker.bootstrap)
    try:
        res = a.list_partition_offsets({tp0: OffsetSpec.EARLIEST})
        assert res[tp0].offset == 0
        res = a.list_partition_offsets({tp0: OffsetSpec.LATEST})
        assert res[tp0].offset == 10
        res = a.list_partition_offsets({tp0: OffsetSpec.MAX_TIMESTAMP})
        assert (res[tp0].offset, res[tp0].timestamp) == (9, BASE_TS_MS + 9000)

        a.delete_records({tp0: 4})
        res = a.list_partition_offsets({tp0: OffsetSpec.EARLIEST})
        assert res[tp0].offset == 4
    finally:
        a.close()
    got = kp_consume(broker.bootstrap, topic, 2)
    assert [r.offset for r in got] == [4, 5]


def test_default_producer_settings(broker):
    topic = unique_topic("kp-defaults")
    kp_create_topic(broker.bootstrap, topic)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, max_block_ms=20000, request_timeout_ms=20000,
                      delivery_timeout_ms=30000)
    try:
        md = p.send(topic, value=b"default settings").get(timeout=40)
        assert md.offset == 0
    finally:
        p.close(5)


def test_small_fetch_limits_and_mid_batch_start(broker):
    topic = unique_topic("kp-fetchshape")
    kp_create_topic(broker.bootstrap, topic)
    p = kp_producer(broker.bootstrap, compression_type="lz4", linger_ms=50, batch_size=1_000_000)
    big = [bytes([97 + i]) * 40_000 for i in range(5)]
    for v in big:
        p.send(topic, value=v)
    p.flush(30)
    small = [f"s{i}".encode() for i in range(50)]
    for v in small:
        p.send(topic, value=v)
    p.flush(30)
    p.close(30)

    c = kp_consumer(broker.bootstrap, max_partition_fetch_bytes=1024, fetch_max_bytes=1024)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 55 and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.extend(records)
        assert [r.value for r in got] == big + small
    finally:
        c.close()
    got = kp_consume(broker.bootstrap, topic, 3, offset=30)
    assert [(r.offset, r.value) for r in got] == [(30 + i, f"s{25 + i}".encode()) for i in range(3)]


def test_fetch_sessions_across_partitions(broker):
    # kafka-python keeps an incremental fetch session (KIP-227): later fetches
    # list only partitions that changed. Data produced in rounds to different
    # partitions must all arrive, in order, exactly once.
    topic = unique_topic("kp-sessions")
    kp_create_topic(broker.bootstrap, topic, partitions=3)
    p = kp_producer(broker.bootstrap)
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=100)
    try:
        tps = [TopicPartition(topic, i) for i in range(3)]
        c.assign(tps)
        c.seek_to_beginning()
        got = {i: [] for i in range(3)}
        expected = {i: [] for i in range(3)}
        for rnd in range(6):
            part = rnd % 3 if rnd < 3 else (rnd * 2) % 3
            for j in range(5):
                v = f"r{rnd}-p{part}-{j}".encode()
                p.send(topic, value=v, partition=part)
                expected[part].append(v)
            p.flush(30)
            deadline = time.monotonic() + 30
            while sum(map(len, got.values())) < sum(map(len, expected.values())) and time.monotonic() < deadline:
                for tp, records in c.poll(timeout_ms=300).items():
                    got[tp.partition].extend(r.value for r in records)
            assert got == expected, f"round {rnd}"
    finally:
        c.close()
        p.close(30)


def test_delete_topic_by_id(broker):
    import uuid
    topic = unique_topic("kp-byid")
    kp_create_topic(broker.bootstrap, topic)
    a = admin(broker.bootstrap)
    try:
        (desc,) = a.describe_topics([topic])
        topic_id = desc["topic_id"]
        topic_id = topic_id if isinstance(topic_id, uuid.UUID) else uuid.UUID(str(topic_id))
        assert topic_id.int != 0
        a.delete_topics([topic_id])
        wait_for(lambda: topic not in a.list_topics(), 30, f"{topic} to disappear")
    finally:
        a.close()
