"""Consumer groups with kafkajs (its own protocol code and RoundRobinAssigner) against Riffle.

Each member is `node kafkajs/group_member.js`. Members join one by one, one
leaves (disconnect: commit and LeaveGroup); once the group is Stable after
each change every partition has one owner, and in the end the committed
offsets are at the end of the log with no committed message skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading

import pytest

from helpers import (COMPAT_DIR, GROUP_FAST_OVERRIDES, ProducerLoop, assert_no_committed_message_skipped, ck_admin,
                     committed_offsets, create_topic, describe_group, end_offsets, unique_topic, wait_group_settled,
                     wait_until)

KAFKAJS_DIR = COMPAT_DIR / "kafkajs"
PARTITIONS = 6


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(*GROUP_FAST_OVERRIDES)


class KafkajsMember:
    def __init__(self, name: str, bootstrap: str, group: str, topic: str, log_path):
        node = shutil.which("node")
        assert node, "node is not installed"
        assert (KAFKAJS_DIR / "node_modules" / "kafkajs").is_dir(), \
            "kafkajs is not installed: run `npm ci` in tests/compat/kafkajs (scripts/compat-test does)"
        self.name = name
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self.log_path = log_path
        env = dict(os.environ, BOOTSTRAP=bootstrap, GROUP=group, TOPIC=topic, NAME=name,
                   KAFKAJS_NO_PARTITIONER_WARNING="1")
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen([node, "group_member.js"], cwd=KAFKAJS_DIR, env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def _events(self, kind: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["event"] == kind]

    def views(self) -> tuple[set, set]:
        joins = self._events("join")
        owned = {tuple(p) for p in joins[-1]["assignment"]} if joins else set()
        return owned, owned

    def errors(self) -> list[dict]:
        return self._events("error")

    def consumed(self) -> list[tuple[int, int, str]]:
        return [(e["partition"], e["offset"], e["value"]) for e in self._events("message")]

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        self._reader.join(10)
        assert rc == 0 and self._events("closed"), \
            f"{self.name} exited with {rc}:\n{self.log_path.read_text(errors='replace')[-3000:]}"


def test_kafkajs_group_membership_changes(group_broker, tmp_path):
    b = group_broker
    topic = unique_topic("grp-kjs")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic("grp-kjs")
    admin = ck_admin(b.bootstrap)
    everyone: list[KafkajsMember] = []

    def join(name):
        m = KafkajsMember(name, b.bootstrap, group, topic, tmp_path / f"{name}.log")
        everyone.append(m)
        return m

    def settled(live, what):
        wait_group_settled(admin, group, topic, PARTITIONS, live, what=what)
        before = {m.name: len(m.consumed()) for m in live}
        wait_until(lambda: (all(len(m.consumed()) > before[m.name] for m in live),
                            {m.name: len(m.consumed()) - before[m.name] for m in live}),
                   60, f"every live member to read new messages {what}")

    producer = ProducerLoop(b.bootstrap, topic, PARTITIONS)
    try:
        try:
            j1 = join("j1")
            settled([j1], "after j1 joined")
            j2 = join("j2")
            settled([j1, j2], "after j2 joined")
            j3 = join("j3")
            settled([j1, j2, j3], "after j3 joined")
            assert describe_group(admin, group).partition_assignor == "RoundRobinAssigner"
            j1.close()
            settled([j2, j3], "after j1 disconnected (LeaveGroup)")
        finally:
            produced = producer.stop()

        ends = end_offsets(b.bootstrap, topic, PARTITIONS)
        assert sum(ends.values()) == len(produced)

        def committed_to_end():
            got = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, PARTITIONS).items()}
            return got == ends, f"committed {got}, ends {ends}"

        wait_until(committed_to_end, 60, "kafkajs commits to reach the end of every partition")
        j2.close()
        j3.close()
    finally:
        for m in everyone:
            if m.proc.poll() is None:
                m.proc.kill()

    offsets: dict[int, set[int]] = {}
    values = {}
    for m in everyone:
        for p, o, v in m.consumed():
            offsets.setdefault(p, set()).add(o)
            values[(p, o)] = v
    final = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, PARTITIONS).items()}
    assert final == ends
    assert_no_committed_message_skipped(final, offsets, produced, values)
