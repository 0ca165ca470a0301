#!/usr/bin/env python3
"""Create a topic, produce to it and read it back with confluent-kafka (librdkafka).

    pip install confluent-kafka
    cargo run --release -p riffle -- server        # in another terminal
    python3 docs/examples/confluent_kafka_example.py

BOOTSTRAP (default localhost:9092) and TOPIC (default riffle-example) come
from the environment. The consumer joins the consumer group riffle-example,
reads the new messages and commits its position, so a second run reads only
what that run produced.
"""

import os
import sys

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = os.environ.get("BOOTSTRAP", "localhost:9092")
topic = os.environ.get("TOPIC", "riffle-example")

# 1. Create the topic (an existing one is fine).
admin = AdminClient({"bootstrap.servers": bootstrap})
future = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic]
try:
    future.result(30)
    print(f"created topic {topic}")
except KafkaException as e:
    if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
        raise
    print(f"topic {topic} already exists")

# 2. Produce ten messages with keys and a header; wait for every acknowledgement.
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": "zstd"})
delivered = []


def on_delivery(err, msg):
    if err is not None:
        sys.exit(f"delivery failed: {err}")
    delivered.append(msg.offset())


for i in range(10):
    producer.produce(topic, key=f"key-{i}", value=f"hello riffle #{i}", headers=[("example", b"confluent-kafka")],
                     on_delivery=on_delivery)
if producer.flush(30) != 0:
    sys.exit("not every message was acknowledged in 30 s")
first = min(delivered)
print(f"produced 10 messages at offsets {first}..{max(delivered)}")

# 3. Read them back in a consumer group. A new group starts at the earliest
#    offset (auto.offset.reset); a group that committed before resumes from
#    its committed position, so earlier runs' messages are not read twice.
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "riffle-example",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
consumer.subscribe([topic])
received = []
for _ in range(120):  # at most ~60 s, including the group's first rebalance
    msg = consumer.poll(0.5)
    if msg is None:
        continue
    if msg.error():
        sys.exit(f"consume failed: {msg.error()}")
    if msg.offset() < first:
        continue  # left over from an earlier run that did not commit
    received.append(msg)
    print(f"  offset {msg.offset()}: key={msg.key().decode()} value={msg.value().decode()}")
    if len(received) == 10:
        break
if len(received) != 10:
    sys.exit(f"consumed only {len(received)} of 10 messages")
consumer.commit(asynchronous=False)
committed = consumer.committed([TopicPartition(topic, 0)], timeout=30)[0].offset
consumer.close()
print(f"consumed 10 messages; group riffle-example committed offset {committed}")
