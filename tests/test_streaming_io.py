"""Streaming I/O: sources, newest-frame mailbox, targets, runner (all local, time-bounded)."""
from __future__ import annotations

import io
import json
import logging
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vrecore
from vrecore.errors import ConfigError, SourceError
from vrecore.streaming import (
    CallbackTarget,
    CaptureDeviceSource,
    JsonLinesTarget,
    LatestFrame,
    RawPipeSource,
    RawStdoutTarget,
    StreamSource,
    TcpSource,
    TcpTarget,
    VideoFileSource,
    WebViewerTarget,
    mosaic,
    open_stream_source,
    open_stream_target,
    run_stream,
)

pytestmark = pytest.mark.timeout(60)

W, H = 64, 48


# -- helpers -------------------------------------------------------------------------------


def make_frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A frame whose first 4 bytes hold `i` (little endian) and the rest `i % 251`."""
    f = np.full((h, w, 3), i % 251, dtype=np.uint8)
    f.reshape(-1)[:4] = np.frombuffer(struct.pack("<I", i), dtype=np.uint8)
    return f


def frame_id(f: np.ndarray) -> int:
    return struct.unpack("<I", f.reshape(-1)[:4].tobytes())[0]


RGB_GRAPH = {"representations": {"rgb": {"type": "color/rgb"}}}
"""The smallest graph: `vrecore.stream` over it yields each frame as it came."""


def pipe_source(
    n: int,
    *,
    w: int = W,
    h: int = H,
    pace: float = 0.0,
    gate: threading.Semaphore | None = None,
    tail: bytes = b"",
) -> RawPipeSource:
    """RawPipeSource over an os.pipe fed by a writer thread (optionally paced or gated)."""
    r, wfd = os.pipe()

    def writer() -> None:
        with os.fdopen(wfd, "wb") as f:
            try:
                for i in range(n):
                    if gate is not None and not gate.acquire(timeout=10):
                        return
                    f.write(make_frame(i, w, h).tobytes())
                    f.flush()
                    if pace:
                        time.sleep(pace)
                f.write(tail)
            except BrokenPipeError:
                pass

    threading.Thread(target=writer, daemon=True).start()
    return RawPipeSource(r, w, h, close_file=True)  # fd mode, as used for stdin


class QueueSource(StreamSource):
    """A source the test drives frame by frame; an Exception item is raised by read()."""

    def __init__(self) -> None:
        self.q: queue.Queue[Any] = queue.Queue()
        self.closed = False
        self._interrupted = threading.Event()

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        while not self._interrupted.is_set():
            try:
                item = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            return item
        return None

    def interrupt(self) -> None:
        self._interrupted.set()

    def close(self) -> None:
        self.closed = True
        self._interrupted.set()


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class FrameCounter:
    """Counts the frames a source made that are still alive (weak references): a mailbox that
    queued frames would keep many of them alive, the one-slot mailbox only a few."""

    def __init__(self, source: StreamSource) -> None:
        self.alive = self.peak = self.made = 0
        self._lock = threading.Lock()
        read = source.read

        def counted_read() -> np.ndarray | None:
            frame = read()
            if frame is not None:
                with self._lock:
                    self.alive += 1
                    self.made += 1
                    self.peak = max(self.peak, self.alive)
                weakref.finalize(frame, self._gone)
            return frame

        source.read = counted_read  # type: ignore[method-assign]

    def _gone(self) -> None:
        with self._lock:
            self.alive -= 1


def identity(frame: np.ndarray) -> dict[str, np.ndarray]:
    return {"rgb": frame}


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


# -- LatestFrame ---------------------------------------------------------------------------


def test_latest_frame_keeps_only_newest_and_never_repeats() -> None:
    src = QueueSource()
    frames = FrameCounter(src)
    with LatestFrame(src) as lf:
        for i in range(5):
            src.q.put(make_frame(i))
        wait_until(lambda: lf.received == 5)
        assert lf.pending == 1
        wait_until(lambda: frames.alive == 1)  # the 4 overwritten frames are freed, not queued
        seq, frame = lf.get(timeout=1)  # type: ignore[misc]
        assert seq == 4 and frame_id(frame) == 4
        assert lf.dropped == 4 and lf.taken == 1 and lf.pending == 0
        with pytest.raises(TimeoutError):
            lf.get(timeout=0.1)  # nothing newer than seq 4: must not hand it out again
        src.q.put(make_frame(5))
        assert lf.get(timeout=1)[0] == 5  # type: ignore[index]
        src.q.put(None)
        assert lf.get(timeout=1) is None
        assert lf.get(timeout=1) is None  # end of stream is sticky
    assert src.closed


def test_latest_frame_delivers_last_frame_before_end() -> None:
    src = QueueSource()
    lf = LatestFrame(src).start()
    src.q.put(make_frame(0))
    src.q.put(make_frame(1))
    src.q.put(None)
    wait_until(lambda: lf.ended)
    assert lf.get(timeout=1)[0] == 1  # type: ignore[index]
    assert lf.get(timeout=1) is None
    lf.close()


def test_reader_error_reaches_consumer() -> None:
    src = QueueSource()
    src.q.put(make_frame(0))
    src.q.put(RuntimeError("camera on fire"))
    with LatestFrame(src, drop=False) as lf:
        assert lf.get(timeout=2)[0] == 0  # type: ignore[index]
        with pytest.raises(SourceError, match="camera on fire"):
            lf.get(timeout=2)
    src2 = QueueSource()
    src2.q.put(RuntimeError("boom"))
    with pytest.raises(SourceError, match="boom"):
        run_stream(src2, identity, [])


def test_close_unblocks_waiting_reader_and_consumer() -> None:
    src = QueueSource()
    lf = LatestFrame(src).start()
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(lf.get()))
    t.start()
    time.sleep(0.05)
    lf.close()
    t.join(30)  # a hang guard: close() must wake the waiting consumer
    assert not t.is_alive() and result == [None]
    assert src.closed


# -- raw pipe in ---------------------------------------------------------------------------


def test_pipe_fast_process_gets_every_frame() -> None:
    # Drop mode: the writer sends frame k+1 only once frame k was delivered, as a consumer
    # that keeps up would see it; nothing may be lost or repeated.
    n = 60
    gate = threading.Semaphore(1)
    got: list[int] = []

    def on_frame(seq: int, frame: np.ndarray, outputs: Any) -> None:
        got.append(seq)
        assert frame_id(outputs["rgb"]) == seq
        gate.release()

    summary = run_stream(pipe_source(n, gate=gate), identity, [CallbackTarget(on_frame)])
    assert got == list(range(n))
    assert (summary.received, summary.processed, summary.dropped) == (n, n, 0)
    assert summary.stop_reason == "end"


def test_subprocess_pipe_lossless_gets_every_frame() -> None:
    # A real producer process writing as fast as it can; drop_frames=False keeps them all.
    n = 120
    code = (
        "import sys, struct\n"
        f"for i in range({n}):\n"
        f"    sys.stdout.buffer.write(struct.pack('<I', i) + bytes([i % 251]) * ({W * H * 3} - 4))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    got: list[int] = []
    assert proc.stdout is not None
    summary = run_stream(
        RawPipeSource(proc.stdout, W, H),
        identity,
        [CallbackTarget(lambda s, f, o: got.append(frame_id(o["rgb"])))],
        drop_frames=False,
    )
    proc.wait(10)
    assert got == list(range(n)) and summary.dropped == 0


def test_slow_process_takes_newest_and_drops() -> None:
    n = 150
    src = pipe_source(n, pace=0.002)
    frames = FrameCounter(src)
    lf = LatestFrame(src).start()
    seqs: list[int] = []
    try:
        while True:
            received_before = lf.received
            entry = lf.get_entry(timeout=10)
            if entry is None:
                break
            # Newest available when taken: at least as new as anything received before asking.
            assert entry.seq >= received_before - 1
            assert frame_id(entry.frame) == entry.seq
            seqs.append(entry.seq)
            time.sleep(0.02)  # the slow "process"
    finally:
        lf.close()
    assert len(seqs) < n / 2
    assert seqs == sorted(set(seqs))  # strictly increasing: never the same frame twice
    assert seqs[-1] == n - 1  # the final frame is never lost
    assert lf.received == n and lf.taken + lf.dropped == n
    # The consumer's frame, the waiting one and the one being read: a queue would hold ~n/2.
    assert frames.made == n and frames.peak <= 3, frames.peak


def test_slow_process_via_runner_drops() -> None:
    n = 100
    seen: list[int] = []

    def slow(frame: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(frame_id(frame))
        time.sleep(0.015)
        return {"rgb": frame}

    summary = run_stream(pipe_source(n, pace=0.002), slow, [])
    assert summary.received == n
    assert summary.processed == len(seen) < n
    assert summary.dropped == n - summary.processed
    assert seen == sorted(set(seen)) and seen[-1] == n - 1
    assert summary.compute_mean_ms is not None and summary.compute_mean_ms >= 14


def test_memory_stays_flat_over_300_frames() -> None:
    # 640x480 frames (0.9 MB each): a queue of any depth would show up in RSS at once.
    w, h, n = 640, 480, 300
    src = pipe_source(n, w=w, h=h)
    frames = FrameCounter(src)
    lf = LatestFrame(src).start()
    rss_after_warmup = None
    try:
        while True:
            entry = lf.get_entry(timeout=10)
            if entry is None:
                break
            del entry
            if rss_after_warmup is None and lf.received >= 40:
                rss_after_warmup = rss_bytes()
            time.sleep(0.003)
    finally:
        lf.close()
    growth = rss_bytes() - (rss_after_warmup or 0)
    assert lf.received == n and lf.dropped > 0
    assert frames.peak <= 3, frames.peak
    assert growth < 12 * w * h * 3, f"RSS grew by {growth / 1e6:.1f} MB"


def test_end_of_input_and_short_final_frame(caplog: pytest.LogCaptureFixture) -> None:
    frame_bytes = W * H * 3
    data = b"".join(make_frame(i).tobytes() for i in range(3))
    summary = run_stream(RawPipeSource(io.BytesIO(data), W, H), identity, [], drop_frames=False)
    assert (summary.processed, summary.stop_reason) == (3, "end")

    caplog.set_level(logging.WARNING)
    src = RawPipeSource(io.BytesIO(data + b"\x01" * (frame_bytes // 2)), W, H)
    got: list[int] = []
    summary = run_stream(src, identity, [CallbackTarget(lambda s, f, o: got.append(s))], drop_frames=False)
    assert got == [0, 1, 2] and summary.stop_reason == "end"
    assert src.short_final_frame_bytes == frame_bytes // 2
    assert any("middle of a frame" in r.getMessage() for r in caplog.records)


def test_stream_iterator_and_max_frames() -> None:
    data = b"".join(make_frame(i).tobytes() for i in range(10))
    out = list(vrecore.stream(RawPipeSource(io.BytesIO(data), W, H), RGB_GRAPH, drop_frames=False))
    assert [r.seq for r in out] == list(range(10)) == [frame_id(r.frame) for r in out]
    assert all(np.array_equal(r.outputs["rgb"], r.frame) for r in out)

    src = QueueSource()

    def feed() -> None:
        i = 0
        while not src.closed:
            src.q.put(make_frame(i))
            i += 1
            time.sleep(0.002)

    threading.Thread(target=feed, daemon=True).start()
    gen = vrecore.stream(src, RGB_GRAPH)
    for _ in range(3):
        next(gen)
    gen.close()  # breaking out must stop the reader and close the source
    assert src.closed

    src2 = QueueSource()

    def feed2() -> None:
        for i in range(1000):
            src2.q.put(make_frame(i))
            time.sleep(0.002)

    threading.Thread(target=feed2, daemon=True).start()
    summary = run_stream(src2, identity, [], max_frames=5)
    assert summary.processed == 5 and summary.stop_reason == "max_frames" and src2.closed


def test_metrics_csv_and_summary(tmp_path: Path) -> None:
    data = b"".join(make_frame(i).tobytes() for i in range(8))
    csv_path = tmp_path / "m.csv"
    summary = run_stream(RawPipeSource(io.BytesIO(data), W, H), identity, [], metrics_csv=csv_path, drop_frames=False)
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "seq,received_s,wait_ms,compute_ms,send_ms,latency_ms,dropped_total"
    assert len(lines) == 1 + 8 and lines[1].startswith("0,")
    assert summary.latency_p50_ms is not None and summary.latency_p50_ms >= 0
    assert summary.as_dict()["processed"] == 8
    assert "8 frames processed" in str(summary)


def test_keyboard_interrupt_ends_cleanly() -> None:
    data = b"".join(make_frame(i).tobytes() for i in range(10))
    calls = []

    def proc(frame: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {"rgb": frame}

    summary = run_stream(RawPipeSource(io.BytesIO(data), W, H), proc, [], drop_frames=False)
    assert summary.stop_reason == "interrupted" and summary.processed == 2


@pytest.mark.parametrize(
    ("make_source", "stop"),
    [
        (f"open_stream_source('-', width={W}, height={H})", "sigint"),
        (f"RawPipeSource(sys.stdin.buffer, {W}, {H})", "sigint"),
        (f"open_stream_source('-', width={W}, height={H})", "max_frames"),
        (f"RawPipeSource(sys.stdin.buffer, {W}, {H})", "max_frames"),
    ],
)
def test_stop_with_stalled_stdin_exits_cleanly(make_source: str, stop: str) -> None:
    # The producer keeps stdin open but sends nothing more; stopping (Ctrl-C or max_frames)
    # must still print the summary promptly and let the interpreter exit normally.
    max_frames = 3 if stop == "max_frames" else None
    code = (
        "import sys\n"
        "from vrecore.streaming import RawPipeSource, open_stream_source, run_stream\n"
        f"src = {make_source}\n"
        "print('ready', flush=True)\n"
        f"s = run_stream(src, lambda f: {{'rgb': f}}, [], max_frames={max_frames})\n"
        "print('SUMMARY', s.stop_reason, s.processed, flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == b"ready"
        for i in range(3):
            proc.stdin.write(make_frame(i).tobytes())
            proc.stdin.flush()
            time.sleep(0.1)
        if stop == "sigint":
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # a hang guard
    finally:
        proc.kill()
    assert b"Fatal Python error" not in err, err.decode()
    assert proc.returncode == 0, err.decode()
    reason = "interrupted" if stop == "sigint" else "max_frames"
    assert out.decode().split()[-3:] == ["SUMMARY", reason, "3"]


# -- TCP in --------------------------------------------------------------------------------


def _send_frames(addr: tuple[str, int], frames: list[bytes], *, connect: bool = True) -> threading.Thread:
    def run() -> None:
        with socket.create_connection(addr, timeout=5) as s:
            for b in frames:
                s.sendall(b)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_tcp_source_listen_receives_frames() -> None:
    n = 30
    src = TcpSource(W, H, port=0)
    src.open()
    host, port = src.address
    assert host == "127.0.0.1" and port > 0
    _send_frames((host, port), [make_frame(i).tobytes() for i in range(n)])
    got: list[int] = []
    summary = run_stream(src, identity, [CallbackTarget(lambda s, f, o: got.append(frame_id(f)))], drop_frames=False)
    assert got == list(range(n)) and summary.stop_reason == "end"


def test_tcp_source_disconnect_mid_frame_ends_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    src = TcpSource(W, H, port=0)
    src.open()
    half = make_frame(2).tobytes()[: W * H * 3 // 2]
    _send_frames(src.address, [make_frame(0).tobytes(), make_frame(1).tobytes(), half])
    got: list[int] = []
    summary = run_stream(src, identity, [CallbackTarget(lambda s, f, o: got.append(frame_id(f)))], drop_frames=False)
    assert got == [0, 1] and summary.stop_reason == "end"
    assert any("middle of a frame" in r.getMessage() for r in caplog.records)


def test_tcp_source_wait_mode_accepts_next_client() -> None:
    src = TcpSource(W, H, port=0, on_disconnect="wait")
    src.open()
    half = make_frame(1).tobytes()[:1000]
    _send_frames(src.address, [make_frame(0).tobytes(), half]).join(5)
    got: list[int] = []
    gen = vrecore.stream(src, RGB_GRAPH, drop_frames=False)
    got.append(frame_id(next(gen).frame))
    _send_frames(src.address, [make_frame(10).tobytes(), make_frame(11).tobytes()])
    got.append(frame_id(next(gen).frame))
    got.append(frame_id(next(gen).frame))
    closer = threading.Thread(target=gen.close)
    closer.start()  # the source is waiting for a third sender: close must interrupt it
    closer.join(30)  # a hang guard
    assert not closer.is_alive()
    assert got == [0, 10, 11] and src.clients_served == 2


def test_tcp_source_client_mode() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            for i in range(3):
                conn.sendall(make_frame(i).tobytes())

    threading.Thread(target=serve, daemon=True).start()
    src = open_stream_source(f"tcp://127.0.0.1:{port}?mode=client", width=W, height=H)
    assert isinstance(src, TcpSource)
    got = [frame_id(r.frame) for r in vrecore.stream(src, RGB_GRAPH, drop_frames=False)]
    assert got == [0, 1, 2]
    srv.close()
    with pytest.raises(SourceError, match="cannot connect"):
        TcpSource(W, H, port=port, mode="client", connect_timeout=1).open()


# -- TCP out -------------------------------------------------------------------------------


def test_tcp_target_sends_mosaic_frames() -> None:
    target = TcpTarget(0)
    try:
        client = socket.create_connection(("127.0.0.1", target.port), timeout=5)
        wait_until(lambda: target.client_count == 1)
        for i in range(5):
            a, b = make_frame(i, 32, 24), make_frame(100 + i, 16, 24)
            target.send(i, make_frame(i), {"a": a, "b": b})
            data = recv_exact(client, 48 * 24 * 3)
            got = np.frombuffer(data, np.uint8).reshape(24, 48, 3)
            assert np.array_equal(got, np.concatenate([a, b], axis=1))
        assert target.frame_size == (48, 24)
        client.close()
        target.send(5, make_frame(5), {"a": a, "b": b})  # a gone client is no error
        wait_until(lambda: target.client_count == 0)
    finally:
        target.close()


def test_tcp_target_slow_client_never_blocks() -> None:
    target = TcpTarget(0, representation="rgb")
    stuck = socket.create_connection(("127.0.0.1", target.port), timeout=5)  # never reads
    good = socket.create_connection(("127.0.0.1", target.port), timeout=5)
    try:
        wait_until(lambda: target.client_count == 2)
        w, h = 960, 540
        for i in range(150):  # a blocking send would hang for good once the stuck client's buffers fill up
            frame = make_frame(i, w, h)
            target.send(i, frame, {"rgb": frame})
        # The stuck client's older frames are dropped for it alone (counted once the server's loop has queued them)
        # The stuck client's older frames are dropped for it alone (before or after the server's loop took them)
        wait_until(lambda: target.dropped > 0, timeout=30)
        # The reading client still gets whole frames and, eventually, the newest one.
        last = -1
        deadline = time.monotonic() + 30  # a hang guard
        while last != 149 and time.monotonic() < deadline:
            last = frame_id(np.frombuffer(recv_exact(good, w * h * 3), np.uint8))
        assert last == 149
    finally:
        stuck.close()
        good.close()
        target.close()


# -- web viewer ----------------------------------------------------------------------------


def _moving_frames(viewer: WebViewerTarget, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        f = np.zeros((120, 160, 3), np.uint8)
        f[:, (i * 9) % 150:(i * 9) % 150 + 10] = 255
        viewer.send(i, f, {"rgb": f.copy(), "inv": 255 - f})
        viewer.send_summary(i, {"latency_ms": 2.0, "dropped": 0, "received": i + 1,
                                "summary": {"rgb": {"ms": 1.5}, "inv": {"ms": 0.25}}})
        i += 1
        time.sleep(0.02)


def _read_part(resp: Any) -> tuple[dict[str, str], bytes]:
    line = resp.readline()
    while line.strip() == b"":
        line = resp.readline()
    assert line.strip() == b"--vreframe"
    headers = {}
    while True:
        line = resp.readline().strip()
        if not line:
            break
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = resp.read(int(headers["content-length"]))
    return headers, body


def test_web_viewer_serves_page_stats_and_changing_mjpeg() -> None:
    from PIL import Image

    viewer = WebViewerTarget(port=0)
    stop = threading.Event()
    feeder = threading.Thread(target=_moving_frames, args=(viewer, stop), daemon=True)
    feeder.start()
    try:
        wait_until(lambda: len(viewer.stream_names()) == 3)
        base = viewer.url.rstrip("/")
        assert base.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
        assert 'src="/tiles.mjpg"' in page and "/stats.json" in page

        resp = urllib.request.urlopen(base + "/stream/rgb.mjpg", timeout=5)
        assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        h1, j1 = _read_part(resp)
        h2, j2 = _read_part(resp)
        assert j1[:2] == b"\xff\xd8" and j2[:2] == b"\xff\xd8"
        assert int(h2["x-frame-seq"]) > int(h1["x-frame-seq"])  # newest frame, never repeated
        assert j1 != j2
        img1, img2 = (np.asarray(Image.open(io.BytesIO(j))) for j in (j1, j2))
        assert img1.shape == (120, 160, 3) and np.abs(img1.astype(int) - img2).mean() > 5

        stats = json.loads(urllib.request.urlopen(base + "/stats.json", timeout=5).read())
        assert stats["streams"] == ["input", "rgb", "inv"]
        assert stats["fps"] > 0 and stats["latency_ms"] == 2.0 and stats["clients"] == 1
        assert stats["timings"] == {"rgb": 1.5, "inv": 0.25} and stats["errors"] == {}
        single = urllib.request.urlopen(base + "/frame/inv.jpg", timeout=5)
        assert single.headers["Content-Type"] == "image/jpeg"
        inv = np.asarray(Image.open(io.BytesIO(single.read())))
        assert inv.shape == (120, 160, 3) and inv.mean() > 200  # 255 - a black frame with one white bar
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/stream/nope.mjpg", timeout=5)
        assert info.value.code == 404 and info.value.read() == b"no stream 'nope'\n"

        # The tile grid: input, rgb, inv in a 2x2 grid (160x120 frames), each under its name strip.
        layout = stats["layout"]
        assert (layout["rows"], layout["cols"]) == (2, 2)
        assert [t["name"] for t in layout["tiles"]] == ["input", "rgb", "inv"]
        tiles = urllib.request.urlopen(base + "/tiles.mjpg", timeout=5)
        assert tiles.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=vreframe"
        _, grid_jpeg = _read_part(tiles)
        grid = np.asarray(Image.open(io.BytesIO(grid_jpeg))).astype(int)
        assert grid.shape == (layout["height"], layout["width"], 3)
        inv_tile = next(t for t in layout["tiles"] if t["name"] == "inv")
        body = grid[inv_tile["y"] + inv_tile["label_h"]:][:inv_tile["h"], inv_tile["x"]:][:, :inv_tile["w"]]
        assert body.mean() > 200  # the negative sits in its tile
        assert grid[-20:, -20:].mean() < 30  # the fourth cell is empty
        tiles.close()

        stop.set()
        feeder.join(2)
        viewer.close()  # with an MJPEG client still attached
        resp.read()  # the open stream ends instead of hanging
        resp.close()
        with pytest.raises(OSError):
            urllib.request.urlopen(base + "/", timeout=2)
    finally:
        stop.set()
        viewer.close()


def test_web_viewer_max_fps_paces_each_client() -> None:
    viewer = WebViewerTarget(port=0, max_fps=5)
    stop = threading.Event()
    feeder = threading.Thread(target=_moving_frames, args=(viewer, stop), daemon=True)  # ~50 frames/s
    feeder.start()
    try:
        wait_until(lambda: len(viewer.stream_names()) == 3)
        requested = time.monotonic()  # before the server can send the first part
        resp = urllib.request.urlopen(viewer.url + "stream/rgb.mjpg", timeout=5)
        seqs = [int(_read_part(resp)[0]["x-frame-seq"]) for _ in range(6)]
        # At most 5 parts a second, however late this client reads them: the 6th was sent 5 periods
        # after the 1st (a lower bound, which no load can break; without pacing it would be ~0.1 s).
        assert time.monotonic() - requested >= 5 * 0.2
        assert np.all(np.diff(seqs) > 0) and max(np.diff(seqs)) > 1  # newer frames, skipping, not one per frame
        resp.close()
    finally:
        stop.set()
        feeder.join(2)
        viewer.close()


def test_run_stream_into_web_viewer() -> None:
    src = pipe_source(40, pace=0.01)
    viewer = WebViewerTarget(port=0)
    summary = run_stream(src, lambda f: {"rgb": f, "neg": 255 - f}, [viewer], close_targets=False)
    try:
        stats = viewer.stats()
        assert stats["seq"] == 39 and stats["streams"] == ["input", "rgb", "neg"]
        assert stats["latency_ms"] is not None and stats["received"] == 40
        assert summary.processed + summary.dropped == 40
    finally:
        viewer.close()


# -- JSON lines, raw out, callbacks --------------------------------------------------------


def test_jsonl_target_file_and_tcp() -> None:
    buf = io.StringIO()
    data = b"".join(make_frame(i).tobytes() for i in range(4))
    run_stream(
        RawPipeSource(io.BytesIO(data), W, H),
        lambda f: ({"rgb": f}, {"mean": np.float32(f.mean()), "n": np.int64(3)}),
        [JsonLinesTarget(buf)],
        drop_frames=False,
    )
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["seq"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["summary"]["n"] == 3 and rows[0]["outputs"] == {"rgb": [H, W]}
    assert {"latency_ms", "compute_ms", "dropped", "received"} <= rows[0].keys()

    target = JsonLinesTarget(port=0)
    try:
        client = socket.create_connection(("127.0.0.1", target.port), timeout=5)
        wait_until(lambda: target.client_count == 1)
        for i in range(3):
            target.send_summary(i, {"seq": i})
        f = client.makefile("rb")
        assert [json.loads(f.readline())["seq"] for _ in range(3)] == [0, 1, 2]
        client.close()
    finally:
        target.close()


def test_raw_stdout_target_selection_and_closed_pipe() -> None:
    out = io.BytesIO()
    t = RawStdoutTarget(out, representation="b")
    a, b = make_frame(1), make_frame(2)
    t.send(0, make_frame(0), {"a": a, "b": b})
    assert out.getvalue() == b.tobytes()
    with pytest.raises(ConfigError, match="choose one"):
        RawStdoutTarget(io.BytesIO()).send(0, a, {"a": a, "b": b})
    with pytest.raises(ConfigError, match="not produced"):
        RawStdoutTarget(io.BytesIO(), representation="zz").send(0, a, {"a": a})
    m = io.BytesIO()
    tm = RawStdoutTarget(m, mosaic=True, include_input=True)
    tm.send(0, a, {"half": a[::2, ::2].copy()})
    assert tm.frame_size == (W + W, H)  # half-size output scaled to the input height

    r, w = os.pipe()
    os.close(r)  # the reader of our stdout went away
    data = b"".join(make_frame(i).tobytes() for i in range(5))
    summary = run_stream(
        RawPipeSource(io.BytesIO(data), W, H), identity, [RawStdoutTarget(os.fdopen(w, "wb"))], drop_frames=False
    )
    assert summary.stop_reason == "target_closed"


def test_mosaic_helper() -> None:
    a = make_frame(1)
    assert mosaic([a]) is a
    m = mosaic([a, np.zeros((H // 2, W // 2, 3), np.uint8)])
    assert m.shape == (H, W + W, 3)


# -- video file and device -----------------------------------------------------------------


def _write_video(path: Path, n: int, fps: int = 25) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(n):
            img = np.zeros((48, 64, 3), np.uint8)
            img[:, (i * 3) % 60:(i * 3) % 60 + 4] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_video_file_source_fast_and_realtime(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    _write_video(path, 20, fps=25)
    fast = VideoFileSource(path, realtime=False)
    paced: list[Any] = []
    fast._pace = paced.append  # type: ignore[method-assign]
    frames = [r.frame for r in vrecore.stream(fast, RGB_GRAPH, drop_frames=False)]
    assert len(frames) == 20 and frames[0].shape == (48, 64, 3)
    assert paced == []  # decoded as fast as possible: no frame waits for its presentation time

    rt = VideoFileSource(path, realtime=True, width=32, height=24)
    rt.open()
    assert rt.fps == pytest.approx(25) and rt.frame_size == (32, 24)
    t0 = time.monotonic()
    summary = run_stream(rt, identity, [], drop_frames=False)
    elapsed = time.monotonic() - t0
    assert summary.processed == 20
    assert elapsed >= 0.6  # 19 frame periods of 40 ms, paced by wall clock (a lower bound: load only adds)

    looping = VideoFileSource(path, realtime=False, loop=True)
    assert run_stream(looping, identity, [], max_frames=45, drop_frames=False).processed == 45

    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "missing.mp4").open()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(SourceError):
        VideoFileSource(bad).open()


def test_capture_device_missing_is_a_clear_error() -> None:
    src = CaptureDeviceSource("/dev/video97", width=640, height=480, fps=30)
    with pytest.raises(SourceError, match="/dev/video97 not found"):
        src.open()
    with pytest.raises(SourceError, match="not found"):
        run_stream(open_stream_source("/dev/video98"), identity, [])


# -- spec parsing --------------------------------------------------------------------------


def test_open_stream_source_specs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="width"):
        open_stream_source("-")
    with pytest.raises(ConfigError, match="width"):
        open_stream_source("tcp://127.0.0.1:5000")
    src = open_stream_source("-", width=W, height=H)
    assert isinstance(src, RawPipeSource) and src.frame_size == (W, H)
    src = open_stream_source("tcp://127.0.0.1:5000", width=W, height=H)
    assert isinstance(src, TcpSource) and src.address == ("127.0.0.1", 5000)
    src = open_stream_source("tcp://:5001", width=W, height=H, host="0.0.0.0")
    assert isinstance(src, TcpSource) and src.address == ("0.0.0.0", 5001)
    src = open_stream_source("tcp://10.0.0.2:5002?mode=client", width=W, height=H)
    assert isinstance(src, TcpSource) and src.mode == "client"
    assert isinstance(open_stream_source("/dev/video0"), CaptureDeviceSource)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    src = open_stream_source(str(video), realtime=False)
    assert isinstance(src, VideoFileSource) and not src.realtime
    for bad in ("", "tcp://127.0.0.1:5000?mode=push", "tcp://127.0.0.1", "tcp://127.0.0.1:99999",
                "tcp://127.0.0.1:5000?foo=1", "udp://127.0.0.1:5000", str(tmp_path / "nope.mp4")):
        with pytest.raises(ConfigError) as info:
            open_stream_source(bad, width=W, height=H)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="both"):
        open_stream_source("-", width=W)


def test_open_stream_target_specs() -> None:
    made = []
    try:
        for spec, cls in (("-", RawStdoutTarget), ("tcp://127.0.0.1:0", TcpTarget),
                          ("web://127.0.0.1:0", WebViewerTarget), ("jsonl://127.0.0.1:0", JsonLinesTarget),
                          ("jsonl:-", JsonLinesTarget)):
            t = open_stream_target(spec)
            made.append(t)
            assert isinstance(t, cls)
        assert made[2].address[0] == "127.0.0.1"  # type: ignore[attr-defined]
        for bad in ("bogus", "tcp://127.0.0.1", "web://127.0.0.1:0/x", "tcp://127.0.0.1:70000"):
            with pytest.raises(ConfigError):
                open_stream_target(bad)
        busy = made[1].port  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match="another port"):
            open_stream_target(f"tcp://127.0.0.1:{busy}")
    finally:
        for t in made:
            if not isinstance(t, RawStdoutTarget):
                t.close()


def test_import_does_not_pull_torch_or_heavy_deps() -> None:
    code = (
        "import sys, vrecore.streaming\n"
        "bad = [m for m in ('torch', 'cv2', 'av') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)
