#!/usr/bin/env python3
"""Run librdkafka's integration tests against one `riffle server`.

`run` (beside this file) builds librdkafka's test runner and the broker, then
calls this with their paths. This script:

1. starts one broker on free loopback ports with a fresh data directory,
   configured like the suite's default scenario (see BROKER_OVERRIDES);
2. writes test.conf the way the suite's own harness (LibrdkafkaTestApp.py)
   does for an external cluster;
3. runs each selected test in its own `test-runner -Q -L -E` process (a few
   at a time, slowest first, all against the same broker, as the suite runs
   them), each with its own directory, test.conf (a topic prefix of its
   own), log and JSON report;
4. prints a summary and exits 0 only if every selected test passed and the
   broker stayed up and stopped cleanly on SIGTERM.

A selected test passes when its runner exits 0 and its report marks at least
one of the test's entries PASSED and none FAILED. A test that the runner
skips (for example because its number matched only a local variant), or
that reports PASSED in under half a millisecond (what -Q does to a test whose
sub-tests are all non-quick), counts as a failure: an allowlisted test that
runs nothing checks nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALLOWLIST = HERE / "allowlist"

# The Kafka release whose API versions Riffle advertises (README: "at Kafka
# 4.0's API versions"). Tests compare it with their own minimum versions.
KAFKA_VERSION = "4.0.0"

# The suite's default scenario (tests/scenarios/default.json) is a trivup
# cluster with auto.create.topics.enable=true and num.partitions=4; its
# "replication_factor": 3 becomes min(broker count, 3) (cluster_testing.py),
# i.e. default.replication.factor=1 for a single broker. Riffle runs as one
# combined node, so topics the broker creates get RF 1; tests that ask for
# RF 3 explicitly get INVALID_REPLICATION_FACTOR as from a one-broker Kafka
# (see FINDINGS.md). The internal topics use RF 1 as in Riffle's default.
BROKER_OVERRIDES = [
    "auto.create.topics.enable=true",
    "num.partitions=4",
    "default.replication.factor=1",
    "offsets.topic.replication.factor=1",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    # 0059 produces messages stamped in January 1970, which time-based
    # retention deletes at its next check (Kafka's as well as Riffle's: the
    # largest timestamp of the segment is past log.retention.ms). A check in
    # the middle of the test turns its seeks into OFFSET_OUT_OF_RANGE. Kafka
    # checks every 5 minutes too, so the suite races it there as well; here
    # the check waits a day, past any run.
    "log.retention.check.interval.ms=86400000",
]

# What LibrdkafkaTestApp.py writes into test.conf, less SASL/SSL and sqlite.
TEST_CONF = [
    "broker.address.family=v4",
    "test.timeout.multiplier=2",
    "broker.version.fallback=0.10.0.0",
    "api.version.fallback.ms=0",
    "security.protocol=PLAINTEXT",
    # Not in the suite's own harness: every run of a test uses new topic
    # names, so --repeat on one broker starts each round from empty topics.
    "test.topic.random=true",
]

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
TEST_WALL_TIMEOUT_S = 600.0
LOG_TAIL_LINES = 60


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metadata_broker_count(port: int, timeout_s: float = 2.0) -> int:
    """Metadata v1 for no topics; returns how many brokers the answer lists."""
    client_id = b"riffle-conformance"
    # Request header v1: api_key 3 (Metadata), version 1, correlation id, client id;
    # body: topics = empty array (v1: null would mean all topics).
    body = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv_exact(s, 4)
        (size,) = struct.unpack(">i", head)
        if not 0 < size < 16 * 1024 * 1024:
            raise ValueError(f"bad response size {size}")
        payload = _recv_exact(s, size)
    (_correlation_id, broker_count) = struct.unpack(">ii", payload[:8])
    return broker_count


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


class Broker:
    """One `riffle server` process on free loopback ports."""

    def __init__(self, riffle: Path, workdir: Path, extra_overrides: list[str]):
        self.riffle = riffle
        self.workdir = workdir
        self.log_path = workdir / "broker.log"
        self.port = free_port()
        self.controller_port = free_port()
        self.overrides = [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"log.dirs={workdir / 'data'}",
            *BROKER_OVERRIDES,
            *extra_overrides,
        ]
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [str(self.riffle), "server"]
        for o in self.overrides:
            cmd += ["--override", o]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")
        env.setdefault("RUST_BACKTRACE", "1")
        with open(self.log_path, "ab") as log:
            log.write(f"===== {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no attempt"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"riffle server exited with {self.proc.returncode} during start-up\n"
                                   + tail(self.log_path))
            try:
                if metadata_broker_count(self.port) > 0:
                    return
                last = "metadata lists no brokers yet"
            except (OSError, ValueError, struct.error) as e:
                last = repr(e)
            time.sleep(0.1)
        raise RuntimeError(f"riffle server not ready after {START_TIMEOUT_S}s ({last})\n" + tail(self.log_path))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                with open(self.log_path, "ab") as log:
                    log.write(f"\n===== harness: no exit {STOP_TIMEOUT_S}s after SIGTERM; sent SIGKILL\n".encode())
        return self.proc.returncode


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    cut = len(text) - lines
    head = [f"[... {cut} earlier lines in {path}]"] if cut > 0 else []
    return "\n".join(head + text[-lines:])


@dataclass
class Selected:
    """One allowlist entry: a test number, extra test-runner flags and a subtest filter.

    Flags: `-P` runs the test with enable.idempotence=true (the suite's -P
    mode); `full` runs it without -Q (for a test that quick mode skips whole).
    `SUBTESTS=text` runs only the sub-tests whose name contains text (the
    runner's SUBTESTS variable), for a test of which only some parts apply.
    """
    num: str
    flags: list[str] = field(default_factory=list)
    subtests: str | None = None
    comment: str = ""

    @property
    def label(self) -> str:
        return " ".join([self.num, *self.flags, *([f"SUBTESTS={self.subtests}"] if self.subtests else [])])

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9]+", "_", self.label)

    def runner_args(self) -> list[str]:
        args = [] if "full" in self.flags else ["-Q"]
        return args + ["-L", "-E", "-p1"] + [f for f in self.flags if f != "full"]


ENTRY = re.compile(r"(\d{4})((?:\s+(?:-P|full))*)(?:\s+SUBTESTS=(\S+))?")


def read_allowlist(path: Path) -> list[Selected]:
    out = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line, _, comment = raw.partition("#")
        line = line.strip()
        if not line:
            continue
        m = ENTRY.fullmatch(line)
        if not m:
            raise SystemExit(f"{path}:{lineno}: expected `NNNN [-P] [full] [SUBTESTS=name]  # why`, got {raw!r}")
        out.append(Selected(m.group(1), m.group(2).split(), m.group(3), comment.strip()))
    return out


@dataclass
class Result:
    sel: Selected
    round: int
    outcome: str  # PASSED, FAILED, SKIPPED, VACUOUS, TIMEOUT, CRASHED
    seconds: float
    detail: str
    log_path: Path


_prefix_lock = threading.Lock()
_prefix_next = 0


def next_prefix() -> int:
    global _prefix_next
    with _prefix_lock:
        _prefix_next += 1
        return _prefix_next


def run_one(sel: Selected, rnd: int, args, broker: Broker, conf_path: Path, rundir: Path) -> Result:
    name = sel.slug + (f".r{rnd}" if args.repeat > 1 else "")
    workdir = rundir / "tests" / name
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "test.log"
    report_path = workdir / "report.json"
    # Each runner gets its own topic prefix. librdkafka seeds rand() with the
    # millisecond of the current second when a process creates its first
    # client (enable.random.seed), so runners started in the same
    # millisecond draw the same "random" topic and group names, and their
    # consumers end up in each other's groups.
    test_conf = workdir / "test.conf"
    test_conf.write_text(conf_path.read_text() + f"test.topic.prefix=rdkafkatest_{next_prefix()}\n")
    tests_dir = args.librdkafka / "tests"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TESTS", "SUBTESTS", "TESTS_SKIP")}
    env.update({
        "TESTS": sel.num,
        "TEST_KAFKA_VERSION": KAFKA_VERSION,
        "TEST_SCENARIO": args.scenario,
        "RDKAFKA_TEST_CONF": str(test_conf),
        "TEST_REPORT": str(report_path),
        "BROKERS": broker.bootstrap,
        "LD_LIBRARY_PATH": f"{args.librdkafka / 'src'}:{args.librdkafka / 'src-cpp'}",
        "RDKAFKA_GITVER": "debian-source",
    })
    if sel.subtests:
        env["SUBTESTS"] = sel.subtests
    cmd = [str(tests_dir / "test-runner"), *sel.runner_args(), *args.runner_arg]
    start = time.monotonic()
    with open(log_path, "wb") as log:
        log.write(f"===== TESTS={sel.num} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=workdir, env=env, start_new_session=True)
        try:
            rc = proc.wait(TEST_WALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            return Result(sel, rnd, "TIMEOUT", time.monotonic() - start,
                          f"no exit after {TEST_WALL_TIMEOUT_S:.0f}s", log_path)
    seconds = time.monotonic() - start
    states: dict[str, str] = {}
    durations: dict[str, float] = {}
    try:
        report = json.loads(report_path.read_text())
        for tname, t in report.get("tests", {}).items():
            if tname.startswith(sel.num + "_"):
                states[tname] = t.get("state", "?")
                durations[tname] = float(t.get("duration", 0))
    except (OSError, ValueError) as e:
        return Result(sel, rnd, "CRASHED", seconds, f"exit code {rc}, no report ({e})", log_path)
    failed = [n for n, s in states.items() if s not in ("PASSED", "SKIPPED")]
    # Under -Q a test whose sub-tests are all non-quick returns at once and
    # is reported PASSED; a pass that took under half a millisecond (the
    # report's resolution) talked to no broker, so it is not counted.
    vacuous = [n for n, s in states.items() if s == "PASSED" and durations[n] < 0.0005]
    passed = [n for n, s in states.items() if s == "PASSED" and n not in vacuous]
    if rc == 0 and passed and not failed:
        return Result(sel, rnd, "PASSED", seconds, ", ".join(passed), log_path)
    if rc == 0 and not passed and not failed and vacuous:
        return Result(sel, rnd, "VACUOUS", seconds,
                      "passed in under 0.5ms, having run nothing (its sub-tests are skipped by -Q?): "
                      + ", ".join(vacuous), log_path)
    if rc == 0 and not passed and not failed:
        return Result(sel, rnd, "SKIPPED", seconds,
                      ("every entry skipped: " + ", ".join(states)) if states else "no test matched", log_path)
    why = failed_reason(log_path)
    return Result(sel, rnd, "FAILED", seconds,
                  f"exit code {rc}; " + ", ".join(f"{n}={states[n]}" for n in failed) + (f": {why}" if why else ""),
                  log_path)


def failed_reason(log_path: Path) -> str:
    """The runner's first failure: where it failed and its message."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log_path.read_text(errors="replace"))
    m = re.search(r'### Test "([^"]+)" failed at (\S+) at [^#]*###\n(.*)', text)
    if m:
        return f"{m.group(1)} at {m.group(2)}: {m.group(3).strip()}"[:400]
    return ""


UNKNOWN_DURATION_S = 30.0


def load_timings(path: Path | None) -> dict[str, float]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def save_timings(path: Path | None, timings: dict[str, float], results: list[Result]) -> None:
    if path is None:
        return
    for r in results:
        if r.outcome == "PASSED":
            timings[r.sel.label] = round(r.seconds, 1)
    try:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
    except OSError as e:
        print(f"(could not save timings to {path}: {e})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--librdkafka", type=Path, required=True, help="built librdkafka source tree")
    p.add_argument("--riffle", type=Path, required=True, help="riffle binary")
    p.add_argument("tests", nargs="*",
                   help="test numbers to run instead of the allowlist (e.g. 0001 0090)")
    p.add_argument("-P", dest="idempotent", action="store_true",
                   help="with explicit test numbers: run them with enable.idempotence=true (the suite's -P)")
    p.add_argument("--full", action="store_true", help="with explicit test numbers: run them without -Q")
    p.add_argument("--allowlist", type=Path, default=ALLOWLIST,
                   help="run the entries of this file (allowlist format) instead of ./allowlist")
    p.add_argument("--repeat", type=int, default=1, help="run the selection this many times (same broker)")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("RIFFLE_CONFORMANCE_JOBS", "3")),
                   help="test-runner processes at once (default 3, or RIFFLE_CONFORMANCE_JOBS)")
    p.add_argument("--subtests", help="with explicit test numbers: the runner's SUBTESTS filter")
    p.add_argument("--runner-arg", action="append", default=[], help="extra test-runner argument")
    p.add_argument("--broker-override", action="append", default=[], help="extra riffle --override key=value")
    p.add_argument("--scenario", choices=["default", "noautocreate"], default="default",
                   help="the suite's test scenario; noautocreate also turns auto.create.topics.enable off")
    p.add_argument("--keep", action="store_true", help="keep the run directory even if everything passed")
    p.add_argument("--timings", type=Path,
                   help="JSON file of each entry's last duration: the slowest start first (read and updated)")
    args = p.parse_args()
    args.librdkafka = args.librdkafka.resolve()

    if args.tests:
        flags = (["-P"] if args.idempotent else []) + (["full"] if args.full else [])
        selection = [Selected(t, list(flags), args.subtests) for t in args.tests]
    else:
        selection = read_allowlist(args.allowlist)
    if not selection:
        print("nothing selected")
        return 1

    rundir = Path(tempfile.mkdtemp(prefix="riffle-librdkafka-"))
    print(f"run directory: {rundir}")
    # Each runner works in rundir/tests/<entry>; the suite expects to run in
    # librdkafka's tests/ directory and reaches ../src (0053 reads
    # ../src/statistics_schema.json), so ../src leads there too.
    (rundir / "tests").mkdir()
    for name in ("src", "src-cpp"):
        (rundir / "tests" / name).symlink_to(args.librdkafka / name)
    overrides = list(args.broker_override)
    if args.scenario == "noautocreate":
        overrides.append("auto.create.topics.enable=false")
    broker = Broker(args.riffle, rundir / "broker", overrides)
    broker.workdir.mkdir(parents=True)
    t0 = time.monotonic()
    try:
        broker.start()
    except RuntimeError as e:
        print(e)
        print("0 passed, 1 failed: the broker did not start")
        return 1
    print(f"broker: {broker.bootstrap} (log {broker.log_path}), ready in {time.monotonic() - t0:.1f}s")
    conf_path = rundir / "test.conf"
    conf_path.write_text("\n".join([f"bootstrap.servers={broker.bootstrap}", *TEST_CONF]) + "\n")
    print(f"TEST_KAFKA_VERSION={KAFKA_VERSION}, test-runner -Q -L -E -p1, {args.jobs} at a time; test.conf:")
    print("  " + conf_path.read_text().strip().replace("\n", "\n  "))

    results: list[Result] = []
    lock = threading.Lock()

    def job(sel: Selected, rnd: int) -> Result:
        r = run_one(sel, rnd, args, broker, conf_path, rundir)
        with lock:
            extra = "" if r.outcome == "PASSED" else f"  {r.detail}"
            rtag = f" (round {rnd})" if args.repeat > 1 else ""
            print(f"{r.outcome:8} {sel.label:12} {r.seconds:6.1f}s{rtag}{extra}", flush=True)
            results.append(r)
        return r

    # Longest first, so that the slow tests do not start last and run alone.
    timings = load_timings(args.timings)
    order = sorted(selection, key=lambda sel: -timings.get(sel.label, UNKNOWN_DURATION_S))
    work = [(sel, rnd) for rnd in range(1, args.repeat + 1) for sel in order]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(lambda w: job(*w), work))
    elapsed = time.monotonic() - t0

    broker_problem = ""
    if not broker.alive():
        broker_problem = f"the broker died during the run (exit code {broker.proc.returncode})"
    rc = broker.stop()
    if not broker_problem and rc != 0:
        broker_problem = f"the broker exited with {rc} on SIGTERM"

    save_timings(args.timings, timings, results)
    bad = [r for r in results if r.outcome != "PASSED"]
    print("\n== summary")
    print(f"{len(results)} test runs in {elapsed:.0f}s against {broker.bootstrap}; slowest:")
    for r in sorted(results, key=lambda r: -r.seconds)[:5]:
        print(f"  {r.sel.label:12} {r.seconds:6.1f}s")
    for r in bad:
        print(f"\n---- {r.outcome} {r.sel.label} (round {r.round}): {r.detail}\n{tail(r.log_path)}")
    if broker_problem:
        print(f"\n---- {broker_problem}\n{tail(broker.log_path)}")
    if bad or broker_problem:
        print(f"\nlogs kept in {rundir} (tests/<test>/test.log, broker/broker.log)")
        if bad:
            print("failed: " + " ".join(sorted({r.sel.label for r in bad})))
    elif args.keep:
        print(f"\nlogs kept in {rundir}")
    else:
        shutil.rmtree(rundir, ignore_errors=True)
    failed_count = len(bad) + (1 if broker_problem else 0)
    print(f"\n{len(results) - len(bad)} passed, {failed_count} failed")
    return 0 if failed_count == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
