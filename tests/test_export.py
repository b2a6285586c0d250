"""Batch export: layout, re-entrancy, crash safety, concurrency, OOM retry, exception policy."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from vrecore.errors import ConfigError, ExportError
from vrecore.export.metadata import regenerate_metadata
from vrecore.export.run import run_export
from vrecore.frames.video import open_video
from vrecore.graph.build import build_graph
from vrecore.store.npz import load_npz

RGB_HSV = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}


def graph(reps, **defaults):
    return build_graph({"representations": reps, **defaults})


def npz_frames(out: Path, name: str) -> list[int]:
    return sorted(int(p.stem) for p in (out / name / "npz").glob("*.npz"))


class CountingSource:
    """Wraps a FrameSource and counts the frames it decodes."""

    def __init__(self, source):
        self.inner, self.decoded = source, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_batch(self, indices):
        self.decoded.extend(int(i) for i in indices)
        return self.inner.get_batch(indices)


def counting(path):
    from vrecore.frames.video import FrameSource

    src = CountingSource(open_video(path))
    FrameSource.register(CountingSource)  # run_export accepts any FrameSource
    return src


def test_layout_contents_and_metadata(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    result = run_export(graph(RGB_HSV, image_format="jpg"), sample_video, out, frames="0..10")
    assert result.ok and result.stats["hsv"].computed == 10
    frames = open_video(sample_video).get_batch(range(10))
    for i in range(10):
        with np.load(out / "rgb" / "npz" / f"{i}.npz", allow_pickle=False) as z:
            assert z.files == ["arr_0"]
            np.testing.assert_array_equal(z["arr_0"], frames[i])
        hsv = load_npz(out / "hsv" / "npz" / f"{i}.npz")
        assert hsv.dtype == np.float32 and hsv.shape == (180, 320, 3) and 0 <= hsv.min() and hsv.max() <= 1
        from PIL import Image

        with Image.open(out / "hsv" / "jpg" / f"{i}.jpg") as im:
            assert im.size == (320, 180) and im.format == "JPEG"
    meta = json.loads((out / "hsv" / ".repr_metadata.json").read_text())
    assert meta["type"] == "color/hsv" and sorted(map(int, meta["frames"])) == list(range(10))
    assert meta["frames"]["3"]["run"] == result.run_id and meta["frames"]["3"]["formats"] == ["npz", "jpg"]
    run = json.loads(result.metadata_file.read_text())
    assert run["status"] == "ok" and run["representations"]["hsv"]["computed"] == 10
    assert run["graph"]["representations"]["hsv"]["type"] == "color/hsv" and run["frames"] == "0..10"
    assert result.log_file.exists() and "run " + result.run_id in result.log_file.read_text()
    assert "hsv" in result.summary()


def test_rerun_skips_and_deleted_file_is_recomputed(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(RGB_HSV, image_format="png"), sample_video, out, frames="0..12")
    before = (out / "hsv" / "npz" / "4.npz").stat().st_mtime_ns
    src = counting(sample_video)
    again = run_export(graph(RGB_HSV, image_format="png"), src, out, frames="0..12")
    assert again.stats["hsv"].computed == 0 and again.stats["hsv"].skipped == 12 and src.decoded == []
    (out / "hsv" / "npz" / "5.npz").unlink()
    (out / "rgb" / "png" / "7.png").unlink()
    third = run_export(graph(RGB_HSV, image_format="png"), src, out, frames="0..12")
    assert third.stats["hsv"].computed == 1 and third.stats["rgb"].computed == 1
    assert sorted(src.decoded) == [7]  # hsv 5 reads rgb 5 back from disk; only rgb 7 is decoded
    assert npz_frames(out, "hsv") == list(range(12)) and (out / "rgb" / "png" / "7.png").exists()
    assert (out / "hsv" / "npz" / "4.npz").stat().st_mtime_ns == before


def test_overwrite_recomputes_everything(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(RGB_HSV), sample_video, out, frames="0..6")
    r = run_export(graph(RGB_HSV), sample_video, out, frames="0..6", overwrite=True)
    assert r.stats["hsv"].computed == 6 and r.stats["rgb"].computed == 6


def test_each_frame_decoded_once(registry, sample_video, tmp_path):
    src = counting(sample_video)
    reps = {**RGB_HSV, "g": {"type": "test/grey", "batch_size": 3}, "s": {"type": "test/scaled", "dependencies": ["g"]}}
    r = run_export(graph(reps, batch_size=4), src, tmp_path / "o", frames="0..20")
    assert r.ok and sorted(src.decoded) == list(range(20))


def test_unexported_dependency_is_not_written(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    reps = {"rgb": {"type": "color/rgb", "export": False}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}
    r = run_export(graph(reps), sample_video, out, frames="0..5")
    assert r.stats["hsv"].computed == 5 and not (out / "rgb").exists()


def test_dependency_from_an_earlier_run_is_read_from_disk(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph({"g": {"type": "test/grey"}}), sample_video, out, frames="0..8")
    src = counting(sample_video)
    reps = {"g": {"type": "test/grey"}, "s": {"type": "test/scaled", "dependencies": ["g"], "parameters": {"factor": 3}}}
    r = run_export(graph(reps), src, out, frames="0..8")
    assert r.stats["g"].computed == 0 and r.stats["s"].computed == 8 and src.decoded == []
    np.testing.assert_allclose(load_npz(out / "s" / "npz" / "2.npz"), 3 * load_npz(out / "g" / "npz" / "2.npz"))


def test_output_size_dtype_and_compression(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    reps = {"rgb": {"type": "color/rgb", "output_size": [90, 160]},
            "hsv": {"type": "color/hsv", "dependencies": ["rgb"], "output_dtype": "float16",
                    "binary_format": "npz-compressed"}}
    run_export(graph(reps), sample_video, out, frames="0..3")
    assert load_npz(out / "rgb" / "npz" / "0.npz").shape == (90, 160, 3)
    hsv = load_npz(out / "hsv" / "npz" / "1.npz")
    assert hsv.dtype == np.float16 and hsv.shape == (180, 320, 3)
    with zipfile.ZipFile(out / "hsv" / "npz" / "1.npz") as z:
        assert z.testzip() is None and z.infolist()[0].compress_type == zipfile.ZIP_DEFLATED


def test_out_of_memory_retries_at_smaller_batch(registry, sample_video, tmp_path):
    g = graph({"m": {"type": "test/oom", "batch_size": 8, "parameters": {"max_batch": 2}}})
    r = run_export(g, sample_video, tmp_path / "o", frames="0..16")
    assert r.ok and r.stats["m"].computed == 16 and r.stats["m"].batch_size == 2
    assert g["m"].representation.seen[:3] == [8, 4, 2]
    changes = json.loads(r.metadata_file.read_text())["representations"]["m"]["batch_size_changes"]
    assert [(c["from"], c["to"]) for c in changes] == [(8, 4), (4, 2)] and "MemoryError" in changes[0]["error"]
    assert npz_frames(tmp_path / "o", "m") == list(range(16))


def test_out_of_memory_at_batch_one_fails(registry, sample_video, tmp_path):
    g = graph({"m": {"type": "test/oom", "batch_size": 4, "parameters": {"max_batch": 0}}})
    with pytest.raises(ExportError, match=r"representation 'm' \(test/oom\) failed on frame 0: MemoryError: test: "
                                          r"batch of 1 does not fit"):
        run_export(g, sample_video, tmp_path / "o", frames="0..4")
    assert g["m"].representation.seen == [4, 2, 1, 1], "halved to one frame, then retried once"


@pytest.mark.slow(seconds=5)
def test_stop_policy_keeps_written_frames_and_reports(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(RGB_HSV), sample_video, out, frames="0..8")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "hsv" / "npz").iterdir()}
    reps = {**RGB_HSV, "f": {"type": "test/fail", "batch_size": 2, "parameters": {"frames": [5]}}}
    with pytest.raises(ExportError, match=r"representation 'f' failed on frames 4..6: RuntimeError|test failure"):
        run_export(graph(reps), sample_video, out, frames="0..8", overwrite=False)
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "hsv" / "npz").iterdir()}
    assert after == before  # a failed run leaves earlier outputs untouched
    assert npz_frames(out, "f") == [0, 1, 2, 3]
    runs = sorted((out / ".logs").glob("run_metadata_*.json"))
    failed = [json.loads(p.read_text()) for p in runs if json.loads(p.read_text())["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["representations"]["f"]["failed_frames"] == [4, 5]
    log = next(p for p in (out / ".logs").glob("log_*.txt") if failed[0]["run_id"] in p.name).read_text()
    assert "f failed on frames 4..6" in log and "Traceback" in log


def test_a_failed_run_leaves_no_decoding_thread_behind(registry, sample_video, tmp_path):
    """The decoding thread, a task ahead, ends with the run that failed: it used to wait for good to hand over its
    last word (the end of the tasks) to a queue that nobody read any more, the run waited 5 s for it, and the
    thread stayed with its decoded frames."""
    import threading

    # 4 tasks; each sleeps 0.1 s (the decoder is ahead by then); the third fails while the fourth waits decoded
    reps = {**RGB_HSV, "s": {"type": "test/slow", "batch_size": 2, "parameters": {"seconds": 0.1}},
            "f": {"type": "test/fail", "batch_size": 2, "parameters": {"frames": [5]}}}  # (after s, as listed)
    before = set(threading.enumerate())
    with pytest.raises(ExportError, match="'f' .*failed on frames 4..6"):
        run_export(graph(reps, batch_size=2), sample_video, tmp_path / "o", frames="0..8")
    assert [t.name for t in set(threading.enumerate()) - before if t.name == "vre-decode"] == []


def test_skip_policy_goes_on(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    reps = {**RGB_HSV, "f": {"type": "test/fail", "batch_size": 1, "parameters": {"frames": [2, 3]}},
            "s": {"type": "test/scaled", "dependencies": ["f"]}}
    r = run_export(graph(reps), sample_video, out, frames="0..6", exception_mode="skip", raise_on_error=False)
    assert r.ok and r.stats["hsv"].computed == 6
    assert r.stats["f"].failed_frames == [2, 3] and r.stats["s"].failed_frames == [2, 3]
    assert npz_frames(out, "s") == [0, 1, 4, 5]


def _script(out: Path, video: Path, frames: str, seconds: float) -> str:
    return f"""
import sys
from vrecore.testing import register_test_types
from vrecore.graph.build import build_graph
from vrecore.export.run import run_export
register_test_types()
g = build_graph({{"representations": {{"rgb": {{"type": "color/rgb"}},
     "slow": {{"type": "test/slow", "batch_size": 2, "parameters": {{"seconds": {seconds}}},
               "binary_format": "npz-compressed", "image_format": "jpg"}}}}}})
r = run_export(g, {str(video)!r}, {str(out)!r}, frames={frames!r})
print(r.stats["slow"].computed, flush=True)
"""


def test_kill_9_then_rerun(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _script(out, sample_video, "0..48", 0.05)])
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "slow" / "npz").glob("*.npz"))) < 10:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = npz_frames(out, "slow")
    assert 10 <= len(written) < 48, "the run should have been killed in the middle"
    r = run_export(build_graph({"representations": {
        "rgb": {"type": "color/rgb"},
        "slow": {"type": "test/slow", "batch_size": 2, "parameters": {"seconds": 0.0},
                 "binary_format": "npz-compressed", "image_format": "jpg"}}}), sample_video, out, frames="0..48")
    assert r.stats["slow"].computed + r.stats["slow"].skipped == 48
    assert npz_frames(out, "slow") == list(range(48)) and npz_frames(out, "rgb") == list(range(48))
    for name in ("slow", "rgb"):
        for p in (out / name / "npz").iterdir():
            assert p.suffix == ".npz", f"leftover temporary {p}"
            load_npz(p)
    assert sorted(int(p.stem) for p in (out / "slow" / "jpg").glob("*.jpg")) == list(range(48))
    meta = json.loads((out / "slow" / ".repr_metadata.json").read_text())
    assert sorted(map(int, meta["frames"])) == list(range(48))


def test_two_processes_into_one_folder(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-c", _script(out, sample_video, f, 0.01)], stdout=subprocess.PIPE)
             for f in ("0..30", "18..48")]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert npz_frames(out, "slow") == list(range(48))
    meta = json.loads((out / "slow" / ".repr_metadata.json").read_text())
    assert sorted(map(int, meta["frames"])) == list(range(48))
    runs = [json.loads(p.read_text()) for p in (out / ".logs").glob("run_metadata_*.json")]
    assert len(runs) == 2 and all(r["status"] == "ok" for r in runs)
    records = [json.loads(line) for line in (out / "slow" / ".frames.jsonl").read_text().splitlines()]
    # each frame is recorded by the run that wrote it; the other run may also adopt a file it found renamed into place
    # but not yet recorded (decoded in full first): such a record says "unrecorded", whatever the scheduling
    assert {r["frame"] for r in records if r["run"] != "unrecorded"} == set(range(48))
    assert {r["run"] for r in records} <= {r["run_id"] for r in runs} | {"unrecorded"}
    for p in (out / "slow" / "npz").iterdir():
        load_npz(p)


def test_regenerate_metadata(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(RGB_HSV, image_format="jpg"), sample_video, out, frames="0..5")
    (out / "hsv" / ".repr_metadata.json").unlink()
    (out / "hsv" / ".frames.jsonl").unlink()
    (out / "hsv" / "jpg" / "2.jpg").unlink()
    counts = regenerate_metadata(out)
    assert counts == {"hsv": 5, "rgb": 5}
    meta = json.loads((out / "hsv" / ".repr_metadata.json").read_text())
    assert meta["frames"]["2"]["formats"] == ["npz"] and meta["frames"]["3"]["formats"] == ["npz", "jpg"]


def test_learned_set_up_only_when_there_is_work(registry, sample_video, tmp_path):
    from vrecore.testing import Learned

    Learned.calls.clear()
    g = graph({"l": {"type": "test/learned"}})
    run_export(g, sample_video, tmp_path / "o", frames="0..4", device="cpu")
    assert Learned.calls == [("setup", "l", "cpu"), ("teardown", "l")]
    Learned.calls.clear()
    r = run_export(graph({"l": {"type": "test/learned"}}), sample_video, tmp_path / "o", frames="0..4")
    assert Learned.calls == [] and r.stats["l"].skipped == 4


def test_dependents_see_the_stored_form_whether_computed_now_or_earlier(registry, sample_video, tmp_path):
    reps = {"g": {"type": "test/grey", "output_dtype": "float16"},
            "s": {"type": "test/scaled", "dependencies": ["g"], "parameters": {"factor": 3.0}}}
    run_export(graph(reps), sample_video, tmp_path / "together", frames="0..4")
    run_export(graph({"g": reps["g"]}), sample_video, tmp_path / "apart", frames="0..4")
    run_export(graph(reps), sample_video, tmp_path / "apart", frames="0..4")
    for i in range(4):
        np.testing.assert_array_equal(load_npz(tmp_path / "together" / "s" / "npz" / f"{i}.npz"),
                                      load_npz(tmp_path / "apart" / "s" / "npz" / f"{i}.npz"))


def test_metadata_lists_frames_whose_record_was_lost(registry, sample_video, tmp_path):
    out = tmp_path / "out"
    run_export(graph(RGB_HSV), sample_video, out, frames="0..6")
    records = (out / "hsv" / ".frames.jsonl").read_text().splitlines()
    (out / "hsv" / ".frames.jsonl").write_text("\n".join(records[:2]) + "\n")  # as if killed before appending
    (out / "hsv" / "npz" / "0.npz").unlink()
    r = run_export(graph(RGB_HSV), sample_video, out, frames="0..6")
    assert r.stats["hsv"].computed == 1
    meta = json.loads((out / "hsv" / ".repr_metadata.json").read_text())
    assert sorted(map(int, meta["frames"])) == list(range(6))
    assert meta["frames"]["0"]["run"] == r.run_id and meta["frames"]["5"]["run"] == "unrecorded"


def test_unexpected_error_is_recorded_then_raised(registry, sample_video, tmp_path):
    class Broken(CountingSource):
        def get_batch(self, indices):
            raise ZeroDivisionError("decoder bug")

    from vrecore.frames.video import FrameSource

    FrameSource.register(Broken)
    with pytest.raises(ZeroDivisionError):
        run_export(graph(RGB_HSV), Broken(open_video(sample_video)), tmp_path / "o", frames="0..4")
    run = json.loads(next((tmp_path / "o" / ".logs").glob("run_metadata_*.json")).read_text())
    assert run["status"] == "failed" and run["error"] == "ZeroDivisionError: decoder bug"
    assert "decoder bug" in next((tmp_path / "o" / ".logs").glob("log_*.txt")).read_text()


def test_threads_cap_applies_during_the_run_and_is_restored(registry, sample_video, tmp_path):
    import cv2
    import torch

    from vrecore.testing import Learned

    seen = []
    original_compute = Learned.compute

    def spy(self, batch):
        seen.append((torch.get_num_threads(), cv2.getNumThreads()))
        return original_compute(self, batch)

    worker_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    before_torch, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    Learned.compute = spy
    try:
        run_export(graph({"l": {"type": "test/learned"}}), sample_video, tmp_path / "o", frames="0..2", threads=1)
    finally:
        Learned.compute = original_compute
        after_torch = torch.get_num_threads()
        torch.set_num_threads(worker_threads)  # the next tests of this worker run as before
    assert seen and set(seen) == {(1, 1)}
    assert after_torch == before_torch and cv2.getNumThreads() == before_cv
    with pytest.raises(ConfigError, match="threads must be a positive integer"):
        run_export(graph(RGB_HSV), sample_video, tmp_path / "o", threads=0)


def test_a_custom_store_is_pluggable(registry, sample_video, tmp_path):
    import io
    import zlib

    from vrecore.store import Store
    from vrecore.store.files import encode_image
    from vrecore.store.npz import npz_bytes

    class MemoryStore(Store):
        """Files in a dict: what a key-value or object-store backend would implement."""

        def __init__(self, root):
            self.root, self.items, self.records, self.meta, self.clock = root, {}, {}, {}, 0

        def write_frame(self, name, index, binary, compress, image, image_format, *, durable=False):
            facts = {}
            for sub, data in (("npz", None if binary is None else b"".join(npz_bytes(binary, compress=compress))),
                              (image_format, None if image is None else encode_image(image, image_format))):
                if data is not None:
                    self.clock += 1
                    self.items[(name, sub, index)] = (data, self.clock)
                    facts[sub] = [len(data), self.clock, zlib.crc32(data)]
            return facts

        def stat_frames(self, name, sub):
            return {i: (len(d), t) for (n, s, i), (d, t) in self.items.items() if n == name and s == sub}

        def read_bytes(self, name, sub, index):
            return self.items[(name, sub, index)][0]

        def quarantine(self, name, sub, index, run_id):
            self.items[(".quarantine", sub, index)] = self.items.pop((name, sub, index))
            return f"memory:{name}/{sub}/{index}"

        def remove_frames(self, name):
            keys = [k for k in self.items if k[0] == name]
            for k in keys:
                del self.items[k]
            self.records.pop(name, None)
            return len(keys)

        def append_records(self, name, records):
            self.records.setdefault(name, []).extend(records)

        def read_records(self, name):
            yield from (dict(r) for r in self.records.get(name, []))

        def read_metadata(self, name):
            return self.meta.get(name)

        def write_metadata(self, name, metadata):
            self.meta[name] = metadata

    store = MemoryStore(tmp_path)
    reps = {**RGB_HSV, "s": {"type": "test/scaled", "dependencies": ["hsv"], "image_format": "jpg"}}
    r = run_export(graph(reps), sample_video, store, frames="0..5")
    assert r.ok and r.output_dir == tmp_path and r.stats["s"].computed == 5
    assert store.done_frames("s", ["npz", "jpg"]) == set(range(5))
    np.testing.assert_allclose(store.read_frame("s", 3), 2 * store.read_frame("hsv", 3), rtol=1e-6)
    assert sorted(map(int, store.meta["hsv"]["frames"])) == list(range(5))
    again = run_export(graph(reps), sample_video, store, frames="0..5")
    assert again.stats["s"].computed == 0 and again.stats["s"].skipped == 5
    data, t = store.items[("hsv", "npz", 2)]
    store.items[("hsv", "npz", 2)] = (data[: len(data) // 2], t)  # truncated in the store
    third = run_export(graph(reps), sample_video, store, frames="0..5")
    assert third.stats["hsv"].computed == 1 and third.stats["hsv"].quarantined == ["memory:hsv/npz/2"]
    np.testing.assert_array_equal(store.read_frame("hsv", 2), load_npz(io.BytesIO(data)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [".logs"]  # only the run logs are local files
