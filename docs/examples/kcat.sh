#!/usr/bin/env bash
# Create a topic, produce to it and read it back with kcat.
#
#   apt-get install kcat                            # Debian/Ubuntu; `brew install kcat` on macOS
#   cargo run --release -p riffle -- server         # in another terminal
#   bash docs/examples/kcat.sh
#
# BOOTSTRAP (default localhost:9092) and TOPIC (default riffle-example-kcat)
# come from the environment. kcat -C reads partitions directly; kcat -G
# consumes in a consumer group and commits its position.
set -euo pipefail

BOOTSTRAP="${BOOTSTRAP:-localhost:9092}"
TOPIC="${TOPIC:-riffle-example-kcat}"

# 1. The cluster: brokers and topics.
kcat -b "$BOOTSTRAP" -L

# 2. Produce three keyed messages with a header, zstd-compressed. Producing to
#    a topic that does not exist creates it (auto.create.topics.enable=true by
#    default, with num.partitions partitions); kcat has no create-topic command.
printf 'user1:signed up\nuser2:logged in\nuser1:logged out\n' |
    kcat -b "$BOOTSTRAP" -P -t "$TOPIC" -K : -H source=kcat-example -z zstd

# 3. Read the whole topic and exit at its end (-e), one line per message.
kcat -b "$BOOTSTRAP" -C -t "$TOPIC" -o beginning -e -q \
    -f 'partition %p offset %o key=%k value=%s headers=%h\n'

# 4. The offset of the first message at or after a timestamp (ms), here an hour ago.
kcat -b "$BOOTSTRAP" -Q -t "$TOPIC:0:$(( ($(date +%s) - 3600) * 1000 ))"

# 5. Consume in the consumer group riffle-example-kcat (-G): the group commits
#    its position, so running the script again prints only the new messages
#    (a group without a committed position starts at the earliest offset;
#    -o would override the committed position).
kcat -b "$BOOTSTRAP" -G riffle-example-kcat -X auto.offset.reset=earliest -e -q \
    -f 'group read partition %p offset %o value=%s\n' "$TOPIC"
