"""Client-side helpers shared by the compatibility tests.

Every wait is bounded and says what it was waiting for when it gives up.
The plain consumers here (ck_consumer, consume) never join a group: they use
assign() with explicit start offsets and enable.auto.commit=false. The
consumer-group helpers at the end join real groups (test_groups_*.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
COMPAT_DIR = Path(__file__).resolve().parent

ADMIN_TIMEOUT_S = 30.0
CONSUME_TIMEOUT_S = 30.0


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    """Poll predicate() until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout_s
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported below if the wait fails
            last_exc = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{detail}")
        time.sleep(interval_s)


# ---------------------------------------------------------------- confluent-kafka


# librdkafka's own log lines go through Python logging: pytest shows them with
# a failing test ("Captured log"), and clients that outlive the brokers at the
# end of the session do not spray connection errors over the summary.
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())


def ck_conf(bootstrap: str, **extra) -> dict:
    conf = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", "logger": LIBRDKAFKA_LOG}
    conf.update(extra)
    return conf


def ck_admin(bootstrap: str, **extra) -> AdminClient:
    return AdminClient(ck_conf(bootstrap, **extra))


def topic_partitions(admin: AdminClient, topic: str) -> dict | None:
    """{partition_id: leader} for a topic, or None when metadata does not show it.

    Asks for all topics: a Metadata request that names the topic would let the
    broker auto-create it (librdkafka's admin client allows auto-creation),
    which is exactly what a "does it exist?" check must not do.
    """
    md = admin.list_topics(timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return {p.id: p.leader for p in t.partitions.values()}


def wait_topic_ready(bootstrap: str, topic: str, partitions: int, timeout_s: float = ADMIN_TIMEOUT_S) -> None:
    admin = ck_admin(bootstrap)

    def ready():
        parts = topic_partitions(admin, topic)
        return parts is not None and len(parts) == partitions and all(l >= 0 for l in parts.values())

    wait_for(ready, timeout_s, f"topic {topic} with {partitions} led partitions in metadata")


def create_topic(bootstrap: str, topic: str, partitions: int = 1, config: dict | None = None) -> None:
    admin = ck_admin(bootstrap)
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=ADMIN_TIMEOUT_S)
    futures[topic].result(ADMIN_TIMEOUT_S)
    wait_topic_ready(bootstrap, topic, partitions)


def ck_producer(bootstrap: str, **extra) -> Producer:
    conf = ck_conf(bootstrap, **{"linger.ms": 5, "enable.idempotence": False})
    conf.update(extra)
    return Producer(conf)


def produce_all(producer: Producer, topic: str, messages: list[dict], timeout_s: float = 30.0) -> list:
    """Produce messages (dicts of produce() kwargs) and return the delivered Message objects.

    Raises if any delivery fails or the flush does not finish in time.
    """
    delivered, failed = [], []

    def on_delivery(err, msg):
        (failed if err is not None else delivered).append((err, msg))

    for m in messages:
        producer.produce(topic, on_delivery=on_delivery, **m)
        producer.poll(0)
    remaining = producer.flush(timeout_s)
    if failed:
        raise AssertionError(f"{len(failed)} deliveries failed, first: {failed[0][0]}")
    if remaining:
        raise AssertionError(f"{remaining} messages still undelivered after {timeout_s}s")
    return [msg for _, msg in delivered]


def ck_consumer(bootstrap: str, **extra) -> Consumer:
    # confluent-kafka insists on a group.id even for assign(); with explicit
    # offsets and no commits the group coordinator is never needed.
    conf = ck_conf(bootstrap, **{
        "group.id": f"compat-unused-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
    })
    conf.update(extra)
    return Consumer(conf)


def consume(bootstrap: str, topic: str, count: int, partition: int = 0, offset: int = 0,
            timeout_s: float = CONSUME_TIMEOUT_S, **extra) -> list:
    """Read exactly `count` messages from one partition starting at `offset` (assign, no group)."""
    c = ck_consumer(bootstrap, **extra)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"consumed {len(out)} of {count} messages from {topic}[{partition}]@{offset} in {timeout_s}s")
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            out.append(msg)
        return out
    finally:
        c.close()


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    c = ck_consumer(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


# ---------------------------------------------------------------- subprocesses


def run(cmd: list[str], timeout_s: float = 60.0, env: dict | None = None, input: bytes | None = None,
        cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, capture_output=True, timeout=timeout_s, env=full_env, input=input,
                       cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(
            f"command failed with {p.returncode}: {' '.join(map(str, cmd))}\n"
            f"--- stdout\n{p.stdout.decode(errors='replace')[-8000:]}\n"
            f"--- stderr\n{p.stderr.decode(errors='replace')[-8000:]}")
    return p


def kcat_bin() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    if path is None:
        raise AssertionError("kcat is not installed (scripts/compat-test installs it)")
    return path


def kcat(bootstrap: str, *args: str, input: bytes | None = None, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return run([kcat_bin(), "-b", bootstrap, "-X", "broker.address.family=v4", *args],
               input=input, timeout_s=timeout_s)


def kcat_consume_json(bootstrap: str, topic: str, partition: int | None = None, *extra: str) -> list[dict]:
    """Everything in a topic (or one partition) from the beginning, via kcat -C -J -e."""
    args = ["-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"]
    if partition is not None:
        args += ["-p", str(partition)]
    out = kcat(bootstrap, *args, *extra).stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# ---------------------------------------------------------------- consumer groups
#
# The group tests (test_groups_*.py) join real consumer groups. The helpers
# below run group members, produce a numbered stream while membership changes,
# and wait (bounded) until a group has settled, reporting what was still wrong
# when they give up.

# Kafka's own integration tests start brokers without the initial rebalance
# delay so that a lone member's first join completes at once; the group tests
# do the same except where they test the delay itself.
GROUP_FAST_OVERRIDES = ("group.initial.rebalance.delay.ms=0",)
# The broker's group.min.session.timeout.ms default: a crashed member is
# noticed this long after its last heartbeat.
GROUP_SESSION_TIMEOUT_MS = 6000
GROUP_SETTLE_TIMEOUT_S = 60.0


def wait_until(check, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll check() -> (ok, detail) until ok; on timeout fail with the last detail.

    Like wait_for, but the failure says what was still wrong rather than only
    that time ran out.
    """
    deadline = time.monotonic() + timeout_s
    detail = "never checked"
    while True:
        try:
            ok, detail = check()
            if ok:
                return detail
        except Exception as e:  # noqa: BLE001 - reported below if the wait fails
            detail = f"check raised {e!r}"
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last state: {detail}")
        time.sleep(interval_s)


def ck_generation(consumer) -> tuple[int, str]:
    """(generation id, member id) of a confluent-kafka consumer's current group membership.

    confluent-kafka exposes these only inside consumer_group_metadata(), which
    is librdkafka's serialized form: b"CGMDv2:", the generation as a
    native-endian int32, then NUL-terminated group id and member id.
    """
    raw = consumer.consumer_group_metadata()
    magic = b"CGMDv2:"
    assert raw.startswith(magic), f"unexpected consumer group metadata encoding {raw!r}"
    generation = int.from_bytes(raw[len(magic):len(magic) + 4], sys.byteorder, signed=True)
    _group, member_id = raw[len(magic) + 4:].split(b"\0")[:2]
    return generation, member_id.decode()


def describe_group(admin: AdminClient, group: str):
    """DescribeConsumerGroups for one group (a ConsumerGroupDescription)."""
    return admin.describe_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)[group].result(ADMIN_TIMEOUT_S)


def described_assignment(description) -> dict[str, list[tuple[str, int]]]:
    """{client id: sorted [(topic, partition)]} from a ConsumerGroupDescription."""
    out: dict[str, list[tuple[str, int]]] = {}
    for m in description.members:
        parts = m.assignment.topic_partitions if m.assignment is not None else []
        out.setdefault(m.client_id, []).extend((tp.topic, tp.partition) for tp in parts)
    return {k: sorted(v) for k, v in out.items()}


def committed_offsets(admin: AdminClient, group: str, topic: str, partitions: int) -> dict[int, "TopicPartition"]:
    """{partition: TopicPartition} as OffsetFetch returns them (offset < 0: none committed)."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    res = admin.list_consumer_group_offsets([req], request_timeout=ADMIN_TIMEOUT_S)[group].result(ADMIN_TIMEOUT_S)
    return {tp.partition: tp for tp in res.topic_partitions if tp.topic == topic}


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    return {p: watermarks(bootstrap, topic, p)[1] for p in range(partitions)}


def wait_group_settled(admin: AdminClient, group: str, topic: str, partitions: int, members: list,
                       timeout_s: float = GROUP_SETTLE_TIMEOUT_S, what: str = "") -> dict:
    """Wait until the group is Stable with exactly `members` and each partition has one owner.

    `members` are the live members (objects with .name, the client.id they
    connect with, and .views(), their own idea of their assignment as
    (from rebalance callbacks, from the client's assignment()) sets of
    (topic, partition)). Settled means: DescribeGroups says Stable, lists one
    group member per live member (by client id and count), every partition of
    the topic is assigned to exactly one of them, and each member's callbacks
    and the client's own assignment agree with what the coordinator says it
    holds. Returns the description's assignment.
    """
    expected_parts = sorted((topic, p) for p in range(partitions))
    names = sorted(m.name for m in members)

    def check():
        problems = []
        d = describe_group(admin, group)
        if d.state != ConsumerGroupState.STABLE:
            problems.append(f"state {d.state}")
        if len(d.members) != len(members):
            problems.append(f"{len(d.members)} members described, {len(members)} live")
        by_client = described_assignment(d)
        if sorted(by_client) != names:
            problems.append(f"described client ids {sorted(by_client)} != live {names}")
        owned = sorted(p for parts in by_client.values() for p in parts)
        if owned != expected_parts:
            problems.append(f"partitions assigned (with repeats) {owned} != each of {expected_parts} once")
        for m in members:
            from_callbacks, from_client = m.views()
            described = set(by_client.get(m.name, []))
            if from_callbacks != described or from_client != described:
                problems.append(f"{m.name}: callbacks say {sorted(from_callbacks)}, client says "
                                f"{sorted(from_client)}, coordinator says {sorted(described)}")
        return not problems, "; ".join(problems) or by_client

    try:
        return wait_until(check, timeout_s, f"group {group} to settle with members {names} {what}".rstrip())
    except AssertionError as e:
        # What the members themselves last reported often says why.
        notes = []
        for m in members:
            errors = m.errors() if hasattr(m, "errors") else []
            if errors:
                notes.append(f"{m.name}: {len(errors)} client errors, last {errors[-1]}")
        raise AssertionError("\n".join([str(e), *notes])) from None


class ProducerLoop:
    """A thread producing numbered messages round-robin over a topic's partitions until stopped.

    Each value is "n" for the n-th message; produced() maps (partition, offset)
    to the value the broker acknowledged there (acks=all).
    """

    def __init__(self, bootstrap: str, topic: str, partitions: int, pause_s: float = 0.005):
        import threading
        self.topic = topic
        self.partitions = partitions
        self.pause_s = pause_s
        self._producer = ck_producer(bootstrap, acks="all")
        self._delivered: dict[tuple[int, int], str] = {}
        self._failed: list = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent = 0
        self._thread = threading.Thread(target=self._run, name=f"produce-{topic}", daemon=True)
        self._thread.start()

    def _on_delivery(self, err, msg):
        with self._lock:
            if err is not None:
                self._failed.append(err)
            else:
                self._delivered[(msg.partition(), msg.offset())] = msg.value().decode()

    def _run(self):
        while not self._stop.is_set():
            self._producer.produce(self.topic, value=str(self._sent).encode(),
                                   partition=self._sent % self.partitions, on_delivery=self._on_delivery)
            self._sent += 1
            self._producer.poll(0)
            time.sleep(self.pause_s)

    def delivered_count(self) -> int:
        with self._lock:
            return len(self._delivered)

    def stop(self, timeout_s: float = 30.0) -> dict[tuple[int, int], str]:
        self._stop.set()
        self._thread.join(timeout_s)
        remaining = self._producer.flush(timeout_s)
        assert not self._failed, f"{len(self._failed)} deliveries failed, first: {self._failed[0]}"
        assert remaining == 0, f"{remaining} messages undelivered after {timeout_s}s"
        with self._lock:
            return dict(self._delivered)


def assert_no_committed_message_skipped(committed: dict[int, int], consumed: dict[int, set[int]],
                                        produced: dict[tuple[int, int], str] | None = None,
                                        values: dict[tuple[int, int], str] | None = None) -> None:
    """At-least-once: every offset below a partition's committed offset was consumed by someone.

    With `produced` and `values` ({(partition, offset): value} as produced and as
    consumed), every consumed record must also carry the value produced there.
    """
    for p, upto in sorted(committed.items()):
        missing = sorted(set(range(upto)) - consumed.get(p, set()))
        assert not missing, (f"partition {p}: committed up to {upto} but {len(missing)} offsets were never "
                             f"consumed, first {missing[:20]}")
    if produced is not None and values is not None:
        wrong = [(k, v, produced.get(k)) for k, v in values.items() if produced.get(k) != v]
        assert not wrong, f"{len(wrong)} consumed records differ from what was produced there, first {wrong[:10]}"


class CkGroupMember:
    """A confluent-kafka group member in its own process (so that a test can SIGKILL it).

    The child (ck_group_member_main) subscribes, polls, and prints one JSON
    line per event: rebalance callbacks with the partitions and the client's
    assignment() after the change and its generation, every message
    (partition, offset, value), errors, and "closed". Offsets are stored for
    auto-commit only after the message's line is flushed, so a commit never
    covers a message the test has not seen (at-least-once, even across
    SIGKILL). close() asks the child to call Consumer.close(); kill() is a crash.
    """

    def __init__(self, name: str, bootstrap: str, group: str, topics: list[str], log_dir: Path, **conf):
        import threading
        self.name = name
        self.conf = ck_conf(bootstrap, **{
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": 500,
            "session.timeout.ms": GROUP_SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 500,
        })
        self.conf.pop("logger")
        self.conf.update(conf)
        self.events: list[dict] = []
        self._lock = threading.Lock()
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"member-{name}-{uuid.uuid4().hex[:6]}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(COMPAT_DIR), env.get("PYTHONPATH", "")])
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import sys, helpers; helpers.ck_group_member_main(sys.argv[1], sys.argv[2])",
                 json.dumps(self.conf), json.dumps(topics)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=COMPAT_DIR, env=env)
        self._reader = threading.Thread(target=self._read, name=f"member-{name}", daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "garbage", "line": line.decode(errors="replace")}
            with self._lock:
                self.events.append(event)

    def _events(self, *kinds: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if not kinds or e["event"] in kinds]

    def rebalances(self) -> list[dict]:
        """The assign/revoke/lost callbacks so far, in order."""
        return self._events("assign", "revoke", "lost")

    def views(self) -> tuple[set, set]:
        """(partitions owned according to the callbacks, the client's assignment() after the last one)."""
        owned: set = set()
        reported: set = set()
        for e in self.rebalances():
            parts = {tuple(p) for p in e["partitions"]}
            owned = owned | parts if e["event"] == "assign" else owned - parts
            # None: the client could not say (a callback from inside close()).
            reported = {tuple(p) for p in e["assignment"]} if e["assignment"] is not None else set(owned)
        return owned, reported

    def generation(self) -> int | None:
        known = [e["generation"] for e in self.rebalances() if e["generation"] is not None]
        return known[-1] if known else None

    def close_errors(self) -> list[dict]:
        return self._events("close_error")

    def consumed(self) -> list[tuple[int, int, str]]:
        return [(e["partition"], e["offset"], e["value"]) for e in self._events("message")]

    def errors(self) -> list[dict]:
        return self._events("error")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout_s: float = 60.0) -> None:
        """Consumer.close() in the child: final commit, then LeaveGroup (none for a static member)."""
        try:
            self.proc.stdin.write(b"close\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = self.proc.wait(timeout_s)
        self._reader.join(10)
        assert rc == 0, f"member {self.name} exited with {rc}:\n{self.log_tail()}"
        assert self._events("closed"), f"member {self.name} exited without closing:\n{self.log_tail()}"

    def kill(self) -> None:
        """SIGKILL: no commit, no LeaveGroup; the coordinator notices when the session times out."""
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)

    def __repr__(self) -> str:
        return f"CkGroupMember({self.name})"


def ck_group_member_main(conf_json: str, topics_json: str) -> None:
    """Body of a CkGroupMember child process; see that class."""
    import threading

    conf = json.loads(conf_json)
    topics = json.loads(topics_json)
    cooperative = conf.get("partition.assignment.strategy") == "cooperative-sticky"
    store_offsets = not conf.get("enable.auto.offset.store", True)
    out_lock = threading.Lock()

    def emit(**event):
        line = json.dumps(event) + "\n"
        with out_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    stop = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "close":
                break
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()

    def error_cb(err):
        emit(event="error", code=err.code(), name=err.name(), str=err.str(), fatal=err.fatal(), where="error_cb")

    conf["error_cb"] = error_cb
    consumer = Consumer(conf)

    def tps(parts):
        return sorted([tp.topic, tp.partition] for tp in parts)

    def report(kind, parts):
        try:
            assignment = tps(consumer.assignment())
            generation, member_id = ck_generation(consumer)
        except Exception:  # noqa: BLE001 - inside close() the handle can no longer answer
            assignment, generation, member_id = None, None, None
        emit(event=kind, partitions=tps(parts), assignment=assignment, generation=generation, member_id=member_id)

    # librdkafka requires the rebalance callback to apply the change itself:
    # (un)assign for the eager protocols, incremental_(un)assign for cooperative.
    def on_assign(c, parts):
        if cooperative:
            c.incremental_assign(parts)
        else:
            c.assign(parts)
        report("assign", parts)

    def on_revoke(c, parts):
        if cooperative:
            c.incremental_unassign(parts)
        else:
            c.unassign()
        report("revoke", parts)

    def on_lost(c, parts):
        if cooperative:
            c.incremental_unassign(parts)
        else:
            c.unassign()
        report("lost", parts)

    consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    emit(event="started")
    while not stop.is_set():
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            err = msg.error()
            emit(event="error", code=err.code(), name=err.name(), str=err.str(), fatal=err.fatal(), where="poll")
            continue
        emit(event="message", topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
             value=(msg.value() or b"").decode(errors="replace"))
        if store_offsets:
            try:
                consumer.store_offsets(message=msg)
            except KafkaException as e:
                # The partition was revoked between poll() and here; the new
                # owner starts from the last commit, so nothing is skipped.
                emit(event="store_failed", str=str(e))
    try:
        consumer.close()
    except Exception as e:  # noqa: BLE001 - reported to the test, which decides
        emit(event="close_error", str=str(e))
    emit(event="closed")


def stored_codecs(riffle_bin: Path, data_dir: Path, topic: str, partition: int = 0) -> set[str]:
    """The compression codecs of the batches stored for a partition, as
    `riffle dump-log` reads them from its segment files."""
    out = subprocess.run([str(riffle_bin), "dump-log", str(Path(data_dir) / f"{topic}-{partition}")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return set(re.findall(r"compresscodec: (\S+)", out))
