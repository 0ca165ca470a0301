#!/usr/bin/env python3
"""Create a topic, produce to it and read it back with kafka-python.

    pip install kafka-python
    cargo run --release -p riffle -- server        # in another terminal
    python3 docs/examples/kafka_python_example.py

BOOTSTRAP (default localhost:9092) and TOPIC (default riffle-example-kp) come
from the environment. The consumer reads with assign() and seek() and no
group (group_id=None); docs/examples/confluent_kafka_example.py shows a
consumer group.
"""

import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

bootstrap = os.environ.get("BOOTSTRAP", "localhost:9092")
topic = os.environ.get("TOPIC", "riffle-example-kp")

# 1. Create the topic (an existing one is fine).
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
try:
    admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
    print(f"created topic {topic}")
except TopicAlreadyExistsError:
    print(f"topic {topic} already exists")
admin.close()

# 2. Produce ten messages; .get() waits for each acknowledgement.
#    kafka-python 3 makes producers idempotent by default, which needs the
#    InitProducerId API that Riffle does not have yet: turn it off.
producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip",
                         enable_idempotence=False)
offsets = [producer.send(topic, key=f"key-{i}".encode(), value=f"hello riffle #{i}".encode()).get(timeout=30).offset
           for i in range(10)]
producer.close()
print(f"produced 10 messages at offsets {offsets[0]}..{offsets[-1]}")

# 3. Read them back: no group, assign() and seek() to the first offset we wrote.
consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
tp = TopicPartition(topic, 0)
consumer.assign([tp])
consumer.seek(tp, offsets[0])
received = []
deadline = time.monotonic() + 60
while len(received) < 10 and time.monotonic() < deadline:
    for records in consumer.poll(timeout_ms=500).values():
        received.extend(records)
consumer.close()
for rec in received[:10]:
    print(f"  offset {rec.offset}: key={rec.key.decode()} value={rec.value.decode()}")
if len(received) < 10:
    sys.exit(f"consumed only {len(received)} of 10 messages")
print("consumed 10 messages")
