"""kcat's balanced consumer (-G, librdkafka's KafkaConsumer) in a Riffle consumer group.

Two kcat processes in one group split a topic's partitions; when they are
stopped (SIGTERM: kcat closes its consumer, which commits and leaves), the
committed offsets are what they read, visible to the admin API, and a new
consumer of the group resumes there.
"""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException

from helpers import (GROUP_FAST_OVERRIDES, GROUP_SESSION_TIMEOUT_MS, ck_admin, ck_conf, ck_producer,
                     committed_offsets, create_topic, describe_group, described_assignment, end_offsets, kcat_bin,
                     produce_all, unique_topic, wait_until)

PARTITIONS = 6


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(*GROUP_FAST_OVERRIDES)


class KcatMember:
    """`kcat -G group topic` printing "partition offset value" per message."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, log_path):
        self.name = name
        self.lines: list[tuple[int, int, str]] = []
        self._lock = threading.Lock()
        self.log_path = log_path
        cmd = [kcat_bin(), "-b", bootstrap, "-X", "broker.address.family=v4", "-G", group,
               "-X", f"client.id={name}", "-X", "auto.offset.reset=earliest",
               "-X", f"session.timeout.ms={GROUP_SESSION_TIMEOUT_MS}", "-X", "heartbeat.interval.ms=500",
               "-X", "auto.commit.interval.ms=500", "-u", "-f", "%p %o %s\\n", topic]
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if not line:
                continue
            p, o, value = line.split(" ", 2)
            with self._lock:
                self.lines.append((int(p), int(o), value))

    def consumed(self) -> list[tuple[int, int, str]]:
        with self._lock:
            return list(self.lines)

    def stop(self) -> int:
        """SIGTERM: kcat leaves its loop, commits and closes the consumer."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self._reader.join(10)
        return rc

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def test_kcat_balanced_consumers_split_partitions_and_commit(group_broker, tmp_path):
    b = group_broker
    topic = unique_topic("grp-kcat")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic("grp-kcat")
    admin = ck_admin(b.bootstrap)
    all_parts = [(topic, p) for p in range(PARTITIONS)]

    def settled(names):
        def check():
            d = describe_group(admin, group)
            by_client = described_assignment(d)
            owned = sorted(p for parts in by_client.values() for p in parts)
            ok = (d.state == ConsumerGroupState.STABLE and len(d.members) == len(names)
                  and sorted(by_client) == sorted(names) and owned == all_parts)
            return ok, (by_client if ok else f"state {d.state}, assignment {by_client}")
        return wait_until(check, 60, f"kcat group to settle with {names}")

    kcats = []
    try:
        k1 = KcatMember("k1", b.bootstrap, group, topic, tmp_path / "k1.log")
        kcats.append(k1)
        settled(["k1"])
        k2 = KcatMember("k2", b.bootstrap, group, topic, tmp_path / "k2.log")
        kcats.append(k2)
        assignment = settled(["k1", "k2"])
        assert all(assignment[k] for k in ("k1", "k2")), f"one kcat got nothing: {assignment}"

        produce_all(ck_producer(b.bootstrap), topic,
                    [{"value": f"p{p}-{i}".encode(), "partition": p} for i in range(20) for p in range(PARTITIONS)])
        ends = end_offsets(b.bootstrap, topic, PARTITIONS)

        def all_read():
            got = {}
            for k in kcats:
                for p, o, _ in k.consumed():
                    got.setdefault(p, set()).add(o)
            missing = {p: sorted(set(range(ends[p])) - got.get(p, set()))[:5] for p in ends}
            return not any(missing.values()), f"missing {missing}"

        wait_until(all_read, 60, "the two kcats to read every message")
        # Each kcat read exactly the partitions the coordinator gave it.
        for k in kcats:
            read = sorted({(topic, p) for p, _, _ in k.consumed()})
            assert read == assignment[k.name], f"{k.name} read {read}, assigned {assignment[k.name]}"
            for p, o, v in k.consumed():
                assert v == f"p{p}-{o}", (k.name, p, o, v)

        for k in kcats:
            rc = k.stop()
            assert rc == 0, f"{k.name} exited with {rc}:\n{k.log_tail()}"
    finally:
        for k in kcats:
            if k.proc.poll() is None:
                k.proc.kill()

    committed = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, PARTITIONS).items()}
    assert committed == ends
    assert describe_group(admin, group).state == ConsumerGroupState.EMPTY

    # A new consumer in the group starts after what the kcats committed.
    produce_all(ck_producer(b.bootstrap), topic, [{"value": b"new", "partition": p} for p in range(PARTITIONS)])
    c = Consumer(ck_conf(b.bootstrap, **{"group.id": group, "auto.offset.reset": "earliest",
                                         "enable.auto.commit": False}))
    try:
        c.subscribe([topic])
        firsts = {}

        def poll_first():
            msg = c.poll(0.5)
            if msg is not None:
                if msg.error():
                    raise KafkaException(msg.error())
                firsts.setdefault(msg.partition(), (msg.offset(), msg.value()))
            return len(firsts) == PARTITIONS, firsts

        wait_until(poll_first, 60, "a message from every partition", interval_s=0)
        assert firsts == {p: (ends[p], b"new") for p in range(PARTITIONS)}
    finally:
        c.close()
