"""Consumer groups with kafka-python (its own group protocol code) against Riffle.

kafka-python negotiates its own versions of JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, OffsetCommit and OffsetFetch and runs its own assignor, so it
checks the coordinator along other code paths than librdkafka. The rule is
the same as in test_groups_confluent.py: after every membership change (join,
LeaveGroup, and a member killed with SIGKILL whose session times out), once
the group is Stable, each partition has exactly one owner, and with
auto-commit no message below a committed offset was skipped.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest
from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka import TopicPartition as KpTopicPartition
from kafka import OffsetAndMetadata
from kafka import errors as kerrors

from helpers import (GROUP_FAST_OVERRIDES, GROUP_SESSION_TIMEOUT_MS, ProducerLoop,
                     assert_no_committed_message_skipped, ck_admin, committed_offsets, create_topic, describe_group,
                     end_offsets, unique_topic, wait_group_settled, wait_until)

PARTITIONS = 6


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(*GROUP_FAST_OVERRIDES)


@pytest.fixture
def kp_members():
    """Start KpGroupMembers; any still polling when the test ends are stopped."""
    started: list[KpGroupMember] = []

    def start(*args, **kwargs) -> KpGroupMember:
        m = KpGroupMember(*args, **kwargs)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop_quietly()


class KpGroupMember(ConsumerRebalanceListener):
    """A kafka-python KafkaConsumer in a group, polling in its own thread.

    The consumer is only touched from that thread; the test reads what it
    recorded: rebalance callbacks, the consumer's assignment() after each
    poll, and every record.
    """

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, **extra):
        self.name = name
        self.conf = dict(bootstrap_servers=bootstrap, group_id=group, client_id=name,
                         enable_auto_commit=True, auto_commit_interval_ms=500, auto_offset_reset="earliest",
                         session_timeout_ms=GROUP_SESSION_TIMEOUT_MS, heartbeat_interval_ms=500)
        self.conf.update(extra)
        self.topic = topic
        self._lock = threading.Lock()
        self.events: list[tuple[str, set]] = []
        self.records: list[tuple[int, int, str]] = []
        self.assignment: set = set()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kp-{name}", daemon=True)
        self._thread.start()

    def on_partitions_revoked(self, revoked):
        with self._lock:
            self.events.append(("revoke", {(tp.topic, tp.partition) for tp in revoked}))

    def on_partitions_assigned(self, assigned):
        with self._lock:
            self.events.append(("assign", {(tp.topic, tp.partition) for tp in assigned}))

    def _run(self):
        try:
            consumer = KafkaConsumer(**self.conf)
            try:
                consumer.subscribe([self.topic], listener=self)
                while not self._stop.is_set():
                    batches = consumer.poll(timeout_ms=200)
                    with self._lock:
                        for records in batches.values():
                            self.records.extend((r.partition, r.offset, r.value.decode()) for r in records)
                        self.assignment = {(tp.topic, tp.partition) for tp in consumer.assignment()}
            finally:
                consumer.close()
        except BaseException as e:  # noqa: BLE001 - surfaced by close() and views()
            self.error = e

    def views(self) -> tuple[set, set]:
        assert self.error is None, f"{self.name} failed: {self.error!r}"
        owned: set = set()
        with self._lock:
            for kind, parts in self.events:
                owned = owned | parts if kind == "assign" else owned - parts
            return owned, set(self.assignment)

    def consumed(self) -> list[tuple[int, int, str]]:
        with self._lock:
            return list(self.records)

    def stop_quietly(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def close(self) -> None:
        """KafkaConsumer.close(): a final auto-commit, then LeaveGroup."""
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), f"{self.name} did not close within 60 s"
        assert self.error is None, f"{self.name} failed: {self.error!r}"


# A kafka-python member in its own process, so that it can crash (SIGKILL):
# it prints its assignment as a JSON line whenever it changes and never
# commits, so what it read does not count towards the committed offsets.
CRASH_MEMBER_SCRIPT = """
import json, sys
from kafka import KafkaConsumer
bootstrap, group, topic, name, session = sys.argv[1:6]
c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, client_id=name, enable_auto_commit=False,
                  auto_offset_reset="earliest", session_timeout_ms=int(session), heartbeat_interval_ms=500)
c.subscribe([topic])
last = None
while True:
    c.poll(timeout_ms=200)
    now = sorted([tp.topic, tp.partition] for tp in c.assignment())
    if now != last:
        print(json.dumps(now), flush=True)
        last = now
"""


class KpCrashMember:
    """A kafka-python group member in a subprocess, killed with SIGKILL so
    that only its session timeout removes it from the group."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CRASH_MEMBER_SCRIPT, bootstrap, group, topic, name,
             str(GROUP_SESSION_TIMEOUT_MS)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._lock = threading.Lock()
        self._assignment: set = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = {(t, p) for t, p in json.loads(line)}
            with self._lock:
                self._assignment = parts

    def views(self) -> tuple[set, set]:
        assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}"
        with self._lock:
            return set(self._assignment), set(self._assignment)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def test_kafka_python_group_membership_changes(group_broker, kp_members):
    b = group_broker
    topic = unique_topic("grp-kp")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic("grp-kp")
    admin = ck_admin(b.bootstrap)
    everyone: list[KpGroupMember] = []

    def join(name):
        m = kp_members(name, b.bootstrap, group, topic)
        everyone.append(m)
        return m

    def settled(live, what):
        wait_group_settled(admin, group, topic, PARTITIONS, live, what=what)
        # And each live member goes on reading (the producer never pauses).
        before = {m.name: len(m.consumed()) for m in live}
        wait_until(lambda: (all(len(m.consumed()) > before[m.name] for m in live),
                            {m.name: len(m.consumed()) - before[m.name] for m in live}),
                   60, f"every live member to read new messages {what}")

    producer = ProducerLoop(b.bootstrap, topic, PARTITIONS)
    try:
        k1 = join("k1")
        settled([k1], "after k1 joined")
        k2 = join("k2")
        settled([k1, k2], "after k2 joined")
        k3 = join("k3")
        settled([k1, k2, k3], "after k3 joined")
        # kafka-python's default assignors are range, then roundrobin.
        assert describe_group(admin, group).partition_assignor == "range"
        k1.close()
        settled([k2, k3], "after k1 closed (LeaveGroup)")
        k4 = KpCrashMember("k4", b.bootstrap, group, topic)
        try:
            wait_group_settled(admin, group, topic, PARTITIONS, [k2, k3, k4], what="after k4 joined")
        finally:
            k4.kill()
        settled([k2, k3], "after k4 was killed (its session timed out)")
    finally:
        produced = producer.stop()

    ends = end_offsets(b.bootstrap, topic, PARTITIONS)
    assert sum(ends.values()) == len(produced)

    def committed_to_end():
        got = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, PARTITIONS).items()}
        return got == ends, f"committed {got}, ends {ends}"

    wait_until(committed_to_end, 60, "auto-commits to reach the end of every partition")
    k2.close()
    k3.close()

    offsets: dict[int, set[int]] = {}
    values = {}
    for m in everyone:
        for p, o, v in m.consumed():
            offsets.setdefault(p, set()).add(o)
            values[(p, o)] = v
    final = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, PARTITIONS).items()}
    assert final == ends
    assert_no_committed_message_skipped(final, offsets, produced, values)


def test_kafka_python_commit_metadata_round_trip(group_broker):
    """OffsetCommit/OffsetFetch at kafka-python's versions keep metadata and leader epoch."""
    b = group_broker
    topic = unique_topic("grp-kp-meta")
    create_topic(b.bootstrap, topic, partitions=2)
    group = unique_topic("grp-kp-meta")
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tp0, tp1 = KpTopicPartition(topic, 0), KpTopicPartition(topic, 1)
        c.commit({tp0: OffsetAndMetadata(3, "kafka-python ✓", 0), tp1: OffsetAndMetadata(0, "", -1)})
        got0 = c.committed(tp0, metadata=True)
        assert (got0.offset, got0.metadata, got0.leader_epoch) == (3, "kafka-python ✓", 0)
        got1 = c.committed(tp1, metadata=True)
        assert (got1.offset, got1.metadata) == (0, "")
        assert got1.leader_epoch in (None, -1)

        # offset.metadata.max.bytes (4096): at the limit is accepted, one byte
        # more is OFFSET_METADATA_TOO_LARGE and leaves the last commit in place.
        c.commit({tp1: OffsetAndMetadata(5, "m" * 4096, -1)})
        assert c.committed(tp1, metadata=True).metadata == "m" * 4096
        with pytest.raises(kerrors.OffsetMetadataTooLargeError):
            c.commit({tp1: OffsetAndMetadata(6, "m" * 4097, -1)})
        assert c.committed(tp1, metadata=True)[:2] == (5, "m" * 4096)
    finally:
        c.close()
