"""Produce, consume and end-to-end latency of a Riffle broker, with ceilings
measured in the same run. Run through `bench/run`, which builds
librdkafka's rdkafka_performance and a release riffle first. See the
"Broker" section of bench/README.md for what each figure means.

Every row is run `--runs` times. The groups run one after another (produce
with the disk ceilings, then consume, then latency); within a group runs are
interleaved: each repetition goes through every workload once, and within a
workload the ceiling and Riffle alternate which goes first. A row reports
the median and the min-max spread of its runs, and the ratio of the
medians.

Groups:
- produce: rdkafka_performance -P against Riffle (a fresh topic per run,
  deleted after it) and against librdkafka's in-process mock broker
  (`-X test.mock.num.brokers=1`), for each record size, acks, partition
  count and compression.
- consume: rdkafka_performance -C reading a caught-up 1-partition topic
  from offset 0, against the loopback ceiling: the topic's segment files
  sent with sendfile(2) over loopback TCP to a process that reads and drops
  them (loopback.c).
- latency: a producer at a fixed rate and a consumer tailing the topic, both
  rdkafka_performance -l; the consumer records each record's end-to-end
  latency (producer wall clock in the payload to consumer wall clock). The
  rates: 10,000 records/s at linger.ms=0, and half the maximum of the same
  workload (producer pacing itself, consumer tailing; measured in the run)
  at linger.ms=5.
- ceilings: sequential 1 MiB writes to a file in the bench directory,
  without and with fdatasync after each write.
- the broker's RSS at idle (before any load, and after it) and its peak
  under load, and CPU seconds (user + system, from /proc) per GB produced.

Standard library only.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

START = time.monotonic()


def progress(msg):
    el = time.monotonic() - START
    print(f"[{int(el // 60):2d}:{int(el % 60):02d}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_spread(values):
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class BenchError(Exception):
    pass


def settle_disk():
    """Writes back every dirty page before a run that writes, outside its
    clock, so that each run starts from the same state instead of paying
    for the write-back of the runs before it."""
    os.sync()


def warm_memory(directory, nbytes):
    """Writes `nbytes` to a scratch file and deletes it, outside the clock.

    This VM backs guest memory lazily: pages the guest has not touched for
    a while cost a trip to the hypervisor when touched again, which showed
    as the broker's kernel time for page-cache writes (copy_folio_from_iter
    in perf) going from 0.6 to 2.6 CPU s/GB on the first 1 KiB produce row
    after the smaller 100 B rows, and as consume runs slowing 4-fold in a
    row. Freshly freed pages are warm: after this, a run that needs up to
    `nbytes` of new memory (page cache, or the client's buffers) starts
    from the state it would have on a machine with real memory."""
    path = os.path.join(directory, "warm-memory")
    chunk = b"\0" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(max(1, nbytes >> 20)):
            os.write(fd, chunk)
    finally:
        os.close(fd)
        os.unlink(path)


# ---------------------------------------------------------------------------
# The broker


class Broker:
    """A `riffle server` on free loopback ports with a fresh data directory."""

    def __init__(self, riffle, root):
        self.riffle = riffle
        self.root = root
        self.data = os.path.join(root, "data")
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = os.path.join(root, "broker.log")
        self.proc = None

    def start(self):
        overrides = {
            "log.dirs": self.data,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
        }
        args = [self.riffle, "server"]
        for k, v in overrides.items():
            args += ["--override", f"{k}={v}"]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"riffle exited with {self.proc.returncode} at start:\n{self.tail()}")
            r = self.cli("topics", "list", check=False, timeout_ms=2000)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise BenchError(f"riffle did not answer within 60 s:\n{self.tail()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def check_alive(self):
        if self.proc.poll() is not None:
            raise BenchError(f"riffle exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def cli(self, *args, check=True, timeout_ms=30000):
        cmd = [self.riffle, *args[:2], "--bootstrap-server", self.bootstrap, "--timeout-ms", str(timeout_ms), *args[2:]]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def create_topic(self, name, partitions):
        self.cli("topics", "create", "--topic", name, "--partitions", str(partitions), "--replication-factor", "1")

    def delete_topic(self, name):
        self.cli("topics", "delete", "--topic", name)

    def status(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])  # kB
        raise BenchError(f"no {key} in /proc/{self.proc.pid}/status")

    def rss_mib(self):
        return self.status("VmRSS") / 1024.0

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of stat(5); fields[0] is field 3.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


class RssSampler:
    """Samples the broker's RSS every 100 ms while a workload runs."""

    def __init__(self, broker):
        self.broker = broker
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.broker.rss_mib())
            except (OSError, BenchError):
                return
            self._stop.wait(0.1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------
# rdkafka_performance

PRODUCED = re.compile(
    r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered \(offset -?\d+, (\d+) failed\) in (\d+)ms"
)
CONSUMED = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms")


def run_perf(args, timeout_s, what):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"")[-2000:] if isinstance(e.stdout, bytes) else (e.stdout or "")[-2000:]
        raise BenchError(f"{what}: rdkafka_performance did not finish within {timeout_s} s: {out}")
    if r.returncode != 0:
        raise BenchError(f"{what}: rdkafka_performance exited {r.returncode}: {(r.stdout + r.stderr)[-2000:]}")
    return r.stdout + r.stderr


def final_line(pattern, out, what):
    """The groups of the last line of `out` that `pattern` matches: the
    tool's summary, printed at exit."""
    m = None
    for m in pattern.finditer(out):
        pass
    if not m:
        raise BenchError(f"{what}: no final line in rdkafka_performance's output: {out[-2000:]}")
    return [int(x) for x in m.groups()]


def rates(msgs, nbytes, ms):
    secs = max(ms, 1) / 1000.0
    return {"records": msgs, "bytes": nbytes, "seconds": secs, "records_per_s": msgs / secs, "mb_per_s": nbytes / secs / 1e6}


def parse_produced(out, what, expected):
    msgs, nbytes, delivered, failed, ms = final_line(PRODUCED, out, what)
    if failed or delivered != expected:
        raise BenchError(f"{what}: {delivered} of {expected} delivered, {failed} failed: {out[-2000:]}")
    return rates(msgs, nbytes, ms)


def parse_consumed(out, what, expected):
    msgs, nbytes, ms = final_line(CONSUMED, out, what)
    if msgs != expected:
        raise BenchError(f"{what}: consumed {msgs} of {expected}: {out[-2000:]}")
    return rates(msgs, nbytes, ms)


# ---------------------------------------------------------------------------
# Workloads


class Bench:
    def __init__(self, opts, root):
        self.opts = opts
        self.root = root
        self.perf = opts.rdkafka_performance
        self.broker = Broker(opts.riffle, root)
        self.rows = []  # table rows, in order
        self.raw = []  # every run
        self.rss = {}
        self.topic_seq = 0
        self.total_steps = 0
        self.step = 0
        self.produce_peak_rss = 0.0
        self.latency_max = None

    # -- helpers

    def topic(self, prefix):
        self.topic_seq += 1
        return f"{prefix}-{self.topic_seq}"

    def tick(self, label):
        self.step += 1
        progress(f"({self.step}/{self.total_steps}) {label}")

    def count_for(self, size):
        """Records per produce run: about a second of work at this
        machine's rates (1M of 1 KiB, 3M of 100 B; 1 GiB otherwise)."""
        count = {100: 3_000_000, 1024: 1_000_000}.get(size, (1 << 30) // max(size, 1))
        return max(1000, int(count * self.opts.scale))

    # -- produce

    def produce_workloads(self):
        out = []
        for size in self.opts.sizes:
            for acks in self.opts.acks:
                for parts in self.opts.partitions:
                    for codec in self.opts.codecs:
                        out.append({"size": size, "acks": acks, "partitions": parts, "codec": codec})
        return out

    @staticmethod
    def produce_name(w):
        size = f"{w['size'] // 1024} KiB" if w["size"] % 1024 == 0 else f"{w['size']} B"
        acks = "all" if w["acks"] == -1 else str(w["acks"])
        return f"{size}, acks={acks}, {w['partitions']} part, {w['codec']}"

    def produce_args(self, w, count, topic):
        # rdkafka_performance sets linger.ms=1000, and waits out the linger
        # of the last batch before it stops the clock: librdkafka's own
        # default, 5 ms, keeps that out of the figure. Batches still fill
        # to batch.size while the producer is ahead of the broker.
        args = [self.perf, "-P", "-t", topic, "-s", str(w["size"]), "-c", str(count), "-a", str(w["acks"]), "-z", w["codec"], "-q", "-X", "linger.ms=5"]
        if w["partitions"] == 1:
            args += ["-p", "0"]
        return args

    def produce_riffle(self, w, count):
        topic = self.topic("produce")
        self.broker.create_topic(topic, w["partitions"])
        cpu0 = self.broker.cpu_seconds()
        with RssSampler(self.broker) as rss:
            out = run_perf(self.produce_args(w, count, topic) + ["-b", self.broker.bootstrap], 300, self.produce_name(w))
        cpu = self.broker.cpu_seconds() - cpu0
        self.broker.check_alive()
        res = parse_produced(out, self.produce_name(w), count)
        res["broker_cpu_s"] = cpu
        res["broker_cpu_s_per_gb"] = cpu / (res["bytes"] / 1e9)
        res["broker_peak_rss_mib"] = rss.peak
        self.produce_peak_rss = max(self.produce_peak_rss, rss.peak)
        self.broker.delete_topic(topic)
        return res

    def produce_mock(self, w, count):
        topic = self.topic("mock")
        out = run_perf(self.produce_args(w, count, topic) + ["-X", "test.mock.num.brokers=1"], 300, self.produce_name(w) + " (mock)")
        return parse_produced(out, self.produce_name(w) + " (mock)", count)

    # -- consume

    def consume_riffle(self, topic, count):
        cpu0 = self.broker.cpu_seconds()
        out = run_perf([self.perf, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", str(count), "-q", "-b", self.broker.bootstrap], 300, "consume")
        cpu = self.broker.cpu_seconds() - cpu0
        res = parse_consumed(out, "consume", count)
        res["broker_cpu_s"] = cpu
        res["broker_cpu_s_per_gb"] = cpu / (res["bytes"] / 1e9)
        return res

    def loopback(self, files):
        port = free_port()
        recv = subprocess.Popen([self.opts.loopback, "receive", str(port)], stdout=subprocess.PIPE, text=True)
        try:
            if recv.stdout.readline().strip() != "listening":
                raise BenchError("loopback receiver did not start")
            subprocess.run([self.opts.loopback, "send", str(port), *files], check=True, timeout=300)
            line = recv.stdout.readline().split()
            recv.wait(60)
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait()
        nbytes, secs = int(line[0]), float(line[1])
        return {"bytes": nbytes, "seconds": secs, "mb_per_s": nbytes / secs / 1e6}

    # -- latency

    def latency_riffle(self, rate, seconds, linger_ms):
        count = max(1000, int(rate * seconds))
        topic = self.topic("latency")
        self.broker.create_topic(topic, 1)
        lat_file = os.path.join(self.root, f"{topic}.latency")
        consumer = subprocess.Popen(
            [self.perf, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-l", "-A", lat_file, "-c", str(count), "-q", "-b", self.broker.bootstrap],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            time.sleep(1.0)  # connected and waiting at offset 0
            if consumer.poll() is not None:
                raise BenchError(f"latency consumer exited early: {consumer.stdout.read()[-2000:]}")
            out = run_perf(
                [self.perf, "-P", "-t", topic, "-p", "0", "-s", "1024", "-a", "-1", "-l", "-r", str(rate), "-c", str(count), "-q", "-X", f"linger.ms={linger_ms}", "-b", self.broker.bootstrap],
                seconds * 4 + 60, f"latency producer at {rate}/s",
            )
            sent = parse_produced(out, f"latency producer at {rate}/s", count)
            try:
                cout, _ = consumer.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                raise BenchError("latency consumer did not receive every record within 60 s")
            if consumer.returncode != 0:
                raise BenchError(f"latency consumer exited {consumer.returncode}: {cout[-2000:]}")
        finally:
            if consumer.poll() is None:
                consumer.kill()
                consumer.wait()
        with open(lat_file) as f:
            samples = [int(x) for x in f.read().split()]
        os.unlink(lat_file)
        self.broker.delete_topic(topic)
        # The first 10% are the warm-up: connections, first batches.
        warm = samples[len(samples) // 10:]
        if len(warm) < count // 2:
            raise BenchError(f"latency at {rate}/s: only {len(samples)} samples for {count} records")
        warm.sort()
        return {
            "linger_ms": linger_ms,
            "rate_target": rate,
            "rate_achieved": sent["records_per_s"],
            "records": count,
            "samples": len(warm),
            "p50_ms": percentile(warm, 50) / 1000.0,
            "p99_ms": percentile(warm, 99) / 1000.0,
            "p999_ms": percentile(warm, 99.9) / 1000.0,
            "max_ms": warm[-1] / 1000.0,
        }

    # -- disk

    def disk_write(self, total, sync):
        """One pass to a new file, deleted after it, after `warm_memory` of
        the same size (as before every produce run); without it this
        ceiling swung from 0.5 to 4.6 GB/s in one run."""
        path = os.path.join(self.root, "disk-ceiling")
        buf = os.urandom(1 << 20)
        settle_disk()
        warm_memory(self.root, total)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            start = time.perf_counter()
            written = 0
            while written < total:
                written += os.write(fd, buf)
                if sync:
                    os.fdatasync(fd)
            elapsed = time.perf_counter() - start
        finally:
            os.close(fd)
            os.unlink(path)
        return {"bytes": written, "seconds": elapsed, "mb_per_s": written / elapsed / 1e6}

    # -- the run

    def run(self):
        o = self.opts
        groups = o.only or ["produce", "consume", "latency", "ceilings"]
        workloads = self.produce_workloads() if "produce" in groups else []
        self.total_steps = o.runs * (
            2 * len(workloads) + (2 if "consume" in groups else 0) + (2 if "latency" in groups else 0) + (2 if "ceilings" in groups else 0)
        )

        progress(f"riffle server (data in {self.broker.data})")
        self.broker.start()
        time.sleep(o.idle_settle)
        self.rss["idle_before_load_mib"] = self.broker.rss_mib()
        progress(f"idle RSS {self.rss['idle_before_load_mib']:.1f} MiB")

        produce = {i: {"riffle": [], "mock": []} for i in range(len(workloads))}
        consume = {"riffle": [], "loopback": []}
        latency = {"10k": [], "half": []}
        disk = {"nosync": [], "sync": []}
        half_rate = None

        # The groups run one after the other; within a group each
        # repetition runs every workload once, its ceiling and Riffle in
        # alternating order. Produce comes first and the consume topic is
        # filled only after it: with 2 GiB just written and kept, this VM's
        # page-cache writes (the disk rows) got several times slower, and
        # the produce figures with them.
        for rep in range(o.runs):
            ceiling_first = rep % 2 == 0
            for i, w in enumerate(workloads):
                count = self.count_for(w["size"])
                name = self.produce_name(w)
                sides = ["mock", "riffle"] if ceiling_first else ["riffle", "mock"]
                for side in sides:
                    self.tick(f"produce {name} · {side} · run {rep + 1}/{o.runs}")
                    settle_disk()
                    warm_memory(self.root, int(count * w["size"] * 1.1))
                    res = self.produce_mock(w, count) if side == "mock" else self.produce_riffle(w, count)
                    produce[i][side].append(res)
                    self.raw.append({"group": "produce", "workload": w, "side": side, "run": rep + 1, **res})
                    extra = f", broker {res['broker_cpu_s_per_gb']:.2f} CPU s/GB" if side == "riffle" else ""
                    progress(f"    {res['records_per_s']:,.0f} rec/s, {res['mb_per_s']:.1f} MB/s{extra}")

            if "ceilings" in groups:
                for key, total, sync in (("nosync", o.disk_bytes, False), ("sync", o.disk_sync_bytes, True)):
                    self.tick(f"disk write 1 MiB{' + fdatasync' if sync else ''} · ceiling · run {rep + 1}/{o.runs}")
                    res = self.disk_write(total, sync)
                    disk[key].append(res)
                    self.raw.append({"group": "disk", "side": key, "run": rep + 1, **res})
                    progress(f"    {res['mb_per_s']:.1f} MB/s")

        if "consume" in groups:
            topic = self.topic("consume")
            count = self.count_for(1024) * o.consume_factor
            self.broker.create_topic(topic, 1)
            progress(f"filling {topic}: {count} records of 1 KiB")
            out = run_perf([self.perf, "-P", "-t", topic, "-p", "0", "-s", "1024", "-c", str(count), "-a", "1", "-q", "-X", "linger.ms=5", "-b", self.broker.bootstrap], 600, "consume fill")
            parse_produced(out, "consume fill", count)
            settle_disk()
            pdir = os.path.join(self.broker.data, f"{topic}-0")
            files = sorted(os.path.join(pdir, f) for f in os.listdir(pdir) if f.endswith(".log"))
            for rep in range(o.runs):
                for side in (["loopback", "riffle"] if rep % 2 == 0 else ["riffle", "loopback"]):
                    self.tick(f"consume 1 KiB, caught-up topic · {side} · run {rep + 1}/{o.runs}")
                    warm_memory(self.root, count * 1024)
                    res = self.loopback(files) if side == "loopback" else self.consume_riffle(topic, count)
                    consume[side].append(res)
                    self.raw.append({"group": "consume", "side": side, "run": rep + 1, **res})
                    progress(f"    {res['mb_per_s']:.1f} MB/s")
            self.broker.delete_topic(topic)

        if "latency" in groups:
            half_rate = self.half_rate()
            for rep in range(o.runs):
                # 10k/s with linger.ms=0: what the broker adds. Half the
                # latency producer's maximum with the throughput runs'
                # linger.ms=5.
                for key, rate, linger in (("10k", 10000, 0), ("half", half_rate, 5)):
                    self.tick(f"end-to-end latency at {rate:,} rec/s, linger.ms={linger} · riffle · run {rep + 1}/{o.runs}")
                    res = self.latency_riffle(rate, o.latency_seconds, linger)
                    latency[key].append(res)
                    self.raw.append({"group": "latency", "side": "riffle", "run": rep + 1, **res})
                    progress(f"    p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms, p99.9 {res['p999_ms']:.2f} ms (achieved {res['rate_achieved']:,.0f} rec/s)")

        time.sleep(o.idle_settle)
        self.rss["idle_after_load_mib"] = self.broker.rss_mib()
        self.rss["peak_under_produce_load_mib"] = self.produce_peak_rss
        self.rss["vm_hwm_mib"] = self.broker.status("VmHWM") / 1024.0
        self.broker.stop()

        self.build_rows(workloads, produce, consume, latency, disk, half_rate)

    def half_rate(self):
        """Half the most the end-to-end workload sustains, measured now:
        rdkafka_performance's latency mode (-l, 1 KiB, acks=all,
        linger.ms=5) first unthrottled with no consumer, then paced at that
        rate with the consumer tailing, as in the latency runs; the rate it
        reaches then is the maximum. On 2 cores the pacing producer spins
        one core and the consumer and the broker share the other, so the
        throughput runs' maximum is far out of reach, and at half of a rate
        it cannot sustain, its own queue would be measured."""
        progress("measuring the end-to-end maximum (1 KiB, acks=all, linger.ms=5)")
        topic = self.topic("latency-max")
        self.broker.create_topic(topic, 1)
        count = self.count_for(1024) // 2
        out = run_perf(
            [self.perf, "-P", "-t", topic, "-p", "0", "-s", "1024", "-a", "-1", "-l", "-c", str(count), "-q", "-X", "linger.ms=5", "-b", self.broker.bootstrap],
            300, "latency producer maximum",
        )
        unthrottled = parse_produced(out, "latency producer maximum", count)["records_per_s"]
        self.broker.delete_topic(topic)
        progress(f"    producer alone, unthrottled: {unthrottled:,.0f} rec/s")
        paced = self.latency_riffle(int(unthrottled), max(1.0, self.opts.latency_seconds / 2), 5)
        rate = paced["rate_achieved"]
        progress(f"    paced at that rate with the consumer tailing: {rate:,.0f} rec/s")
        self.latency_max = rate
        return max(1000, int(rate / 2 / 1000) * 1000)

    # -- results

    def build_rows(self, workloads, produce, consume, latency, disk, half_rate):
        rows = self.rows
        for i, w in enumerate(workloads):
            r = produce[i]["riffle"]
            m = produce[i]["mock"]
            rows.append({
                "group": "produce",
                "name": self.produce_name(w),
                "workload": w,
                "unit": "MB/s",
                "riffle": median_spread([x["mb_per_s"] for x in r]),
                "riffle_records_per_s": median_spread([x["records_per_s"] for x in r]),
                "ceiling_name": "mock broker",
                "ceiling": median_spread([x["mb_per_s"] for x in m]),
                "broker_cpu_s_per_gb": median_spread([x["broker_cpu_s_per_gb"] for x in r]),
            })
        if consume["riffle"]:
            rows.append({
                "group": "consume",
                "name": "1 KiB, caught-up topic, 1 part",
                "unit": "MB/s",
                "riffle": median_spread([x["mb_per_s"] for x in consume["riffle"]]),
                "riffle_records_per_s": median_spread([x["records_per_s"] for x in consume["riffle"]]),
                "ceiling_name": "loopback sendfile",
                "ceiling": median_spread([x["mb_per_s"] for x in consume["loopback"]]),
                "broker_cpu_s_per_gb": median_spread([x["broker_cpu_s_per_gb"] for x in consume["riffle"]]),
            })
        for key, label in (("10k", "10,000 rec/s, linger 0"), ("half", f"{half_rate:,} rec/s (50% of e2e max), linger 5" if half_rate else "")):
            runs = latency[key]
            if not runs:
                continue
            rows.append({
                "group": "latency",
                "name": f"1 KiB at {label}, achieved rec/s",
                "unit": "rec/s",
                "riffle": median_spread([x["rate_achieved"] for x in runs]),
                "ceiling_name": None,
                "ceiling": None,
            })
            for p, pl in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
                rows.append({
                    "group": "latency",
                    "name": f"1 KiB at {label}, {pl}",
                    "unit": "ms",
                    "riffle": median_spread([x[p] for x in runs]),
                    "ceiling_name": None,
                    "ceiling": None,
                })
        for key, label in (("nosync", "sequential 1 MiB writes"), ("sync", "sequential 1 MiB writes + fdatasync")):
            if disk[key]:
                rows.append({
                    "group": "disk",
                    "name": label,
                    "unit": "MB/s",
                    "riffle": None,
                    "ceiling_name": "disk",
                    "ceiling": median_spread([x["mb_per_s"] for x in disk[key]]),
                })
        for row in rows:
            if row.get("riffle") and row.get("ceiling"):
                row["ratio"] = row["riffle"]["median"] / row["ceiling"]["median"]
            else:
                row["ratio"] = None

    def targets(self):
        """The issue's targets, checked against this run's ratios."""
        out = []
        for row in self.rows:
            w = row.get("workload")
            if row["group"] == "produce" and w == {"size": 1024, "acks": 1, "partitions": 1, "codec": "none"}:
                out.append({"target": "produce 1 KiB acks=1 >= 0.6 of the mock broker", "value": row["ratio"], "ok": row["ratio"] >= 0.6})
            if row["group"] == "consume":
                out.append({"target": "consume >= 0.5 of the loopback ceiling", "value": row["ratio"], "ok": row["ratio"] >= 0.5})
        if "idle_before_load_mib" in self.rss:
            v = self.rss["idle_before_load_mib"]
            out.append({"target": "idle RSS <= 30 MiB", "value": v, "ok": v <= 30})
        return out


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v:.2f}"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def cell(ms, unit):
    if not ms:
        return "-"
    return f"{fmt(ms['median'], unit)} ({fmt(ms['min'], unit)}-{fmt(ms['max'], unit)})"


def render_table(bench):
    header = ["group", "workload", "Riffle (min-max)", "unit", "ceiling", "ceiling (min-max)", "ratio", "broker CPU s/GB"]
    lines = []
    for row in bench.rows:
        cpu = row.get("broker_cpu_s_per_gb")
        lines.append([
            row["group"],
            row["name"],
            cell(row["riffle"], row["unit"]),
            row["unit"],
            row["ceiling_name"] or "-",
            cell(row["ceiling"], row["unit"]),
            f"{row['ratio']:.2f}" if row["ratio"] is not None else "-",
            f"{cpu['median']:.2f}" if cpu else "-",
        ])
    rss = bench.rss
    for key, label in (("idle_before_load_mib", "idle, before load"), ("peak_under_produce_load_mib", "peak under produce load"), ("idle_after_load_mib", "idle, after load")):
        if rss.get(key):
            lines.append(["RSS", label, f"{rss[key]:.1f}", "MiB", "-", "-", "-", "-"])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for ln in lines:
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(ln, widths)) + " |")
    return "\n".join(out)


def version_of(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def librdkafka_version(perf):
    r = subprocess.run([perf], capture_output=True, text=True)
    m = re.search(r"librdkafka version (\S+)", r.stdout + r.stderr)
    return m.group(1) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--riffle", required=True, help="riffle binary (release build)")
    ap.add_argument("--rdkafka-performance", required=True, help="rdkafka_performance binary")
    ap.add_argument("--loopback", required=True, help="the loopback ceiling's binary (loopback.c)")
    ap.add_argument("--runs", type=int, default=5, help="runs per row (default 5)")
    ap.add_argument("--quick", action="store_true", help="1 run, a tenth of the data: checks the harness")
    ap.add_argument("--only", action="append", choices=["produce", "consume", "latency", "ceilings"], help="run only this group (repeatable)")
    ap.add_argument("--sizes", default="100,1024", help="record sizes for produce (default 100,1024)")
    ap.add_argument("--partitions", default="1,8", help="partition counts for produce (default 1,8)")
    ap.add_argument("--acks", default="1,-1", help="acks for produce (default 1,-1)")
    ap.add_argument("--codecs", default="none,lz4", help="compression for produce (default none,lz4)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the records per run (default 1: 1M records of 1 KiB, 3M of 100 B)")
    ap.add_argument("--latency-seconds", type=float, default=4.0, help="seconds of records per latency run (default 4)")
    ap.add_argument("--dir", help="working directory (default: a fresh one under /var/tmp, removed at the end)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "out", "broker-bench.json"), help="JSON output")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    o = ap.parse_args()
    for attr in ("riffle", "rdkafka_performance", "loopback"):
        setattr(o, attr, os.path.abspath(getattr(o, attr)))
    o.sizes = [int(x) for x in o.sizes.split(",")]
    o.partitions = [int(x) for x in o.partitions.split(",")]
    o.acks = [int(x) for x in o.acks.split(",")]
    o.codecs = o.codecs.split(",")
    o.consume_factor = 2  # the consume topic holds 2 produce runs' worth
    o.disk_bytes = 1 << 30
    o.disk_sync_bytes = 128 << 20
    o.idle_settle = 3.0
    if o.quick:
        o.runs = 1
        o.scale /= 10
        o.latency_seconds = 1.0
        o.disk_bytes //= 10
        o.disk_sync_bytes //= 10
        o.idle_settle = 1.0
    if o.runs < 1:
        ap.error("--runs must be at least 1")

    root = o.dir or os.environ.get("RIFFLE_BENCH_DIR") or tempfile.mkdtemp(prefix="riffle-bench-", dir="/var/tmp")
    os.makedirs(root, exist_ok=True)
    bench = Bench(o, root)
    ok = False
    try:
        bench.run()
        ok = True
    except BenchError as e:
        progress(f"FAILED: {e}")
    except KeyboardInterrupt:
        progress("interrupted")
    finally:
        bench.broker.stop()
        if not o.keep and not o.dir and ok:
            shutil.rmtree(root, ignore_errors=True)
        elif not ok:
            progress(f"working directory kept: {root} (broker log: {bench.broker.log_path})")
    if not ok:
        return 1

    targets = bench.targets()
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "elapsed_s": round(time.monotonic() - START, 1),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()},
        "versions": {"riffle": version_of([o.riffle, "--version"]), "librdkafka": librdkafka_version(o.rdkafka_performance)},
        "settings": {k: v for k, v in vars(o).items() if k not in ("riffle", "rdkafka_performance")},
        "rows": bench.rows,
        "rss_mib": bench.rss,
        "latency_producer_max_records_per_s": bench.latency_max,
        "targets": targets,
        "runs": bench.raw,
    }
    os.makedirs(os.path.dirname(o.out), exist_ok=True)
    with open(o.out, "w") as f:
        json.dump(result, f, indent=1)
    print()
    print(render_table(bench))
    print()
    if o.quick:
        print("targets (meaningless with --quick: a tenth of the data, one run):")
    for t in targets:
        v = t["value"]
        print(f"{'ok  ' if t['ok'] else 'MISS'} {t['target']}: {v:.2f}")
    print(f"\nwrote {o.out} ({result['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
