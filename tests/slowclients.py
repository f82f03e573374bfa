"""Slow clients for tests/test_slowloris.py and bench/slowloris.py: many connections that
each send an opening, then one more byte every DRIP_EVERY seconds, driven by one thread with a
selector on non-blocking sockets. Standard library only (the bench's virtualenv has no pytest)."""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# How often the attackers send one more byte.
DRIP_EVERY = 0.2


def wait_until(cond: Callable[[], object], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"condition not met within {timeout} s"
        time.sleep(0.02)


@dataclass
class Conn:
    """One attacking connection, as the dripping thread sees it."""

    sock: socket.socket
    outbox: bytearray
    dripping: bool = True
    # Body (or head) bytes dripped after the opening.
    dripped: int = 0
    # monotonic(): the opening's first byte went out, the last byte went out, and the server
    # closed the connection.
    sent_at: float | None = None
    last_sent_at: float | None = None
    closed_at: float | None = None
    received: bytearray = field(default_factory=bytearray)

    @property
    def open(self) -> bool:
        return self.closed_at is None


class Drippers:
    """`n` connections to `addr`, each sending `opening`, then `drip` every DRIP_EVERY seconds
    while it is dripping; one thread drives them all on non-blocking sockets and records what
    each received and when the server closed it."""

    def __init__(self, addr: tuple[str, int], n: int, opening: bytes, drip: bytes = b"a") -> None:
        self.drip = drip
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.conns: list[Conn] = []
        self.done = threading.Event()
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(addr)
            assert err in (0, errno.EINPROGRESS), errno.errorcode.get(err, err)
            c = Conn(s, bytearray(opening))
            self.conns.append(c)
            self.sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def __enter__(self) -> Drippers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)
        for c in self.conns:
            c.sock.close()
        self.sel.close()

    def _closed(self, c: Conn) -> None:
        c.closed_at = time.monotonic()
        self.sel.unregister(c.sock)

    def _send(self, c: Conn) -> None:
        try:
            n = c.sock.send(c.outbox)
        except BlockingIOError:
            return
        except OSError:
            self._closed(c)
            return
        if n:
            c.last_sent_at = time.monotonic()
            c.sent_at = c.sent_at or c.last_sent_at
        del c.outbox[:n]
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.outbox else 0)
        self.sel.modify(c.sock, want, c)

    def _recv(self, c: Conn) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            c.received += data
        else:
            self._closed(c)

    def _run(self) -> None:
        next_drip = time.monotonic() + DRIP_EVERY
        while not self.done.is_set():
            events = self.sel.select(timeout=0.05)
            with self.lock:
                for key, mask in events:
                    c = key.data
                    if c.open and mask & selectors.EVENT_READ:
                        self._recv(c)
                    if c.open and mask & selectors.EVENT_WRITE:
                        self._send(c)
                if time.monotonic() >= next_drip:
                    next_drip += DRIP_EVERY
                    for c in self.conns:
                        if c.open and c.dripping and c.sent_at is not None and not c.outbox:
                            c.outbox += self.drip
                            c.dripped += len(self.drip)
                            self._send(c)

    def finish(self, c: Conn, length: int) -> None:
        """`c` stops dripping and sends the rest of its `length` bytes of drips at once."""
        with self.lock:
            c.dripping = False
            if c.open:
                c.outbox += self.drip * ((length - c.dripped) // len(self.drip))
                self._send(c)

    def stall(self, conns: list[Conn] | None = None) -> None:
        """These connections (default: all) stop sending."""
        with self.lock:
            for c in self.conns if conns is None else conns:
                c.dripping = False

    def opened(self) -> list[Conn]:
        """The connections whose opening went out."""
        return [c for c in self.conns if c.sent_at is not None]

    def still_open(self) -> list[Conn]:
        return [c for c in self.conns if c.open]

    def wait_opened(self, timeout: float = 30.0) -> None:
        wait_until(lambda: all(c.sent_at is not None or not c.open for c in self.conns), timeout)

    def wait_closed(self, conns: list[Conn], timeout: float) -> None:
        wait_until(lambda: not any(c.open for c in conns), timeout)
