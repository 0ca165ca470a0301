"""Metadata commit latency and leader failover: Riffle's KRaft quorum
beside etcd, 3 voters each on loopback, measured in the same run.

Run through `bench/raft/run`, which installs etcd and builds riffle first.
See the "Metadata quorum" section of bench/README.md for what each figure
means and its caveats.

Latency: N sequential writes after a warm-up, each timed client-side from
sending the request to reading its acknowledgement on one keep-alive
connection to the leader:
- Riffle: IncrementalAlterConfigs v0 setting `retention.ms` of one topic to
  a new value (one ConfigRecord committed by the quorum and applied by the
  active controller before it answers), sent to the broker listener of the
  node the Metadata response names as controller (the quorum leader).
- etcd: a put of one key with a new value through the v3 JSON gateway
  (`POST /v3/kv/put`) of the leader.
Runs alternate between the systems (Riffle at the default linger, etcd,
Riffle at linger 0, then again), each on a freshly started cluster.

Failover: SIGKILL of the leader, then the time until a survivor reports a
different leader, and until the next write is acknowledged; the killed
member is restarted and caught up between trials.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import clusters
import kafka_wire

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# Kafka's defaults, used only when docs/configuration.md cannot be read.
QUORUM_DEFAULTS = {
    "controller.quorum.election.timeout.ms": 1000,
    "controller.quorum.fetch.timeout.ms": 2000,
    "controller.quorum.election.backoff.max.ms": 1000,
    "controller.quorum.append.linger.ms": 25,
}

# etcd's defaults (etcd --help): --heartbeat-interval 100, --election-timeout 1000.
ETCD_ELECTION_TIMEOUT_MS = 1000
ETCD_HEARTBEAT_MS = 100


def progress(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def quorum_defaults():
    """The controller.quorum.* defaults as docs/configuration.md states them."""
    out = dict(QUORUM_DEFAULTS)
    try:
        with open(os.path.join(REPO, "docs", "configuration.md")) as f:
            text = f.read()
    except OSError:
        return out
    for key in out:
        m = re.search(r"\|\s*`" + re.escape(key) + r"`\s*\|\s*INT\s*\|\s*`(\d+)`", text)
        if m:
            out[key] = int(m.group(1))
    return out


# ---- statistics -------------------------------------------------------


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, -(-len(sorted_values) * p // 100) - 1))
    return sorted_values[int(k)]


def summarize(samples_ms):
    s = sorted(samples_ms)
    return {
        "count": len(s),
        "p50": percentile(s, 50),
        "p99": percentile(s, 99),
        "p99.9": percentile(s, 99.9),
        "mean": statistics.fmean(s) if s else float("nan"),
        "max": s[-1] if s else float("nan"),
    }


def spread(values):
    """(median, min, max) of the per-run values."""
    v = [x for x in values if x == x]
    if not v:
        return (float("nan"),) * 3
    return statistics.median(v), min(v), max(v)


# ---- the disk, as a reference ----------------------------------------


def fsync_probe(directory, append, count=200):
    """Latency of a 4 KiB write + fdatasync in `directory`, in ms.

    Appending grows the file, so each fdatasync also commits the new size
    through the file system's journal; overwriting a preallocated file (as
    etcd's WAL does with its preallocated segments) syncs the data alone.
    """
    path = os.path.join(directory, "fsync-probe")
    block = b"x" * 4096
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    samples = []
    try:
        if not append:
            os.write(fd, block * count)
            os.fsync(fd)
        for i in range(count):
            t = time.perf_counter_ns()
            if append:
                os.write(fd, block)
            else:
                os.pwrite(fd, block, i * len(block))
            os.fdatasync(fd)
            samples.append((time.perf_counter_ns() - t) / 1e6)
    finally:
        os.close(fd)
        os.unlink(path)
    return summarize(samples)


# ---- latency ----------------------------------------------------------


class Progress:
    def __init__(self, label, total):
        self.label = label
        self.total = total
        self.last = time.monotonic()

    def tick(self, done):
        now = time.monotonic()
        if now - self.last >= 2.0 or done == self.total:
            self.last = now
            progress(f"  {self.label}: {done}/{self.total} writes")


def riffle_latency(cluster, n, warmup, label):
    leader = cluster.wait_ready()
    cluster.create_bench_topic(leader)
    cluster.wait_caught_up()
    leader = cluster.wait_ready()
    progress(f"  {label}: leader is node {leader}; {warmup} warm-up + {n} timed writes")
    samples = []
    errors = []
    p = Progress(label, warmup + n)
    conn = cluster.broker(leader)
    i = 0
    try:
        while i < warmup + n:
            value = str(86_400_000 + i)
            t = time.perf_counter_ns()
            try:
                conn.alter_topic_config(clusters.BENCH_TOPIC, "retention.ms", value)
            except (OSError, kafka_wire.KafkaError) as e:
                # A leader change mid-run: counted, not timed, and the run
                # goes on against the new leader.
                errors.append(f"write {i}: {e}")
                conn.close()
                if len(errors) > 10:
                    raise clusters.NotReady(f"{label}: too many failed writes: {errors}\n{cluster.logs()}")
                leader = cluster.wait_ready()
                conn = cluster.broker(leader)
                continue
            dt = (time.perf_counter_ns() - t) / 1e6
            if i >= warmup:
                samples.append(dt)
            i += 1
            p.tick(i)
    finally:
        conn.close()
    return samples, errors


def etcd_latency(cluster, n, warmup, label):
    leader = cluster.wait_ready()
    cluster.wait_caught_up()
    leader = cluster.wait_ready()
    progress(f"  {label}: leader is {leader}; {warmup} warm-up + {n} timed puts")
    samples = []
    errors = []
    p = Progress(label, warmup + n)
    client = cluster.client(leader)
    i = 0
    try:
        while i < warmup + n:
            value = str(86_400_000 + i)
            t = time.perf_counter_ns()
            try:
                client.put("raft-bench/key", value)
            except (OSError, ValueError) as e:
                errors.append(f"put {i}: {e}")
                client.close()
                if len(errors) > 10:
                    raise clusters.NotReady(f"{label}: too many failed puts: {errors}\n{cluster.logs()}")
                leader = cluster.wait_ready()
                client = cluster.client(leader)
                continue
            dt = (time.perf_counter_ns() - t) / 1e6
            if i >= warmup:
                samples.append(dt)
            i += 1
            p.tick(i)
    finally:
        client.close()
    return samples, errors


# ---- failover ---------------------------------------------------------


def _race(kill, poll_leader, try_write, deadline_s, write_every_s=0.02, writes_in_flight_max=200):
    """Kills the leader at t=0, then watches two things concurrently: a
    survivor reporting a new leader (polled), and the first acknowledged
    write. A write sent while there is no leader may hang until its own
    timeout, so a new write attempt starts every `write_every_s` while
    earlier ones are still waiting; the first acknowledgement wins.
    `try_write(k)` makes attempt k (it picks a survivor by k).
    Returns (leader_s, write_s, new_leader); None where it never happened."""
    out = {}
    lock = threading.Lock()
    done = threading.Event()

    def record(key, v):
        with lock:
            if key not in out:
                out[key] = (time.monotonic() - t0, v)

    def watch_leader():
        while not done.is_set() and time.monotonic() - t0 < deadline_s:
            try:
                v = poll_leader()
            except Exception:  # noqa: BLE001 - any failure means "not yet"
                v = None
            if v is not None:
                record("leader", v)
                return
            time.sleep(0.005)

    in_flight = threading.Semaphore(writes_in_flight_max)

    def attempt(k):
        try:
            v = try_write(k)
        except Exception:  # noqa: BLE001
            v = None
        finally:
            in_flight.release()
        if v is not None:
            record("write", v)

    t0 = time.monotonic()
    kill()
    watcher = threading.Thread(target=watch_leader, daemon=True)
    watcher.start()
    writers = []
    while "write" not in out and time.monotonic() - t0 < deadline_s:
        if in_flight.acquire(timeout=write_every_s):
            t = threading.Thread(target=attempt, args=(len(writers),), daemon=True)
            t.start()
            writers.append(t)
            time.sleep(write_every_s)
    watcher.join(timeout=max(0.0, deadline_s - (time.monotonic() - t0)))
    done.set()
    for t in writers:
        t.join(timeout=10)
    leader = out.get("leader")
    write = out.get("write")
    return (leader[0] if leader else None, write[0] if write else None, leader[1] if leader else None)


def riffle_failover(cluster, trials):
    results = []
    for trial in range(1, trials + 1):
        cluster.wait_caught_up()
        old = cluster.wait_ready()
        old_epoch = cluster.describe_quorum(old)["leader_epoch"]
        time.sleep(0.5)  # followers in their steady fetch loop
        survivors = [i for i in cluster.ids if i != old]

        def poll_leader():
            for i in survivors:
                try:
                    q = cluster.describe_quorum(i, timeout_s=1.0)
                except (OSError, kafka_wire.KafkaError):
                    continue
                # The new leader itself, or a follower naming it.
                if q["leader_id"] >= 0 and q["leader_id"] != old:
                    return q["leader_id"], q["leader_epoch"]
            return None

        def try_write(k):
            # Ask a survivor (by turns) which node is the controller, and
            # write there.
            controller = cluster.controller_via(survivors[k % len(survivors)])
            if controller not in survivors:
                return None
            with cluster.broker(controller, timeout_s=2.0) as c:
                c.alter_topic_config(clusters.BENCH_TOPIC, "retention.ms", str(3_600_000 + k))
            return controller

        progress(f"  failover trial {trial}/{trials}: SIGKILL of leader node {old} (epoch {old_epoch})")
        leader_s, write_s, new = _race(lambda: cluster.kill_node(old), poll_leader, try_write, 30.0)
        new_leader, new_epoch = new if new else (None, None)
        # Each election round takes a new epoch: more than one means a split
        # vote or a lost election before the winner.
        rounds = new_epoch - old_epoch if new_epoch is not None else None
        progress(
            f"  failover trial {trial}/{trials}: new leader {new_leader} (epoch {new_epoch}, "
            f"{rounds} election round(s)) after {_fmt_s(leader_s)}, "
            f"first write acknowledged after {_fmt_s(write_s)}"
        )
        results.append(
            {"killed": old, "new_leader": new_leader, "old_epoch": old_epoch, "new_epoch": new_epoch,
             "election_rounds": rounds, "leader_s": leader_s, "write_s": write_s}
        )
        cluster.start_node(old)
        if leader_s is None or write_s is None:
            results[-1]["logs"] = cluster.logs(40)
    cluster.wait_caught_up()
    return results


def etcd_failover(cluster, trials):
    results = []
    for trial in range(1, trials + 1):
        cluster.wait_caught_up()
        old = cluster.wait_ready()
        old_id = cluster.member_ids[old]
        time.sleep(0.5)
        survivors = [n for n in cluster.names if n != old]

        def poll_leader():
            for n in survivors:
                try:
                    _, leader = cluster.status(n, timeout_s=1.0)
                except (OSError, ValueError, KeyError):
                    continue
                if leader not in ("0", old_id):
                    return next((m for m, i in cluster.member_ids.items() if i == leader), leader)
            return None

        def try_write(k):
            # Any member takes a put (a follower forwards it to the leader).
            n = survivors[k % len(survivors)]
            with cluster.client(n, timeout_s=2.0) as c:
                c.put("raft-bench/key", str(k))
            return n

        progress(f"  etcd failover trial {trial}/{trials}: SIGKILL of leader {old}")
        leader_s, write_s, new = _race(lambda: cluster.kill_member(old), poll_leader, try_write, 30.0)
        progress(
            f"  etcd failover trial {trial}/{trials}: new leader {new} after "
            f"{_fmt_s(leader_s)}, first put acknowledged after {_fmt_s(write_s)}"
        )
        results.append({"killed": old, "new_leader": new, "leader_s": leader_s, "write_s": write_s})
        cluster.start_member(old)
    cluster.wait_caught_up()
    return results


# ---- report -----------------------------------------------------------


def _fmt_s(v):
    return "never" if v is None else f"{v:.2f} s"


def _fmt_ms(v):
    if v != v:
        return "-"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _cell_ms(med_lo_hi):
    med, lo, hi = med_lo_hi
    if med != med:
        return "-"
    return f"{_fmt_ms(med)} ms ({_fmt_ms(lo)}-{_fmt_ms(hi)})"


def _cell_s(values):
    v = [x for x in values if x is not None]
    if not v:
        return "-" if not values else "never"
    med = statistics.median(v)
    missed = len(values) - len(v)
    text = f"{med:.2f} s ({min(v):.2f}-{max(v):.2f})"
    return text + (f", {missed} never" if missed else "")


def _trials(trials, key):
    return " ".join("never" if t[key] is None else f"{t[key]:.2f}" for t in trials)


def build_table(results):
    rows = []
    etcd_runs = results["latency"]["etcd"]
    for key, label in (("riffle_linger_default", f"linger {results['linger_default_ms']} ms"), ("riffle_linger_0", "linger 0")):
        runs = results["latency"].get(key)
        if not runs:
            continue
        for stat in ("p50", "p99", "p99.9", "mean"):
            r = spread([run["stats"][stat] for run in runs])
            e = spread([run["stats"][stat] for run in etcd_runs]) if etcd_runs else (float("nan"),) * 3
            ratio = f"{r[0] / e[0]:.2f}" if e[0] == e[0] and e[0] > 0 and r[0] == r[0] else "-"
            rows.append((f"commit {stat}, {label}", _cell_ms(r), _cell_ms(e), ratio))
    fo = results.get("failover", {})
    rf = fo.get("riffle", [])
    ef = fo.get("etcd", [])
    if rf or ef:
        for key, label in (("leader_s", "failover: new leader reported"), ("write_s", "failover: next write acked")):
            rv = [t[key] for t in rf]
            ev = [t[key] for t in ef]
            rmed = statistics.median([x for x in rv if x is not None]) if any(x is not None for x in rv) else None
            emed = statistics.median([x for x in ev if x is not None]) if any(x is not None for x in ev) else None
            ratio = f"{rmed / emed:.2f}" if rmed and emed else "-"
            rows.append((label, _cell_s(rv), _cell_s(ev), ratio))
        for t_key, name in (("leader_s", "new leader"), ("write_s", "next write")):
            rows.append(
                (f"  trials, {name}", _trials(rf, t_key), _trials(ef, t_key), "")
            )
        rounds = [t.get("election_rounds") for t in rf]
        if any(r is not None for r in rounds):
            rows.append(("  election rounds (epochs)", " ".join(str(r) for r in rounds), "", ""))
        b = results["failover_bounds_ms"]
        rows.append(
            (
                "failover bound",
                f"{b['riffle_fetch_plus_backoff'] / 1000:.2f} s (fetch.timeout + backoff.max)",
                f"{b['etcd_randomized_election_timeout'] / 1000:.2f} s (2 x election timeout)",
                "",
            )
        )
    for mode, fs in results.get("disk_fdatasync_ms", {}).items():
        rows.append((f"disk: 4 KiB {mode} + fdatasync", f"p50 {_fmt_ms(fs['p50'])} ms, p99 {_fmt_ms(fs['p99'])} ms", "(same disk)", ""))
    return rows


def render_table(rows):
    header = ("figure", "Riffle median (min-max)", "etcd median (min-max)", "Riffle/etcd")
    widths = [max(len(r[c]) for r in rows + [header]) for c in range(4)]
    line = lambda r: "| " + " | ".join(r[c].ljust(widths[c]) for c in range(4)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


# ---- main -------------------------------------------------------------


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def version_of(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--riffle", required=True, help="the riffle binary")
    ap.add_argument("--etcd", default=shutil.which("etcd") or "etcd")
    ap.add_argument("--out", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--only", choices=["riffle", "etcd", "all"], default="all",
                    help="skip the other system (for debugging the harness)")
    args = ap.parse_args()

    n = env_int("RAFT_BENCH_N", 1000)
    warmup = env_int("RAFT_BENCH_WARMUP", 100)
    runs = env_int("RAFT_BENCH_RUNS", 3)
    trials = env_int("RAFT_BENCH_FAILOVERS", 3)
    etcd_trials = env_int("RAFT_BENCH_ETCD_FAILOVERS", trials)
    keep = os.environ.get("RAFT_BENCH_KEEP") == "1"
    defaults = quorum_defaults()
    linger_default = defaults["controller.quorum.append.linger.ms"]
    do_riffle = args.only in ("riffle", "all")
    do_etcd = args.only in ("etcd", "all")

    root = tempfile.mkdtemp(prefix="raft-bench-")
    progress(f"work directory {root} (N={n}, warm-up={warmup}, runs={runs}, failover trials={trials})")
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "bash bench/raft/run",
        "settings": {"n": n, "warmup": warmup, "runs": runs, "failover_trials": trials, "etcd_failover_trials": etcd_trials},
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()},
        "versions": {
            "riffle": version_of([args.riffle, "--version"]),
            "riffle_git": version_of(["git", "-C", REPO, "describe", "--always", "--dirty"]),
            "etcd": version_of([args.etcd, "--version"]),
        },
        "quorum_defaults": defaults,
        "linger_default_ms": linger_default,
        "latency": {"riffle_linger_default": [], "riffle_linger_0": [], "etcd": []},
        "failover": {},
        "failover_bounds_ms": {
            "riffle_fetch_plus_backoff": defaults["controller.quorum.fetch.timeout.ms"]
            + defaults["controller.quorum.election.backoff.max.ms"],
            "riffle_election_plus_backoff": defaults["controller.quorum.election.timeout.ms"]
            + defaults["controller.quorum.election.backoff.max.ms"],
            "riffle_split_vote": defaults["controller.quorum.fetch.timeout.ms"]
            + 2 * defaults["controller.quorum.election.timeout.ms"]
            + defaults["controller.quorum.election.backoff.max.ms"],
            # etcd draws each election timeout from [T, 2T).
            "etcd_randomized_election_timeout": 2 * ETCD_ELECTION_TIMEOUT_MS,
        },
    }
    started = time.monotonic()
    status = 0
    try:
        results["disk_fdatasync_ms"] = {
            "append": fsync_probe(root, append=True),
            "overwrite": fsync_probe(root, append=False),
        }
        for mode, fs in results["disk_fdatasync_ms"].items():
            progress(f"disk: 4 KiB {mode} + fdatasync p50 {_fmt_ms(fs['p50'])} ms, p99 {_fmt_ms(fs['p99'])} ms")

        # Interleaved: Riffle (default linger), etcd, Riffle (linger 0), per round.
        plan = []
        for r in range(1, runs + 1):
            if do_riffle:
                plan.append(("riffle_linger_default", r, {}))
            if do_etcd:
                plan.append(("etcd", r, None))
            if do_riffle:
                plan.append(("riffle_linger_0", r, {"controller.quorum.append.linger.ms": "0"}))
        for key, r, overrides in plan:
            label = {"riffle_linger_default": f"riffle linger {linger_default} ms", "riffle_linger_0": "riffle linger 0",
                     "etcd": "etcd"}[key] + f" run {r}/{runs}"
            progress(f"{label}: starting a fresh 3-member cluster")
            d = os.path.join(root, f"{key}-{r}")
            if key == "etcd":
                c = clusters.EtcdCluster(args.etcd, d)
                c.start()
                try:
                    samples, errors = etcd_latency(c, n, warmup, label)
                finally:
                    c.stop()
            else:
                c = clusters.RiffleCluster(args.riffle, d, overrides)
                c.start()
                try:
                    samples, errors = riffle_latency(c, n, warmup, label)
                finally:
                    c.stop()
            stats = summarize(samples)
            results["latency"][key].append({"run": r, "stats": stats, "errors": errors})
            progress(
                f"{label}: p50 {_fmt_ms(stats['p50'])} ms, p99 {_fmt_ms(stats['p99'])} ms, "
                f"p99.9 {_fmt_ms(stats['p99.9'])} ms, mean {_fmt_ms(stats['mean'])} ms"
                + (f", {len(errors)} failed writes" if errors else "")
            )
            if not keep:
                shutil.rmtree(d, ignore_errors=True)

        if do_riffle and trials > 0:
            progress(f"riffle failover: fresh cluster, {trials} trials")
            c = clusters.RiffleCluster(args.riffle, os.path.join(root, "riffle-failover"))
            c.start()
            try:
                leader = c.wait_ready()
                c.create_bench_topic(leader)
                results["failover"]["riffle"] = riffle_failover(c, trials)
            finally:
                c.stop()
        if do_etcd and etcd_trials > 0:
            progress(f"etcd failover: fresh cluster, {etcd_trials} trials")
            c = clusters.EtcdCluster(args.etcd, os.path.join(root, "etcd-failover"))
            c.start()
            try:
                results["failover"]["etcd"] = etcd_failover(c, etcd_trials)
            finally:
                c.stop()
    except clusters.NotReady as e:
        progress(f"FAILED: {e}")
        results["error"] = str(e)
        status = 1
    except KeyboardInterrupt:
        progress("interrupted")
        results["error"] = "interrupted"
        status = 130
    finally:
        clusters.kill_all_children()

    results["elapsed_s"] = round(time.monotonic() - started, 1)
    rows = build_table(results)
    results["table"] = render_table(rows) if rows else ""
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print()
    print(f"Metadata quorum, 3 voters on loopback, {n} sequential writes after {warmup} warm-up, "
          f"{runs} interleaved runs per row; failover: {trials} SIGKILLs of the leader")
    if rows:
        print(results["table"])
    b = results["failover_bounds_ms"]
    print(f"Failover bound: fetch.timeout.ms + election.backoff.max.ms = {b['riffle_fetch_plus_backoff']} ms "
          f"(one election); with a split vote fetch.timeout + 2 x election.timeout + backoff.max = "
          f"{b['riffle_split_vote']} ms")
    for t in results["failover"].get("riffle", []):
        if "logs" in t:
            print(f"\nfailover trial without a result (killed node {t['killed']}); node logs:{t['logs']}")
    print(f"\nresults: {args.out} (elapsed {results['elapsed_s']} s)")
    if keep or status:
        print(f"cluster directories and logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
