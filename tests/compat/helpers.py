"""Client-side helpers shared by the compatibility tests.

Every wait is bounded and says what it was waiting for when it gives up.
Consumers never join a group (Riffle has no group coordinator yet): they use
assign() with explicit start offsets and enable.auto.commit=false.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
COMPAT_DIR = Path(__file__).resolve().parent

ADMIN_TIMEOUT_S = 30.0
CONSUME_TIMEOUT_S = 30.0


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    """Poll predicate() until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout_s
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported below if the wait fails
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{detail}")
        time.sleep(interval_s)


# ---------------------------------------------------------------- confluent-kafka


# librdkafka's own log lines go through Python logging: pytest shows them with
# a failing test ("Captured log"), and clients that outlive the brokers at the
# end of the session do not spray connection errors over the summary.
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())


def ck_conf(bootstrap: str, **extra) -> dict:
    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", "logger": LIBRDKAFKA_LOG}
    conf.update(extra)
    return conf


def ck_admin(bootstrap: str, **extra) -> AdminClient:
    return AdminClient(ck_conf(bootstrap, **extra))


def topic_partitions(admin: AdminClient, topic: str) -> dict | None:
    """{partition_id: leader} for a topic, or None when metadata does not show it.

    Asks for all topics: a Metadata request that names the topic would let the
    broker auto-create it (librdkafka's admin client allows auto-creation),
    which is exactly what a "does it exist?" check must not do.
    """
    md = admin.list_topics(timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return {p.id: p.leader for p in t.partitions.values()}


def wait_topic_ready(bootstrap: str, topic: str, partitions: int, timeout_s: float = ADMIN_TIMEOUT_S) -> None:
    admin = ck_admin(bootstrap)

    def ready():
        parts = topic_partitions(admin, topic)
        return parts is not None and len(parts) == partitions and all(l >= 0 for l in parts.values())

    wait_for(ready, timeout_s, f"topic {topic} with {partitions} led partitions in metadata")


def create_topic(bootstrap: str, topic: str, partitions: int = 1, config: dict | None = None) -> None:
    admin = ck_admin(bootstrap)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=ADMIN_TIMEOUT_S)
    futures[topic].result(ADMIN_TIMEOUT_S)
    wait_topic_ready(bootstrap, topic, partitions)


def ck_producer(bootstrap: str, **extra) -> Producer:
    conf = ck_conf(bootstrap, **{"linger.ms": 5, "enable.idempotence": False})
    conf.update(extra)
    return Producer(conf)


def produce_all(producer: Producer, topic: str, messages: list[dict], timeout_s: float = 30.0) -> list:
    """Produce messages (dicts of produce() kwargs) and return the delivered Message objects.

    Raises if any delivery fails or the flush does not finish in time.
    """
    delivered, failed = [], []

    def on_delivery(err, msg):
        (failed if err is not None else delivered).append((err, msg))

    for m in messages:
        producer.produce(topic, on_delivery=on_delivery, **m)
        producer.poll(0)
    remaining = producer.flush(timeout_s)
    if failed:
        raise AssertionError(f"{len(failed)} deliveries failed, first: {failed[0][0]}")
    if remaining:
        raise AssertionError(f"{remaining} messages still undelivered after {timeout_s}s")
    return [msg for _, msg in delivered]


def ck_consumer(bootstrap: str, **extra) -> Consumer:
    # confluent-kafka insists on a group.id even for assign(); with explicit
    # offsets and no commits the group coordinator is never needed.
    conf = ck_conf(bootstrap, **{
        "group.id": f"compat-unused-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
    })
    conf.update(extra)
    return Consumer(conf)


def consume(bootstrap: str, topic: str, count: int, partition: int = 0, offset: int = 0,
            timeout_s: float = CONSUME_TIMEOUT_S, **extra) -> list:
    """Read exactly `count` messages from one partition starting at `offset` (assign, no group)."""
    c = ck_consumer(bootstrap, **extra)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"consumed {len(out)} of {count} messages from {topic}[{partition}]@{offset} in {timeout_s}s")
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            out.append(msg)
        return out
    finally:
        c.close()


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    c = ck_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


# ---------------------------------------------------------------- subprocesses


def run(cmd: list[str], timeout_s: float = 60.0, env: dict | None = None, input: bytes | None = None,
        cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, capture_output=True, timeout=timeout_s, env=full_env, input=input,
                       cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(
            f"command failed with {p.returncode}: {' '.join(map(str, cmd))}\n"
            f"--- stdout\n{p.stdout.decode(errors='replace')[-8000:]}\n"
            f"--- stderr\n{p.stderr.decode(errors='replace')[-8000:]}")
    return p


def kcat_bin() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        raise AssertionError("kcat is not installed (scripts/compat-test installs it)")
    return path


def kcat(bootstrap: str, *args: str, input: bytes | None = None, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return run([kcat_bin(), "-b", bootstrap, "-X", "broker.address.family=v4", *args],
               input=input, timeout_s=timeout_s)


def kcat_consume_json(bootstrap: str, topic: str, partition: int | None = None, *extra: str) -> list[dict]:
    """Everything in a topic (or one partition) from the beginning, via kcat -C -J -e."""
    args = ["-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"]
    if partition is not None:
        args += ["-p", str(partition)]
    out = kcat(bootstrap, *args, *extra).stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]
