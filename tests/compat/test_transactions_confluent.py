"""Transactions (KIP-98, KIP-447) with confluent-kafka (librdkafka) against Riffle.

Kafka's exactly-once semantics are the specification: the transaction
coordinator (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
TxnOffsetCommit, state in __transaction_state), COMMIT/ABORT control
records written to every partition of a transaction, and the last stable
offset (LSO) below which read_committed consumers read. The rules each
test checks:

- Consume-transform-produce: a transactional producer and a read_committed
  consumer in a group copy an input topic to an output topic, committing
  the consumed offsets in each transaction (send_offsets_to_transaction);
  every third transaction is aborted and its input read again from the
  group's committed offsets. In the end a read_committed reader of the
  output sees every input record transformed exactly once; a
  read_uncommitted reader also sees the aborted records (they are stored,
  not dropped); the group's committed offsets are the input's end offsets;
  each partition holds one COMMIT or ABORT marker per transaction that wrote
  to it, markers take offsets that no consumer returns, and a
  read_committed Fetch lists exactly the aborted transactions.
- The LSO: while a transaction is open its first offset bounds what a
  read_committed consumer gets (Fetch, ListOffsets latest, end-of-partition)
  even for non-transactional records written after it; commit moves the
  LSO to the high watermark and abort hides the transaction's records only.
- kill -9: a transaction left open by a crash stays invisible to
  read_committed readers after the restart, and a new producer with the
  same transactional.id aborts it in init_transactions (fencing the old
  epoch); a transaction whose commit_transaction returned before the crash
  is entirely visible after it.
- Fencing: a second producer with the same transactional.id fences the
  first (whose next produce and commit fail with a fatal fencing error)
  and aborts its open transaction.
- The coordinator aborts a transaction that outlives its
  transaction.timeout.ms, and the producer cannot commit it afterwards.
- `riffle transactions list / describe / describe-producers` show a
  librdkafka transaction while it is open and after its commit.
"""

from __future__ import annotations

import collections
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from helpers import (GROUP_FAST_OVERRIDES, GROUP_SESSION_TIMEOUT_MS, ck_admin, ck_conf, ck_producer, committed_offsets,
                     create_topic, end_offsets, produce_all, run, unique_topic, wait_until)
from test_idempotence import READ_COMMITTED, READ_UNCOMMITTED, Batch, fetch_all_batches, fetch_v4

TXN_TIMEOUT_S = 30
FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


@pytest.fixture
def txn_broker(broker_factory):
    return broker_factory(*GROUP_FAST_OVERRIDES)


def txn_producer(bootstrap: str, transactional_id: str, **extra) -> Producer:
    return Producer(ck_conf(bootstrap, **{
        "transactional.id": transactional_id,
        "linger.ms": 5,
        "reconnect.backoff.max.ms": 500,
        **extra,
    }))


def read_partitions(bootstrap: str, topic: str, partitions: int, isolation: str,
                    timeout_s: float = 60.0) -> dict[int, list[tuple[int, bytes]]]:
    """Every record a consumer with this isolation.level returns, per partition, from
    offset 0 until the end of the partition (the high watermark for read_uncommitted, the
    LSO for read_committed: librdkafka reports the end with _PARTITION_EOF)."""
    c = Consumer(ck_conf(bootstrap, **{
        "group.id": f"txn-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": True,
        "isolation.level": isolation,
    }))
    out: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    eof: set[int] = set()
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(eof) < partitions:
            assert time.monotonic() < deadline, \
                f"{isolation} read of {topic}: no end of partitions {set(range(partitions)) - eof} in {timeout_s}s"
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise KafkaException(m.error())
                out[m.partition()].append((m.offset(), m.value()))
    finally:
        c.close()
    return out


def watermarks_as(bootstrap: str, topic: str, partition: int, isolation: str) -> tuple[int, int]:
    """(low, high) from ListOffsets as a consumer with this isolation.level asks: the high
    watermark for read_uncommitted, the LSO for read_committed."""
    c = Consumer(ck_conf(bootstrap, **{"group.id": f"txn-wm-{uuid.uuid4().hex[:8]}", "isolation.level": isolation}))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def wait_stable(bootstrap: str, topic: str, partitions: int, what: str) -> dict[int, int]:
    """Until every partition's LSO equals its high watermark (no transaction open); returns the ends."""
    def check():
        ru = {p: watermarks_as(bootstrap, topic, p, "read_uncommitted")[1] for p in range(partitions)}
        rc = {p: watermarks_as(bootstrap, topic, p, "read_committed")[1] for p in range(partitions)}
        return ru == rc, f"high watermarks {ru}, LSOs {rc}"

    wait_until(check, 60, what)
    return {p: watermarks_as(bootstrap, topic, p, "read_uncommitted")[1] for p in range(partitions)}


def values(records: dict[int, list[tuple[int, bytes]]]) -> list[bytes]:
    return [v for recs in records.values() for _, v in recs]


def transactions_in(batches: list[Batch], where: str) -> list[tuple[int, int, int, list[int]]]:
    """The transactions of one partition's batches, in marker order, as
    (producer id, marker type 0 ABORT / 1 COMMIT, first offset, offsets of their records).

    Checks on the way that transactional data is only ever followed by its
    producer's marker, that a marker has data before it, and that no
    transaction is left open. A marker repeating its producer's previous
    decision with no data in between is the same transaction's marker
    written again: a coordinator that stopped after writing the markers but
    before storing CompleteCommit/CompleteAbort writes them again when it
    reloads the transaction, as Kafka's does; it is skipped."""
    open_txns: dict[int, list[int]] = {}
    last_kind: dict[int, int] = {}
    out = []
    for bt in batches:
        if bt.is_control:
            assert bt.is_transactional, f"{where}: control batch {bt} is not transactional"
            assert len(bt.records) == 1, f"{where}: control batch {bt} has {len(bt.records)} records"
            kind = bt.control_type()
            assert kind in (0, 1), f"{where}: unknown control record type in {bt}"
            offsets = open_txns.pop(bt.producer_id, None)
            if offsets is None and last_kind.get(bt.producer_id) == kind:
                continue
            assert offsets, f"{where}: marker {bt} ends no transaction of producer {bt.producer_id}"
            last_kind[bt.producer_id] = kind
            out.append((bt.producer_id, kind, offsets[0], offsets))
        elif bt.is_transactional:
            open_txns.setdefault(bt.producer_id, []).extend(o for o, _, _ in bt.records)
    assert not open_txns, f"{where}: transactions without a marker: {open_txns}"
    return out


# ---------------------------------------------------------------- consume-transform-produce


IN_PARTITIONS = 3
OUT_PARTITIONS = 4
INPUT_RECORDS = 600
BATCH_RECORDS = 40


def transform(value: bytes) -> bytes:
    return b"T(" + value + b")"


def test_consume_transform_produce_commits_each_input_once(txn_broker):
    b = txn_broker
    in_topic, out_topic = unique_topic("eos-in"), unique_topic("eos-out")
    create_topic(b.bootstrap, in_topic, partitions=IN_PARTITIONS)
    create_topic(b.bootstrap, out_topic, partitions=OUT_PARTITIONS)
    inputs = [f"in-{n}".encode() for n in range(INPUT_RECORDS)]
    produce_all(ck_producer(b.bootstrap), in_topic,
                [{"value": v, "partition": n % IN_PARTITIONS} for n, v in enumerate(inputs)])
    in_ends = end_offsets(b.bootstrap, in_topic, IN_PARTITIONS)
    assert sum(in_ends.values()) == INPUT_RECORDS

    group = unique_topic("eos-group")
    consumer = Consumer(ck_conf(b.bootstrap, **{
        "group.id": group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": GROUP_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 500,
    }))
    producer = txn_producer(b.bootstrap, unique_topic("eos-txn"))
    producer.init_transactions(TXN_TIMEOUT_S)
    consumer.subscribe([in_topic])

    committed_inputs: list[bytes] = []
    aborted_outputs: list[bytes] = []
    committed_pos: dict[int, int] = {}
    # Per transaction: (committed?, output partitions written).
    txns: list[tuple[bool, set[int]]] = []
    deadline = time.monotonic() + 90
    try:
        while committed_pos != in_ends:
            assert time.monotonic() < deadline, f"committed {committed_pos} of {in_ends} after 90s"
            msgs = consumer.consume(num_messages=BATCH_RECORDS, timeout=0.5)
            for m in msgs:
                if m.error():
                    raise KafkaException(m.error())
            if not msgs:
                continue
            abort = len(txns) % 3 == 2
            producer.begin_transaction()
            written: set[int] = set()
            for m in msgs:
                part = (m.partition() * 7 + m.offset()) % OUT_PARTITIONS
                written.add(part)
                producer.produce(out_topic, key=m.value(), value=transform(m.value()), partition=part)
            positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), TXN_TIMEOUT_S)
            if abort:
                # abort_transaction() purges records still queued in the client;
                # flushing first puts them all in the log, where read_uncommitted
                # readers must find them.
                assert producer.flush(TXN_TIMEOUT_S) == 0
                producer.abort_transaction(TXN_TIMEOUT_S)
                aborted_outputs.extend(transform(m.value()) for m in msgs)
                # What an exactly-once application does after an abort: go back to
                # the group's committed offsets and process that input again. The
                # aborted offsets must not be among them.
                committed = consumer.committed(consumer.assignment(), timeout=TXN_TIMEOUT_S)
                got = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
                assert got == committed_pos, f"after an abort the group's offsets are {got}, want {committed_pos}"
                for tp in committed:
                    consumer.seek(TopicPartition(in_topic, tp.partition,
                                                 tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
            else:
                producer.commit_transaction(TXN_TIMEOUT_S)
                committed_inputs.extend(m.value() for m in msgs)
                committed_pos.update({tp.partition: tp.offset for tp in positions})
            txns.append((not abort, written))
    finally:
        consumer.close()

    commits = sum(1 for c, _ in txns if c)
    aborts = len(txns) - commits
    assert aborts >= 2 and commits >= 4, f"{commits} commits, {aborts} aborts: not a meaningful run"
    assert collections.Counter(committed_inputs) == collections.Counter(inputs), \
        "the loop itself committed some input twice or never"

    # The group's offsets are the ends of the input.
    got = {p: tp.offset for p, tp in committed_offsets(ck_admin(b.bootstrap), group, in_topic, IN_PARTITIONS).items()}
    assert got == in_ends

    out_ends = wait_stable(b.bootstrap, out_topic, OUT_PARTITIONS, "the output's LSO to reach its high watermark")

    # read_committed: every input exactly once, nothing aborted.
    rc = read_partitions(b.bootstrap, out_topic, OUT_PARTITIONS, "read_committed")
    rc_counts = collections.Counter(values(rc))
    expected = collections.Counter(transform(v) for v in inputs)
    dupes = {v: n for v, n in rc_counts.items() if n > 1}
    missing = expected - rc_counts
    extra = rc_counts - expected
    assert rc_counts == expected, (f"read_committed: {len(dupes)} duplicated, {sum(missing.values())} missing, "
                                   f"{sum(extra.values())} unexpected records; first duplicates {list(dupes)[:5]}")

    # read_uncommitted: the aborted records are stored too.
    ru = read_partitions(b.bootstrap, out_topic, OUT_PARTITIONS, "read_uncommitted")
    assert collections.Counter(values(ru)) == expected + collections.Counter(aborted_outputs)

    # The partitions on the wire: markers, offset gaps and the aborted-transactions list.
    for part in range(OUT_PARTITIONS):
        where = f"{out_topic}[{part}]"
        batches, last = fetch_all_batches(b.port, out_topic, part, READ_UNCOMMITTED)
        assert last.high_watermark == out_ends[part] and last.last_stable_offset == out_ends[part], last
        found = transactions_in(batches, where)
        assert [kind for _, kind, _, _ in found] == [1 if c else 0 for c, ps in txns if part in ps], \
            f"{where}: markers {[kind for _, kind, _, _ in found]} do not match the transactions that wrote to it"
        data_offsets = [o for bt in batches if not bt.is_control for o, _, _ in bt.records]
        control_offsets = [bt.base_offset for bt in batches if bt.is_control]
        assert sorted(data_offsets + control_offsets) == list(range(out_ends[part])), \
            f"{where}: data and marker offsets do not tile 0..{out_ends[part]}"
        # Consumers never return the markers' offsets.
        assert [o for o, _ in ru[part]] == data_offsets, f"{where}: read_uncommitted offsets"
        committed_offsets_ = sorted(o for _, kind, _, offs in found if kind == 1 for o in offs)
        assert [o for o, _ in rc[part]] == committed_offsets_, f"{where}: read_committed offsets"
        # A read_committed Fetch from 0 lists every aborted transaction by its first offset.
        r = fetch_v4(b.port, out_topic, part, 0, READ_COMMITTED)
        assert r.error_code == 0, r
        assert r.aborted is not None, f"{where}: read_committed Fetch v4 answered a null aborted_transactions"
        want = sorted((pid, first) for pid, kind, first, _ in found if kind == 0)
        assert sorted(r.aborted) == want, f"{where}: aborted_transactions {sorted(r.aborted)}, want {want}"
    producer.close()


# ---------------------------------------------------------------- the last stable offset


def test_open_transaction_bounds_read_committed_at_its_first_offset(txn_broker):
    b = txn_broker
    topic = unique_topic("lso")
    create_topic(b.bootstrap, topic, partitions=2)
    plain = ck_producer(b.bootstrap, acks="all")
    produce_all(plain, topic, [{"value": f"plain-{i}".encode(), "partition": 0} for i in range(5)])

    txn = txn_producer(b.bootstrap, unique_topic("lso-txn"))
    txn.init_transactions(TXN_TIMEOUT_S)

    def open_transaction(tag: str) -> None:
        txn.begin_transaction()
        for part in (0, 1):
            for i in range(3):
                txn.produce(topic, value=f"{tag}-{part}-{i}".encode(), partition=part)
        assert txn.flush(30) == 0

    # Partition 0: plain 0..4, transactional 5..7 (open), then a plain record at 8.
    open_transaction("t1")
    after = produce_all(plain, topic, [{"value": b"plain-after", "partition": 0}])
    assert after[0].offset() == 8

    assert watermarks_as(b.bootstrap, topic, 0, "read_uncommitted") == (0, 9)
    assert watermarks_as(b.bootstrap, topic, 0, "read_committed") == (0, 5), \
        "ListOffsets latest (read_committed) must answer the LSO: the open transaction's first offset"
    assert watermarks_as(b.bootstrap, topic, 1, "read_committed") == (0, 0)
    r = fetch_v4(b.port, topic, 0, 0, READ_COMMITTED)
    assert (r.error_code, r.high_watermark, r.last_stable_offset) == (0, 9, 5), r
    assert all(bt.last_offset < 5 for bt in r.batches), f"read_committed Fetch returned data past the LSO: {r}"
    r = fetch_v4(b.port, topic, 0, 0, READ_UNCOMMITTED)
    assert r.last_stable_offset == 5 and r.batches[-1].last_offset == 8, r
    rc = read_partitions(b.bootstrap, topic, 2, "read_committed")
    assert rc == {0: [(i, f"plain-{i}".encode()) for i in range(5)], 1: []}

    # Commit: everything up to the marker is visible; the marker takes offset 9.
    txn.commit_transaction(TXN_TIMEOUT_S)
    ends = wait_stable(b.bootstrap, topic, 2, "the LSO to reach the high watermark after the commit")
    assert ends == {0: 10, 1: 4}
    rc = read_partitions(b.bootstrap, topic, 2, "read_committed")
    assert [v for _, v in rc[0]] == [f"plain-{i}".encode() for i in range(5)] + \
        [f"t1-0-{i}".encode() for i in range(3)] + [b"plain-after"]
    assert [o for o, _ in rc[0]] == list(range(9))
    assert rc[1] == [(i, f"t1-1-{i}".encode()) for i in range(3)]

    # Abort: the next transaction's records are stored (offsets 10..12, marker 13)
    # but read_committed skips them; a record after the marker lands at 14.
    open_transaction("t2")
    txn.abort_transaction(TXN_TIMEOUT_S)
    after = produce_all(plain, topic, [{"value": b"after-abort", "partition": 0}])
    assert after[0].offset() == 14
    wait_stable(b.bootstrap, topic, 2, "the LSO to reach the high watermark after the abort")
    rc = read_partitions(b.bootstrap, topic, 2, "read_committed")
    assert [o for o, _ in rc[0]] == list(range(9)) + [14]
    assert [o for o, _ in rc[1]] == [0, 1, 2]
    ru = read_partitions(b.bootstrap, topic, 2, "read_uncommitted")
    assert [o for o, _ in ru[0]] == list(range(9)) + [10, 11, 12, 14]
    assert [v for _, v in ru[1]] == [f"t1-1-{i}".encode() for i in range(3)] + [f"t2-1-{i}".encode() for i in range(3)]
    assert [o for o, _ in ru[1]] == [0, 1, 2, 4, 5, 6]
    r = fetch_v4(b.port, topic, 0, 0, READ_COMMITTED)
    assert r.aborted is not None and [first for _, first in r.aborted] == [10], r
    txn.close()


# ---------------------------------------------------------------- crashes


def test_kill9_mid_transaction_and_right_after_commit(txn_broker):
    b = txn_broker
    topic = unique_topic("txn-crash")
    parts = 3
    create_topic(b.bootstrap, topic, partitions=parts)
    open_id, committed_id = unique_topic("txn-open"), unique_topic("txn-committed")

    # Producer A commits one transaction, then leaves a second one open on every partition.
    a = txn_producer(b.bootstrap, open_id)
    a.init_transactions(TXN_TIMEOUT_S)
    a.begin_transaction()
    for p in range(parts):
        for i in range(10):
            a.produce(topic, value=f"a-committed-{p}-{i}".encode(), partition=p)
    a.commit_transaction(TXN_TIMEOUT_S)
    a.begin_transaction()
    for p in range(parts):
        for i in range(10):
            a.produce(topic, value=f"a-open-{p}-{i}".encode(), partition=p)
    assert a.flush(30) == 0, "the open transaction's records were not all acknowledged"

    # Producer B's commit_transaction returns just before the crash.
    b_prod = txn_producer(b.bootstrap, committed_id)
    b_prod.init_transactions(TXN_TIMEOUT_S)
    b_prod.begin_transaction()
    for p in range(parts):
        for i in range(10):
            b_prod.produce(topic, value=f"b-committed-{p}-{i}".encode(), partition=p)
    b_prod.commit_transaction(TXN_TIMEOUT_S)
    b.kill()
    b.start()

    # The open transaction still holds the LSO (it has not timed out): nothing of it is visible,
    # and neither is what came after it.
    for p in range(parts):
        low, lso = watermarks_as(b.bootstrap, topic, p, "read_committed")
        r = fetch_v4(b.port, topic, p, 0, READ_COMMITTED)
        assert all(not v.startswith(b"a-open") for bt in r.batches for _, _, v in bt.records), \
            f"partition {p}: read_committed Fetch returned records of the open transaction after the restart: {r}"
        assert lso == r.last_stable_offset <= r.high_watermark, (lso, r)

    # A new producer with A's transactional.id: init_transactions aborts the open transaction.
    a2 = txn_producer(b.bootstrap, open_id)
    a2.init_transactions(TXN_TIMEOUT_S)
    wait_stable(b.bootstrap, topic, parts, "the LSO to reach the high watermark once the open transaction is aborted")
    rc = read_partitions(b.bootstrap, topic, parts, "read_committed")
    for p in range(parts):
        got = [v for _, v in rc[p]]
        want = {f"a-committed-{p}-{i}".encode() for i in range(10)} | {f"b-committed-{p}-{i}".encode() for i in range(10)}
        assert sorted(got) == sorted(want), f"partition {p}: read_committed after kill -9 got {got}"
    ru = read_partitions(b.bootstrap, topic, parts, "read_uncommitted")
    assert sum(1 for v in values(ru) if v.startswith(b"a-open")) == 10 * parts, "the aborted records are stored"
    for p in range(parts):
        batches, _ = fetch_all_batches(b.port, topic, p)
        kinds = sorted(kind for _, kind, _, _ in transactions_in(batches, f"partition {p}"))
        assert kinds == [0, 1, 1], f"partition {p}: markers {kinds}, want one ABORT and two COMMITs"

    # A2 works as a transactional producer; the old producer is fenced.
    a2.begin_transaction()
    a2.produce(topic, value=b"a2", partition=0)
    a2.commit_transaction(TXN_TIMEOUT_S)
    a.produce(topic, value=b"zombie", partition=1)
    with pytest.raises(KafkaException) as e:
        a.commit_transaction(TXN_TIMEOUT_S)
    assert e.value.args[0].code() in FENCED or e.value.args[0].fatal(), e.value
    wait_stable(b.bootstrap, topic, parts, "the LSO to reach the high watermark after A2's commit")
    rc = read_partitions(b.bootstrap, topic, parts, "read_committed")
    assert b"a2" in values(rc) and b"zombie" not in values(rc)


# ---------------------------------------------------------------- fencing


def test_second_producer_with_the_same_transactional_id_fences_the_first(txn_broker):
    b = txn_broker
    topic = unique_topic("txn-fence")
    create_topic(b.bootstrap, topic, partitions=2)
    tid = unique_topic("txn-fence")
    errors: list[KafkaError] = []
    first = txn_producer(b.bootstrap, tid, error_cb=errors.append)
    first.init_transactions(TXN_TIMEOUT_S)
    first.begin_transaction()
    for i in range(5):
        first.produce(topic, value=f"first-{i}".encode(), partition=0)
    assert first.flush(30) == 0

    second = txn_producer(b.bootstrap, tid)
    second.init_transactions(TXN_TIMEOUT_S)

    failures = []
    first.produce(topic, value=b"first-after-fence", partition=0,
                  on_delivery=lambda err, msg: failures.append(err) if err else None)
    first.produce(topic, value=b"first-new-partition", partition=1,
                  on_delivery=lambda err, msg: failures.append(err) if err else None)
    with pytest.raises(KafkaException) as e:
        first.commit_transaction(TXN_TIMEOUT_S)
    err = e.value.args[0]
    assert err.fatal(), f"fencing must be fatal for the old producer, got {err}"
    assert err.code() in FENCED, f"expected a fencing error, got {err} (code {err.code()})"
    first.flush(10)
    # And it cannot start another transaction.
    with pytest.raises(KafkaException):
        first.begin_transaction()

    second.begin_transaction()
    second.produce(topic, value=b"second", partition=0)
    second.commit_transaction(TXN_TIMEOUT_S)
    wait_stable(b.bootstrap, topic, 2, "no open transaction on the topic")
    rc = read_partitions(b.bootstrap, topic, 2, "read_committed")
    assert values(rc) == [b"second"], f"read_committed sees {values(rc)}: the fenced producer's records must be aborted"
    ru = read_partitions(b.bootstrap, topic, 2, "read_uncommitted")
    assert {f"first-{i}".encode() for i in range(5)} <= set(values(ru))
    assert b"first-after-fence" not in values(ru) and b"first-new-partition" not in values(ru), \
        f"the broker accepted records from a fenced epoch: {values(ru)}"
    batches, _ = fetch_all_batches(b.port, topic, 0)
    found = transactions_in(batches, "partition 0")
    assert [kind for _, kind, _, _ in found] == [0, 1], found


# ---------------------------------------------------------------- the coordinator's timer


def test_timed_out_transaction_is_aborted_by_the_coordinator(broker_factory):
    """A transaction open longer than its transaction.timeout.ms is aborted by the
    coordinator (Kafka's abortTimedOutTransactions, run every
    transaction.abort.timed.out.transaction.cleanup.interval.ms): the marker is written,
    the LSO moves past the records, and the producer can no longer commit them."""
    b = broker_factory(*GROUP_FAST_OVERRIDES, "transaction.abort.timed.out.transaction.cleanup.interval.ms=200")
    topic = unique_topic("txn-timeout")
    create_topic(b.bootstrap, topic, partitions=1)
    p = txn_producer(b.bootstrap, unique_topic("txn-timeout"),
                     **{"transaction.timeout.ms": 2000, "message.timeout.ms": 2000})
    p.init_transactions(TXN_TIMEOUT_S)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"slow-{i}".encode(), partition=0)
    assert p.flush(30) == 0
    assert watermarks_as(b.bootstrap, topic, 0, "read_committed") == (0, 0)
    ends = wait_stable(b.bootstrap, topic, 1, "the coordinator to abort the timed-out transaction")
    assert ends == {0: 4}, "three records and the ABORT marker"
    batches, _ = fetch_all_batches(b.port, topic, 0)
    assert [kind for _, kind, _, _ in transactions_in(batches, "partition 0")] == [0]
    with pytest.raises(KafkaException):
        p.commit_transaction(TXN_TIMEOUT_S)
    assert read_partitions(b.bootstrap, topic, 1, "read_committed") == {0: []}


# ---------------------------------------------------------------- riffle transactions (the CLI)


def riffle_transactions(riffle_bin, bootstrap: str, *args: str) -> list[list[str]]:
    """`riffle transactions` (exit 0 required); its table as rows of trimmed cells, header first."""
    p = run([str(riffle_bin), "transactions", "--bootstrap-server", bootstrap, *args], timeout_s=60)
    lines = p.stdout.decode().splitlines()
    assert lines and all(line.endswith("\t") for line in lines), f"not Kafka's table layout: {lines}"
    return [[c.strip() for c in line[:-1].split("\t")] for line in lines]


def test_riffle_transactions_shows_a_librdkafka_transaction(txn_broker, riffle_bin):
    b = txn_broker
    topic = unique_topic("txn-cli")
    create_topic(b.bootstrap, topic, partitions=2)
    tid = unique_topic("txn-cli")
    p = txn_producer(b.bootstrap, tid)
    p.init_transactions(TXN_TIMEOUT_S)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"cli-{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0

    listed = riffle_transactions(riffle_bin, b.bootstrap, "list")
    assert listed[0] == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
    mine = [r for r in listed[1:] if r[0] == tid]
    assert len(mine) == 1 and mine[0][1] == "1" and mine[0][3] == "Ongoing", listed
    pid = mine[0][2]

    described = riffle_transactions(riffle_bin, b.bootstrap, "describe", "--transactional-id", tid)
    assert described[0][4] == "TransactionState" and len(described) == 2, described
    row = described[1]
    assert row[:3] == ["1", tid, pid] and row[4] == "Ongoing", row
    assert row[6] != "None" and int(row[7]) >= 0, row
    assert row[8].split(",") == [f"{topic}-0", f"{topic}-1"], row

    for part in (0, 1):
        producers = riffle_transactions(riffle_bin, b.bootstrap, "describe-producers", "--topic", topic,
                                        "--partition", str(part))
        assert producers[1:] and producers[1][0] == pid, producers
        assert producers[1][3] == "1", f"two records per partition: last sequence 1, {producers}"
        assert producers[1][5] == "0", f"the open transaction starts at offset 0: {producers}"

    p.commit_transaction(TXN_TIMEOUT_S)

    def completed():
        row = riffle_transactions(riffle_bin, b.bootstrap, "describe", "--transactional-id", tid)[1]
        return row[4] == "CompleteCommit", row

    wait_until(completed, 30, "the transaction to show as CompleteCommit")
    producers = riffle_transactions(riffle_bin, b.bootstrap, "describe-producers", "--topic", topic,
                                    "--partition", "0")
    assert producers[1][0] == pid and producers[1][5] == "None", producers
    p.close()
