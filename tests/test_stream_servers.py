"""The streaming servers under load, with real sockets on loopback: many idle and slow clients,
stalled clients, excess clients, and memory that stays bounded while a normal client keeps being served.
Rates and send() times depend on the machine's load: bench/bench_stream_servers.py measures them."""
from __future__ import annotations

import resource
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from vrecore.streaming import JsonLinesTarget, TcpTarget, WebViewerTarget

pytestmark = pytest.mark.timeout(120)

FPS = 30
MORE = 10  # frames the normal client must get at each check: served, whatever the rate
CLIENTS = 300
RSS_GROWTH_MAX = 12 * 2**20
"""RSS growth allowed with 300 idle + 300 slow clients, both ends in this process (measured 2.5-3.5 MiB
for the TCP target, 0.7-1.7 MiB for the viewer): the memory bound (`max_buffered_bytes`, 4 MiB
here) plus the per-client state of both ends, with room for allocator noise. A copy of one
320x240 frame per client would add 66 MiB."""


# -- helpers -------------------------------------------------------------------------------


def vm_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> None:
    # 600 clients and their 600 server-side sockets live in this process.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"needs {want} open files (ulimit -n), the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def connect(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf is not None:  # a small receive buffer: the client stalls after a few kB, as a stuck one does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - t0


def frame(i: int, w: int, h: int) -> np.ndarray:
    """A frame whose first 4 bytes hold `i`, with a moving bar (so JPEGs change)."""
    f = np.full((h, w, 3), 40, np.uint8)
    x = (i * 7) % (w - 16)
    f[:, x:x + 16] = 255
    f.reshape(-1)[:4] = np.frombuffer(struct.pack("<I", i), np.uint8)
    return f


class Publisher:
    """Sends frames at FPS from a thread, like the processing loop."""

    def __init__(self, send: Callable[[int], None]) -> None:
        self.sent = 0
        self._send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t_next = time.monotonic()
        while not self._stop.is_set():
            self._send(self.sent)
            self.sent += 1
            t_next += 1 / FPS
            time.sleep(max(0.0, t_next - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Counter:
    """Counts what a reader thread received."""

    def __init__(self) -> None:
        self.n = 0
        self.error: BaseException | None = None

    def gets_more(self, n: int, what: str) -> None:
        """Waits until `n` more frames arrived (a hang guard, no rate: the machine may be busy)."""
        n0 = self.n
        wait_until(lambda: self.n >= n0 + n, timeout=30, what=f"{n} more frames for the normal client {what}")


def read_frames(sock: socket.socket, size: int, counter: Counter) -> None:
    buf = bytearray(size)
    view = memoryview(buf)
    try:
        while True:
            got = 0
            while got < size:
                n = sock.recv_into(view[got:])
                if not n:
                    return
                got += n
            counter.n += 1
    except OSError as exc:
        counter.error = exc


def read_mjpeg(sock: socket.socket, path: str, counter: Counter) -> None:
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        f = sock.makefile("rb")
        assert f.readline().startswith(b"HTTP/1.1 200")
        while f.readline().strip():
            pass
        while True:
            line = f.readline()
            if not line:
                return
            if line.strip() != b"--vreframe":
                continue
            length = 0
            while (header := f.readline().strip()):
                name, _, value = header.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if len(f.read(length)) < length:
                return
            counter.n += 1
    except (OSError, AssertionError) as exc:
        counter.error = exc


class SlowReaders:
    """Reads `chunk` bytes from each socket every `period` seconds, on one thread."""

    def __init__(self, socks: list[socket.socket], chunk: int = 1024, period: float = 0.2) -> None:
        self.socks = socks
        self.received = 0
        self.closed = 0
        self._chunk, self._period = chunk, period
        self._stop = threading.Event()
        for s in socks:
            s.setblocking(False)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        alive = list(self.socks)
        while alive and not self._stop.wait(self._period):
            for s in list(alive):
                try:
                    data = s.recv(self._chunk)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.closed += 1
                    alive.remove(s)
                self.received += len(data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, str]:
    """Everything the server sends until it closes: (bytes, "eof" or "reset")."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    data = bytearray()
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        return bytes(data), "reset"
    return bytes(data), "eof"


# -- raw TCP -------------------------------------------------------------------------------


@pytest.mark.slow(seconds=7)
def test_tcp_target_300_idle_and_300_slow_clients_memory_bounded_normal_client_served() -> None:
    w, h = 320, 240
    size = w * h * 3
    bound = 4 * 2**20
    target = TcpTarget(0, representation="rgb", max_clients=2 * CLIENTS + 10, write_timeout_s=3.0,
                       max_buffered_bytes=bound)
    loop = target._server.loop
    normal_sock = connect(target.port)
    normal = Counter()
    threading.Thread(target=read_frames, args=(normal_sock, size, normal), daemon=True).start()
    publisher = Publisher(lambda i: target.send(i, f := frame(i, w, h), {"rgb": f}))
    idle: list[socket.socket] = []
    slow: list[socket.socket] = []
    readers = None
    try:
        wait_until(lambda: normal.n >= FPS, what="the first frames")
        rss0 = vm_rss()

        t_connect = time.monotonic()
        idle = [connect(target.port, rcvbuf=4096) for _ in range(CLIENTS)]
        slow = [connect(target.port, rcvbuf=4096) for _ in range(CLIENTS)]
        readers = SlowReaders(slow)
        # Counted as accepted, dropped or not: on a busy machine the first idle ones may already be gone.
        wait_until(lambda: loop.clients + loop.dropped_clients == 2 * CLIENTS + 1, what="601 clients accepted")
        normal.gets_more(MORE, "among 600 stalled or slow clients")
        rss_loaded = vm_rss()
        held_loaded = loop.held_bytes

        # The idle clients stall once their buffers are full and are dropped after the 3 s write
        # timeout; the slow ones keep reading a little and stay.
        wait_until(lambda: target.client_count == CLIENTS + 1, timeout=60,
                   what=f"idle clients dropped ({target.client_count}, {normal.error}, {normal.n})")
        assert time.monotonic() - t_connect >= 3.0  # not before their timeout
        normal.gets_more(MORE, "after the idle clients were dropped")
        rss_after = vm_rss()
        data, how = read_until_closed(idle[0])
        assert how == "eof" and len(data) > 0  # it got frames, then a clean close when dropped
        assert loop.dropped_clients >= CLIENTS and readers.closed == 0

        print(f"\nTCP: RSS {rss0 / 2**20:.1f} MiB with 1 client, +{(rss_loaded - rss0) / 2**20:.1f} MiB with 601, "
              f"+{(rss_after - rss0) / 2**20:.1f} MiB after the idle ones were dropped; held "
              f"{held_loaded / 2**20:.2f} MiB")
        assert max(rss_loaded, rss_after) - rss0 < RSS_GROWTH_MAX
        assert held_loaded <= bound + size
        assert normal.error is None
    finally:
        publisher.stop()
        if readers is not None:
            readers.stop()
        close_all([normal_sock, *idle, *slow])
        target.close()


def test_tcp_target_refuses_excess_clients_with_a_reset() -> None:
    target = TcpTarget(0, representation="rgb", max_clients=2)
    a, b = connect(target.port), connect(target.port)
    try:
        wait_until(lambda: target.client_count == 2)
        try:
            data, how = read_until_closed(connect(target.port))
        except ConnectionResetError:  # on loopback the reset can beat connect() to the client
            data, how = b"", "reset"
        # No byte: a raw rgb24 reader would show any text as pixels; the reset tells it apart from an ended stream.
        assert (data, how) == (b"", "reset") and target.refused == 1
        f = frame(1, 32, 24)
        target.send(1, f, {"rgb": f})
        assert a.recv(4) == f.tobytes()[:4] and b.recv(4) == f.tobytes()[:4]  # the others are served
    finally:
        close_all([a, b])
        target.close()


def test_tcp_target_drops_a_stalled_client_after_its_timeout() -> None:
    w, h = 640, 480
    size = w * h * 3
    target = TcpTarget(0, representation="rgb", write_timeout_s=1.0)
    normal_sock = connect(target.port)
    normal = Counter()
    threading.Thread(target=read_frames, args=(normal_sock, size, normal), daemon=True).start()
    t0 = time.monotonic()  # before any frame can be pending for the stalled client
    stalled = connect(target.port, rcvbuf=4096)
    publisher = Publisher(lambda i: target.send(i, f := frame(i, w, h), {"rgb": f}))
    try:
        wait_until(lambda: target.client_count + target._server.loop.dropped_clients == 2)
        normal.gets_more(MORE, "beside a stalled client")
        wait_until(lambda: target.client_count == 1, timeout=30, what="stalled client dropped")
        assert time.monotonic() - t0 >= 1.0  # not before its timeout
        normal.gets_more(MORE, "after the stalled client was dropped")
        assert target._server.loop.dropped_clients == 1
        data, how = read_until_closed(stalled)
        assert how == "eof" and 0 < len(data) and normal.error is None
    finally:
        publisher.stop()
        close_all([normal_sock, stalled])
        target.close()


def test_memory_bound_drops_the_clients_furthest_behind() -> None:
    # Each stalled client sits in the middle of a different frame; past max_buffered_bytes the
    # ones holding the oldest frames go, whatever their number.
    w, h = 320, 240
    size = w * h * 3
    bound = 3 * size
    target = TcpTarget(0, representation="rgb", write_timeout_s=60, max_buffered_bytes=bound)
    loop = target._server.loop
    socks: list[socket.socket] = []
    i = 0
    try:
        for _ in range(10):
            socks.append(connect(target.port, rcvbuf=4096))
            wait_until(lambda: loop.clients + loop.dropped_clients == len(socks))  # accepted
            for _ in range(5):  # enough to fill the new client's kernel buffers and leave it mid-frame
                f = frame(i, w, h)
                target.send(i, f, {"rgb": f})
                i += 1
                time.sleep(0.02)
            assert loop.held_bytes <= bound
        assert loop.dropped_clients >= 6
        first, _ = read_until_closed(socks[0])
        assert 0 < len(first) and target.client_count <= 4
        assert socks[-1].recv(1, socket.MSG_PEEK) != b""  # the newest client is still served
    finally:
        close_all(socks)
        target.close()


def test_jsonl_target_refuses_excess_clients_with_a_json_line() -> None:
    target = JsonLinesTarget(port=0, max_clients=1)
    first = connect(target.port)  # type: ignore[arg-type]
    try:
        wait_until(lambda: target.client_count == 1)
        data, how = read_until_closed(connect(target.port))  # type: ignore[arg-type]
        assert how == "eof" and data == (b'{"error":"too many clients: this JSON lines server takes at most 1 '
                                         b'(max_clients); close another client and connect again"}\n')
        target.send_summary(0, {"seq": 0})
        assert first.recv(100) == b'{"seq":0}\n'
    finally:
        first.close()
        target.close()


# -- web viewer ----------------------------------------------------------------------------


def _viewer_frames(viewer: WebViewerTarget, w: int, h: int) -> Callable[[int], None]:
    def send(i: int) -> None:
        f = frame(i, w, h)
        viewer.send(i, f, {"rgb": f, "neg": 255 - f})
        viewer.send_summary(i, {"latency_ms": 1.0, "summary": {"rgb": {"ms": 0.5}, "neg": {"ms": 0.7}}})
    return send


@pytest.mark.slow(seconds=7)
def test_web_viewer_300_idle_and_300_slow_clients_memory_bounded_normal_client_served() -> None:
    bound = 4 * 2**20
    viewer = WebViewerTarget(0, max_clients=2 * CLIENTS + 10, read_timeout_s=1.5, write_timeout_s=5.0,
                             max_buffered_bytes=bound)
    loop = viewer._loop
    publisher = Publisher(_viewer_frames(viewer, 320, 240))
    normal_sock = connect(viewer.port)
    normal = Counter()
    threading.Thread(target=read_mjpeg, args=(normal_sock, "/tiles.mjpg", normal), daemon=True).start()
    idle: list[socket.socket] = []
    slow: list[socket.socket] = []
    readers = None
    try:
        wait_until(lambda: normal.n >= FPS, what="the first JPEGs")
        rss0 = vm_rss()

        for _ in range(CLIENTS):
            slow.append(connect(viewer.port, rcvbuf=4096))
            slow[-1].sendall(b"GET /tiles.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        readers = SlowReaders(slow)
        t_connect = time.monotonic()
        idle = [connect(viewer.port, rcvbuf=4096) for _ in range(CLIENTS)]  # never send a request
        wait_until(lambda: viewer.stats()["clients"] == CLIENTS + 1, what="301 MJPEG streams open")
        normal.gets_more(MORE, "among 300 idle and 300 slow clients")
        rss_loaded = vm_rss()
        held_max = loop.held_bytes

        # The idle clients get "408 Request Timeout" after 1.5 s; the slow ones keep their streams.
        replies = [read_until_closed(s) for s in idle]
        assert time.monotonic() - t_connect >= 1.5
        assert all(how == "eof" and data.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for data, how in replies)
        assert replies[0][0].endswith(b"\r\n\r\nthe request headers did not arrive within 1.5 s\n")
        wait_until(lambda: loop.clients == CLIENTS + 1, what="idle connections closed")
        normal.gets_more(MORE, "after the idle clients left")
        rss_after = vm_rss()
        assert readers.closed == 0 and viewer.stats()["clients"] == CLIENTS + 1

        print(f"\nviewer: RSS {rss0 / 2**20:.1f} MiB with 1 client, +{(rss_loaded - rss0) / 2**20:.1f} MiB with 601, "
              f"+{(rss_after - rss0) / 2**20:.1f} MiB after the idle ones left; held {held_max / 2**20:.2f} MiB")
        assert max(rss_loaded, rss_after) - rss0 < RSS_GROWTH_MAX
        assert held_max <= bound + 2**20  # the bound plus the JPEG in flight (a 640x240 tile grid, far under 1 MiB)
        assert normal.error is None
    finally:
        publisher.stop()
        if readers is not None:
            readers.stop()
        close_all([normal_sock, *idle, *slow])
        viewer.close()


def test_web_viewer_refuses_excess_clients_with_503() -> None:
    viewer = WebViewerTarget(0, max_clients=2)
    a, b = connect(viewer.port), connect(viewer.port)
    try:
        wait_until(lambda: viewer._loop.clients == 2)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(viewer.url + "stats.json", timeout=5)
        assert info.value.code == 503 and info.value.headers["Retry-After"] == "5"
        assert info.value.read() == (b"vre web viewer: too many clients (2 connections open, max_clients=2); close "
                                     b"another tab or start the viewer with a higher max_clients\n")
        a.sendall(b"GET /stats.json HTTP/1.1\r\nHost: x\r\n\r\n")  # the admitted ones are served
        assert a.recv(15) == b"HTTP/1.1 200 OK"
        assert viewer.stats()["refused"] == 1
    finally:
        close_all([a, b])
        viewer.close()


def test_web_viewer_drops_a_stalled_mjpeg_client_after_its_timeout() -> None:
    w, h = 640, 480
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (h, w, 3), np.uint8)  # noisy frames: ~200 kB JPEGs fill buffers fast
    viewer = WebViewerTarget(0, include_input=False, write_timeout_s=1.0)

    def send(i: int) -> None:
        f = np.roll(noise, i, axis=1)
        viewer.send(i, f, {"rgb": f})

    publisher = Publisher(send)
    wait_until(lambda: viewer.stream_names() == ["rgb"])  # /stream/rgb.mjpg is 404 before the first frame
    normal_sock = connect(viewer.port)
    normal = Counter()
    threading.Thread(target=read_mjpeg, args=(normal_sock, "/stream/rgb.mjpg", normal), daemon=True).start()
    stalled = connect(viewer.port, rcvbuf=4096)
    try:
        wait_until(lambda: normal.n >= 5)
        t0 = time.monotonic()  # before the stalled client's stream starts
        stalled.sendall(b"GET /stream/rgb.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: viewer.stats()["clients"] + viewer._loop.dropped_clients == 2)
        normal.gets_more(MORE, "beside a stalled client")
        wait_until(lambda: viewer.stats()["clients"] == 1, timeout=30, what="stalled client dropped")
        assert time.monotonic() - t0 >= 1.0  # not before its timeout
        normal.gets_more(MORE, "after the stalled client was dropped")
        assert viewer._loop.dropped_clients == 1 and normal.error is None
        data, how = read_until_closed(stalled)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and how == "eof"
    finally:
        publisher.stop()
        close_all([normal_sock, stalled])
        viewer.close()


def test_web_viewer_bad_requests_get_one_line_answers() -> None:
    viewer = WebViewerTarget(0)
    cases: list[tuple[bytes, bytes, Any]] = [
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed", b"POST is not served here: use GET\n"),
        (b"GARBAGE\r\n\r\n", b"HTTP/1.1 400 Bad Request", b"malformed request line\n"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000, b"HTTP/1.1 431 Request Header Fields Too Large",
         b"request headers are larger than 8 KiB\n"),
        (b"GET /nowhere HTTP/1.1\r\n\r\n", b"HTTP/1.1 404 Not Found", b"not found\n"),
        (b"GET /tiles.jpg HTTP/1.1\r\n\r\n", b"HTTP/1.1 404 Not Found", b"no frame yet\n"),
    ]
    try:
        for request, status, body in cases:
            s = connect(viewer.port)
            s.sendall(request)
            data, how = read_until_closed(s)
            s.close()
            assert data.startswith(status + b"\r\n") and data.endswith(b"\r\n\r\n" + body), data[:200]
        # Kept alive: two requests on one connection.
        s = connect(viewer.port)
        f = s.makefile("rb")
        for _ in range(2):
            s.sendall(b"GET /stats.json HTTP/1.1\r\nHost: x\r\n\r\n")
            assert f.readline() == b"HTTP/1.1 200 OK\r\n"
            length = 0
            while (line := f.readline().strip()):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert f.read(length).startswith(b'{"seq":-1')
        s.close()
    finally:
        viewer.close()
