"""HTTP/2 request bodies follow HTTP/1's rules: buffered on the edge thread before the app is
called (in memory, spooled to an unnamed file beyond --body-buffer-size, 413 as soon as
--limit-request-body is passed, 408 below --body-min-rate), so a client dripping a body never
holds the inline worker; streamed on --no-request-buffering and --stream-uploads paths, the
inline worker running a stream whose body is still to come on a side thread."""

from __future__ import annotations

import hashlib
import select
import shutil
import threading
import time

import h2.events
import h2.exceptions
from test_h2 import RawH2
from test_slow_streamed_uploads import DRIP_EVERY, FIRST, answered_while, wait_until

MIB = 1024 * 1024


class Client(RawH2):
    """RawH2 with POSTs whose body is sent as the server's windows allow; the events read
    meanwhile are kept for `answer`."""

    def __init__(self, srv) -> None:
        super().__init__(srv)
        self.seen: list = []

    def post(self, path: str, length: int | None = None) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", self.host)]
        if length is not None:
            headers.append(("content-length", str(length)))
        self.conn.send_headers(sid, headers)
        self.flush()
        return sid

    def answered(self, sid: int) -> bool:
        return any(isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset) and ev.stream_id == sid
                   for ev in self.seen)  # fmt: skip

    def send(self, sid: int, data: bytes, end: bool = True) -> bool:
        """Sends `data` on `sid`, waiting for window; False if the stream was answered or
        reset before all of it went."""
        view = memoryview(data)
        while view:
            if self.answered(sid):
                return False
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                evs = self.events()
                if not evs:
                    raise ConnectionError("closed")
                self.seen += evs
                continue
            n = min(window, len(view))
            try:
                self.conn.send_data(sid, view[:n].tobytes())
            except h2.exceptions.StreamClosedError:
                return False
            self.flush()
            view = view[n:]
        if end:
            self.conn.end_stream(sid)
            self.flush()
        return True

    def poll(self) -> None:
        """Reads what the server sent, without waiting."""
        while select.select([self.sock], [], [], 0)[0]:
            evs = self.events()
            if not evs:
                return
            self.seen += evs

    def answer(self, sid: int) -> tuple[int, bytes]:
        """The status and body of `sid` (0 if it was reset)."""
        status, body, i = 0, b"", 0
        while True:
            while i < len(self.seen):
                ev = self.seen[i]
                i += 1
                if getattr(ev, "stream_id", None) != sid:
                    continue
                if isinstance(ev, h2.events.ResponseReceived):
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    self.flush()
                elif isinstance(ev, h2.events.StreamEnded):
                    return status, body
                elif isinstance(ev, h2.events.StreamReset):
                    return 0, body
            evs = self.events()
            if not evs:
                raise ConnectionError("closed")
            self.seen += evs


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_a_dripped_http2_body_is_buffered_before_the_app_is_called(serve_both, tmp_path):
    """Inline and with threads: the app is called only once the body has ended."""
    srv = serve_both("upload:app")
    mark = tmp_path / "first"
    c = Client(srv)
    body = b"d" * 5000 + bytes(range(10))
    sid = c.post(f"/up/x?{mark}")
    assert c.send(sid, body[:5000], end=False)
    for b in body[5000:]:
        c.send(sid, bytes([b]), end=False)
        time.sleep(DRIP_EVERY)
        assert not mark.exists(), "the app was called before the body ended"
    c.conn.end_stream(sid)
    c.flush()
    status, out = c.answer(sid)
    assert (status, out.decode().split()) == (200, [sha(body), str(len(body))])
    assert mark.exists()
    c.close()


def test_an_http2_upload_over_the_buffer_size_is_spooled_and_arrives_whole(serve_both, tmp_path):
    """3 MiB (over the 64 KiB --body-buffer-size): the app reads it whole, the spool file
    never has a name in --body-spool-dir; with that directory gone, the same upload gets 500
    (it was spooled) while a small body (in memory) is still served."""
    spool = tmp_path / "spool"
    spool.mkdir()
    srv = serve_both("upload:app", "--body-spool-dir", str(spool))
    body = bytes(range(256)) * (3 * MIB // 256)
    c = Client(srv)
    sid = c.post(f"/sha?{spool}", len(body))
    assert c.send(sid, body)
    status, out = c.answer(sid)
    assert (status, out.decode().split()) == (200, [sha(body), str(len(body)), "0"])
    assert list(spool.iterdir()) == []
    shutil.rmtree(spool)
    sid = c.post("/sha", len(body))
    c.send(sid, body)
    assert c.answer(sid)[0] == 500
    sid = c.post("/sha")
    assert c.send(sid, b"small")
    status, out = c.answer(sid)
    assert (status, out.decode().split()[:2]) == (200, [sha(b"small"), "5"])
    c.close()


def test_the_streams_of_one_connection_share_the_memory_buffer(serve_both, tmp_path):
    """--body-buffer-size bounds the bodies a connection holds in memory, all its streams
    together: of three 40 KiB bodies buffered at once, the first stays in memory and the next
    two are spooled (with the spool directory gone, they get 500); alone, the same body is
    kept in memory again."""
    spool = tmp_path / "spool"
    srv = serve_both("upload:app", "--body-spool-dir", str(spool))
    body = b"b" * 40_000
    c = Client(srv)
    sids = [c.post("/sha", len(body)) for _ in range(3)]
    for sid in sids:
        c.send(sid, body, end=False)  # False once the server answered the stream
    for sid in sids:
        try:
            c.conn.end_stream(sid)
        except h2.exceptions.StreamClosedError:
            pass  # answered and reset by the server already
    c.flush()
    assert [c.answer(sid)[0] for sid in sids] == [200, 500, 500]
    sid = c.post("/sha", len(body))
    assert c.send(sid, body)
    status, out = c.answer(sid)
    assert (status, out.decode().split()[:2]) == (200, [sha(body), str(len(body))])
    c.close()


def test_an_http2_body_growing_over_the_limit_gets_413_at_once(serve_both):
    """No Content-Length: the body passes --limit-request-body while still coming; 413 goes
    out then (the client has not ended its stream), and the connection serves the next."""
    srv = serve_both("upload:app", "--limit-request-body", "100000")
    c = Client(srv)
    sid = c.post("/sha")
    c.send(sid, b"x" * 150_000, end=False)
    assert c.answer(sid) == (413, b"")
    sid = c.post("/sha")
    assert c.send(sid, b"y" * 1000)
    assert c.answer(sid)[0] == 200
    c.close()


def test_an_http2_body_slower_than_the_minimum_rate_gets_408(serve_both, tmp_path):
    srv = serve_both("upload:app", "--body-min-rate", "1000")
    mark = tmp_path / "first"
    c = Client(srv)
    sid = c.post(f"/up/x?{mark}")
    end = time.monotonic() + 15
    while not c.answered(sid):
        assert time.monotonic() < end, "no 408 within 15 s"
        if not c.send(sid, b"s", end=False):
            break
        time.sleep(0.2)
        c.poll()
    assert c.answer(sid) == (408, b"")
    assert not mark.exists()
    c.close()


def test_a_streaming_path_over_http2_streams_on_a_side_thread_inline(serve, tmp_path):
    """--stream-uploads inline: the app sees the first block before the client sends the
    last byte, and a normal client is answered within a second meanwhile."""
    srv = serve("upload:app", "--stream-uploads", "/up")
    mark = tmp_path / "first"
    body = b"u" * FIRST + bytes(range(20))
    c = Client(srv)
    sid = c.post(f"/up/x?{mark}", len(body))
    assert c.send(sid, body[:FIRST], end=False)
    wait_until(mark.exists, 20, "the app saw the first block")

    def drip() -> None:
        for b in body[FIRST:]:
            c.conn.send_data(sid, bytes([b]))
            c.flush()
            time.sleep(DRIP_EVERY)
        c.conn.end_stream(sid)
        c.flush()

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    took = answered_while(srv, dripper.is_alive)
    dripper.join()
    assert len(took) >= 3, took
    status, out = c.answer(sid)
    assert (status, out.decode().split()) == (200, [sha(body), str(len(body))])
    c.close()


def test_a_small_streamed_http2_body_runs_on_the_loop_and_one_still_coming_on_a_side_thread(serve):
    """Inline, streaming: a small body (a Content-Length up to 64 KiB) is awaited on the edge
    thread and runs on the worker's own thread; a larger one still to come runs on a side
    thread (a thread Python did not start: `Dummy-N`), never on the loop."""
    srv = serve("upload:app", "--no-request-buffering")
    c = Client(srv)
    sid = c.post("/thread", 5)
    c.send(sid, b"hel", end=False)
    time.sleep(0.2)
    assert c.send(sid, b"lo")
    status, out = c.answer(sid)
    assert (status, out.decode().split()) == (200, ["MainThread", "5"])
    body = b"t" * FIRST + b"tail"
    sid = c.post("/thread", len(body))
    assert c.send(sid, body[:FIRST], end=False)
    time.sleep(0.2)
    assert c.send(sid, body[FIRST:])
    status, out = c.answer(sid)
    name, n = out.decode().split()
    assert (status, n) == (200, str(len(body)))
    assert name.startswith("Dummy-")
    c.close()
