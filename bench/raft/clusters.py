"""Three-member Riffle and etcd clusters on loopback, as child processes.

Each cluster lives in a fresh directory (configs, data, one log file per
member) and is started, killed with SIGKILL, restarted and stopped by the
benchmark. Nothing here measures time; `bench.py` does.
"""

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time

import kafka_wire

BENCH_TOPIC = "raft-bench"

# Every child of every cluster, so that an interrupted run leaves none.
_CHILDREN = set()


def kill_all_children():
    for p in list(_CHILDREN):
        _kill(p)


def _kill(p):
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait()
    _CHILDREN.discard(p)


def _spawn(args, log_path, env=None):
    log = open(log_path, "ab")
    # A session of its own: a signal meant for the benchmark (Ctrl-C) or its
    # process group does not stop a member behind the benchmark's back; the
    # benchmark kills its members itself.
    p = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
    )
    log.close()
    _CHILDREN.add(p)
    return p


def free_ports(n):
    """n distinct free loopback ports (held open together while chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tail(path, lines=25):
    """The first few WARN/ERROR lines of a log (often the cause), then its
    last `lines` lines."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    all_lines = text.splitlines()
    last = all_lines[-lines:]
    first_problems = [
        line for line in all_lines[: len(all_lines) - len(last)]
        if re.search(r"\b(WARN|ERROR|warn|error|panicked)\b", line)
    ][:8]
    out = []
    if first_problems:
        out += ["(first warnings and errors)"] + first_problems + ["(last lines)"]
    return "\n".join(out + last)


class NotReady(Exception):
    """The cluster did not reach the awaited state in time."""


def _wait(what, deadline_s, f, logs, interval_s=0.02):
    deadline = time.monotonic() + deadline_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            v = f()
            if v is not None and v is not False:
                return v
        except (OSError, kafka_wire.KafkaError, ValueError, KeyError, IndexError) as e:
            last_error = e
        time.sleep(interval_s)
    raise NotReady(f"timed out after {deadline_s}s waiting for {what} (last error: {last_error})\n{logs()}")


# ---- Riffle -----------------------------------------------------------


class RiffleCluster:
    """Three combined broker+controller `riffle server` processes."""

    def __init__(self, riffle_bin, root, overrides=None, size=3):
        self.bin = riffle_bin
        self.root = root
        self.overrides = dict(overrides or {})
        self.ids = list(range(1, size + 1))
        ports = free_ports(2 * size)
        self.broker_port = dict(zip(self.ids, ports[:size]))
        self.controller_port = dict(zip(self.ids, ports[size:]))
        self.procs = {}
        os.makedirs(root, exist_ok=True)

    def config_path(self, i):
        return os.path.join(self.root, f"node{i}.properties")

    def log_path(self, i):
        return os.path.join(self.root, f"node{i}.log")

    def start(self):
        voters = ",".join(f"{i}@127.0.0.1:{self.controller_port[i]}" for i in self.ids)
        cluster_id = subprocess.run(
            [self.bin, "storage", "random-uuid"], check=True, capture_output=True, text=True
        ).stdout.strip()
        for i in self.ids:
            props = {
                "process.roles": "broker,controller",
                "node.id": str(i),
                "listeners": f"PLAINTEXT://127.0.0.1:{self.broker_port[i]},"
                f"CONTROLLER://127.0.0.1:{self.controller_port[i]}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.broker_port[i]}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "controller.quorum.voters": voters,
                "log.dirs": os.path.join(self.root, f"node{i}"),
                "num.partitions": "1",
            }
            props.update(self.overrides)
            with open(self.config_path(i), "w") as f:
                f.writelines(f"{k}={v}\n" for k, v in props.items())
            out = subprocess.run(
                [self.bin, "storage", "format", "--config", self.config_path(i), "--cluster-id", cluster_id],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise NotReady(f"riffle storage format failed for node {i}: {out.stderr.strip()}")
        for i in self.ids:
            self.start_node(i)

    def start_node(self, i):
        env = dict(os.environ, RUST_LOG=os.environ.get("RIFFLE_BENCH_LOG", "info"), NO_COLOR="1")
        with open(self.log_path(i), "ab") as f:
            f.write(f"\n==== started at {time.strftime('%H:%M:%S')} ====\n".encode())
        self.procs[i] = _spawn([self.bin, "server", "--config", self.config_path(i)], self.log_path(i), env)

    def kill_node(self, i):
        """SIGKILL, then reap."""
        p = self.procs.pop(i, None)
        if p is not None:
            _kill(p)

    def stop(self):
        for i in list(self.procs):
            self.kill_node(i)

    def alive(self):
        return [i for i in self.ids if i in self.procs and self.procs[i].poll() is None]

    def check_alive(self):
        for i, p in self.procs.items():
            if p.poll() is not None:
                raise NotReady(f"riffle node {i} exited with {p.returncode}\n{self.logs()}")

    def logs(self, lines=25):
        return "".join(
            f"\n--- riffle node {i} ({self.log_path(i)}), last {lines} lines:\n{tail(self.log_path(i), lines)}\n"
            for i in self.ids
        )

    def describe_quorum(self, i, timeout_s=2.0):
        with kafka_wire.Connection("127.0.0.1", self.controller_port[i], timeout_s) as c:
            return c.describe_quorum()

    def leader(self, among=None):
        """The node that answers DescribeQuorum as the leader, or None."""
        for i in among or self.alive():
            try:
                q = self.describe_quorum(i)
            except (OSError, kafka_wire.KafkaError):
                continue
            if q["error_code"] == kafka_wire.NONE and q["leader_id"] == i:
                return i
        return None

    def broker(self, i, timeout_s=10.0):
        return kafka_wire.Connection("127.0.0.1", self.broker_port[i], timeout_s)

    def controller_via(self, i):
        """The controller id the broker of node i names in Metadata."""
        with self.broker(i, 2.0) as c:
            return c.controller_id()

    def wait_ready(self, deadline_s=60.0):
        """Waits for a leader that the brokers also name as controller
        (it has registered), and returns its id."""

        def ready():
            self.check_alive()
            leader = self.leader()
            if leader is None or leader not in self.alive():
                return None
            return leader if self.controller_via(leader) == leader else None

        return _wait("a Riffle quorum leader that is the active controller", deadline_s, ready, self.logs)

    def wait_caught_up(self, deadline_s=60.0):
        """Waits until every voter's log end reaches the leader's high
        watermark, as the leader reports it, and every broker names the
        leader as controller."""

        def caught_up():
            self.check_alive()
            leader = self.leader()
            if leader is None:
                return False
            q = self.describe_quorum(leader)
            if q["leader_id"] != leader or len(q["voters"]) != len(self.ids):
                return False
            if any(leo < q["high_watermark"] for _, leo in q["voters"]):
                return False
            return all(self.controller_via(i) == leader for i in self.ids)

        return _wait("every Riffle voter to catch up", deadline_s, caught_up, self.logs, 0.1)

    def create_bench_topic(self, leader, deadline_s=30.0):
        def create():
            with self.broker(leader) as c:
                c.create_topic(BENCH_TOPIC)
                return True

        _wait(f"topic {BENCH_TOPIC}", deadline_s, create, self.logs, 0.1)


# ---- etcd -------------------------------------------------------------


def _b64(s):
    return base64.b64encode(s.encode()).decode()


class EtcdClient:
    """etcd's v3 JSON gateway over one keep-alive HTTP/1.1 connection."""

    def __init__(self, port, timeout_s=10.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def post(self, path, body):
        data = json.dumps(body).encode()
        self.conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        text = resp.read()
        if resp.status != 200:
            raise OSError(f"etcd {path}: HTTP {resp.status}: {text[:200]!r}")
        return json.loads(text)

    def put(self, key, value):
        return self.post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def status(self):
        """(this member's id, the leader's id); ids are decimal strings."""
        s = self.post("/v3/maintenance/status", {})
        return s["header"]["member_id"], s.get("leader", "0")


class EtcdCluster:
    """Three `etcd` members (Debian's etcd-server) with default timing."""

    def __init__(self, etcd_bin, root, size=3):
        self.bin = etcd_bin
        self.root = root
        self.names = [f"m{i}" for i in range(1, size + 1)]
        ports = free_ports(2 * size)
        self.client_port = dict(zip(self.names, ports[:size]))
        self.peer_port = dict(zip(self.names, ports[size:]))
        self.procs = {}
        self.member_ids = {}
        os.makedirs(root, exist_ok=True)

    def log_path(self, name):
        return os.path.join(self.root, f"{name}.log")

    def start(self):
        for name in self.names:
            self.start_member(name)

    def start_member(self, name):
        initial = ",".join(f"{n}=http://127.0.0.1:{self.peer_port[n]}" for n in self.names)
        client = f"http://127.0.0.1:{self.client_port[name]}"
        peer = f"http://127.0.0.1:{self.peer_port[name]}"
        args = [
            self.bin,
            "--name", name,
            "--data-dir", os.path.join(self.root, name),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", initial,
            "--initial-cluster-token", os.path.basename(self.root),
            "--initial-cluster-state", "new",
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]
        env = dict(os.environ)
        # Debian's package reads ETCD_* variables; none may leak in.
        for k in [k for k in env if k.startswith("ETCD_")]:
            del env[k]
        self.procs[name] = _spawn(args, self.log_path(name), env)

    def kill_member(self, name):
        p = self.procs.pop(name, None)
        if p is not None:
            _kill(p)

    def stop(self):
        for name in list(self.procs):
            self.kill_member(name)

    def alive(self):
        return [n for n in self.names if n in self.procs and self.procs[n].poll() is None]

    def check_alive(self):
        for n, p in self.procs.items():
            if p.poll() is not None:
                raise NotReady(f"etcd member {n} exited with {p.returncode}\n{self.logs()}")

    def logs(self, lines=25):
        return "".join(
            f"\n--- etcd {n} ({self.log_path(n)}), last {lines} lines:\n{tail(self.log_path(n), lines)}\n"
            for n in self.names
        )

    def client(self, name, timeout_s=10.0):
        return EtcdClient(self.client_port[name], timeout_s)

    def status(self, name, timeout_s=2.0):
        with self.client(name, timeout_s) as c:
            member, leader = c.status()
        self.member_ids[name] = member
        return member, leader

    def leader(self, among=None):
        """The name of the leader a live member reports, or None."""
        for name in among or self.alive():
            try:
                _, leader = self.status(name)
            except (OSError, ValueError, KeyError):
                continue
            if leader == "0":
                continue
            for n, member in self.member_ids.items():
                if member == leader:
                    return n
            # The leader's id is not known yet: ask everyone once.
            for n in self.alive():
                try:
                    self.status(n)
                except (OSError, ValueError, KeyError):
                    pass
            for n, member in self.member_ids.items():
                if member == leader:
                    return n
        return None

    def wait_ready(self, deadline_s=60.0):
        def ready():
            self.check_alive()
            leader = self.leader()
            if leader is None:
                return None
            with self.client(leader, 5.0) as c:
                c.put("raft-bench/ready", "1")
            return leader

        return _wait("an etcd leader that accepts a put", deadline_s, ready, self.logs)

    def wait_caught_up(self, deadline_s=60.0):
        """Waits until every member answers and applies the same index."""

        def caught_up():
            self.check_alive()
            indexes = set()
            for name in self.names:
                with self.client(name, 2.0) as c:
                    s = c.post("/v3/maintenance/status", {})
                if s.get("leader", "0") == "0":
                    return False
                indexes.add(s.get("raftAppliedIndex", s.get("raftIndex")))
            return len(indexes) == 1

        return _wait("every etcd member to catch up", deadline_s, caught_up, self.logs, 0.1)
