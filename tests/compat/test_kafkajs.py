"""kafkajs against Riffle, through tests/compat/kafkajs/test.js.

test.js produces and administers, and this side reads the produced messages
back with kcat; group.js consumes in a consumer group.
"""

from __future__ import annotations

import json
import shutil

from helpers import COMPAT_DIR, kcat_consume_json, run, unique_topic

KAFKAJS_DIR = COMPAT_DIR / "kafkajs"


def test_kafkajs(broker):
    node = shutil.which("node")
    assert node, "node is not installed"
    assert (KAFKAJS_DIR / "node_modules" / "kafkajs").is_dir(), \
        "kafkajs is not installed: run `npm ci` in tests/compat/kafkajs (scripts/compat-test does)"
    prefix = unique_topic("kafkajs")
    p = run([node, "test.js"], cwd=KAFKAJS_DIR, timeout_s=180,
            env={"BOOTSTRAP": broker.bootstrap, "TOPIC_PREFIX": prefix,
                 "KAFKAJS_NO_PARTITIONER_WARNING": "1"})
    report = json.loads(p.stdout.decode().strip().splitlines()[-1])

    for topic, messages in report["produced"].items():
        start = report["deletedBefore"].get(topic, 0)
        got = kcat_consume_json(broker.bootstrap, topic, 0)
        expected = messages[start:]
        assert [m["offset"] for m in got] == list(range(start, len(messages))), topic
        for sent, m in zip(expected, got):
            assert m["payload"] == sent["value"]
            assert m["key"] == sent.get("key")
            if "headers" in sent:
                flat = [x for kv in sent["headers"].items() for x in kv]
                assert m["headers"] == flat
            if "timestamp" in sent:
                assert m["ts"] == int(sent["timestamp"])

    multi = report["topics"]["multi"]
    for part in range(3):
        got = kcat_consume_json(broker.bootstrap, multi, part)
        assert [m["payload"] for m in got] == [f"partition {part}"]


def test_kafkajs_consumer_group(broker):
    """kafkajs consumers in a group (tests/compat/kafkajs/group.js): the
    members split the partitions, every message is read once, commits
    survive the members, and the admin client lists, describes and deletes
    the group."""
    node = shutil.which("node")
    assert node, "node is not installed"
    run([node, "group.js"], cwd=KAFKAJS_DIR, timeout_s=180,
        env={"BOOTSTRAP": broker.bootstrap, "TOPIC_PREFIX": unique_topic("kafkajs-group"),
             "KAFKAJS_NO_PARTITIONER_WARNING": "1"})
