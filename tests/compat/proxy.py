"""A TCP proxy on loopback that cuts its connections on purpose.

The idempotence tests put it between a client and a broker (the broker
advertises the proxy's address in `advertised.listeners`, so that every
connection the client opens after bootstrapping goes through it too) and
let it drop every connection:

- on demand (`cut_all()`),
- each time a number of bytes has been forwarded in one direction
  (`cut_every(upstream_bytes=..., downstream_bytes=...)`): the chunk that
  crosses the mark is forwarded only up to the mark, so a request or a
  response is torn in the middle and the cut lands at the same byte of the
  stream on every run,
- or every so many milliseconds while connections are open
  (`cut_every(interval_ms=...)`).

It can also swallow everything the broker sends (`drop_downstream(True)`):
requests still arrive and are acted on, but no answer reaches the client,
as when a broker crashes between doing the work and replying. And it can
hold new connections (`hold_new_connections(True)`): they are accepted by
the kernel but not forwarded until the hold ends, so a client waits
instead of seeing refusals or resets.

A cut closes both sides with a TCP reset (SO_LINGER 0), the way a crashed
peer or a broken network looks to both ends. A torn downstream response is
the case idempotence exists for: the broker has appended the batch, the
client never hears so and sends it again.

`cuts` counts the cuts that closed at least one connection, so that a test
can assert the faults really happened instead of passing vacuously.
Everything runs in daemon threads; `close()` stops the proxy.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

CHUNK_BYTES = 64 * 1024


class _Link:
    """One client connection and its connection to the target."""

    def __init__(self, client: socket.socket, server: socket.socket):
        self.client = client
        self.server = server
        self.closed = False

    def reset(self) -> None:
        """Close both sockets with a RST; wakes the pump threads blocked in recv()."""
        if self.closed:
            return
        self.closed = True
        for s in (self.client, self.server):
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class Proxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`.

    The listening port is bound at construction, so a broker can be
    configured to advertise it before the target (the broker's port) is
    known; `target_port` may be set later, before the first connection.
    """

    def __init__(self, target_port: int | None = None):
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._closed = False
        # Counters, under _lock.
        self.connections = 0
        self.cuts = 0
        self.cut_log: list[str] = []
        self.forwarded = {"up": 0, "down": 0}
        # Cut policy, under _lock: bytes left before the next cut per direction.
        self._every = {"up": None, "down": None}
        self._left = {"up": None, "down": None}
        self._interval_s: float | None = None
        self._cuts_max: int | None = None
        self._drop_down = False
        self.dropped_down = 0
        self._not_held = threading.Event()
        self._not_held.set()
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()
        self._timer = threading.Thread(target=self._timer_loop, name=f"proxy-timer-{self.port}", daemon=True)
        self._timer.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------ policy

    def cut_every(self, upstream_bytes: int | None = None, downstream_bytes: int | None = None,
                  interval_ms: float | None = None, cuts_max: int | None = None) -> None:
        """Cut every connection each time `upstream_bytes` (client to broker) or
        `downstream_bytes` (broker to client) more bytes have been forwarded, and/or
        every `interval_ms` while connections are open; at most `cuts_max` times in all
        (counted from now). None turns a trigger off; no arguments stop cutting."""
        for n in (upstream_bytes, downstream_bytes):
            assert n is None or n > 0, n
        with self._lock:
            self._every = {"up": upstream_bytes, "down": downstream_bytes}
            self._left = dict(self._every)
            self._interval_s = interval_ms / 1000.0 if interval_ms else None
            self._cuts_max = None if cuts_max is None else self.cuts + cuts_max

    def drop_downstream(self, on: bool) -> None:
        """While on, bytes from the broker are read and thrown away (counted in dropped_down)."""
        with self._lock:
            self._drop_down = on

    def hold_new_connections(self, on: bool) -> None:
        """While on, connections that arrive wait, unanswered, until the hold ends."""
        if on:
            self._not_held.clear()
        else:
            self._not_held.set()

    def cut_all(self, why: str = "on demand") -> int:
        """Reset every open connection now; returns how many there were."""
        with self._lock:
            links = list(self._links)
            self._links.clear()
            if links:
                self.cuts += 1
                self.cut_log.append(f"{why}: {len(links)} connections, forwarded {dict(self.forwarded)}")
        for link in links:
            link.reset()
        return len(links)

    def close(self) -> None:
        self._closed = True
        self._not_held.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut_every()
        with self._lock:
            links = list(self._links)
            self._links.clear()
        for link in links:
            link.reset()

    def stats(self) -> dict:
        with self._lock:
            return {"connections": self.connections, "cuts": self.cuts, "forwarded": dict(self.forwarded),
                    "dropped_down": self.dropped_down}

    # ------------------------------------------------------------ forwarding

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            while not self._not_held.wait(0.1):
                if self._closed:
                    client.close()
                    return
            if self.target_port is None:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                server.settimeout(None)
            except OSError:
                # The broker is down: the client sees the same as a refused connection.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, server)
            with self._lock:
                if self._closed:
                    link.reset()
                    return
                self._links.add(link)
                self.connections += 1
            threading.Thread(target=self._pump, args=(link, client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(link, server, client, "down"), daemon=True).start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket, direction: str) -> None:
        while True:
            try:
                data = src.recv(CHUNK_BYTES)
            except OSError:
                data = b""
            if not data:
                # One side closed or was reset: close the other one too, as a
                # connection through a real network would end.
                self._drop(link)
                return
            cut_after = False
            with self._lock:
                if link.closed:
                    return
                if direction == "down" and self._drop_down:
                    self.dropped_down += len(data)
                    continue
                left = self._left[direction]
                if left is not None and self._cuts_allowed():
                    if len(data) >= left:
                        data = data[:left]
                        cut_after = True
                        self._left[direction] = self._every[direction]
                    else:
                        self._left[direction] = left - len(data)
                self.forwarded[direction] += len(data)
            try:
                dst.sendall(data)
            except OSError:
                self._drop(link)
                return
            if cut_after:
                self.cut_all(f"after {self._every[direction]} more {direction}stream bytes")
                return

    def _cuts_allowed(self) -> bool:
        return self._cuts_max is None or self.cuts < self._cuts_max

    def _drop(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)
        link.reset()

    def _timer_loop(self) -> None:
        last = time.monotonic()
        while not self._closed:
            time.sleep(0.005)
            with self._lock:
                interval = self._interval_s
                busy = bool(self._links)
                allowed = self._cuts_allowed()
            now = time.monotonic()
            if interval is None or not busy or not allowed:
                last = now
                continue
            if now - last >= interval:
                last = now
                self.cut_all(f"every {interval * 1000:.0f} ms")
