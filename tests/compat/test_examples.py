"""The runnable examples in docs/examples/ work as docs/clients.md says they do."""

from __future__ import annotations

import sys

from helpers import REPO, consume, kcat_bin, run, unique_topic

EXAMPLES = REPO / "docs" / "examples"


def run_example(broker, cmd, topic):
    return run(cmd, timeout_s=120, env={"BOOTSTRAP": broker.bootstrap, "TOPIC": topic}).stdout.decode()


def test_confluent_kafka_example(broker):
    topic = unique_topic("example-ck")
    out = run_example(broker, [sys.executable, str(EXAMPLES / "confluent_kafka_example.py")], topic)
    assert f"created topic {topic}" in out and "consumed 10 messages" in out, out
    # Run twice: the second run finds the topic and reads only its own messages.
    out = run_example(broker, [sys.executable, str(EXAMPLES / "confluent_kafka_example.py")], topic)
    assert "already exists" in out and "offsets 10..19" in out and "consumed 10 messages" in out, out


def test_kafka_python_example(broker):
    topic = unique_topic("example-kp")
    out = run_example(broker, [sys.executable, str(EXAMPLES / "kafka_python_example.py")], topic)
    assert f"created topic {topic}" in out and "consumed 10 messages" in out, out
    got = consume(broker.bootstrap, topic, 10)
    assert got[9].value() == b"hello riffle #9"


def test_kcat_example(broker):
    kcat_bin()
    topic = unique_topic("example-kcat")
    out = run_example(broker, ["bash", str(EXAMPLES / "kcat.sh")], topic)
    assert "partition 0 offset 0 key=user1 value=signed up headers=source=kcat-example" in out, out
    assert "partition 0 offset 2 key=user1 value=logged out" in out, out
    assert f"{topic} [0] offset 0" in out, out
