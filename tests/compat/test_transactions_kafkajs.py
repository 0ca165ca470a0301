"""kafkajs transactions against Riffle, through tests/compat/kafkajs/transactions.js.

transactions.js commits, aborts and commits transactions that also commit a
group offset (sendOffsets), checks with kafkajs consumers that
read_committed sees only the committed records and read_uncommitted all of
them, and that a second producer with the same transactional id fences the
first. This side then reads the topic with confluent-kafka (librdkafka's
own read_committed filtering) and checks the same.
"""

from __future__ import annotations

import json
import shutil

from helpers import COMPAT_DIR, run, unique_topic
from test_transactions_confluent import read_partitions, values, wait_stable

KAFKAJS_DIR = COMPAT_DIR / "kafkajs"


def test_kafkajs_transactions_commit_abort_and_fence(broker_factory):
    node = shutil.which("node")
    assert node, "node is not installed"
    assert (KAFKAJS_DIR / "node_modules" / "kafkajs").is_dir(), \
        "kafkajs is not installed: run `npm ci` in tests/compat/kafkajs (scripts/compat-test does)"
    b = broker_factory("group.initial.rebalance.delay.ms=0")
    p = run([node, "transactions.js"], cwd=KAFKAJS_DIR, timeout_s=180,
            env={"BOOTSTRAP": b.bootstrap, "TOPIC_PREFIX": unique_topic("kafkajs-txn"),
                 "KAFKAJS_NO_PARTITIONER_WARNING": "1"})
    report = json.loads(p.stdout.decode().strip().splitlines()[-1])
    topic = report["topic"]
    wait_stable(b.bootstrap, topic, 2, "no open transaction on the kafkajs topic")
    rc = values(read_partitions(b.bootstrap, topic, 2, "read_committed"))
    assert sorted(v.decode() for v in rc) == sorted(report["committed"])
    ru = values(read_partitions(b.bootstrap, topic, 2, "read_uncommitted"))
    assert sorted(v.decode() for v in ru) == sorted(report["committed"] + report["aborted"])
    assert b"zombie" not in ru, "the broker stored a record of the fenced producer"
