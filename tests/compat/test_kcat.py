"""kcat (librdkafka's command-line client) against Riffle."""

from __future__ import annotations

import json
import re

import pytest

from helpers import (ck_producer, consume, create_topic, kcat, kcat_consume_json, produce_all,
                     stored_codecs, unique_topic)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def test_metadata_listing(broker):
    topic = unique_topic("kcat-md")
    create_topic(broker.bootstrap, topic, partitions=3)
    md = json.loads(kcat(broker.bootstrap, "-L", "-J").stdout)
    assert [b["id"] for b in md["brokers"]] == [1]
    assert md["brokers"][0]["name"] == f"127.0.0.1:{broker.port}"
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    parts = sorted(topics[topic]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == 1
        assert [r["id"] for r in p["replicas"]] == [1]
        assert [r["id"] for r in p["isrs"]] == [1]

    # Plain text listing, one topic.
    text = kcat(broker.bootstrap, "-L", "-t", topic).stdout.decode()
    assert f'topic "{topic}" with 3 partitions' in text, text


@pytest.mark.parametrize("codec", CODECS)
def test_produce_keys_headers_consume(broker, riffle_bin, codec):
    topic = unique_topic(f"kcat-{codec}")
    create_topic(broker.bootstrap, topic)
    lines = [f"key{i}:value number {i} {'w' * (i % 20)}" for i in range(100)]
    kcat(broker.bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":", "-z", codec,
         "-H", "source=kcat", "-H", f"codec={codec}", input=("\n".join(lines) + "\n").encode())

    got = kcat_consume_json(broker.bootstrap, topic, 0)
    assert len(got) == len(lines)
    for i, (line, msg) in enumerate(zip(lines, got)):
        key, value = line.split(":", 1)
        assert msg["offset"] == i
        assert msg["key"] == key
        assert msg["payload"] == value
        assert msg["headers"] == ["source", "kcat", "codec", codec]
        assert msg["tstype"] == "create"

    # The batches were stored compressed: Debian's kcat links librdkafka
    # 2.0, which compresses only if the broker lists Produce v0 in
    # ApiVersions (KAFKA-18659) and otherwise silently sends them plain.
    assert stored_codecs(riffle_bin, broker.data_dir, topic) == {codec}

    # A different client reads the same bytes.
    ck = consume(broker.bootstrap, topic, len(lines))
    assert [m.key().decode() for m in ck] == [line.split(":", 1)[0] for line in lines]


def test_consume_offsets_and_count(broker):
    topic = unique_topic("kcat-off")
    create_topic(broker.bootstrap, topic)
    kcat(broker.bootstrap, "-P", "-t", topic, input="".join(f"m{i}\n" for i in range(20)).encode())
    out = kcat(broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "15", "-e", "-q",
               "-f", "%o:%s\n").stdout.decode()
    assert out.splitlines() == [f"{i}:m{i}" for i in range(15, 20)]
    out = kcat(broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "-3", "-e", "-q",
               "-f", "%o:%s\n").stdout.decode()
    assert out.splitlines() == [f"{i}:m{i}" for i in range(17, 20)]
    out = kcat(broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", "4", "-q",
               "-f", "%s\n").stdout.decode()
    assert out.splitlines() == ["m0", "m1", "m2", "m3"]


def test_query_offsets_for_times(broker):
    topic = unique_topic("kcat-q")
    create_topic(broker.bootstrap, topic)
    base = 1_700_000_000_000
    # kcat -P cannot set a per-message timestamp, so confluent-kafka writes
    # messages with known CreateTimes and kcat queries them.
    produce_all(ck_producer(broker.bootstrap, **{"linger.ms": 0}), topic,
                [{"value": f"q{i}".encode(), "timestamp": base + 10_000 * i} for i in range(5)])

    def query(ts: int) -> int:
        out = kcat(broker.bootstrap, "-Q", "-t", f"{topic}:0:{ts}").stdout.decode()
        m = re.search(r"\[0\]\s+offset\s+(-?\d+)", out)
        assert m, out
        return int(m.group(1))

    assert query(base) == 0
    assert query(base + 25_000) == 3
    assert query(base + 40_000) == 4
    assert query(base + 99_000_000) == -1

    # Consuming from a timestamp: -o s@<ts>.
    out = kcat(broker.bootstrap, "-C", "-t", topic, "-p", "0", "-o", f"s@{base + 20_000}", "-e", "-q",
               "-f", "%s\n").stdout.decode()
    assert out.splitlines() == ["q2", "q3", "q4"]
