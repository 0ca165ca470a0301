"""confluent-kafka (librdkafka) against Riffle: produce, consume, admin.

Kafka's behaviour is the specification: the expected error codes below are
the ones Apache Kafka returns for the same requests.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, OFFSET_END, TIMESTAMP_CREATE_TIME,
                             TIMESTAMP_LOG_APPEND_TIME, KafkaError, KafkaException, TopicPartition)
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   NewPartitions, NewTopic, OffsetSpec, ResourceType)

from helpers import (ADMIN_TIMEOUT_S, ck_admin, ck_consumer, ck_producer, consume, create_topic,
                     produce_all, stored_codecs, topic_partitions, unique_topic, wait_for, wait_topic_ready,
                     watermarks)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
BASE_TS_MS = 1_600_000_000_000


def error_code(exc: BaseException) -> int:
    assert isinstance(exc, KafkaException), f"expected KafkaException, got {exc!r}"
    return exc.args[0].code()


# ---------------------------------------------------------------- produce / consume


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec_keys_headers_timestamps(broker, riffle_bin, codec):
    topic = unique_topic(f"ck-{codec}")
    create_topic(broker.bootstrap, topic)
    p = ck_producer(broker.bootstrap, **{"compression.type": codec, "acks": "all", "linger.ms": 20})
    messages = [
        {
            "key": f"key-{i}".encode(),
            "value": (f"value-{i}-" + "x" * (i % 50)).encode() * 3,
            "headers": [("h1", f"v{i}".encode()), ("h2", b""), ("h1", b"dup")],
            "timestamp": BASE_TS_MS + i,
        }
        for i in range(200)
    ]
    # A null key and an empty value (a tombstone-shaped record) travel too.
    messages.append({"key": None, "value": b"", "timestamp": BASE_TS_MS + 999})
    delivered = produce_all(p, topic, messages)
    assert sorted(m.offset() for m in delivered) == list(range(len(messages)))
    assert stored_codecs(riffle_bin, broker.data_dir, topic) == {codec}

    got = consume(broker.bootstrap, topic, len(messages))
    for i, (sent, msg) in enumerate(zip(messages, got)):
        assert msg.offset() == i
        assert msg.key() == sent["key"]
        assert (msg.value() or b"") == sent["value"]
        assert msg.timestamp() == (TIMESTAMP_CREATE_TIME, sent["timestamp"])
        assert (msg.headers() or []) == sent.get("headers", [])


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks(broker, acks):
    topic = unique_topic(f"ck-acks{acks}")
    create_topic(broker.bootstrap, topic)
    p = ck_producer(broker.bootstrap, acks=acks)
    values = [f"acks={acks} #{i}".encode() for i in range(50)]
    delivered = produce_all(p, topic, [{"value": v} for v in values])
    assert len(delivered) == len(values)
    if acks != "0":
        assert sorted(m.offset() for m in delivered) == list(range(len(values)))
    else:
        # acks=0 has no response, so the producer cannot know offsets; wait
        # (bounded) until the broker shows all of them.
        wait_for(lambda: watermarks(broker.bootstrap, topic)[1] >= len(values), 30,
                 "acks=0 messages to reach the log")
    got = consume(broker.bootstrap, topic, len(values))
    assert [m.value() for m in got] == values


def test_multi_partition_keys_and_explicit_partitions(broker):
    topic = unique_topic("ck-parts")
    create_topic(broker.bootstrap, topic, partitions=4)
    p = ck_producer(broker.bootstrap)
    produce_all(p, topic, [{"value": f"p{i % 4}-{i}".encode(), "partition": i % 4} for i in range(40)])
    for part in range(4):
        got = consume(broker.bootstrap, topic, 10, partition=part)
        assert [m.value() for m in got] == [f"p{part}-{i}".encode() for i in range(part, 40, 4)]
        assert watermarks(broker.bootstrap, topic, part) == (0, 10)


def test_seek_and_logical_offsets(broker):
    topic = unique_topic("ck-seek")
    create_topic(broker.bootstrap, topic)
    produce_all(ck_producer(broker.bootstrap), topic, [{"value": str(i).encode()} for i in range(30)])

    got = consume(broker.bootstrap, topic, 5, offset=20)
    assert [m.offset() for m in got] == [20, 21, 22, 23, 24]

    got = consume(broker.bootstrap, topic, 3, offset=OFFSET_BEGINNING)
    assert [m.value() for m in got] == [b"0", b"1", b"2"]

    c = ck_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        first = wait_for(lambda: c.poll(0.5), 30, "first message")
        assert first.offset() == 0
        c.seek(TopicPartition(topic, 0, 27))
        seen = []
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                seen.append(m.offset())
        # Messages already prefetched before the seek are discarded by librdkafka.
        assert seen == [27, 28, 29]
    finally:
        c.close()

    # OFFSET_END: nothing old arrives, a new message does.
    c = ck_consumer(broker.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        # The consumer resolves OFFSET_END asynchronously, so a message produced
        # too early may be skipped: keep producing (bounded) until one arrives.
        # Whatever arrives must be new, never one of the first 30.
        producer = ck_producer(broker.bootstrap)
        m = None
        for k in range(60):
            produce_all(producer, topic, [{"value": f"after-end-{k}".encode()}])
            m = c.poll(0.5)
            if m is not None:
                break
        assert m is not None and not m.error(), m and m.error()
        assert m.offset() >= 30 and m.value().startswith(b"after-end-"), (m.offset(), m.value())
    finally:
        c.close()


def test_fetch_out_of_range_is_reported(broker):
    topic = unique_topic("ck-oor")
    create_topic(broker.bootstrap, topic)
    produce_all(ck_producer(broker.bootstrap), topic, [{"value": b"a"}, {"value": b"b"}])
    c = ck_consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition(topic, 0, 100)])

        def error_seen():
            m = c.poll(0.5)
            return m if m is not None and m.error() else None

        m = wait_for(error_seen, 30, "an offset-out-of-range error")
        assert m.error().code() in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE), m.error()
    finally:
        c.close()


# ---------------------------------------------------------------- message.max.bytes


@pytest.fixture(scope="module")
def small_max_broker(riffle_bin, tmp_path_factory):
    from conftest import Broker
    b = Broker(tmp_path_factory.mktemp("small-max"), ["message.max.bytes=100000"], name="small-max broker")
    b.start()
    yield b
    if b.alive():
        b.stop()


def test_message_just_under_max_bytes(small_max_broker):
    topic = unique_topic("ck-under")
    create_topic(small_max_broker.bootstrap, topic)
    # One record per batch (no compression, no linger). Batch overhead is 61
    # bytes and this record's own overhead well under 100, so the batch is
    # just under message.max.bytes=100000.
    p = ck_producer(small_max_broker.bootstrap, **{"linger.ms": 0, "message.max.bytes": 1_000_000,
                                                  "compression.type": "none"})
    value = b"u" * (100_000 - 200)
    delivered = produce_all(p, topic, [{"value": value}])
    assert delivered[0].offset() == 0
    got = consume(small_max_broker.bootstrap, topic, 1, **{"fetch.message.max.bytes": 200_000})
    assert got[0].value() == value


def test_message_just_over_max_bytes_is_refused(small_max_broker):
    topic = unique_topic("ck-over")
    create_topic(small_max_broker.bootstrap, topic)
    # The producer's own limit is raised so that the broker, not librdkafka,
    # refuses the batch: Kafka answers MESSAGE_TOO_LARGE (10).
    p = ck_producer(small_max_broker.bootstrap, **{"linger.ms": 0, "message.max.bytes": 1_000_000,
                                                  "compression.type": "none", "retries": 0})
    errors = []
    p.produce(topic, value=b"o" * 100_001, on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(30) == 0
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errors[0]
    # Nothing was appended, and the partition still takes a normal message.
    assert watermarks(small_max_broker.bootstrap, topic) == (0, 0)
    produce_all(p, topic, [{"value": b"small"}])
    assert consume(small_max_broker.bootstrap, topic, 1)[0].value() == b"small"


def test_max_bytes_applies_to_the_compressed_batch(small_max_broker):
    # Kafka compares the batch as sent (compressed) with message.max.bytes:
    # a 500 kB value that zstd squeezes to a few kB is accepted.
    topic = unique_topic("ck-squeeze")
    create_topic(small_max_broker.bootstrap, topic)
    p = ck_producer(small_max_broker.bootstrap, **{"linger.ms": 0, "message.max.bytes": 1_000_000,
                                                  "compression.type": "zstd", "retries": 0})
    value = b"squeeze me " * 50_000
    assert produce_all(p, topic, [{"value": value}])[0].offset() == 0
    got = consume(small_max_broker.bootstrap, topic, 1)
    assert got[0].value() == value


def test_topic_max_message_bytes_overrides_broker(small_max_broker):
    topic = unique_topic("ck-topicmax")
    create_topic(small_max_broker.bootstrap, topic, config={"max.message.bytes": "300000"})
    p = ck_producer(small_max_broker.bootstrap, **{"linger.ms": 0, "message.max.bytes": 1_000_000,
                                                  "compression.type": "none", "retries": 0})
    delivered = produce_all(p, topic, [{"value": b"t" * 200_000}])
    assert delivered[0].offset() == 0


def test_broker_settings_show_in_describe_configs(small_max_broker):
    # A static broker setting is reported as such, and topics inherit it:
    # max.message.bytes of a topic without its own value is message.max.bytes.
    topic = unique_topic("ck-inherit")
    create_topic(small_max_broker.bootstrap, topic)
    admin = ck_admin(small_max_broker.bootstrap)
    broker_cfg = describe(admin, ResourceType.BROKER, "1")
    assert broker_cfg["message.max.bytes"].value == "100000"
    assert broker_cfg["message.max.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    topic_cfg = describe(admin, ResourceType.TOPIC, topic)
    assert topic_cfg["max.message.bytes"].value == "100000"
    assert topic_cfg["max.message.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value


# ---------------------------------------------------------------- admin: topics


def test_create_topics_validate_only(broker):
    admin = ck_admin(broker.bootstrap)
    topic = unique_topic("ck-validate")
    futures = admin.create_topics([NewTopic(topic, 3, 1)], validate_only=True)
    futures[topic].result(ADMIN_TIMEOUT_S)
    assert topic_partitions(admin, topic) is None, "validate_only must not create the topic"


def test_create_topic_bad_name(broker):
    admin = ck_admin(broker.bootstrap)
    for bad in ["bad name!", "a" * 250, "..", "x/y"]:
        fut = admin.create_topics([NewTopic(bad, 1, 1)])[bad]
        with pytest.raises(KafkaException) as ei:
            fut.result(ADMIN_TIMEOUT_S)
        assert error_code(ei.value) == KafkaError.TOPIC_EXCEPTION, (bad, ei.value)


@pytest.mark.parametrize("config", [
    {"retention.ms": "-1"},
    {"cleanup.policy": "compact,delete"},
    {"compression.type": "zstd", "max.message.bytes": "2000000"},
    {"segment.bytes": "1048576", "segment.ms": "60000"},
])
def test_create_topic_good_configs(broker, config):
    topic = unique_topic("ck-goodcfg")
    create_topic(broker.bootstrap, topic, config=config)
    admin = ck_admin(broker.bootstrap)
    configs = describe(admin, ResourceType.TOPIC, topic)
    for key, value in config.items():
        assert configs[key].value == value, (key, configs[key])


def test_create_topic_longest_name(broker):
    # 249 characters is Kafka's limit; 250 is refused (test_create_topic_bad_name).
    topic = "n" * 239 + unique_topic("")[1:]
    assert len(topic) == 249
    create_topic(broker.bootstrap, topic)


def test_create_topic_name_collision(broker):
    # Kafka refuses a name that differs from an existing one only by '.'
    # versus '_' (they collide in metric names): INVALID_TOPIC_EXCEPTION.
    base = unique_topic("ck-collide")
    create_topic(broker.bootstrap, f"{base}.a")
    admin = ck_admin(broker.bootstrap)
    clash = f"{base}_a"
    with pytest.raises(KafkaException) as ei:
        admin.create_topics([NewTopic(clash, 1, 1)])[clash].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.TOPIC_EXCEPTION, ei.value


def test_create_topic_already_exists(broker):
    topic = unique_topic("ck-exists")
    create_topic(broker.bootstrap, topic)
    admin = ck_admin(broker.bootstrap)
    with pytest.raises(KafkaException) as ei:
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.TOPIC_ALREADY_EXISTS


@pytest.mark.parametrize("config", [
    {"no.such.config": "1"},
    {"retention.ms": "not-a-number"},
    {"cleanup.policy": "bogus"},
    {"compression.type": "brotli"},
    {"min.insync.replicas": "0"},
    {"message.timestamp.type": "WallClockTime"},
])
def test_create_topic_bad_config(broker, config):
    topic = unique_topic("ck-badcfg")
    admin = ck_admin(broker.bootstrap)
    with pytest.raises(KafkaException) as ei:
        admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.INVALID_CONFIG, ei.value
    assert topic_partitions(admin, topic) is None


def test_create_topic_bad_partition_count(broker):
    admin = ck_admin(broker.bootstrap)
    topic = unique_topic("ck-badparts")
    with pytest.raises(KafkaException) as ei:
        admin.create_topics([NewTopic(topic, 0, 1)])[topic].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.INVALID_PARTITIONS, ei.value


def test_create_topic_default_partitions(broker):
    # num_partitions=-1 asks for the broker's num.partitions (1 by default).
    admin = ck_admin(broker.bootstrap)
    topic = unique_topic("ck-defparts")
    admin.create_topics([NewTopic(topic)])[topic].result(ADMIN_TIMEOUT_S)
    wait_topic_ready(broker.bootstrap, topic, 1)


def test_describe_topics(broker):
    topic = unique_topic("ck-describe")
    create_topic(broker.bootstrap, topic, partitions=2)
    from confluent_kafka import TopicCollection
    admin = ck_admin(broker.bootstrap)
    desc = admin.describe_topics(TopicCollection([topic]))[topic].result(ADMIN_TIMEOUT_S)
    assert desc.name == topic
    assert [p.id for p in desc.partitions] == [0, 1]
    for p in desc.partitions:
        assert p.leader.id == 1
        assert [r.id for r in p.replicas] == [1]
        assert [r.id for r in p.isr] == [1]


def test_delete_topics(broker):
    topic = unique_topic("ck-delete")
    create_topic(broker.bootstrap, topic)
    produce_all(ck_producer(broker.bootstrap), topic, [{"value": b"doomed"}])
    admin = ck_admin(broker.bootstrap)
    admin.delete_topics([topic], operation_timeout=30)[topic].result(ADMIN_TIMEOUT_S)
    wait_for(lambda: topic_partitions(admin, topic) is None, 30, f"{topic} to vanish from metadata")

    # Deleting it again: UNKNOWN_TOPIC_OR_PARTITION.
    with pytest.raises(KafkaException) as ei:
        admin.delete_topics([topic])[topic].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART

    # The name can be used again, and the new topic starts empty.
    create_topic(broker.bootstrap, topic)
    assert watermarks(broker.bootstrap, topic) == (0, 0)


def test_create_partitions(broker):
    topic = unique_topic("ck-morepart")
    create_topic(broker.bootstrap, topic, partitions=1)
    admin = ck_admin(broker.bootstrap)

    admin.create_partitions([NewPartitions(topic, 3)], validate_only=True)[topic].result(ADMIN_TIMEOUT_S)
    assert len(topic_partitions(admin, topic)) == 1

    admin.create_partitions([NewPartitions(topic, 3)])[topic].result(ADMIN_TIMEOUT_S)
    wait_topic_ready(broker.bootstrap, topic, 3)
    produce_all(ck_producer(broker.bootstrap), topic, [{"value": b"in p2", "partition": 2}])
    assert consume(broker.bootstrap, topic, 1, partition=2)[0].value() == b"in p2"

    # Fewer or the same number of partitions: INVALID_PARTITIONS.
    for n in (2, 3):
        with pytest.raises(KafkaException) as ei:
            admin.create_partitions([NewPartitions(topic, n)])[topic].result(ADMIN_TIMEOUT_S)
        assert error_code(ei.value) == KafkaError.INVALID_PARTITIONS, (n, ei.value)

    missing = unique_topic("ck-nosuch")
    with pytest.raises(KafkaException) as ei:
        admin.create_partitions([NewPartitions(missing, 2)])[missing].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_auto_create_on_metadata(broker_factory):
    b = broker_factory("auto.create.topics.enable=true", "num.partitions=2")
    topic = unique_topic("ck-auto")
    delivered = produce_all(ck_producer(b.bootstrap), topic, [{"value": b"auto", "partition": 1}])
    assert delivered[0].partition() == 1
    wait_topic_ready(b.bootstrap, topic, 2)


def test_no_auto_create_when_disabled(broker_factory):
    b = broker_factory("auto.create.topics.enable=false")
    topic = unique_topic("ck-noauto")
    p = ck_producer(b.bootstrap, **{"message.timeout.ms": 3000})
    errors = []
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT,
                                KafkaError._UNKNOWN_TOPIC), errors[0]
    assert topic_partitions(ck_admin(b.bootstrap), topic) is None


# ---------------------------------------------------------------- admin: configs


def describe(admin, restype, name) -> dict:
    res = ConfigResource(restype, name)
    return admin.describe_configs([res])[res].result(ADMIN_TIMEOUT_S)


def test_describe_configs_topic(broker):
    topic = unique_topic("ck-cfg")
    create_topic(broker.bootstrap, topic, config={"retention.ms": "3600000", "cleanup.policy": "compact"})
    admin = ck_admin(broker.bootstrap)
    configs = describe(admin, ResourceType.TOPIC, topic)
    for key in ["retention.ms", "cleanup.policy", "segment.bytes", "max.message.bytes",
                "min.insync.replicas", "message.timestamp.type", "compression.type"]:
        assert key in configs, f"{key} missing from DescribeConfigs: {sorted(configs)}"
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "compact"
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["segment.bytes"].is_default


def test_describe_configs_broker(broker):
    admin = ck_admin(broker.bootstrap)
    configs = describe(admin, ResourceType.BROKER, "1")
    for key in ["message.max.bytes", "num.partitions", "log.dirs", "auto.create.topics.enable",
                "log.retention.hours", "log.segment.bytes", "node.id"]:
        assert key in configs, f"{key} missing from broker DescribeConfigs: {sorted(configs)}"
    assert configs["message.max.bytes"].value == "1048588"
    assert configs["num.partitions"].value == "1"


def test_describe_configs_unknown_topic(broker):
    res = ConfigResource(ResourceType.TOPIC, unique_topic("ck-nosuch"))
    admin = ck_admin(broker.bootstrap)  # keep a reference: a destroyed handle fails its futures
    with pytest.raises(KafkaException) as ei:
        admin.describe_configs([res])[res].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_alter_configs(broker):
    topic = unique_topic("ck-alter")
    create_topic(broker.bootstrap, topic, config={"retention.ms": "3600000"})
    admin = ck_admin(broker.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.ms": "600000"})
    admin.alter_configs([res])[res].result(ADMIN_TIMEOUT_S)
    configs = describe(admin, ResourceType.TOPIC, topic)
    assert configs["segment.ms"].value == "600000"
    # AlterConfigs replaces the whole set: retention.ms is back to its default.
    assert configs["retention.ms"].is_default, configs["retention.ms"]

    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "soon"})
    with pytest.raises(KafkaException) as ei:
        admin.alter_configs([bad])[bad].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.INVALID_CONFIG


def test_incremental_alter_configs(broker):
    topic = unique_topic("ck-incr")
    create_topic(broker.bootstrap, topic, config={"retention.ms": "3600000"})
    admin = ck_admin(broker.bootstrap)

    def incr(*entries):
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=list(entries))
        return admin.incremental_alter_configs([res])[res].result(ADMIN_TIMEOUT_S)

    incr(ConfigEntry("segment.ms", "600000", incremental_operation=AlterConfigOpType.SET))
    configs = describe(admin, ResourceType.TOPIC, topic)
    assert configs["segment.ms"].value == "600000"
    assert configs["retention.ms"].value == "3600000", "incremental alter must keep other keys"

    incr(ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    configs = describe(admin, ResourceType.TOPIC, topic)
    assert configs["retention.ms"].is_default
    assert configs["retention.ms"].value == "604800000"

    incr(ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    configs = describe(admin, ResourceType.TOPIC, topic)
    assert set(configs["cleanup.policy"].value.split(",")) == {"delete", "compact"}

    with pytest.raises(KafkaException) as ei:
        incr(ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET))
    assert error_code(ei.value) == KafkaError.INVALID_CONFIG


# ---------------------------------------------------------------- admin: cluster, offsets, records


def test_describe_cluster(broker):
    admin = ck_admin(broker.bootstrap)
    result = admin.describe_cluster().result(ADMIN_TIMEOUT_S)
    assert result.cluster_id
    assert [(n.id, n.host, n.port) for n in result.nodes] == [(1, "127.0.0.1", broker.port)]
    assert result.controller is not None and result.controller.id == 1


def test_list_topics_metadata(broker):
    topic = unique_topic("ck-md")
    create_topic(broker.bootstrap, topic, partitions=3)
    md = ck_admin(broker.bootstrap).list_topics(timeout=10)
    assert md.cluster_id
    assert md.controller_id == 1
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {1: ("127.0.0.1", broker.port)}
    t = md.topics[topic]
    assert sorted(t.partitions) == [0, 1, 2]
    assert all(p.leader == 1 and p.replicas == [1] and p.isrs == [1] for p in t.partitions.values())


def produce_timestamped(bootstrap, topic, count, base_ts):
    p = ck_producer(bootstrap, **{"linger.ms": 0})
    return produce_all(p, topic, [{"value": f"ts{i}".encode(), "timestamp": base_ts + 1000 * i}
                                  for i in range(count)])


def test_list_offsets(broker):
    topic = unique_topic("ck-listoff")
    create_topic(broker.bootstrap, topic)
    # Timestamps rise with offsets except offset 7, which carries the maximum.
    p = ck_producer(broker.bootstrap, **{"linger.ms": 0})
    ts = [BASE_TS_MS + 1000 * i for i in range(10)]
    ts[7] = BASE_TS_MS + 1_000_000
    for i, t in enumerate(ts):
        produce_all(p, topic, [{"value": f"m{i}".encode(), "timestamp": t}])
    admin = ck_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)

    def offset_for(spec):
        return admin.list_offsets({tp: spec})[tp].result(ADMIN_TIMEOUT_S)

    assert offset_for(OffsetSpec.earliest()).offset == 0
    assert offset_for(OffsetSpec.latest()).offset == 10
    r = offset_for(OffsetSpec.for_timestamp(BASE_TS_MS + 2500))
    assert (r.offset, r.timestamp) == (3, BASE_TS_MS + 3000)
    assert offset_for(OffsetSpec.for_timestamp(BASE_TS_MS)).offset == 0
    # Past the largest timestamp: -1 (no such offset).
    assert offset_for(OffsetSpec.for_timestamp(BASE_TS_MS + 2_000_000)).offset == -1
    r = offset_for(OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (7, BASE_TS_MS + 1_000_000)


def test_offsets_for_times_consumer(broker):
    topic = unique_topic("ck-oft")
    create_topic(broker.bootstrap, topic)
    produce_timestamped(broker.bootstrap, topic, 10, BASE_TS_MS)
    c = ck_consumer(broker.bootstrap)
    try:
        res = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS_MS + 4000)], timeout=10)
        assert res[0].offset == 4
        res = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS_MS + 4001)], timeout=10)
        assert res[0].offset == 5
        res = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS_MS + 10_000_000)], timeout=10)
        assert res[0].offset == -1
        # Seek to the offset found and read from there.
        res = c.offsets_for_times([TopicPartition(topic, 0, BASE_TS_MS + 8000)], timeout=10)
        c.assign(res)
        m = wait_for(lambda: c.poll(0.5), 30, "message at the offset for a timestamp")
        assert (m.offset(), m.value()) == (8, b"ts8")
    finally:
        c.close()


def test_delete_records(broker):
    topic = unique_topic("ck-delrec")
    create_topic(broker.bootstrap, topic)
    produce_all(ck_producer(broker.bootstrap), topic, [{"value": str(i).encode()} for i in range(20)])
    admin = ck_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0, 5)
    res = admin.delete_records([tp])[tp].result(ADMIN_TIMEOUT_S)
    assert res.low_watermark == 5
    assert watermarks(broker.bootstrap, topic) == (5, 20)
    tp0 = TopicPartition(topic, 0)
    assert admin.list_offsets({tp0: OffsetSpec.earliest()})[tp0].result(ADMIN_TIMEOUT_S).offset == 5
    got = consume(broker.bootstrap, topic, 3, offset=OFFSET_BEGINNING)
    assert [m.offset() for m in got] == [5, 6, 7]

    # Offset -1 means "up to the high watermark".
    tp = TopicPartition(topic, 0, -1)
    assert admin.delete_records([tp])[tp].result(ADMIN_TIMEOUT_S).low_watermark == 20
    # Beyond the high watermark: OFFSET_OUT_OF_RANGE.
    tp = TopicPartition(topic, 0, 50)
    with pytest.raises(KafkaException) as ei:
        admin.delete_records([tp])[tp].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.OFFSET_OUT_OF_RANGE


# ---------------------------------------------------------------- topic configs that change broker behaviour


def test_log_append_time_topic(broker):
    # message.timestamp.type=LogAppendTime: the broker stamps each batch with
    # its own clock and consumers see TIMESTAMP_LOG_APPEND_TIME.
    topic = unique_topic("ck-lat")
    create_topic(broker.bootstrap, topic, config={"message.timestamp.type": "LogAppendTime"})
    given = 1_000_000_000_000  # 2001: far from the broker's clock
    produce_all(ck_producer(broker.bootstrap), topic,
                [{"value": f"lat{i}".encode(), "timestamp": given + i} for i in range(3)])
    got = consume(broker.bootstrap, topic, 3)
    for m in got:
        ts_type, ts = m.timestamp()
        assert ts_type == TIMESTAMP_LOG_APPEND_TIME, m.timestamp()
        assert ts > given + 10**11, f"LogAppendTime {ts} looks like the producer's CreateTime"


def test_min_insync_replicas_not_met(broker):
    # One broker, replication factor 1: ISR size 1 < min.insync.replicas=2,
    # so acks=all is refused with NOT_ENOUGH_REPLICAS while acks=1 works.
    topic = unique_topic("ck-minisr")
    create_topic(broker.bootstrap, topic, config={"min.insync.replicas": "2"})
    p = ck_producer(broker.bootstrap, acks="all", retries=0, **{"message.timeout.ms": 10000})
    errors = []
    p.produce(topic, value=b"needs two replicas", on_delivery=lambda err, msg: errors.append(err))
    assert p.flush(30) == 0
    assert errors and errors[0] is not None
    assert errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, errors[0]
    delivered = produce_all(ck_producer(broker.bootstrap, acks="1"), topic, [{"value": b"one is enough"}])
    assert delivered[0].offset() == 0


def test_create_topic_replication_factor_too_large(broker):
    admin = ck_admin(broker.bootstrap)
    topic = unique_topic("ck-rf3")
    with pytest.raises(KafkaException) as ei:
        admin.create_topics([NewTopic(topic, 1, 3)])[topic].result(ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.INVALID_REPLICATION_FACTOR, ei.value


def test_create_topic_with_replica_assignment(broker):
    admin = ck_admin(broker.bootstrap)
    topic = unique_topic("ck-assign")
    admin.create_topics([NewTopic(topic, num_partitions=2, replica_assignment=[[1], [1]])])[topic].result(
        ADMIN_TIMEOUT_S)
    wait_topic_ready(broker.bootstrap, topic, 2)
    bad = unique_topic("ck-badassign")
    with pytest.raises(KafkaException) as ei:
        admin.create_topics([NewTopic(bad, num_partitions=1, replica_assignment=[[7]])])[bad].result(
            ADMIN_TIMEOUT_S)
    assert error_code(ei.value) == KafkaError.INVALID_REPLICA_ASSIGNMENT, ei.value



# ---------------------------------------------------------------- fetch shapes


def test_fetch_limits_smaller_than_a_batch(broker):
    # KIP-74: a fetch returns at least the first batch even when it is larger
    # than fetch.max.bytes / max.partition.fetch.bytes, so consumers with small
    # limits still make progress.
    topic = unique_topic("ck-smallfetch")
    create_topic(broker.bootstrap, topic)
    values = [bytes([65 + i]) * 50_000 for i in range(8)]
    produce_all(ck_producer(broker.bootstrap, **{"linger.ms": 0, "compression.type": "none"}), topic,
                [{"value": v} for v in values])
    got = consume(broker.bootstrap, topic, len(values),
                  **{"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024, "message.max.bytes": 1000,
                     "receive.message.max.bytes": 1_000_000})
    assert [m.value() for m in got] == values


def test_fetch_from_the_middle_of_a_compressed_batch(broker):
    # The broker returns whole batches; the client drops the records before
    # the offset it asked for.
    topic = unique_topic("ck-midbatch")
    create_topic(broker.bootstrap, topic)
    p = ck_producer(broker.bootstrap, **{"linger.ms": 100, "compression.type": "zstd",
                                        "batch.num.messages": 1000})
    produce_all(p, topic, [{"value": f"mid{i}".encode()} for i in range(100)])
    got = consume(broker.bootstrap, topic, 5, offset=57)
    assert [(m.offset(), m.value()) for m in got] == [(57 + i, f"mid{57 + i}".encode()) for i in range(5)]


def test_empty_partition_offsets(broker):
    topic = unique_topic("ck-empty")
    create_topic(broker.bootstrap, topic)
    admin = ck_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)

    def offset_for(spec):
        return admin.list_offsets({tp: spec})[tp].result(ADMIN_TIMEOUT_S).offset

    assert offset_for(OffsetSpec.earliest()) == 0
    assert offset_for(OffsetSpec.latest()) == 0
    assert offset_for(OffsetSpec.for_timestamp(BASE_TS_MS)) == -1
    assert offset_for(OffsetSpec.max_timestamp()) == -1
    assert watermarks(broker.bootstrap, topic) == (0, 0)


def test_many_segments(broker):
    # segment.bytes at Kafka's minimum (1 MiB) and ~3.5 MiB of data: reads
    # cross segment boundaries, and timestamp lookups find the right segment.
    topic = unique_topic("ck-segments")
    create_topic(broker.bootstrap, topic, config={"segment.bytes": "1048576"})
    p = ck_producer(broker.bootstrap, **{"linger.ms": 5, "compression.type": "none"})
    values = [f"seg{i:05d}".encode() + b"s" * 1000 for i in range(3500)]
    produce_all(p, topic, [{"value": v, "timestamp": BASE_TS_MS + i} for i, v in enumerate(values)])
    got = consume(broker.bootstrap, topic, len(values), timeout_s=60)
    assert [m.value() for m in got] == values
    admin = ck_admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)
    for i in (0, 1500, 3499):
        r = admin.list_offsets({tp: OffsetSpec.for_timestamp(BASE_TS_MS + i)})[tp].result(ADMIN_TIMEOUT_S)
        assert r.offset == i
    segments = sorted((broker.data_dir / f"{topic}-0").glob("*.log"))
    assert len(segments) >= 3, f"expected at least 3 segments, found {[s.name for s in segments]}"


def test_concurrent_producers_one_partition(broker):
    # Several producers (separate connections) append to one partition at
    # once: every message lands exactly once and offsets have no gaps.
    import threading
    topic = unique_topic("ck-concurrent")
    create_topic(broker.bootstrap, topic)
    per_producer, producers = 3000, 4
    errors = []

    def run(n):
        try:
            produce_all(ck_producer(broker.bootstrap, **{"linger.ms": 1, "acks": "all"}), topic,
                        [{"value": f"w{n}-{i}".encode()} for i in range(per_producer)], timeout_s=60)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    total = per_producer * producers
    assert watermarks(broker.bootstrap, topic) == (0, total)
    got = consume(broker.bootstrap, topic, total, timeout_s=60)
    assert [m.offset() for m in got] == list(range(total))
    assert sorted(m.value() for m in got) == sorted(f"w{n}-{i}".encode() for n in range(producers)
                                                    for i in range(per_producer))
    # Each producer's own messages keep their order (one partition, in-order acks).
    for n in range(producers):
        mine = [m.value() for m in got if m.value().startswith(f"w{n}-".encode())]
        assert mine == [f"w{n}-{i}".encode() for i in range(per_producer)]


def test_null_header_values_and_empty_keys(broker):
    topic = unique_topic("ck-nullhdr")
    create_topic(broker.bootstrap, topic)
    produce_all(ck_producer(broker.bootstrap), topic, [
        {"key": b"", "value": b"v", "headers": [("null", None), ("empty", b""), ("x", b"1")]},
        {"key": b"k", "value": None},
    ])
    got = consume(broker.bootstrap, topic, 2)
    assert got[0].key() == b""
    assert got[0].headers() == [("null", None), ("empty", b""), ("x", b"1")]
    assert got[1].value() is None
