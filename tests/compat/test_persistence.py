"""What a client wrote survives a broker restart: clean (SIGTERM) and crash (SIGKILL)."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import ConfigResource, NewPartitions, ResourceType

from helpers import (ADMIN_TIMEOUT_S, ck_admin, ck_producer, consume, create_topic, produce_all,
                     topic_partitions, unique_topic, wait_topic_ready, watermarks)


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

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            failed.append(err)

    p = ck_producer(b.bootstrap, **{
        "acks": "all", "linger.ms": 2, "batch.num.messages": 50,
        "message.timeout.ms": 20000, "retry.backoff.ms": 200,
        "reconnect.backoff.max.ms": 500,
    })
    kill_after_acks = 3000
    sent = 0
    deadline = time.monotonic() + 60
    # Produce until enough acknowledgements arrived (bounded in count and time),
    # then kill the broker with messages still in flight.
    while len(acked) < kill_after_acks and sent < 200_000 and time.monotonic() < deadline:
        try:
            p.produce(topic, value=f"crash-{sent:07d}".encode(), partition=sent % 2, on_delivery=on_delivery)
            sent += 1
        except BufferError:
            p.poll(0.05)
        p.poll(0)
    assert len(acked) >= kill_after_acks, f"only {len(acked)} acks before the deadline"
    for _ in range(200):  # keep a stream going right up to the kill
        p.produce(topic, value=f"crash-{sent:07d}".encode(), partition=sent % 2, on_delivery=on_delivery)
        sent += 1
    p.poll(0)
    b.kill()
    acked_at_kill = len(acked)
    p.poll(0.5)  # collect callbacks for responses already received

    b.start()
    # Whatever was still queued is delivered to the restarted broker or times out.
    p.flush(60)
    assert all(e.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT, KafkaError.REQUEST_TIMED_OUT,
                            KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
               for e in failed), failed[:5]

    for part in (0, 1):
        mine = {off: v for (pt, off), v in acked.items() if pt == part}
        if not mine:
            continue
        low, high = watermarks(b.bootstrap, topic, part)
        assert low == 0
        assert high > max(mine), f"partition {part}: high watermark {high} but offset {max(mine)} was acked"
        got = consume(b.bootstrap, topic, high, partition=part, offset=0, timeout_s=60)
        on_disk = {m.offset(): m.value() for m in got}
        missing = [off for off in mine if on_disk.get(off) != mine[off]]
        assert not missing, (f"partition {part}: {len(missing)} acknowledged messages lost or changed "
                             f"(first offsets {sorted(missing)[:10]}); {acked_at_kill} acked at kill")
