"""Consumer groups with confluent-kafka (librdkafka) against Riffle's group coordinator.

Kafka's classic group protocol is the specification (JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, FindCoordinator and the
admin APIs, offsets kept in __consumer_offsets). The rules each test checks:

- While members join, leave (LeaveGroup on close) and crash (SIGKILL: the
  coordinator removes the member when its session times out), every
  partition ends up owned by exactly one live member once the group is
  Stable, as both the members and DescribeGroups see it; with commits on, no
  message below a committed offset was skipped (at-least-once). Once for
  each of librdkafka's assignors: range, roundrobin, cooperative-sticky
  (incremental rebalancing, KIP-429).
- group.initial.rebalance.delay.ms (KIP-134) puts members that join an empty
  group close together into the group's first generation.
- A new consumer in a group starts at the committed offsets, also after the
  broker restarts cleanly or crashes (an acknowledged commit is durable); a
  live group settles again after such restarts and skips nothing.
- Static membership (KIP-345): a member that comes back with its
  group.instance.id within the session timeout gets its old assignment
  without a rebalance; a second live instance with the same id fences the
  first (FENCED_INSTANCE_ID).
- Commit metadata and leader epochs round-trip; metadata longer than
  offset.metadata.max.bytes fails with OFFSET_METADATA_TOO_LARGE.
- group.max.size refuses a join beyond it (GROUP_MAX_SIZE_REACHED); deleting
  a topic deletes the groups' committed offsets of it.
- The admin API (ListGroups with a states filter, DescribeGroups,
  OffsetFetch, OffsetCommit from the admin client, OffsetDelete,
  DeleteGroups) with the errors Kafka returns for active, empty and unknown
  groups.

The group tests start their own broker without the initial rebalance delay
(as Kafka's own integration tests do), except the test of that delay.
Members that a test may crash run in their own processes (CkGroupMember).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError,
                             KafkaException, TopicPartition)
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka import errors as kerrors

from helpers import (ADMIN_TIMEOUT_S, GROUP_FAST_OVERRIDES, GROUP_SESSION_TIMEOUT_MS, CkGroupMember, ProducerLoop,
                     assert_no_committed_message_skipped, ck_admin, ck_conf, ck_producer, committed_offsets,
                     create_topic, describe_group, described_assignment, end_offsets, produce_all, unique_topic,
                     wait_for, wait_group_settled, wait_until)

PARTITIONS = 6
STRATEGIES = ["range", "roundrobin", "cooperative-sticky"]


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(*GROUP_FAST_OVERRIDES)


@pytest.fixture
def spawn(tmp_path):
    """Start CkGroupMember processes; any still running when the test ends are killed."""
    started: list[CkGroupMember] = []

    def start(name, bootstrap, group, topics, **conf) -> CkGroupMember:
        m = CkGroupMember(name, bootstrap, group, topics, tmp_path / "members", **conf)
        started.append(m)
        return m

    yield start
    for m in started:
        if m.alive():
            m.kill()


def ck_group_consumer(bootstrap: str, group: str, **extra) -> Consumer:
    """An in-process group consumer with manual commits, reading from the beginning when nothing is committed."""
    return Consumer(ck_conf(bootstrap, **{
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "session.timeout.ms": GROUP_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 500,
        **extra,
    }))


def error_code(exc: BaseException) -> int:
    assert isinstance(exc, KafkaException), f"expected KafkaException, got {exc!r}"
    return exc.args[0].code()


def commit_sync(consumer: Consumer, offsets: list[TopicPartition]) -> list[TopicPartition]:
    """Consumer.commit(offsets, synchronous), retried while the client is still looking for the coordinator.

    A consumer that has not subscribed has not looked for its coordinator
    yet; librdkafka then fails a commit with _WAIT_COORD instead of waiting.
    """
    deadline = time.monotonic() + 30
    while True:
        try:
            return consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            retriable = error_code(e) in (KafkaError._WAIT_COORD, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                          KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_COORDINATOR)
            if not retriable or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def consumed_by_partition(members) -> tuple[dict[int, set[int]], dict[tuple[int, int], str]]:
    offsets: dict[int, set[int]] = {}
    values: dict[tuple[int, int], str] = {}
    for m in members:
        for p, o, v in m.consumed():
            offsets.setdefault(p, set()).add(o)
            values[(p, o)] = v
    return offsets, values


def wait_committed(admin, group: str, topic: str, expected: dict[int, int], what: str) -> None:
    def check():
        got = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, len(expected)).items()}
        return got == expected, f"committed {got}, want {expected}"

    wait_until(check, 60, what)


def wait_consumed_through(members, ends: dict[int, int], what: str) -> None:
    """Until the members together have consumed every partition up to its end offset."""
    def check():
        offsets, _ = consumed_by_partition(members)
        behind = {p: max(offsets.get(p, {-1})) + 1 for p, end in ends.items() if max(offsets.get(p, {-1})) + 1 < end}
        return not behind, f"consumed up to {behind}, ends {ends}"

    wait_until(check, 60, what)


# ---------------------------------------------------------------- membership changes


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_membership_changes_one_owner_per_partition_nothing_skipped(group_broker, spawn, strategy):
    b = group_broker
    topic = unique_topic(f"grp-{strategy}")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic(f"grp-{strategy}")
    admin = ck_admin(b.bootstrap)
    everyone: list[CkGroupMember] = []

    def join(name):
        m = spawn(name, b.bootstrap, group, [topic], **{"partition.assignment.strategy": strategy})
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
        m1 = join("m1")
        settled([m1], "after m1 joined")
        m2 = join("m2")
        settled([m1, m2], "after m2 joined")
        m3 = join("m3")
        settled([m1, m2, m3], "after m3 joined")
        description = describe_group(admin, group)
        assert description.partition_assignor == strategy
        assert not description.is_simple_consumer_group

        m1.close()
        settled([m2, m3], "after m1 closed (LeaveGroup)")
        # A crash: no commit, no LeaveGroup. The coordinator must expire the
        # session and give m2's partitions to m3.
        m2.kill()
        settled([m3], "after m2 was killed (session timeout)")
        m4 = join("m4")
        settled([m3, m4], "after m4 joined")
    finally:
        produced = producer.stop()

    ends = end_offsets(b.bootstrap, topic, PARTITIONS)
    assert sum(ends.values()) == len(produced)
    # Auto-commit (every 500 ms) must bring the committed offsets to the end.
    wait_committed(admin, group, topic, ends, "auto-commits to reach the end of every partition")
    m3.close()
    m4.close()

    final = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, PARTITIONS).items()}
    assert final == ends
    offsets, values = consumed_by_partition(everyone)
    assert_no_committed_message_skipped(final, offsets, produced, values)
    for m in everyone:
        fatal = [e for e in m.errors() if e["fatal"]]
        assert not fatal, f"{m.name} had fatal errors: {fatal}"
    for m in (m1, m3, m4):
        assert not m.close_errors(), f"{m.name}: {m.close_errors()}"
    # Closed members revoked everything they held (eager: all at once;
    # cooperative: what was still theirs).
    for m in (m1, m3, m4):
        assert m.views() == (set(), set()), f"{m.name} still holds {m.views()} after close()"


def test_live_group_keeps_consuming_across_broker_restarts(group_broker, spawn):
    """The coordinator reloads the group and its offsets from __consumer_offsets after a clean
    restart and after kill -9; the members find it again and settle, and nothing committed
    is skipped. The producer pauses across each restart so that every record in the log is
    one whose delivery it saw (a retried produce could otherwise write a record twice)."""
    b = group_broker
    topic = unique_topic("grp-restart")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic("grp-restart")
    admin = ck_admin(b.bootstrap)
    m1 = spawn("m1", b.bootstrap, group, [topic])
    wait_group_settled(admin, group, topic, PARTITIONS, [m1])
    m2 = spawn("m2", b.bootstrap, group, [topic])
    wait_group_settled(admin, group, topic, PARTITIONS, [m1, m2])
    produced: dict[tuple[int, int], str] = {}

    def produce_a_while():
        loop = ProducerLoop(b.bootstrap, topic, PARTITIONS)
        try:
            wait_until(lambda: (loop.delivered_count() >= 200, loop.delivered_count()), 60, "200 deliveries")
        finally:
            produced.update(loop.stop())

    def settled_and_reading(what):
        wait_group_settled(admin, group, topic, PARTITIONS, [m1, m2], what=what)
        ends = end_offsets(b.bootstrap, topic, PARTITIONS)
        wait_consumed_through([m1, m2], ends, f"the members to read everything {what}")

    produce_a_while()
    assert b.restart() == 0
    settled_and_reading("after a clean broker restart")
    produce_a_while()
    b.kill()
    b.start()
    settled_and_reading("after kill -9 and restart")
    produce_a_while()

    ends = end_offsets(b.bootstrap, topic, PARTITIONS)
    assert sum(ends.values()) == len(produced)
    wait_committed(admin, group, topic, ends, "auto-commits to reach the end of every partition")
    m1.close()
    m2.close()
    final = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, PARTITIONS).items()}
    assert final == ends
    offsets, values = consumed_by_partition([m1, m2])
    assert_no_committed_message_skipped(final, offsets, produced, values)
    for m in (m1, m2):
        fatal = [e for e in m.errors() if e["fatal"]]
        assert not fatal, f"{m.name} had fatal errors: {fatal}"


def test_initial_rebalance_delay_puts_quick_joiners_in_one_generation(broker, spawn):
    """KIP-134: with the default group.initial.rebalance.delay.ms (3000, like Kafka), the
    coordinator waits for more members before the first rebalance of an empty group, so
    members that join together get their first assignment in one generation, none revoked.

    Uses the shared broker, which runs with the default delay.
    """
    topic = unique_topic("grp-delay")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic("grp-delay")
    members = [spawn(f"d{i}", broker.bootstrap, group, [topic]) for i in range(3)]
    wait_group_settled(ck_admin(broker.bootstrap), group, topic, PARTITIONS, members)
    for m in members:
        events = [(e["event"], e["partitions"]) for e in m.rebalances()]
        assert [kind for kind, _ in events] == ["assign"], f"{m.name} saw {events}: not a single first generation"
    generations = {m.name: m.generation() for m in members}
    assert len(set(generations.values())) == 1, generations


# ---------------------------------------------------------------- resuming from commits


def first_offsets(consumer: Consumer, topic: str, partitions: int, timeout_s: float = 60.0) -> dict[int, int]:
    """The offset of the first message the (subscribed) consumer gets from each partition."""
    firsts: dict[int, int] = {}
    deadline = time.monotonic() + timeout_s
    while len(firsts) < partitions:
        assert time.monotonic() < deadline, f"only got first messages {firsts} from {topic} in {timeout_s}s"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        firsts.setdefault(msg.partition(), msg.offset())
    return firsts


def test_restarted_consumer_resumes_from_committed_offsets_across_broker_restarts(group_broker):
    b = group_broker
    topic = unique_topic("grp-resume")
    parts = 3
    create_topic(b.bootstrap, topic, partitions=parts)
    group = unique_topic("grp-resume")
    producer = ck_producer(b.bootstrap)
    produce_all(producer, topic, [{"value": f"p{p}-{i}".encode(), "partition": p} for i in range(20)
                                  for p in range(parts)])

    def add_one_message_each():
        # So that every partition has a message at and after its committed offset.
        produce_all(ck_producer(b.bootstrap), topic, [{"value": b"marker", "partition": p} for p in range(parts)])

    def commit_and_close(consumer: Consumer, offsets: dict[int, int]) -> None:
        result = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                                 asynchronous=False)
        assert [(tp.partition, tp.offset, tp.error) for tp in sorted(result, key=lambda t: t.partition)] == \
            [(p, offsets[p], None) for p in sorted(offsets)]
        committed = consumer.committed([TopicPartition(topic, p) for p in range(parts)], timeout=30)
        assert {tp.partition: tp.offset for tp in committed} == offsets
        consumer.close()

    def resume(expected: dict[int, int], what: str) -> Consumer:
        c = ck_group_consumer(b.bootstrap, group)
        c.subscribe([topic])
        firsts = first_offsets(c, topic, parts)
        assert firsts == expected, f"{what}: first offsets {firsts}, committed {expected}"
        return c

    c1 = ck_group_consumer(b.bootstrap, group)
    c1.subscribe([topic])
    assert first_offsets(c1, topic, parts) == {0: 0, 1: 0, 2: 0}, "nothing committed: auto.offset.reset=earliest"
    # Commit offsets inside, at the start of, and at the end of the partitions.
    commit_and_close(c1, {0: 5, 1: 12, 2: 20})

    add_one_message_each()
    c2 = resume({0: 5, 1: 12, 2: 20}, "second consumer in the group")
    # A commit may move an offset backwards (a reset); the next consumer follows it.
    commit_and_close(c2, {0: 15, 1: 3, 2: 21})

    assert b.restart() == 0, "SIGTERM must shut the broker down cleanly"
    admin = ck_admin(b.bootstrap)
    wait_committed(admin, group, topic, {0: 15, 1: 3, 2: 21}, "committed offsets after a clean restart")
    add_one_message_each()
    c3 = resume({0: 15, 1: 3, 2: 21}, "after a clean broker restart")
    commit_and_close(c3, {0: 20, 1: 22, 2: 1})

    # A crash right after the commit was acknowledged must not lose it.
    b.kill()
    b.start()
    admin = ck_admin(b.bootstrap)
    wait_committed(admin, group, topic, {0: 20, 1: 22, 2: 1}, "committed offsets after kill -9")
    add_one_message_each()
    c4 = resume({0: 20, 1: 22, 2: 1}, "after a broker crash (SIGKILL)")
    c4.close()


# ---------------------------------------------------------------- static membership (KIP-345)


def test_static_member_restart_keeps_assignment_without_rebalance(group_broker, spawn):
    b = group_broker
    topic = unique_topic("grp-static")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic("grp-static")
    admin = ck_admin(b.bootstrap)
    static = {"group.instance.id": "static-a", "session.timeout.ms": 60000}

    dynamic = spawn("b", b.bootstrap, group, [topic])
    wait_group_settled(admin, group, topic, PARTITIONS, [dynamic])
    a = spawn("a", b.bootstrap, group, [topic], **static)
    wait_group_settled(admin, group, topic, PARTITIONS, [a, dynamic])
    a_owned = a.views()[0]
    generation = dynamic.generation()
    assert a.generation() == generation
    dynamic_rebalances = dynamic.rebalances()
    described = {m.group_instance_id: m.member_id for m in describe_group(admin, group).members}
    assert set(described) == {"static-a", None}, described

    # librdkafka sends no LeaveGroup when a static member closes: the
    # coordinator keeps its membership until the session times out (60 s).
    a.close()
    d = describe_group(admin, group)
    assert d.state == ConsumerGroupState.STABLE
    assert "static-a" in {m.group_instance_id for m in d.members}, "a static member's close() left the group"

    a2 = spawn("a", b.bootstrap, group, [topic], **static)
    wait_group_settled(admin, group, topic, PARTITIONS, [a2, dynamic], what="after the static member came back")
    assert a2.views()[0] == a_owned, "the returning static member must get its old partitions"
    assert [e["event"] for e in a2.rebalances()] == ["assign"]
    assert a2.generation() == generation, "a static member's return must not start a new generation"

    # Both keep consuming; by the time new messages have reached both, the
    # other member would have been told about a rebalance had there been one.
    produce_all(ck_producer(b.bootstrap), topic, [{"value": b"after", "partition": p} for p in range(PARTITIONS)])
    wait_consumed_through([a2, dynamic], end_offsets(b.bootstrap, topic, PARTITIONS),
                          "both members to read the new messages")
    assert dynamic.rebalances() == dynamic_rebalances, "the other member saw a rebalance"
    assert dynamic.generation() == generation
    d = describe_group(admin, group)
    assert d.state == ConsumerGroupState.STABLE
    instances = {m.group_instance_id: m.member_id for m in d.members}
    assert set(instances) == {"static-a", None}
    assert instances[None] == described[None], "the dynamic member's id changed"


def is_fenced(event: dict) -> bool:
    # librdkafka raises FENCED_INSTANCE_ID as a fatal error: reported as
    # _FATAL (with the broker's error in the text) or as the code itself.
    return (event["code"] in (KafkaError.FENCED_INSTANCE_ID, KafkaError._FATAL)
            and ("fenced" in event["str"].lower() or event["code"] == KafkaError.FENCED_INSTANCE_ID))


def test_duplicate_static_instance_fences_the_old_one(group_broker, spawn):
    """KIP-345: a JoinGroup with the group.instance.id of a live member replaces it (the group
    keeps its generation and the assignment moves to the new member id); the old member's
    next request with its old member id gets FENCED_INSTANCE_ID, fatal in librdkafka."""
    b = group_broker
    topic = unique_topic("grp-fence")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic("grp-fence")
    admin = ck_admin(b.bootstrap)
    static = {"group.instance.id": "static-dup", "session.timeout.ms": 60000}

    dynamic = spawn("b", b.bootstrap, group, [topic])
    wait_group_settled(admin, group, topic, PARTITIONS, [dynamic])
    old = spawn("a", b.bootstrap, group, [topic], **static)
    wait_group_settled(admin, group, topic, PARTITIONS, [old, dynamic])
    old_owned = old.views()[0]
    generation = dynamic.generation()
    dynamic_rebalances = dynamic.rebalances()

    new = spawn("a", b.bootstrap, group, [topic], **static)
    wait_for(lambda: [e for e in old.errors() if is_fenced(e)], 60,
             "the old instance to be fenced (FENCED_INSTANCE_ID)")
    assert not [e for e in new.errors() if e["fatal"]], new.errors()
    wait_group_settled(admin, group, topic, PARTITIONS, [new, dynamic], what="after the duplicate joined")
    assert new.views()[0] == old_owned
    assert new.generation() == generation
    assert dynamic.rebalances() == dynamic_rebalances, "the other member saw a rebalance"
    old.close()


# ---------------------------------------------------------------- commit metadata and leader epochs


def test_commit_metadata_and_leader_epoch_round_trip(group_broker):
    b = group_broker
    topic = unique_topic("grp-meta")
    create_topic(b.bootstrap, topic, partitions=3)
    produce_all(ck_producer(b.bootstrap), topic, [{"value": b"x", "partition": p} for p in range(3) for _ in range(10)])
    group = unique_topic("grp-meta")
    admin = ck_admin(b.bootstrap)
    # offset.metadata.max.bytes (4096) is the most a commit may carry.
    # confluent-kafka sends metadata with its terminating NUL byte (kafka-python
    # reads "abc" back as "abc\0"), so 4095 characters are the 4096 bytes.
    long_metadata = "m" * 4095
    c = ck_group_consumer(b.bootstrap, group)
    try:
        # A group without members: commits from a non-member (generation -1)
        # are accepted, as Kafka does for groups that only store offsets.
        commit_sync(c, [TopicPartition(topic, 0, 4, metadata="first: ünïcödé ✓", leader_epoch=0),
                        TopicPartition(topic, 1, 7, metadata=long_metadata, leader_epoch=3),
                        TopicPartition(topic, 2, 10)])
        got = {tp.partition: tp for tp in c.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)}
        assert (got[0].offset, got[0].metadata, got[0].leader_epoch) == (4, "first: ünïcödé ✓", 0)
        assert (got[1].offset, got[1].metadata, got[1].leader_epoch) == (7, long_metadata, 3)
        assert got[2].offset == 10 and got[2].metadata in ("", None) and got[2].leader_epoch is None

        listed = committed_offsets(admin, group, topic, 3)
        assert (listed[0].offset, listed[0].metadata, listed[0].leader_epoch) == (4, "first: ünïcödé ✓", 0)
        assert (listed[1].offset, listed[1].metadata, listed[1].leader_epoch) == (7, long_metadata, 3)

        # A later commit replaces offset, metadata and epoch together.
        c.commit(offsets=[TopicPartition(topic, 0, 9, metadata="second", leader_epoch=1)], asynchronous=False)
        got0 = c.committed([TopicPartition(topic, 0)], timeout=30)[0]
        assert (got0.offset, got0.metadata, got0.leader_epoch) == (9, "second", 1)

        # One byte over offset.metadata.max.bytes: OFFSET_METADATA_TOO_LARGE, and
        # the previous commit stays.
        too_long = [TopicPartition(topic, 1, 8, metadata=long_metadata + "m")]
        try:
            result = c.commit(offsets=too_long, asynchronous=False)
            codes = [tp.error.code() if tp.error else None for tp in result]
        except KafkaException as e:
            codes = [error_code(e)]
        assert codes == [KafkaError.OFFSET_METADATA_TOO_LARGE], codes
        got1 = c.committed([TopicPartition(topic, 1)], timeout=30)[0]
        assert (got1.offset, got1.metadata, got1.leader_epoch) == (7, long_metadata, 3)
    finally:
        c.close()


# ---------------------------------------------------------------- admin API


def kp_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000, client_id="compat-groups")


def listed_groups(admin, states=None) -> dict[str, object]:
    kwargs = {"request_timeout": ADMIN_TIMEOUT_S}
    if states is not None:
        kwargs["states"] = states
    res = admin.list_consumer_groups(**kwargs).result(ADMIN_TIMEOUT_S)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def test_admin_list_describe_alter_delete(group_broker, spawn):
    b = group_broker
    topic = unique_topic("grp-admin")
    other_topic = unique_topic("grp-admin-other")
    create_topic(b.bootstrap, topic, partitions=3)
    create_topic(b.bootstrap, other_topic, partitions=1)
    produce_all(ck_producer(b.bootstrap), topic, [{"value": b"x", "partition": p} for p in range(3) for _ in range(10)])
    group = unique_topic("grp-admin")
    unknown = unique_topic("grp-admin-unknown")
    admin = ck_admin(b.bootstrap)
    kp = kp_admin(b.bootstrap)
    try:
        member = spawn("m1", b.bootstrap, group, [topic])
        wait_group_settled(admin, group, topic, 3, [member])
        wait_committed(admin, group, topic, {0: 10, 1: 10, 2: 10}, "the member to commit what it read")

        # ListGroups, with and without a states filter (ListGroups v4).
        assert listed_groups(admin)[group].state == ConsumerGroupState.STABLE
        assert not listed_groups(admin)[group].is_simple_consumer_group
        assert group in listed_groups(admin, {ConsumerGroupState.STABLE})
        assert group not in listed_groups(admin, {ConsumerGroupState.EMPTY})

        # DescribeGroups.
        d = describe_group(admin, group)
        assert d.group_id == group
        assert d.state == ConsumerGroupState.STABLE
        assert d.partition_assignor == "range"  # librdkafka's default assignor list starts with range
        assert d.coordinator.id == 1 and d.coordinator.port == b.port
        assert described_assignment(d) == {"m1": [(topic, p) for p in range(3)]}
        assert [m.member_id for m in d.members] == [member.rebalances()[-1]["member_id"]]

        # Kafka refuses to delete a group that has members, and to delete the
        # offsets of a topic the group is subscribed to.
        with pytest.raises(KafkaException) as e:
            admin.delete_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)[group].result(ADMIN_TIMEOUT_S)
        assert error_code(e.value) == KafkaError.NON_EMPTY_GROUP
        result = kp.delete_group_offsets(group, [KpTopicPartition(topic, 0)])
        assert result == {KpTopicPartition(topic, 0): kerrors.GroupSubscribedToTopicError}, result
        # Only members may commit to a group that has members: the admin
        # client's commit (no member id, generation -1) gets UNKNOWN_MEMBER_ID.
        req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])
        try:
            res = admin.alter_consumer_group_offsets([req], request_timeout=ADMIN_TIMEOUT_S)[group].result(ADMIN_TIMEOUT_S)
            codes = [tp.error.code() if tp.error else None for tp in res.topic_partitions]
        except KafkaException as exc:
            codes = [error_code(exc)]
        assert codes == [KafkaError.UNKNOWN_MEMBER_ID], codes

        # Unknown groups.
        with pytest.raises(KafkaException) as e:
            admin.delete_consumer_groups([unknown], request_timeout=ADMIN_TIMEOUT_S)[unknown].result(ADMIN_TIMEOUT_S)
        assert error_code(e.value) == KafkaError.GROUP_ID_NOT_FOUND
        assert unknown not in listed_groups(admin)
        # DescribeGroups answers for an unknown group with the state Dead and no members.
        d_unknown = describe_group(admin, unknown)
        assert (d_unknown.state, d_unknown.members) == (ConsumerGroupState.DEAD, [])
        assert all(tp.offset < 0 for tp in committed_offsets(admin, unknown, topic, 3).values())

        # The member leaves: the group is Empty and keeps its offsets.
        member.close()
        wait_until(lambda: (describe_group(admin, group).state == ConsumerGroupState.EMPTY,
                            describe_group(admin, group).state), 30, "the group to be Empty")
        d = describe_group(admin, group)
        assert d.members == []
        assert listed_groups(admin)[group].state == ConsumerGroupState.EMPTY
        assert group in listed_groups(admin, {ConsumerGroupState.EMPTY})
        assert group not in listed_groups(admin, {ConsumerGroupState.STABLE})
        assert {p: tp.offset for p, tp in committed_offsets(admin, group, topic, 3).items()} == {0: 10, 1: 10, 2: 10}

        # Now the admin client may set offsets (a reset), for a second topic too.
        req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 0),
                                                   TopicPartition(topic, 2, 7), TopicPartition(other_topic, 0, 0)])
        res = admin.alter_consumer_group_offsets([req], request_timeout=ADMIN_TIMEOUT_S)[group].result(ADMIN_TIMEOUT_S)
        assert [tp.error for tp in res.topic_partitions] == [None] * 4
        assert {p: tp.offset for p, tp in committed_offsets(admin, group, topic, 3).items()} == {0: 3, 1: 0, 2: 7}
        assert committed_offsets(admin, group, other_topic, 1)[0].offset == 0

        # And a consumer that joins starts there.
        c = ck_group_consumer(b.bootstrap, group)
        c.subscribe([topic])
        assert first_offsets(c, topic, 3) == {0: 3, 1: 0, 2: 7}
        c.close()

        # OffsetDelete of one partition of an Empty group.
        result = kp.delete_group_offsets(group, [KpTopicPartition(topic, 0)])
        assert result == {KpTopicPartition(topic, 0): kerrors.NoError}, result
        offsets = {p: tp.offset for p, tp in committed_offsets(admin, group, topic, 3).items()}
        assert offsets[0] < 0 and offsets[1] == 0 and offsets[2] == 7, offsets

        # DeleteGroups of an Empty group removes it and its offsets.
        admin.delete_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)[group].result(ADMIN_TIMEOUT_S)
        assert group not in listed_groups(admin)
        assert all(tp.offset < 0 for tp in committed_offsets(admin, group, topic, 3).values())
        assert committed_offsets(admin, group, other_topic, 1)[0].offset < 0
        with pytest.raises(KafkaException) as e:
            admin.delete_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)[group].result(ADMIN_TIMEOUT_S)
        assert error_code(e.value) == KafkaError.GROUP_ID_NOT_FOUND
    finally:
        kp.close()


# ---------------------------------------------------------------- limits and topic deletion


def test_join_beyond_group_max_size_is_refused(broker_factory, spawn):
    """group.max.size: a JoinGroup that would take the group beyond it gets
    GROUP_MAX_SIZE_REACHED, and the members already in the group keep it to themselves."""
    b = broker_factory(*GROUP_FAST_OVERRIDES, "group.max.size=2")
    topic = unique_topic("grp-max")
    create_topic(b.bootstrap, topic, partitions=PARTITIONS)
    group = unique_topic("grp-max")
    admin = ck_admin(b.bootstrap)
    m1 = spawn("m1", b.bootstrap, group, [topic])
    wait_group_settled(admin, group, topic, PARTITIONS, [m1])
    m2 = spawn("m2", b.bootstrap, group, [topic])
    wait_group_settled(admin, group, topic, PARTITIONS, [m1, m2])
    m3 = spawn("m3", b.bootstrap, group, [topic])
    wait_for(lambda: [e for e in m3.errors() if e["code"] == KafkaError.GROUP_MAX_SIZE_REACHED], 60,
             "the third member to be refused with GROUP_MAX_SIZE_REACHED")
    wait_group_settled(admin, group, topic, PARTITIONS, [m1, m2], what="with the third member refused")
    assert m3.views() == (set(), set()), "a refused member must not be assigned partitions"


def test_deleting_a_topic_deletes_its_committed_offsets(group_broker):
    """Kafka removes a group's committed offsets of a topic when the topic is deleted, so a
    topic created again under the same name starts without them."""
    b = group_broker
    topic = unique_topic("grp-deltopic")
    keep = unique_topic("grp-keeptopic")
    create_topic(b.bootstrap, topic, partitions=1)
    create_topic(b.bootstrap, keep, partitions=1)
    group = unique_topic("grp-deltopic")
    admin = ck_admin(b.bootstrap)
    c = ck_group_consumer(b.bootstrap, group)
    try:
        commit_sync(c, [TopicPartition(topic, 0, 3), TopicPartition(keep, 0, 2)])
    finally:
        c.close()
    assert committed_offsets(admin, group, topic, 1)[0].offset == 3

    admin.delete_topics([topic], request_timeout=ADMIN_TIMEOUT_S)[topic].result(ADMIN_TIMEOUT_S)
    wait_until(lambda: (committed_offsets(admin, group, topic, 1)[0].offset < 0,
                        committed_offsets(admin, group, topic, 1)[0]), 60,
               "the deleted topic's committed offset to go")
    assert committed_offsets(admin, group, keep, 1)[0].offset == 2, "another topic's offset went too"

    create_topic(b.bootstrap, topic, partitions=1)
    produce_all(ck_producer(b.bootstrap), topic, [{"value": f"new-{i}".encode()} for i in range(5)])
    c = ck_group_consumer(b.bootstrap, group)
    try:
        c.subscribe([topic])
        assert first_offsets(c, topic, 1) == {0: 0}, "the new topic started at the old topic's committed offset"
    finally:
        c.close()
