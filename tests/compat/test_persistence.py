"""What a client wrote survives a broker restart: clean (SIGTERM) and crash (SIGKILL)."""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic,
                                   ResourceType)

from helpers import (ADMIN_TIMEOUT_S, ck_admin, ck_consumer, ck_producer, consume, create_topic, produce_all,
                     topic_partitions, unique_topic, wait_for, wait_topic_ready, watermarks)


def test_clean_restart_keeps_topics_configs_and_data(broker_factory):
    b = broker_factory()
    topic = unique_topic("persist")
    deleted = unique_topic("persist-deleted")
    create_topic(b.bootstrap, topic, partitions=2, config={"retention.ms": "86400000", "cleanup.policy": "delete"})
    create_topic(b.bootstrap, deleted)
    admin = ck_admin(b.bootstrap)
    admin.create_partitions([NewPartitions(topic, 3)])[topic].result(ADMIN_TIMEOUT_S)
    wait_topic_ready(b.bootstrap, topic, 3)
    admin.delete_topics([deleted])[deleted].result(ADMIN_TIMEOUT_S)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(ADMIN_TIMEOUT_S)

    p = ck_producer(b.bootstrap, **{"compression.type": "lz4"})
    sent = {part: [f"p{part}-m{i}".encode() for i in range(100)] for part in range(3)}
    for part, values in sent.items():
        produce_all(p, topic, [{"value": v, "key": str(i).encode(), "partition": part,
                                "headers": [("n", str(i).encode())], "timestamp": 1_000_000 + i}
                               for i, v in enumerate(values)])
    tp = TopicPartition(topic, 0, 10)
    admin.delete_records([tp])[tp].result(ADMIN_TIMEOUT_S)

    rc = b.stop()
    assert rc == 0, f"SIGTERM must shut down cleanly (exit 0), got {rc}"
    b.start()

    wait_topic_ready(b.bootstrap, topic, 3)
    assert topic_partitions(ck_admin(b.bootstrap), deleted) is None, "deleted topic came back"
    res = ConfigResource(ResourceType.TOPIC, topic)
    admin = ck_admin(b.bootstrap)
    configs = admin.describe_configs([res])[res].result(ADMIN_TIMEOUT_S)
    assert configs["retention.ms"].value == "86400000"
    assert configs["segment.ms"].value == "3600000"
    assert not configs["retention.ms"].is_default

    assert watermarks(b.bootstrap, topic, 0) == (10, 100)
    for part, values in sent.items():
        start = 10 if part == 0 else 0
        got = consume(b.bootstrap, topic, len(values) - start, partition=part, offset=start)
        assert [m.value() for m in got] == values[start:]
        assert [m.headers() for m in got] == [[("n", str(i).encode())] for i in range(start, 100)]
        assert [m.timestamp()[1] for m in got] == [1_000_000 + i for i in range(start, 100)]
        assert watermarks(b.bootstrap, topic, part)[1] == 100

    # Appends continue at the right offset after the restart.
    d = produce_all(ck_producer(b.bootstrap), topic, [{"value": b"after restart", "partition": 1}])
    assert d[0].offset() == 100

    # And a second clean restart reads what the first restart's process wrote.
    assert b.restart() == 0
    assert consume(b.bootstrap, topic, 1, partition=1, offset=100)[0].value() == b"after restart"


def test_kill9_during_acks_all_stream_loses_no_acknowledged_message(broker_factory):
    b = broker_factory()
    topic = unique_topic("crash")
    create_topic(b.bootstrap, topic, partitions=2)

    acked: dict[tuple[int, int], bytes] = {}
    failed = []
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            if err is None:
                acked[(msg.partition(), msg.offset())] = msg.value()
            else:
                failed.append(err)

    p = ck_producer(b.bootstrap, **{
        "acks": "all", "linger.ms": 2, "batch.num.messages": 100,
        "message.timeout.ms": 30000, "retry.backoff.ms": 200,
        "reconnect.backoff.max.ms": 500, "queue.buffering.max.messages": 20000,
    })
    stop = threading.Event()
    sent = [0]

    def stream():
        # Bounded in count; stops when told to.
        while not stop.is_set() and sent[0] < 300_000:
            try:
                p.produce(topic, value=f"crash-{sent[0]:07d}".encode(), partition=sent[0] % 2,
                          on_delivery=on_delivery)
                sent[0] += 1
            except BufferError:
                p.poll(0.05)
            p.poll(0)

    producer_thread = threading.Thread(target=stream, daemon=True)
    producer_thread.start()
    try:
        # Kill the broker while the stream is running, once enough acks came back.
        kill_after_acks = 20_000
        wait_for(lambda: len(acked) >= kill_after_acks, 60, f"{kill_after_acks} acknowledgements")
        b.kill()
        with lock:
            acked_at_kill = len(acked)
        b.start()
        # Let the stream go on against the restarted broker for a moment.
        wait_for(lambda: len(acked) > acked_at_kill + 1000, 60, "acknowledgements after the restart")
    finally:
        stop.set()
        producer_thread.join(30)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} messages neither delivered nor failed"
    assert all(e.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT, KafkaError.REQUEST_TIMED_OUT,
                            KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
               for e in failed), failed[:5]
    print(f"sent {sent[0]}, acked {len(acked)} ({acked_at_kill} before the kill), failed {len(failed)}")

    for part in (0, 1):
        mine = {off: v for (pt, off), v in acked.items() if pt == part}
        low, high = watermarks(b.bootstrap, topic, part)
        assert low == 0
        assert high > max(mine), f"partition {part}: high watermark {high} but offset {max(mine)} was acked"
        got = consume(b.bootstrap, topic, high, partition=part, offset=0, timeout_s=120)
        assert [m.offset() for m in got] == list(range(high)), f"partition {part}: offsets not contiguous"
        on_disk = {m.offset(): m.value() for m in got}
        missing = [off for off in mine if on_disk.get(off) != mine[off]]
        assert not missing, (f"partition {part}: {len(missing)} acknowledged messages lost or changed "
                             f"(first offsets {sorted(missing)[:10]}); {acked_at_kill} acked at kill")


def test_consumer_keeps_reading_across_broker_restart(broker_factory):
    # An assigned consumer stays up while the broker restarts; it reconnects
    # (validating its position with OffsetForLeaderEpoch if the leader epoch
    # moved, KIP-320) and goes on with exactly the messages after its position.
    b = broker_factory()
    topic = unique_topic("restart-consumer")
    create_topic(b.bootstrap, topic)
    produce_all(ck_producer(b.bootstrap), topic, [{"value": f"before-{i}".encode()} for i in range(10)])
    c = ck_consumer(b.bootstrap, **{"reconnect.backoff.max.ms": 500})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        seen = []

        def read(n):
            def more():
                m = c.poll(0.5)
                if m is not None and not m.error():
                    seen.append((m.offset(), m.value()))
                return len(seen) >= n
            wait_for(more, 60, f"{n} messages")

        read(10)
        assert b.restart() == 0
        produce_all(ck_producer(b.bootstrap), topic, [{"value": f"after-{i}".encode()} for i in range(10)])
        read(20)
        assert seen == [(i, f"before-{i}".encode()) for i in range(10)] + \
            [(10 + i, f"after-{i}".encode()) for i in range(10)]
    finally:
        c.close()


def test_kill9_right_after_admin_operations_keeps_them(broker_factory):
    # An acknowledged CreateTopics / IncrementalAlterConfigs / CreatePartitions
    # / DeleteTopics is committed to the metadata log before the answer goes
    # out, so SIGKILL straight after them loses none.
    b = broker_factory()
    topic, doomed = unique_topic("crash-meta"), unique_topic("crash-meta-del")
    create_topic(b.bootstrap, doomed)
    admin = ck_admin(b.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1, config={"retention.ms": "5000000"})])[topic].result(ADMIN_TIMEOUT_S)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(ADMIN_TIMEOUT_S)
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(ADMIN_TIMEOUT_S)
    admin.delete_topics([doomed])[doomed].result(ADMIN_TIMEOUT_S)
    b.kill()
    b.start()

    wait_topic_ready(b.bootstrap, topic, 4)
    admin = ck_admin(b.bootstrap)
    assert topic_partitions(admin, doomed) is None
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(ADMIN_TIMEOUT_S)
    assert configs["retention.ms"].value == "5000000"
    assert configs["segment.ms"].value == "7200000"
    d = produce_all(ck_producer(b.bootstrap), topic, [{"value": b"p3", "partition": 3}])
    assert d[0].offset() == 0
