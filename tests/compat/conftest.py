"""pytest harness for the real-client compatibility suite.

Each broker under test is a real `riffle server` process on free loopback
ports with its own temporary data directory and a log file that collects its
stderr (tracing output). When a test fails, the part of every broker's log
written during that test is attached to the failure report.

Fixtures:
- `broker`: one broker shared by the whole session, default settings.
- `broker_factory`: start extra brokers with their own `--override`s (and
  restart them); they are stopped when the test ends.

The binary is `target/debug/riffle` unless RIFFLE_BIN names another one;
scripts/compat-test builds it first.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import kwire

REPO = Path(__file__).resolve().parents[2]
RIFFLE_BIN = Path(os.environ.get("RIFFLE_BIN", REPO / "target" / "debug" / "riffle"))

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 200

_ALL_BROKERS: list["Broker"] = []
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    """A port the kernel just handed out; free unless someone races us for it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerError(Exception):
    pass


class Broker:
    """One `riffle server` process. Ports and data dir stay fixed across restarts."""

    def __init__(self, workdir: Path, overrides: list[str] | None = None, name: str = "broker"):
        self.name = name
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "broker.log"
        self.port = free_port()
        self.controller_port = free_port()
        self.extra_overrides = list(overrides or [])
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.exit_codes: list[int] = []
        _ALL_BROKERS.append(self)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        overrides = [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"log.dirs={self.data_dir}",
            *self.extra_overrides,
        ]
        cmd = [str(RIFFLE_BIN), "server"]
        for o in overrides:
            cmd += ["--override", o]
        return cmd

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", os.environ.get("RIFFLE_TEST_LOG", "info"))
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, env=env,
            )
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        """Ready = TCP accepts on the client port and Metadata v1 lists a broker."""
        deadline = time.monotonic() + timeout_s
        last_error = "no attempt"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_codes.append(rc)
                raise BrokerError(f"{self.name} exited with {rc} during start-up\n{self.log_tail()}")
            try:
                brokers = kwire.metadata_brokers(self.port, timeout_s=2.0)
                if brokers:
                    return
                last_error = "metadata lists no brokers yet"
            except (OSError, ValueError, kwire.Closed) as e:
                last_error = repr(e)
            time.sleep(0.1)
        raise BrokerError(f"{self.name} not ready after {timeout_s}s ({last_error})\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after the timeout, then -9)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                with open(self.log_path, "ab") as log:
                    log.write(f"\n===== harness: no exit {timeout_s}s after SIGTERM; sent SIGKILL\n".encode())
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        return rc

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.exit_codes.append(self.proc.returncode)

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> int:
        rc = self.stop()
        self.start(timeout_s)
        return rc

    def log_text(self, since: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_tail(self, since: int = 0, lines: int = LOG_TAIL_LINES) -> str:
        text = _ANSI_ESCAPE.sub("", self.log_text(since)).splitlines()
        cut = len(text) - lines
        head = [f"[... {cut} earlier lines in {self.log_path}]"] if cut > 0 else []
        return "\n".join(head + text[-lines:])


@pytest.fixture(scope="session")
def riffle_bin() -> Path:
    if not RIFFLE_BIN.exists():
        pytest.fail(f"{RIFFLE_BIN} does not exist: run `cargo build -p riffle` (scripts/compat-test does)")
    out = subprocess.run([str(RIFFLE_BIN), "server", "--help"], capture_output=True, text=True, timeout=30)
    if "--override" not in out.stdout + out.stderr:
        pytest.fail(f"{RIFFLE_BIN} has no `server --override` yet:\n{out.stdout}{out.stderr}")
    return RIFFLE_BIN


@pytest.fixture(scope="session")
def broker(riffle_bin, tmp_path_factory) -> Broker:
    b = Broker(tmp_path_factory.mktemp("shared-broker"), name="shared broker")
    b.start()
    yield b
    if b.alive():
        rc = b.stop()
        assert rc == 0, f"shared broker exited with {rc} on SIGTERM\n{b.log_tail()}"


class BrokerFactory:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.brokers: list[Broker] = []

    def __call__(self, *overrides: str, start: bool = True) -> Broker:
        b = Broker(self.tmp_path / f"broker{len(self.brokers)}", list(overrides), name=f"broker{len(self.brokers)}")
        self.brokers.append(b)
        if start:
            b.start()
        return b


@pytest.fixture
def broker_factory(riffle_bin, tmp_path) -> BrokerFactory:
    f = BrokerFactory(tmp_path)
    yield f
    for b in f.brokers:
        if b.alive():
            b.stop()


@pytest.fixture(autouse=True)
def _mark_broker_logs(request):
    request.node._riffle_log_marks = {id(b): b.log_size() for b in _ALL_BROKERS}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    marks = getattr(item, "_riffle_log_marks", {})
    for b in _ALL_BROKERS:
        since = marks.get(id(b), 0)
        if b.log_size() > since:
            rep.sections.append(
                (f"{b.name} log ({b.log_path}, bytes from {since})", b.log_tail(since)))
