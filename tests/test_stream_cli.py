"""`vre stream` end to end in a subprocess: pipes, TCP, JSON lines, the web viewer, errors, no files."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

from vrecore.graph.build import build_graph
from vrecore.streaming import GraphProcessor

W, H = 96, 64
FRAME = W * H * 3
SRC = str(Path(__file__).resolve().parents[1] / "src")


# -- helpers -------------------------------------------------------------------------------


def seq_frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A grey frame (all channels equal, so a grey mean keeps it) whose first 3 pixels hold ``i``."""
    f = np.full((h, w, 3), (i * 37) % 256, np.uint8)
    f.reshape(-1, 3)[:3] = np.frombuffer(struct.pack("<I", i)[:3], np.uint8)[:, None]
    return f


def seq_of(img: np.ndarray) -> int:
    return struct.unpack("<I", img.reshape(-1, 3)[:3, 0].tobytes() + b"\0")[0]


def colour_frame(i: int) -> np.ndarray:
    """Known colours: red, green, blue and grey quadrants, with a moving white square."""
    f = np.zeros((H, W, 3), np.uint8)
    f[: H // 2, : W // 2] = (255, 0, 0)
    f[: H // 2, W // 2:] = (0, 255, 0)
    f[H // 2:, : W // 2] = (0, 0, 255)
    f[H // 2:, W // 2:] = (128, 128, 128)
    x = (i * 5) % (W - 8)
    f[4:12, x:x + 8] = 255
    return f


def types_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with the test representation types (test/slow, test/learned...) as an installed plugin."""
    from vrecore.testing import write_test_types_distribution

    site = write_test_types_distribution(tmp_path / "site")
    return {"PYTHONPATH": os.pathsep.join([str(site), SRC, os.environ.get("PYTHONPATH", "")])}


def pipeline(tmp_path: Path, body: str) -> list[str]:
    conf = tmp_path / "conf" / "pipeline"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "p.yaml").write_text("# @package _global_\nrepresentations:\n" + body)
    return ["--config-dir", str(tmp_path / "conf"), "pipeline=p"]


class Vre:
    """`vre stream ARGS` in a subprocess; stderr is collected line by line on a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                 stdin: Any = subprocess.PIPE) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vrecore.cli.app", "stream", *args], stdin=stdin, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, cwd=cwd)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_line(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = re.search(pattern, line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._cond.wait(0.2)):
                    raise AssertionError(f"no stderr line matching {pattern!r}:\n{self.stderr}")
                self._cond.wait(min(left, 0.2))

    def read_frame(self, size: int = FRAME) -> bytes | None:
        assert self.proc.stdout is not None
        data = self.proc.stdout.read(size)
        return data if len(data) == size else None

    def finish(self, timeout: float = 30) -> int:
        rc = self.proc.wait(timeout)
        time.sleep(0.05)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def feed(stdin: IO[bytes], frames: list[bytes], *, pace: float = 0.0, tail: bytes = b"",
         gate: Callable[[int], None] | None = None) -> threading.Thread:
    def run() -> None:
        try:
            for i, b in enumerate(frames):
                if gate is not None:
                    gate(i)
                stdin.write(b)
                stdin.flush()
                if pace:
                    time.sleep(pace)
            stdin.write(tail)
            stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def expected_hsv(frames: list[np.ndarray]) -> list[np.ndarray]:
    with GraphProcessor(build_graph({"representations": {
            "rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}})) as proc:
        return [np.array(proc.process(f).images["hsv"]) for f in frames]


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# -- raw pipe in and out -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_pipe_in_and_out_every_frame_no_drop_mode() -> None:
    # drop_frames=false: the reader waits for the graph, so a producer writing as fast as it can
    # still gets exactly one output per input frame.
    n = 30
    frames = [colour_frame(i) for i in range(n)]
    vre = Vre("source=-", f"width={W}", f"height={H}", "pipeline=rgb_hsv", "output=-", "drop_frames=false")
    try:
        assert vre.proc.stdin is not None
        feed(vre.proc.stdin, [f.tobytes() for f in frames])
        outputs = []
        while (data := vre.read_frame()) is not None:
            outputs.append(np.frombuffer(data, np.uint8).reshape(H, W, 3))
        assert vre.finish() == 0, vre.stderr
    finally:
        vre.kill()
    assert len(outputs) == n
    # The HSV preview of known colours: hue/360, saturation and value, scaled to 0..255.
    assert tuple(outputs[0][H // 4, W // 4]) == (0, 255, 255)  # red
    assert tuple(outputs[0][H // 4, 3 * W // 4]) == (85, 255, 255)  # green: hue 120/360
    assert tuple(outputs[0][3 * H // 4, W // 4]) == (170, 255, 255)  # blue: hue 240/360
    assert tuple(outputs[0][3 * H // 4, 3 * W // 4]) == (0, 0, 128)  # grey
    for got, want in zip(outputs, expected_hsv(frames), strict=True):
        np.testing.assert_array_equal(got, want)
    assert re.search(rf"vre stream: {n} frames processed of {n} received \(0 dropped\).*stopped: end", vre.stderr)
    assert re.search(r"^hsv\s+30\s+0\s+[\d.]+", vre.stderr, re.M)  # per-representation milliseconds


@pytest.mark.timeout(60)
def test_pipe_lock_step_producer_loses_nothing_in_drop_mode() -> None:
    # Default drop mode; the producer sends frame k+1 only after reading output k (a graph that keeps
    # up with its source, by construction), so the newest frame is always the next one: none dropped.
    n = 25
    frames = [colour_frame(i) for i in range(n)]
    vre = Vre("source=-", f"width={W}", f"height={H}", "pipeline=rgb_hsv", "output=-",
              "output_representation=mosaic")
    outputs: list[np.ndarray] = []
    got = threading.Semaphore(0)
    try:
        assert vre.proc.stdin is not None
        feed(vre.proc.stdin, [f.tobytes() for f in frames], gate=lambda i: i == 0 or got.acquire(timeout=20))
        while (data := vre.read_frame(2 * FRAME)) is not None:
            outputs.append(np.frombuffer(data, np.uint8).reshape(H, 2 * W, 3))
            got.release()
        assert vre.finish() == 0, vre.stderr
    finally:
        vre.kill()
    assert len(outputs) == n  # a mosaic of rgb | hsv, each at the frame size
    for frame, want, got_img in zip(frames, expected_hsv(frames), outputs, strict=True):
        np.testing.assert_array_equal(got_img[:, :W], frame)
        np.testing.assert_array_equal(got_img[:, W:], want)
    assert f"{n} frames processed of {n} received (0 dropped)" in vre.stderr


@pytest.mark.timeout(90)
def test_slow_representation_drops_to_the_newest_frame_with_flat_memory(tmp_path: Path) -> None:
    # 480x360 frames (0.5 MB) at ~400 frames/s into a graph that takes 30 ms per frame: a queue of
    # any depth would grow by hundreds of MB; the newest-frame mailbox keeps memory flat.
    w, h, n = 480, 360, 400
    args = pipeline(tmp_path, "  rgb: {type: color/rgb}\n  slow: {type: test/slow, parameters: {seconds: 0.03}}\n")
    vre = Vre(*args, "source=-", f"width={w}", f"height={h}", "output=-", "output_representation=mosaic",
              env=types_env(tmp_path))
    outputs: list[tuple[int, int]] = []
    rss: list[int] = []
    try:
        assert vre.proc.stdin is not None
        vre.wait_line("output: raw rgb24")
        frames = [seq_frame(i, w, h).tobytes() for i in range(n)]
        writer = feed(vre.proc.stdin, frames, pace=0.0025)

        def sample() -> None:
            while vre.proc.poll() is None:
                rss.append(rss_kb(vre.proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        while (data := vre.read_frame(2 * w * h * 3)) is not None:
            img = np.frombuffer(data, np.uint8).reshape(h, 2 * w, 3)
            outputs.append((seq_of(img[:, :w]), seq_of(img[:, w:])))
        assert vre.finish() == 0, vre.stderr
        writer.join(5)
    finally:
        vre.kill()
    seqs = [a for a, _ in outputs]
    assert all(a == b for a, b in outputs), "rgb and slow of one output frame came from different input frames"
    assert 5 < len(seqs) < n / 3, len(seqs)
    assert seqs == sorted(set(seqs)), "a frame was processed twice or out of order"
    assert seqs[-1] == n - 1, "the final frame must not be lost"
    gaps = np.diff(seqs)
    assert gaps.mean() > 3, gaps  # ~30 ms per output at ~2.5 ms per input frame: the newest, not the next
    m = re.search(r"(\d+) frames processed of (\d+) received \((\d+) dropped\)", vre.stderr)
    assert m and (int(m[1]), int(m[2]), int(m[3])) == (len(seqs), n, n - len(seqs)), vre.stderr
    steady = rss[len(rss) // 4:]
    assert len(steady) >= 4 and max(steady) - steady[0] < 40_000, f"RSS grew (kB): {rss}"


@pytest.mark.timeout(60)
def test_short_final_frame_and_closed_output(tmp_path: Path) -> None:
    frames = [colour_frame(i).tobytes() for i in range(5)]
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "stream", "source=-", f"width={W}", f"height={H}",
                        "output=-", "drop_frames=false"],
                       input=b"".join(frames) + b"\x07" * (FRAME // 3), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout) == 5 * FRAME
    err = r.stderr.decode()
    assert "vre stream: warning: raw input ended in the middle of a frame" in err and "Traceback" not in err
    assert "5 frames processed of 5 received" in err

    # The reader of stdout goes away (a closed player): vre stops cleanly with status 0.
    vre = Vre("source=-", f"width={W}", f"height={H}", "output=-")
    try:
        assert vre.proc.stdin is not None and vre.proc.stdout is not None
        feed(vre.proc.stdin, [colour_frame(i).tobytes() for i in range(2000)], pace=0.002)
        assert vre.read_frame() is not None
        vre.proc.stdout.close()
        assert vre.finish() == 0, vre.stderr
    finally:
        vre.kill()
    assert "stopped: target_closed" in vre.stderr
    assert "Traceback" not in vre.stderr and "BrokenPipe" not in vre.stderr


# -- TCP in and out, JSON lines --------------------------------------------------------------


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


@pytest.mark.timeout(60)
def test_tcp_in_tcp_out_and_json_lines(tmp_path: Path) -> None:
    n = 12
    args = pipeline(tmp_path, "  rgb: {type: color/rgb}\n  hsv: {type: color/hsv, dependencies: [rgb]}\n"
                              "  grey: {type: test/grey}\n")
    vre = Vre(*args, "source=tcp://127.0.0.1:0", f"width={W}", f"height={H}", "output_representation=hsv",
              "output=[tcp://127.0.0.1:0,jsonl://127.0.0.1:0]", env=types_env(tmp_path), stdin=subprocess.DEVNULL)
    try:
        src_port = int(vre.wait_line(r"source: waiting for raw rgb24 96x64 on tcp://127\.0\.0\.1:(\d+)")[1])
        out_port = int(vre.wait_line(r"output: raw rgb24 \(hsv\) on tcp://127\.0\.0\.1:(\d+)")[1])
        json_port = int(vre.wait_line(r"output: JSON lines on tcp://127\.0\.0\.1:(\d+)")[1])
        out = socket.create_connection(("127.0.0.1", out_port), timeout=10)
        controller = socket.create_connection(("127.0.0.1", json_port), timeout=10)
        time.sleep(0.3)  # let the servers register both clients before the first frame
        frames = [colour_frame(i) for i in range(n)]
        got = []
        with socket.create_connection(("127.0.0.1", src_port), timeout=10) as sender:
            for f in frames:  # lock step: the next frame once the previous result arrived
                sender.sendall(f.tobytes())
                data = recv_exact(out, FRAME)
                assert data is not None
                got.append(np.frombuffer(data, np.uint8).reshape(H, W, 3))
            sender.sendall(b"\x01" * 1000)  # then a disconnect in the middle of a frame
        assert vre.finish() == 0, vre.stderr
        assert recv_exact(out, 1) is None  # the output server closed the connection
        lines = b""
        while chunk := controller.recv(65536):
            lines += chunk
        out.close()
        controller.close()
    finally:
        vre.kill()
    for g, want in zip(got, expected_hsv(frames), strict=True):
        np.testing.assert_array_equal(g, want)
    records = [json.loads(line) for line in lines.decode().splitlines()]
    assert [r["seq"] for r in records] == list(range(n))
    grey = frames[0].mean(axis=-1) / 255
    s = records[0]["summary"]
    assert s["grey"]["mean"] == pytest.approx(grey.mean(), rel=1e-4) and s["grey"]["max"] == 1.0
    assert set(s) == {"rgb", "hsv", "grey"} and records[0]["outputs"]["hsv"] == [H, W]
    for r in records:  # each representation's time is part of the frame's compute, which is part of its latency
        assert 0 < sum(v["ms"] for v in r["summary"].values()) <= r["compute_ms"] + 0.003 <= r["latency_ms"] + 0.006, r
    assert "TCP sender disconnected in the middle of a frame" in vre.stderr
    assert f"{n} frames processed of {n} received" in vre.stderr


# -- the web viewer in a browser -------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


def _chromium(tmp_path: Path, url: str, *extra: str) -> str:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,700",
           *extra, url]
    proc = subprocess.run(cmd, capture_output=True, timeout=90)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    return proc.stdout.decode(errors="replace")


def counter_frame(i: int, w: int = 320, h: int = 180) -> np.ndarray:
    """A blue band over the bits of ``i`` as big white squares: changes every frame, never repeats."""
    f = np.full((h, w, 3), 40, np.uint8)
    f[:40] = (0, 0, 200)
    for bit in range(9):
        if i >> bit & 1:
            f[60:100, 8 + bit * 34:8 + bit * 34 + 30] = 255
    return f


@pytest.mark.timeout(240)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_web_viewer_shows_live_graph_outputs_in_chromium(tmp_path: Path) -> None:
    from PIL import Image

    vre = Vre("source=-", "width=320", "height=180", "pipeline=rgb_hsv", "output=web://127.0.0.1:0")
    stop = threading.Event()
    try:
        assert vre.proc.stdin is not None
        stdin = vre.proc.stdin

        def camera() -> None:  # 30 frames/s, like a webcam piped through ffmpeg
            i = 0
            try:
                while not stop.is_set():
                    stdin.write(counter_frame(i).tobytes())
                    stdin.flush()
                    i += 1
                    time.sleep(1 / 30)
            except (BrokenPipeError, ValueError):
                pass

        threading.Thread(target=camera, daemon=True).start()
        url = vre.wait_line(r"output: web viewer on (http://127\.0\.0\.1:\d+/)")[1]
        deadline = time.monotonic() + 20
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stats = json.loads(urllib.request.urlopen(url + "stats.json", timeout=10).read())
            if stats.get("streams") == ["rgb", "hsv"]:
                break
            time.sleep(0.2)
        assert stats.get("streams") == ["rgb", "hsv"], stats  # graph outputs; no duplicate "input" next to rgb
        assert stats["timings"] == {name: stats["summary"][name]["ms"] for name in ("rgb", "hsv")}, stats

        shots = []
        for k in range(2):
            for attempt in range(3):  # a loaded machine may paint before the first parts land
                png = tmp_path / f"shot{k}-{attempt}.png"
                _chromium(tmp_path, url, f"--screenshot={png}")
                shot = np.asarray(Image.open(png).convert("RGB"))[62:].astype(np.int16)
                # The page is dark grey; the blue band is blue in rgb and (170, 255, 200) in hsv.
                coloured = (np.abs(shot[..., 0] - shot[..., 2]) > 40).sum()
                if coloured > 5000:
                    break
            assert coloured > 5000, "the screenshot shows no video frames"
            shots.append(shot)
            time.sleep(0.5)
        changed = np.abs(shots[0] - shots[1]).max(axis=2) > 40
        assert changed.sum() > 500, "the images did not change between the two screenshots"
        dom = ""
        spans: dict[str, str] = {}
        for _attempt in range(3):
            dom = _chromium(tmp_path, url, "--dump-dom", "--virtual-time-budget=3000")
            spans = dict(re.findall(r'<span class="ms[^"]*" data-name="([^"]+)"[^>]*>([^<]*)</span>', dom))
            if "frames/s" in dom and len(spans) == 2:
                break
        assert "frames/s" in dom and 'src="/tiles.mjpg"' in dom
        # One tile per representation, each with the milliseconds the graph spent on it.
        assert set(spans) == {"rgb", "hsv"} and all(re.fullmatch(r"\d+\.\d ms", v) for v in spans.values()), spans
        vre.proc.send_signal(signal.SIGINT)
        assert vre.finish() == 0, vre.stderr
    finally:
        stop.set()
        vre.kill()
    assert "stopped: interrupted" in vre.stderr and "Traceback" not in vre.stderr


# -- learned set-up, failures, user mistakes, no files ----------------------------------------


@pytest.mark.timeout(60)
def test_learned_set_up_once_and_failures(tmp_path: Path) -> None:
    env = types_env(tmp_path)
    frames = b"".join(seq_frame(i).tobytes() for i in range(8))
    base = [sys.executable, "-m", "vrecore.cli.app", "stream"]
    keys = ["source=-", f"width={W}", f"height={H}", "output=-", "drop_frames=false"]
    args = pipeline(tmp_path, "  a: {type: test/learned}\n  rgb: {type: color/rgb}\n")
    r = subprocess.run([*base, *args, *keys, "verbose=true", "output_representation=a"], input=frames,
                       capture_output=True, timeout=60, env={**os.environ, **env})
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert err.count("setting up a (test/learned) on cpu") == 1
    assert len(r.stdout) == 8 * FRAME

    args = pipeline(tmp_path, "  rgb: {type: color/rgb}\n  f: {type: test/fail, parameters: {frames: [2]}}\n")
    r = subprocess.run([*base, *args, *keys], input=frames, capture_output=True, timeout=60,
                       env={**os.environ, **env})
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert ("vre stream: error: representation 'f' (test/fail) failed on frame 2: RuntimeError: test failure on "
            "frames [2]") in err and "Traceback" not in err
    assert len(r.stdout) == 2 * FRAME  # frames 0 and 1 went out before the failure

    r = subprocess.run([*base, *args, *keys, "exception_mode=skip"], input=frames, capture_output=True, timeout=60,
                       env={**os.environ, **env})
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert len(r.stdout) == 8 * FRAME and not any(r.stdout[2 * FRAME:3 * FRAME])  # black for the failed frame
    assert re.search(r"^f\s+7\s+1\s", err, re.M)  # 7 computed, 1 failed
    assert "warning: representation 'f' failed on frame 2" in err


def _busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


@pytest.mark.timeout(120)
def test_user_mistakes_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """In this process (`main([...])`, as `vre` runs it): each mistake is caught before anything streams."""
    from vrecore.cli.app import main

    monkeypatch.chdir(tmp_path)
    busy, port = _busy_port()
    unknown = pipeline(tmp_path, "  rgb: {type: color/rgb}\n  d: {type: depth/nope, dependencies: [rgb]}\n")
    cases = [
        (["source=-", "output=web://127.0.0.1:0"], "raw stdin input '-' carries raw rgb24 frames without a header: "
                                                   "give the frame size (e.g. width=960 height=540)"),
        (["source=ftp://example/x", "output=web://127.0.0.1:0"], "stream source 'ftp://example/x' has an unsupported "
                                                                 "scheme"),
        (["source=missing.mp4", "output=web://127.0.0.1:0"], "stream source 'missing.mp4' is not an existing file"),
        (["source=/dev/video97", "output=web://127.0.0.1:0"], "capture device /dev/video97 not found"),
        ([*unknown, "source=-", f"width={W}", f"height={H}", "output=web://127.0.0.1:0"],
         "representation 'd' has unknown type 'depth/nope'"),
        ([f"source=tcp://127.0.0.1:{port}", f"width={W}", f"height={H}", "output=web://127.0.0.1:0"],
         f"cannot listen on tcp://127.0.0.1:{port} (Address already in use)"),
        (["source=-", f"width={W}", f"height={H}", f"output=tcp://127.0.0.1:{port}"],
         f"cannot listen on 127.0.0.1:{port} for raw rgb24 frames (Address already in use)"),
        (["source=-", f"width={W}", f"height={H}", f"output=web://127.0.0.1:{port}"],
         f"cannot serve the web viewer on 127.0.0.1:{port}"),
        (["source=-", f"width={W}", f"height={H}", "output=-", "output_representation=depth"],
         "output_representation=depth is not an exported representation; choose one of rgb, hsv, input or mosaic"),
        (["output=web://127.0.0.1:0"], "no source given"),
        (["source=-", f"width={W}", f"height={H}", "output=[-,jsonl:-]"], "only one output may write to stdout"),
        (["source=-", f"width={W}", f"height={H}", "output=carrier-pigeon"], "stream target 'carrier-pigeon' is not "
                                                                              "understood"),
        (["-m", "source=a.mp4,b.mp4"], "-m (multirun) does not apply to a live stream"),
        (["source=-", f"width={W}", f"height={H}", "output=-", "max_frames=-1"], "max_frames must be 0 or more"),
    ]
    try:
        for args, message in cases:
            code = main(["stream", *args])
            out, err = capsys.readouterr()
            lines = err.strip().splitlines()
            assert code == 2, (args, err)
            assert len(lines) == 1 and lines[0].startswith("vre stream: error: ") and message in lines[0], (args, err)
            assert out == ""
    finally:
        busy.close()


@pytest.mark.timeout(60)
def test_stream_mode_writes_no_files(tmp_path: Path) -> None:
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    frames = b"".join(colour_frame(i).tobytes() for i in range(10))
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "stream", "source=-", f"width={W}", f"height={H}",
                        "output=[-,web://127.0.0.1:0,jsonl://127.0.0.1:0]", "drop_frames=false"],
                       input=frames, capture_output=True, timeout=60, cwd=cwd, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout) == 10 * FRAME
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []

    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "stream", "source=-", f"width={W}", f"height={H}",
                        "output=-", "drop_frames=false", "metrics_csv=metrics.csv"],
                       input=frames, capture_output=True, timeout=60, cwd=cwd, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr.decode()
    assert [p.name for p in cwd.iterdir()] == ["metrics.csv"] and list(tmp.iterdir()) == []
    rows = (cwd / "metrics.csv").read_text().splitlines()
    assert rows[0] == "seq,received_s,wait_ms,compute_ms,send_ms,latency_ms,dropped_total,rgb_ms,hsv_ms"
    assert len(rows) == 11
