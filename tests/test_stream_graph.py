"""Streaming a representation graph in-process: GraphProcessor, vrecore.stream, run_graph_stream."""
from __future__ import annotations

import io
import json
import queue
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

import vrecore
from vrecore.export.run import run_export
from vrecore.frames.video import open_video
from vrecore.graph.build import build_graph
from vrecore.graph.hookspecs import hookimpl
from vrecore.graph.representation import Batch, OutputSpec, Representation, Role
from vrecore.store.npz import load_npz
from vrecore.streaming import (
    CallbackTarget,
    GraphProcessor,
    JsonLinesTarget,
    RawPipeSource,
    RepresentationFailed,
    StreamResult,
    StreamSource,
    run_graph_stream,
)
from vrecore.testing import Learned

pytestmark = pytest.mark.timeout(60)

W, H = 48, 32


# -- helpers -------------------------------------------------------------------------------


@attrs.define(kw_only=True, eq=False)
class Above(Representation):
    """A bool mask: the grey dependency above ``threshold`` (a stand-in for a safe-landing mask)."""

    type_name = "test-stream/above"
    roles = (Role("grey", channels=1),)
    threshold: float = 0.5

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="bool")

    def compute(self, batch: Batch) -> np.ndarray:
        return batch.deps["grey"] > self.threshold


class _StreamTypes:
    @hookimpl
    def register_representations(self, register: Any) -> None:
        register("test-stream/above", f"{__name__}:Above")


@pytest.fixture
def types(registry):
    """The test types plus a bool mask type."""
    registry.register_plugin(_StreamTypes(), "test-stream-types")
    return registry


def seq_frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A grey frame (all channels equal) whose first 3 pixels hold ``i`` (little endian)."""
    f = np.full((h, w, 3), (i * 37) % 256, np.uint8)
    f.reshape(-1, 3)[:3] = np.frombuffer(struct.pack("<I", i)[:3], np.uint8)[:, None]
    return f


def seq_of(img: np.ndarray) -> int:
    """The sequence number in the first 3 pixels of an RGB or one-channel image (any dtype)."""
    px = np.asarray(img).reshape(-1, img.shape[-1] if img.ndim == 3 else 1)[:3, 0]
    if px.dtype.kind == "f":
        px = np.rint(px * 255)
    b = px.astype(np.uint8).tobytes()
    return struct.unpack("<I", b + b"\0")[0]


class QueueSource(StreamSource):
    """A source fed by the test; records when it was opened."""

    def __init__(self) -> None:
        self.q: queue.Queue[Any] = queue.Queue()
        self.opened_at: float | None = None
        self.closed = False
        self._stop = threading.Event()

    def open(self) -> None:
        if self.opened_at is None:
            self.opened_at = time.perf_counter()

    def read(self) -> np.ndarray | None:
        while not self._stop.is_set():
            try:
                return self.q.get(timeout=0.05)
            except queue.Empty:
                continue
        return None

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.closed = True
        self._stop.set()


def bytes_source(frames: list[np.ndarray], tail: bytes = b"") -> RawPipeSource:
    h, w = frames[0].shape[:2]
    return RawPipeSource(io.BytesIO(b"".join(f.tobytes() for f in frames) + tail), w, h)


def paced_pipe(n: int, pace: float, w: int = W, h: int = H) -> RawPipeSource:
    import os

    r, wfd = os.pipe()

    def writer() -> None:
        with os.fdopen(wfd, "wb") as f:
            try:
                for i in range(n):
                    f.write(seq_frame(i, w, h).tobytes())
                    f.flush()
                    time.sleep(pace)
            except BrokenPipeError:
                pass

    threading.Thread(target=writer, daemon=True).start()
    return RawPipeSource(r, w, h, close_file=True)


RGB_HSV = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}


# -- the processor runs the export engine's code ----------------------------------------------


def test_stream_outputs_equal_export_outputs(types, sample_video: Path, tmp_path: Path) -> None:
    reps = {
        **RGB_HSV,
        "grey": {"type": "test/grey"},
        "half": {"type": "test/scaled", "dependencies": {"source": "grey"}, "parameters": {"factor": 0.5},
                 "output_size": [45, 80]},
        "mask": {"type": "test-stream/above", "dependencies": ["grey"], "parameters": {"threshold": 0.45}},
    }
    frames = [0, 5, 17]
    run_export(build_graph({"representations": reps}), sample_video, tmp_path / "out", frames=frames,
               progress=False)
    video = open_video(sample_video)
    decoded = video.get_batch(frames)
    video.close()
    graph = build_graph({"representations": reps})
    with GraphProcessor(graph) as proc:
        for i, frame in zip(frames, decoded, strict=True):
            r = proc.process(frame, seq=i)
            assert set(r.outputs) == set(reps)
            for name in reps:
                rep = graph[name].representation
                stored = rep.from_disk(load_npz(tmp_path / "out" / name / "npz" / f"{i}.npz")[None])[0]
                assert r.outputs[name].dtype == stored.dtype and r.outputs[name].shape == stored.shape, name
                np.testing.assert_array_equal(r.outputs[name], stored, err_msg=name)
            assert r.outputs["half"].shape == (45, 80, 1)  # output_size is honoured, as in export
            assert r.outputs["rgb"].shape == (180, 320, 3)


def test_summary_previews_and_export_false(types, monkeypatch: pytest.MonkeyPatch) -> None:
    from vrecore._builtin.color import HSV

    made: list[int] = []
    original = HSV.make_images
    monkeypatch.setattr(HSV, "make_images", lambda self, m: (made.append(len(m)), original(self, m))[1])
    graph = build_graph({"representations": {
        **RGB_HSV,
        "grey": {"type": "test/grey", "export": False},
        "landing": {"type": "test-stream/above", "dependencies": ["grey"], "parameters": {"threshold": 0.5}},
    }})
    proc = GraphProcessor(graph)
    assert proc.output_names == ["rgb", "hsv", "landing"]
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, : W // 4] = 255  # a quarter of the frame is white: above the threshold
    frame[: H // 2, W // 2:] = 100
    r = proc.process(frame, seq=7)
    assert r.seq == 7
    assert set(r.outputs) == {"rgb", "hsv", "grey", "landing"}  # export: false is computed as a dependency...
    assert list(r.images) == ["rgb", "hsv", "landing"]  # ...but has no preview
    assert "grey" not in r.images
    assert r.images.shapes == {"rgb": (H, W), "hsv": (H, W), "landing": (H, W)}
    assert made == []  # previews are made only when asked for
    hsv = r.images["hsv"]
    assert made == [1] and hsv.shape == (H, W, 3) and hsv.dtype == np.uint8
    assert r.images["hsv"] is hsv and made == [1]  # and only once
    np.testing.assert_array_equal(r.images["rgb"], frame)

    s = r.summary
    assert set(s) == {"rgb", "hsv", "grey", "landing"}
    assert all(isinstance(v["ms"], float) and v["ms"] >= 0 for v in s.values())
    assert s["landing"]["fraction"] == 0.25
    grey = frame.mean(axis=-1) / 255
    assert s["grey"]["mean"] == pytest.approx(grey.mean(), rel=1e-5)
    assert (s["grey"]["min"], s["grey"]["max"]) == (0.0, 1.0)
    assert set(s["rgb"]) == {"ms"} and set(s["hsv"]) == {"ms"}  # 3-channel outputs: only the time
    json.dumps(s, allow_nan=False)  # JSON-able as it is
    assert set(r.compute_ms) == {"rgb", "hsv", "grey", "landing"} and r.graph_ms >= sum(r.compute_ms.values())
    stats = proc.stats()
    assert stats["hsv"]["frames"] == 1 and stats["hsv"]["mean_ms"] is not None
    assert "landing" in proc.stats_table()


def test_non_finite_float_stats_stay_json(types) -> None:
    from vrecore.streaming.graph import describe_output

    x = np.array([[[np.nan], [1.0]], [[np.inf], [3.0]]], np.float32)
    assert describe_output(x) == {"mean": 2.0, "min": 1.0, "max": 3.0}
    assert describe_output(np.full((2, 2, 1), np.nan, np.float32)) == {"mean": None, "min": None, "max": None}


def test_every_representation_sees_the_same_frame(types) -> None:
    graph = build_graph({"representations": {
        "rgb": {"type": "color/rgb"}, "grey": {"type": "test/grey"},
        "slow": {"type": "test/slow", "parameters": {"seconds": 0.01}},
        "twice": {"type": "test/scaled", "dependencies": ["slow"], "parameters": {"factor": 1.0}},
    }})
    seqs = []
    for r in vrecore.stream(paced_pipe(60, 0.002), graph):
        seqs.append(r.seq)
        assert seq_of(r.frame) == r.seq
        for name in ("rgb", "grey", "slow", "twice"):
            assert seq_of(r.outputs[name]) == r.seq, name
            assert seq_of(r.images[name]) == r.seq, name
    assert seqs == sorted(set(seqs)) and seqs[-1] == 59


def test_slow_graph_takes_the_newest_frame_and_drops(types) -> None:
    n = 120
    graph = build_graph({"representations": {"slow": {"type": "test/slow", "parameters": {"seconds": 0.02}}}})
    it = vrecore.stream(paced_pipe(n, 0.002), graph)
    seqs = []
    with it:
        while True:
            received_before = it.received
            try:
                r = next(it)
            except StopIteration:
                break
            # The newest frame when we asked: at least as new as anything received before asking.
            assert r.seq >= received_before - 1
            assert seq_of(r.outputs["slow"]) == r.seq
            seqs.append(r.seq)
            assert r.timings["latency_ms"] >= r.timings["graph_ms"] >= 19
    assert seqs == sorted(set(seqs))  # never the same frame twice
    assert seqs[-1] == n - 1  # the last frame is never lost
    # Frames arrive 10 times faster than the graph takes them; how many are dropped depends on the load.
    assert it.received == n and it.dropped == n - len(seqs) > 0


# -- learned representations -----------------------------------------------------------------


def test_learned_set_up_once_before_the_first_frame(types) -> None:
    Learned.calls.clear()
    graph = build_graph({"representations": {"a": {"type": "test/learned"}, "rgb": {"type": "color/rgb"}}})
    src = QueueSource()
    it = vrecore.stream(src, graph)
    assert Learned.calls == []  # nothing happens until the stream starts
    for i in range(3):
        src.q.put(seq_frame(i))
    first = next(it)
    assert Learned.calls == [("setup", "a", "cpu")]
    assert src.opened_at is not None
    got = [first.seq]
    for i in range(3, 20):
        src.q.put(seq_frame(i))
    for r in it:
        got.append(r.seq)
        if r.seq == 19:
            break
    assert Learned.calls == [("setup", "a", "cpu")]  # once, however many frames
    it.close()
    assert Learned.calls == [("setup", "a", "cpu"), ("teardown", "a")]
    assert src.closed and got[-1] == 19

    Learned.calls.clear()
    summary = run_graph_stream(bytes_source([seq_frame(i) for i in range(25)]), graph, drop_frames=False,
                               device="cpu")
    assert summary.processed == 25
    assert Learned.calls == [("setup", "a", "cpu"), ("teardown", "a")]
    assert summary.representations["a"]["frames"] == 25


def test_close_and_break_release_everything(types) -> None:
    Learned.calls.clear()
    graph = build_graph({"representations": {"a": {"type": "test/learned"}}})
    src = QueueSource()

    def feed() -> None:
        i = 0
        while not src.closed:
            src.q.put(seq_frame(i))
            i += 1
            time.sleep(0.003)

    threading.Thread(target=feed, daemon=True).start()
    for r in vrecore.stream(src, graph):
        if r.seq >= 3:
            break
    deadline = time.monotonic() + 5
    while not src.closed and time.monotonic() < deadline:
        time.sleep(0.01)  # the dropped iterator is finalised: reader stopped, source closed
    assert src.closed and Learned.calls[-1] == ("teardown", "a")


# -- failures --------------------------------------------------------------------------------


def test_exception_modes(types) -> None:
    reps = {"rgb": {"type": "color/rgb"}, "f": {"type": "test/fail", "parameters": {"frames": [3]}},
            "g": {"type": "test/scaled", "dependencies": ["f"]}}
    frames = [seq_frame(i) for i in range(6)]
    with pytest.raises(RepresentationFailed, match=r"representation 'f' \(test/fail\) failed on frame 3: "
                                                   r"RuntimeError: test failure on frames \[3\]"):
        list(vrecore.stream(bytes_source(frames), {"representations": reps}, drop_frames=False))

    results = list(vrecore.stream(bytes_source(frames), {"representations": reps}, drop_frames=False,
                                  exception_mode="skip"))
    assert [r.seq for r in results] == list(range(6))
    bad = results[3]
    assert set(bad.errors) == {"f", "g"} and "test failure" in bad.errors["f"]
    assert bad.errors["g"] == "dependency 'f' failed"
    assert set(bad.outputs) == {"rgb"} and bad.summary["f"] == {"error": bad.errors["f"]}
    assert not bad.images["f"].any() and bad.images["f"].shape == (H, W, 3)  # black, same size
    assert seq_of(bad.images["rgb"]) == 3
    assert set(results[4].outputs) == {"rgb", "f", "g"}


# -- push form: callbacks and JSON lines for a controller -------------------------------------


def test_run_graph_stream_callbacks_jsonl_and_metrics(types) -> None:
    reps = {"rgb": {"type": "color/rgb"}, "grey": {"type": "test/grey"},
            "landing": {"type": "test-stream/above", "dependencies": ["grey"], "parameters": {"threshold": 0.5}}}
    frames = []
    for i in range(8):
        f = np.zeros((H, W, 3), np.uint8)
        f[:, : i * W // 8] = 255  # the safe area grows by an eighth each frame
        frames.append(f)
    results: list[StreamResult] = []
    previews: list[tuple[int, list[str]]] = []
    lines = io.StringIO()
    csv = io.StringIO()
    controller = JsonLinesTarget(port=0)
    client = socket.create_connection(controller.address, timeout=5)
    deadline = time.monotonic() + 5
    while controller.client_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    summary = run_graph_stream(
        bytes_source(frames), {"representations": reps},
        [CallbackTarget(lambda s, f, o: previews.append((s, sorted(o)))), JsonLinesTarget(lines), controller],
        drop_frames=False, on_result=results.append, metrics_csv=csv)
    assert summary.processed == 8 and summary.stop_reason == "end"
    assert [r.seq for r in results] == list(range(8))
    assert [r.summary["landing"]["fraction"] for r in results] == [i / 8 for i in range(8)]
    assert results[5].outputs["landing"].dtype == np.bool_ and results[5].outputs["landing"].shape == (H, W, 1)
    assert results[7].received == 8 and results[7].timings["latency_ms"] >= 0
    assert previews == [(i, ["grey", "landing", "rgb"]) for i in range(8)]

    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert [r["seq"] for r in records] == list(range(8))
    assert records[2]["summary"]["landing"]["fraction"] == 0.25
    assert records[2]["outputs"] == {"rgb": [H, W], "grey": [H, W], "landing": [H, W]}
    buf = b""
    while buf.count(b"\n") < 8:
        chunk = client.recv(65536)
        if not chunk:
            break
        buf += chunk
    client.close()
    over_socket = [json.loads(line) for line in buf.decode().splitlines()]
    assert [r["summary"]["landing"]["fraction"] for r in over_socket] == [i / 8 for i in range(8)]

    rows = csv.getvalue().splitlines()
    assert rows[0].endswith(",dropped_total,rgb_ms,grey_ms,landing_ms") and len(rows) == 9
    assert all(float(v) >= 0 for v in rows[1].split(",")[-3:])
    assert summary.representations["landing"]["frames"] == 8
    assert "landing" in str(summary) and "8 frames processed" in str(summary)


def test_stream_from_a_spec_string(types, sample_video: Path) -> None:
    graph = build_graph({"representations": RGB_HSV})
    seqs = [r.seq for r in vrecore.stream(str(sample_video), graph, realtime=False, drop_frames=False)]
    assert seqs == list(range(48))
    with vrecore.stream(sample_video, graph, realtime=False, drop_frames=False, max_frames=5) as it:
        got = [(r.seq, r.frame.shape, r.images["hsv"].shape) for r in it]
    assert got == [(i, (180, 320, 3), (180, 320, 3)) for i in range(5)]
    with pytest.raises(vrecore.VreError, match=r"give the frame size \(e.g. width=960 height=540\)"):
        vrecore.stream("-", graph)
