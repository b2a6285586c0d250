"""Streaming servers under load: server RSS, a normal client's frames/s and the slowest send() with 0, 300 idle and
300 slow clients.

    python bench/bench_stream_servers.py [--clients 300] [--seconds 5] [--width 960 --height 540]

For the raw TCP target (`tcp://`, 960x540 rgb24 frames) and the web viewer (`web://`, the tile
grid of input + 2 representations as MJPEG), a server process publishes frames at 30 frames/s
with the targets' default limits (except `max_clients`, raised to admit every client). This
process connects one normal client, which reads everything, and then, phase by phase:

  * nothing more;
  * N idle clients: connected, reading nothing (viewer: not even sending a request), measured
    before their timeouts (10 s by default) drop them; then closed;
  * N slow clients: reading 1 kB every 200 ms (viewer: each watching the MJPEG stream).

Prints the server's RSS (from /proc/PID/status) at the end of each phase, its growth over the
first phase, the frames/s the normal client got during the phase (target: the 30 published) and the
slowest `send()` of the phase in the server (target: under 50 ms; send() never waits on a client).
Also: the viewer's cost per frame, tile grid + JPEG at the given size with 6 representations.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

FPS = 30
SERVER = r"""
import sys, threading, time, numpy as np
from vrecore.streaming import TcpTarget, WebViewerTarget
kind, w, h, max_clients, fps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if kind == "tcp":
    target = TcpTarget(0, representation="rgb", max_clients=max_clients)
else:
    target = WebViewerTarget(0, max_clients=max_clients)
print(target.port, flush=True)
worst = [0.0]  # the slowest send() since the last request: each line on stdin asks for it (in ms) and resets it

def report_worst():
    for _ in sys.stdin:
        print(f"{worst[0] * 1e3:.3f}", flush=True)
        worst[0] = 0.0

threading.Thread(target=report_worst, daemon=True).start()
rng = np.random.default_rng(0)
base = rng.integers(0, 256, (h, w, 3), np.uint8) // 4 + 64
t_next, i = time.monotonic(), 0
while True:
    f = np.roll(base, i * 4, axis=1)
    outputs = {"rgb": f} if kind == "tcp" else {"rgb": f, "neg": 255 - f}
    t0 = time.perf_counter()
    target.send(i, f, outputs)
    target.send_summary(i, {"summary": {"rgb": {"ms": 1.0}, "neg": {"ms": 2.0}}})
    worst[0] = max(worst[0], time.perf_counter() - t0)
    i += 1
    t_next += 1 / fps
    time.sleep(max(0.0, t_next - time.monotonic()))
"""


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class NormalClient:
    """Reads everything: whole raw frames, or MJPEG parts (counted by their boundary lines)."""

    def __init__(self, port: int, kind: str, frame_bytes: int) -> None:
        self.n = 0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self._kind, self._frame_bytes = kind, frame_bytes
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        if self._kind == "tcp":
            buf = memoryview(bytearray(self._frame_bytes))
            while True:
                got = 0
                while got < self._frame_bytes:
                    n = self.sock.recv_into(buf[got:])
                    if not n:
                        return
                    got += n
                self.n += 1
        self.sock.sendall(b"GET /tiles.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n")
        f = self.sock.makefile("rb")
        while line := f.readline():
            if line == b"--vreframe\r\n":
                length = 0
                while header := f.readline().strip():
                    if header.lower().startswith(b"content-length:"):
                        length = int(header.split(b":")[1])
                f.read(length)
                self.n += 1


class SlowReaders:
    """Reads 1 kB from each socket every 200 ms, on one thread."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.socks = socks
        self._stop = threading.Event()
        for s in socks:
            s.setblocking(False)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for s in self.socks:
                try:
                    s.recv(1024)
                except (BlockingIOError, OSError):
                    pass

    def stop(self) -> None:
        self._stop.set()


def connect_many(port: int, n: int, request: bytes | None) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, like a slow link
        s.connect(("127.0.0.1", port))
        if request is not None:
            s.sendall(request)
        socks.append(s)
    return socks


def worst_send_ms(server: subprocess.Popen[str]) -> float:
    """The server's slowest send() since the last call (and resets it)."""
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("\n")
    server.stdin.flush()
    return float(server.stdout.readline())


def phase(server: subprocess.Popen[str], normal: NormalClient, seconds: float) -> tuple[float, float, float]:
    worst_send_ms(server)
    n0, t0 = normal.n, time.monotonic()
    time.sleep(seconds)
    return rss_mib(server.pid), (normal.n - n0) / (time.monotonic() - t0), worst_send_ms(server)


def run_kind(kind: str, args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-c", SERVER, kind, str(args.width), str(args.height), str(2 * args.clients + 10), str(FPS)]
    server = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        normal = NormalClient(port, kind, args.width * args.height * 3)
        time.sleep(2.0)  # warm-up: the first frames, the first JPEGs, allocator pools
        rss0, fps0, worst0 = phase(server, normal, args.seconds)
        request = None if kind == "tcp" else b"GET /tiles.mjpg HTTP/1.1\r\nHost: bench\r\n\r\n"
        idle = connect_many(port, args.clients, None)
        rss_idle, fps_idle, worst_idle = phase(server, normal, args.seconds)
        for s in idle:
            s.close()
        time.sleep(1.0)
        slow_socks = connect_many(port, args.clients, request)
        slow = SlowReaders(slow_socks)
        rss_slow, fps_slow, worst_slow = phase(server, normal, args.seconds)
        slow.stop()
        for s in slow_socks:
            s.close()
        what = (f"raw TCP target, {args.width}x{args.height} rgb24" if kind == "tcp"
                else f"web viewer, tiles of input + 2 representations at {args.width}x{args.height}")
        print(f"{what}, {FPS} frames/s published:")
        for label, rss, fps, worst in (("1 normal client", rss0, fps0, worst0),
                                       (f"+ {args.clients} idle", rss_idle, fps_idle, worst_idle),
                                       (f"+ {args.clients} slow", rss_slow, fps_slow, worst_slow)):
            print(f"  {label:>16}: server RSS {rss:6.1f} MiB ({rss - rss0:+5.1f} MiB); normal client {fps:5.1f} "
                  f"frames/s (x{fps / FPS:.2f} of {FPS}); slowest send() {worst:.1f} ms")
    finally:
        server.kill()
        server.wait()


def bench_tiles(width: int, height: int) -> None:
    from vrecore.streaming.targets.viewer import encode_jpeg
    from vrecore.visual.tiles import TileRenderer, plan_tiles

    rng = np.random.default_rng(0)
    names = ["input", "rgb", "hsv", "depth", "normals", "semantic"]
    images = {n: rng.integers(0, 256, (height, width, 3), np.uint8) // 4 + 64 for n in names}
    for max_width in (1280, None):
        renderer = TileRenderer(plan_tiles(names, (width, height), max_width=max_width))
        renderer.render(images)
        n = 30
        t = time.perf_counter()
        for _ in range(n):
            grid = renderer.render(images)
        render_ms = (time.perf_counter() - t) / n * 1e3
        t = time.perf_counter()
        for _ in range(n):
            encode_jpeg(grid, 80)
        jpeg_ms = (time.perf_counter() - t) / n * 1e3
        print(f"tile grid of 6 representations at {width}x{height} -> {grid.shape[1]}x{grid.shape[0]} "
              f"(max_width={max_width}): render {render_ms:.1f} ms, JPEG {jpeg_ms:.1f} ms per frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--kind", choices=("tcp", "web", "both"), default="both")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; {args.clients} clients per phase, "
          f"{args.seconds:g} s phases")
    for kind in ("tcp", "web") if args.kind == "both" else (args.kind,):
        run_kind(kind, args)
    bench_tiles(args.width, args.height)


if __name__ == "__main__":
    main()
