"""Idempotent producers (KIP-98) with real clients, through connections that break.

The rules each test checks:

- The fault proxy (proxy.py) forwards bytes faithfully and cuts at exactly
  the byte it was told to, so the idempotence test below cannot pass
  without faults (its own self-test, against an echo server).
- An idempotent producer (librdkafka: enable.idempotence, acks=all, five
  requests in flight) writes every record exactly once and in order per
  partition while every connection to the broker is cut again and again in
  the middle of requests and of responses. A response torn after the broker
  appended the batch makes the client send the batch again with the same
  producer id, epoch and sequence; the broker must answer it with the
  original offset instead of appending it twice (Kafka's
  ProducerStateManager keeps the last five batches per producer for this),
  and must refuse a batch whose sequence skips ahead of the last one it
  has (OUT_OF_ORDER_SEQUENCE_NUMBER) so that nothing is reordered.
- The same across a broker crash: batches the broker stored (but whose
  answers the proxy swallowed) before a kill -9 are sent again after the
  restart, and the producer state recovered from the log must recognise
  them.
- kafka-python 3's default producer is idempotent: its batches carry a
  producer id, an epoch and sequences that start at 0 and run on without
  gaps, and each record is stored once; also through a proxy that cuts.

Every connection of the client goes through the proxy: the broker
advertises the proxy's port in advertised.listeners, so the address the
client learns from Metadata is the proxy's too.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from helpers import ck_producer, create_topic, unique_topic, wait_for
from proxy import Proxy

# ---------------------------------------------------------------- a raw Fetch (v4)
#
# The clients hide what the batches carry (producer id, epoch, sequence,
# transactional and control flags) and what a Fetch response says about
# transactions (last stable offset, aborted transactions). fetch_v4 asks
# for them on the wire and decodes the batches with kafka-python's record
# reader. test_transactions_confluent.py uses it too.

API_KEY_FETCH = 1
READ_UNCOMMITTED = 0
READ_COMMITTED = 1


def _string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


class Batch:
    """A record batch as stored, with its records' (offset, key, value)."""

    def __init__(self, b):
        self.base_offset = b.base_offset
        self.last_offset = b.base_offset + b.last_offset_delta
        self.producer_id = b.producer_id
        self.producer_epoch = b.producer_epoch
        self.base_sequence = b.base_sequence
        self.is_transactional = bool(b.is_transactional)
        self.is_control = bool(b.is_control_batch)
        self.records = [(r.offset, r.key, r.value) for r in b]

    def control_type(self) -> int | None:
        """0 for an ABORT marker, 1 for a COMMIT marker (the control record's key)."""
        if not self.is_control or not self.records:
            return None
        key = self.records[0][1]
        return struct.unpack(">hh", key[:4])[1]

    def __repr__(self) -> str:
        kind = {None: "", 0: " ABORT", 1: " COMMIT"}[self.control_type()]
        return (f"Batch({self.base_offset}..{self.last_offset} pid={self.producer_id} epoch={self.producer_epoch} "
                f"seq={self.base_sequence} txn={self.is_transactional} control={self.is_control}{kind} "
                f"n={len(self.records)})")


class FetchResult:
    def __init__(self, error_code, high_watermark, last_stable_offset, aborted, batches):
        self.error_code = error_code
        self.high_watermark = high_watermark
        self.last_stable_offset = last_stable_offset
        self.aborted = aborted  # [(producer_id, first_offset)] or None
        self.batches = batches

    def __repr__(self) -> str:
        return (f"FetchResult(error={self.error_code} hw={self.high_watermark} lso={self.last_stable_offset} "
                f"aborted={self.aborted} batches={self.batches})")


def fetch_v4(port: int, topic: str, partition: int, offset: int = 0, isolation_level: int = READ_UNCOMMITTED,
             max_bytes: int = 16 * 1024 * 1024, timeout_s: float = 10.0) -> FetchResult:
    """One Fetch v4 request (no wait) for one partition, on a new connection."""
    from kafka.record import MemoryRecords

    body = (struct.pack(">iiiib", -1, 0, 1, max_bytes, isolation_level) + struct.pack(">i", 1) + _string(topic)
            + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes))
    header = struct.pack(">hhi", API_KEY_FETCH, 4, 99) + _string("riffle-compat-raw")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        payload = header + body
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        data = _recv_exact(sock, size)
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return vals

    (corr,) = take(">i")
    assert corr == 99, corr
    take(">i")  # throttle_time_ms
    result = None
    for _ in range(take(">i")[0]):
        (n,) = take(">h")
        name = data[pos:pos + n].decode()
        pos += n
        for _ in range(take(">i")[0]):
            p, err, hw, lso = take(">ihqq")
            (count,) = take(">i")
            aborted = None if count < 0 else [take(">qq") for _ in range(count)]
            (size,) = take(">i")
            raw = b"" if size < 0 else data[pos:pos + size]
            pos += max(size, 0)
            if name == topic and p == partition:
                batches = []
                records = MemoryRecords(raw)
                while True:
                    b = records.next_batch()
                    if b is None:
                        break
                    batches.append(Batch(b))
                result = FetchResult(err, hw, lso, aborted, batches)
    assert result is not None, f"Fetch did not answer for {topic}[{partition}]"
    return result


def fetch_all_batches(port: int, topic: str, partition: int, isolation_level: int = READ_UNCOMMITTED,
                      end: int | None = None) -> tuple[list[Batch], FetchResult]:
    """Every batch of a partition from offset 0 up to `end` (the high watermark or,
    read_committed, the last stable offset, unless given), and the last response."""
    batches: list[Batch] = []
    offset = 0
    while True:
        r = fetch_v4(port, topic, partition, offset, isolation_level)
        assert r.error_code == 0, r
        limit = end if end is not None else (
            r.last_stable_offset if isolation_level == READ_COMMITTED else r.high_watermark)
        new = [b for b in r.batches if b.last_offset >= offset]
        batches.extend(new)
        if new:
            offset = new[-1].last_offset + 1
        if offset >= limit or not new:
            return batches, r


# ---------------------------------------------------------------- the proxy's self-test


class EchoServer:
    """Echoes every byte back; counts the bytes each connection received."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received: list[int] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.received.append(0)
                i = len(self.received) - 1
            threading.Thread(target=self._echo, args=(c, i), daemon=True).start()

    def _echo(self, c, i):
        with c:
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                with self.lock:
                    self.received[i] += len(d)
                try:
                    c.sendall(d)
                except OSError:
                    return

    def close(self):
        self.sock.close()


def _read_until_closed(sock: socket.socket, timeout_s: float = 10.0) -> tuple[int, bool]:
    """(bytes read, whether the connection ended) within the timeout."""
    sock.settimeout(timeout_s)
    got = 0
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                return got, True
            got += len(d)
    except (ConnectionResetError, BrokenPipeError):
        return got, True
    except socket.timeout:
        return got, False


def test_proxy_forwards_and_cuts_at_the_byte():
    echo = EchoServer()
    proxy = Proxy(echo.port)
    try:
        # Faithful forwarding both ways.
        payload = bytes(range(256)) * 400
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(payload)
            back = _recv_exact(s, len(payload))
        assert back == payload
        assert proxy.cuts == 0

        # An upstream cut after exactly 1000 bytes: the server sees 1000 bytes, the client a reset.
        proxy.cut_every(upstream_bytes=1000)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            try:
                s.sendall(b"x" * 5000)
            except OSError:
                pass
            _, ended = _read_until_closed(s)
        assert ended, "the proxy did not close the connection"
        wait_for(lambda: echo.received[-1] == 1000, 5, f"the server to have 1000 bytes, has {echo.received}")
        time.sleep(0.2)
        assert echo.received[-1] == 1000, echo.received
        assert proxy.cuts == 1

        # A downstream cut after 300 bytes: the client gets exactly 300 bytes back, then the end.
        proxy.cut_every(downstream_bytes=300)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"y" * 200)
            assert _recv_exact(s, 200) == b"y" * 200
            s.sendall(b"z" * 200)
            got, ended = _read_until_closed(s)
        assert (got, ended) == (100, True)
        assert proxy.cuts == 2

        # cuts_max: no more cuts after the allowed ones.
        proxy.cut_every(upstream_bytes=100, cuts_max=1)
        for expect_cut in (True, False):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
                s.sendall(b"w" * 150)
                if expect_cut:
                    assert _read_until_closed(s)[1]
                else:
                    assert _recv_exact(s, 150) == b"w" * 150
        assert proxy.cuts == 3

        # On demand: an idle connection is reset.
        proxy.cut_every()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"ping")
            assert _recv_exact(s, 4) == b"ping"
            wait_for(lambda: proxy.cut_all("test") == 1, 5, "the link to be registered and cut")
            assert _read_until_closed(s) == (0, True)
        assert proxy.cuts == 4

        # Dropping downstream: the server gets the bytes, the client hears nothing back.
        proxy.cut_every()
        proxy.drop_downstream(True)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"v" * 300)
            wait_for(lambda: proxy.stats()["dropped_down"] == 300, 5, "the echo to be dropped")
            assert _read_until_closed(s, timeout_s=0.3) == (0, False)
            proxy.drop_downstream(False)
            s.sendall(b"u" * 10)
            assert _recv_exact(s, 10) == b"u" * 10
        assert proxy.cuts == 4

        # Held connections wait, then work.
        proxy.hold_new_connections(True)
        connections = len(echo.received)
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        with s:
            s.sendall(b"held")
            assert _read_until_closed(s, timeout_s=0.3) == (0, False)
            assert len(echo.received) == connections, "a held connection reached the server"
            proxy.hold_new_connections(False)
            assert _recv_exact(s, 4) == b"held"

        # On a timer: a connection that stays open is cut.
        proxy.cut_every(interval_ms=100)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            assert _read_until_closed(s, timeout_s=5)[1]
        assert proxy.cuts >= 5
    finally:
        proxy.close()
        echo.close()


# ---------------------------------------------------------------- confluent-kafka


@pytest.fixture
def proxied_broker(broker_factory):
    """A broker whose clients all go through a Proxy (returned as (broker, proxy))."""
    proxy = Proxy()
    b = broker_factory(f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy.port}", start=False)
    proxy.target_port = b.port
    b.start()
    yield b, proxy
    proxy.close()


PARTITIONS = 4
RECORDS = 20_000


def assert_sequences_contiguous(batches: list[Batch], where: str) -> None:
    """Within each producer id and epoch, the batches' sequences start at 0 and run on without gaps."""
    next_seq: dict[tuple[int, int], int] = {}
    for bt in batches:
        key = (bt.producer_id, bt.producer_epoch)
        want = next_seq.get(key, 0)
        assert bt.base_sequence == want, f"{where}: {bt} should start at sequence {want}"
        next_seq[key] = bt.base_sequence + len(bt.records)


def test_idempotent_producer_survives_connection_cuts(proxied_broker):
    b, proxy = proxied_broker
    topic = unique_topic("idem-cuts")
    create_topic(proxy.address, topic, partitions=PARTITIONS)

    delivered, failed, errors = [], [], []
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            (failed if err is not None else delivered).append((err, msg.partition(), msg.offset()))

    p = ck_producer(proxy.address, **{
        "enable.idempotence": True, "acks": "all", "max.in.flight.requests.per.connection": 5,
        "linger.ms": 2, "batch.num.messages": 100, "message.timeout.ms": 120_000,
        "retry.backoff.ms": 20, "retry.backoff.max.ms": 200,
        "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100,
        "socket.connection.setup.timeout.ms": 5000,
        "error_cb": lambda e: errors.append(e),
    })
    # Let the producer get its producer id before the cuts start, so that the
    # cuts land in produce traffic (the handshake is small anyway).
    p.produce(topic, value=b"warm-up", partition=0, on_delivery=on_delivery)
    assert p.flush(30) == 0
    assert not failed, failed
    warmup = delivered.pop()
    assert warmup[2] == 0

    # Tear requests (client to broker) every 40 kB and responses (broker to
    # client) every 3 kB: a torn response means the batch was appended but
    # the client retries it.
    proxy.cut_every(upstream_bytes=40_000, downstream_bytes=3_000, cuts_max=60)
    for n in range(RECORDS):
        while True:
            try:
                p.produce(topic, value=str(n).encode(), partition=n % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    remaining = p.flush(120)
    cuts = proxy.stats()
    proxy.cut_every()
    fatal = [e for e in errors if e.fatal()]
    assert not fatal, f"fatal producer errors: {fatal}"
    assert remaining == 0, f"{remaining} records neither delivered nor failed; {cuts}"
    assert not failed, f"{len(failed)} deliveries failed, first {failed[:3]}; {cuts}"
    assert len(delivered) == RECORDS
    # The faults happened: requests and responses were torn many times.
    assert cuts["cuts"] >= 10, f"only {cuts['cuts']} cuts: the test did not exercise retries ({proxy.cut_log})"
    print(f"proxy: {cuts}; first cuts: {proxy.cut_log[:5]}")

    # The warm-up record is offset 0 of partition 0; partition 0 holds it before the numbers.
    for part in range(PARTITIONS):
        offsets = sorted(o for _, pt, o in delivered if pt == part)
        start = 1 if part == 0 else 0
        assert offsets == list(range(start, start + RECORDS // PARTITIONS)), \
            f"partition {part}: the delivery reports do not give each record its own consecutive offset"

    assert_numbers_stored_once_in_order(b.port, topic)


def assert_numbers_stored_once_in_order(port: int, topic: str) -> None:
    """Partition p holds b"warm-up" (partition 0 only) then exactly the numbers n < RECORDS with
    n % PARTITIONS == p, ascending, in batches whose sequences run on without gaps. Read
    directly from the broker: what is stored, not what the client was told."""
    for part in range(PARTITIONS):
        batches, last = fetch_all_batches(port, topic, part)
        values = [v for bt in batches for _, _, v in bt.records]
        if part == 0:
            assert values[:1] == [b"warm-up"], values[:3]
            values = values[1:]
        expected = [str(n).encode() for n in range(part, RECORDS, PARTITIONS)]
        dupes = len(values) - len(set(values))
        missing = len(set(expected) - set(values))
        if values != expected:
            first = next((i for i, (x, y) in enumerate(zip(values, expected)) if x != y), min(len(values), len(expected)))
            raise AssertionError(
                f"partition {part}: {len(values)} records stored, {dupes} duplicates, {missing} missing; "
                f"high watermark {last.high_watermark}; first difference at record {first}: stored "
                f"{values[first:first + 3]}, expected {expected[first:first + 3]}; batches there: "
                f"{[bt for bt in batches if bt.records and bt.records[-1][0] >= first][:3]}")
        assert all(bt.producer_id >= 0 and bt.producer_epoch >= 0 for bt in batches), batches[:5]
        assert_sequences_contiguous(batches, f"partition {part}")


def test_idempotent_producer_survives_broker_kill9(proxied_broker):
    """A broker killed (SIGKILL) and restarted while an idempotent producer streams: batches
    the broker stored but did not acknowledge are sent again after the restart, and the
    producer state recovered from the log (Kafka's ProducerStateManager snapshots plus the
    log after them) must recognise them as duplicates. The proxy swallows the broker's
    answers just before the kill, so that such batches certainly exist."""
    b, proxy = proxied_broker
    topic = unique_topic("idem-kill9")
    create_topic(proxy.address, topic, partitions=PARTITIONS)
    delivered, failed, errors = [], [], []
    lock = threading.Lock()

    def on_delivery(err, msg):
        with lock:
            (failed if err is not None else delivered).append((err, msg.partition(), msg.offset()))

    p = ck_producer(proxy.address, **{
        "enable.idempotence": True, "acks": "all", "max.in.flight.requests.per.connection": 5,
        "linger.ms": 2, "batch.num.messages": 100, "message.timeout.ms": 120_000,
        "retry.backoff.ms": 20, "retry.backoff.max.ms": 200,
        "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 200,
        "error_cb": lambda e: errors.append(e),
    })
    p.produce(topic, value=b"warm-up", partition=0, on_delivery=on_delivery)
    assert p.flush(30) == 0 and not failed, failed
    delivered.clear()
    stop = threading.Event()
    sent = [0]

    def stream():
        while not stop.is_set() and sent[0] < RECORDS:
            try:
                p.produce(topic, value=str(sent[0]).encode(), partition=sent[0] % PARTITIONS,
                          on_delivery=on_delivery)
                sent[0] += 1
            except BufferError:
                p.poll(0.05)
            p.poll(0)
            if sent[0] % 50 == 0:
                time.sleep(0.001)
        # Delivery reports (and librdkafka's logs) only arrive through poll().
        while not stop.is_set():
            p.poll(0.1)

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(delivered) >= RECORDS // 4, 60, f"{RECORDS // 4} acknowledgements")
        # Let the broker store batches whose answers never arrive, then crash it:
        # after the restart the client must send those batches again.
        proxy.drop_downstream(True)
        with lock:
            acked = len(delivered)

        def stored():
            return sum(fetch_v4(b.port, topic, part).high_watermark for part in range(PARTITIONS)) - 1

        wait_for(lambda: stored() > acked, 30, "the broker to store records it has not acknowledged")
        stored_at_kill = stored()
        # Keep the client out until the restarted broker's log has been looked at.
        proxy.hold_new_connections(True)
        b.kill()
        proxy.cut_all("kill -9")
        proxy.drop_downstream(False)
        with lock:
            at_kill = len(delivered)
        b.start()
        stored_after_restart = stored()
        proxy.hold_new_connections(False)
        wait_for(lambda: len(delivered) + len(failed) >= RECORDS, 120, "every record to be delivered or to fail")
    finally:
        stop.set()
        t.join(30)
    remaining = p.flush(30)
    fatal = [e for e in errors if e.fatal()]
    assert not fatal, f"fatal producer errors: {fatal}"
    assert remaining == 0, f"{remaining} records neither delivered nor failed"
    assert not failed, f"{len(failed)} deliveries failed, first {failed[:3]}"
    assert len(delivered) == RECORDS
    assert at_kill < stored_at_kill < RECORDS, "no unacknowledged record was stored before the kill"
    # SIGKILL loses nothing that was written to the log files (the kernel has it), so the
    # unacknowledged records are still there and their retries are duplicates.
    assert stored_after_restart == stored_at_kill, \
        f"{stored_at_kill} records were stored at the kill, {stored_after_restart} after the restart"
    print(f"{at_kill} of {RECORDS} acknowledged at the kill, {stored_at_kill} stored, "
          f"{stored_after_restart} after the restart; {proxy.stats()}")
    assert_numbers_stored_once_in_order(b.port, topic)


# ---------------------------------------------------------------- kafka-python


def kp_idempotent_producer(bootstrap: str, **extra):
    from kafka import KafkaProducer
    conf = dict(bootstrap_servers=bootstrap, max_block_ms=30000, request_timeout_ms=20000,
                delivery_timeout_ms=120000, linger_ms=2)
    conf.update(extra)
    return KafkaProducer(**conf)


def test_kafka_python_default_producer_is_idempotent_and_writes_once(broker):
    from kafka.admin import KafkaAdminClient, NewTopic
    topic = unique_topic("kp-idem")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        admin.close()
    p = kp_idempotent_producer(broker.bootstrap)
    try:
        futures = [p.send(topic, value=f"kp-{n}".encode(), partition=n % 2) for n in range(1000)]
        p.flush(60)
        metas = [f.get(timeout=60) for f in futures]
    finally:
        p.close(10)
    for part in range(2):
        assert sorted(m.offset for m in metas if m.partition == part) == list(range(500))
        batches, last = fetch_all_batches(broker.port, topic, part)
        assert last.high_watermark == 500
        values = [v for bt in batches for _, _, v in bt.records]
        assert values == [f"kp-{n}".encode() for n in range(part, 1000, 2)]
        assert len({bt.producer_id for bt in batches}) == 1, batches
        assert all(bt.producer_id >= 0 and bt.producer_epoch >= 0 for bt in batches), batches
        assert not any(bt.is_transactional or bt.is_control for bt in batches), batches
        assert_sequences_contiguous(batches, f"partition {part}")


def test_kafka_python_idempotent_producer_through_connection_cuts(proxied_broker):
    b, proxy = proxied_broker
    from kafka.admin import KafkaAdminClient, NewTopic
    topic = unique_topic("kp-idem-cuts")
    admin = KafkaAdminClient(bootstrap_servers=proxy.address)
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        admin.close()
    total = 4000
    p = kp_idempotent_producer(proxy.address, retries=1_000_000, retry_backoff_ms=20,
                               reconnect_backoff_ms=10, reconnect_backoff_max_ms=100, batch_size=2048)
    try:
        p.send(topic, value=b"warm-up", partition=0).get(timeout=30)
        proxy.cut_every(upstream_bytes=15_000, downstream_bytes=1_500, cuts_max=30)
        futures = [p.send(topic, value=f"kp-{n}".encode(), partition=n % 2) for n in range(total)]
        p.flush(120)
        errors = []
        for f in futures:
            try:
                f.get(timeout=1)
            except Exception as e:  # noqa: BLE001 - collected and reported
                errors.append(e)
    finally:
        cuts = proxy.stats()
        proxy.cut_every()
        p.close(10)
    assert not errors, f"{len(errors)} sends failed, first {errors[:3]}; {cuts}"
    assert cuts["cuts"] >= 5, f"only {cuts['cuts']} cuts ({proxy.cut_log})"
    for part in range(2):
        batches, last = fetch_all_batches(b.port, topic, part)
        values = [v for bt in batches for _, _, v in bt.records]
        if part == 0:
            assert values[0] == b"warm-up"
            values = values[1:]
        expected = [f"kp-{n}".encode() for n in range(part, total, 2)]
        dupes = len(values) - len(set(values))
        assert values == expected, (f"partition {part}: {len(values)} stored for {len(expected)} sent, "
                                    f"{dupes} duplicates; {cuts}")
        assert_sequences_contiguous(batches, f"partition {part}")
