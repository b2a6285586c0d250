"""`vre export videos=...`: many videos in one run, failures recorded, finished videos skipped unopened, resumable."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from vrecore.cli.app import main
from vrecore.graph.registry import reset_registry

PIPELINE = {"representations": {"rgb": {"type": "color/rgb"},
                                "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}}


def _write_clip(path, seed: int, frames: int = 3) -> None:
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Three good 3-frame clips (64x48), a corrupt one, and a list file naming them and a missing one."""
    folder = tmp_path_factory.mktemp("clips")
    for k, name in enumerate("abc"):
        _write_clip(folder / f"{name}.mp4", k)
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(9).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    listing = folder / "videos.txt"
    listing.write_text("# three good, one missing, one corrupt\na.mp4\nmissing.mp4\n\ncorrupt.mp4\nb.mp4\n"
                       f"{folder / 'c.mp4'}\n")
    return folder


def _files(root):
    """Every stored frame file under ``root`` (relative path -> array)."""
    found = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".npz"):
                path = os.path.join(dirpath, name)
                with np.load(path, allow_pickle=False) as z:
                    found[os.path.relpath(path, root)] = z["arr_0"]
    return found


def _cli(capsys, *args: str) -> tuple[int, str]:
    reset_registry()
    capsys.readouterr()
    code = main(["export", *args])
    return code, capsys.readouterr().err


def test_failures_are_one_line_each_and_a_rerun_skips_finished_videos_unopened(clips, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    code, err = _cli(capsys, f"videos={clips / 'videos.txt'}", f"output_root={out}", "pipeline=rgb_hsv")
    assert code == 1, err
    for name in "abc":
        assert sorted(os.listdir(out / name / "hsv" / "npz")) == ["0.npz", "1.npz", "2.npz"]
    failed = [line for line in err.splitlines() if line.strip().startswith("failed:")]
    assert len(failed) == 2, err
    assert err.strip().splitlines()[-2:] == failed, err  # one line each: no traceback or second line follows
    assert "missing.mp4" in failed[0] and "does not exist" in failed[0]
    assert "corrupt.mp4" in failed[1]
    assert [line.split()[:2] for line in err.splitlines() if line.strip().startswith(("done", "skipped", "failed "))] \
        == [["done", "3"], ["skipped", "0"], ["failed", "2"]]

    import vrecore.export.run as run_module
    import vrecore.frames.video as video_module

    opened, planned = [], []
    real_open, real_plan = video_module.open_video, run_module.make_plan

    def counting_open(path, *a, **k):
        opened.append(os.path.basename(path))
        return real_open(path, *a, **k)

    def counting_plan(graph, store, *a, **k):
        planned.append(store.root.name)
        return real_plan(graph, store, *a, **k)

    monkeypatch.setattr(video_module, "open_video", counting_open)
    monkeypatch.setattr(run_module, "make_plan", counting_plan)
    code, err = _cli(capsys, f"videos={clips / 'videos.txt'}", f"output_root={out}", "pipeline=rgb_hsv")
    assert code == 1, err
    assert sorted(opened) == ["corrupt.mp4", "missing.mp4"]  # only the two that failed: the finished ones are not opened
    assert planned == []
    assert "skipped          3" in err


def test_a_changed_video_is_planned_again(clips, tmp_path):
    from vrecore import build_graph
    from vrecore.export.many import export_videos

    folder = tmp_path / "v"
    folder.mkdir()
    _write_clip(folder / "a.mp4", 0)
    graph = build_graph(PIPELINE)
    assert export_videos(graph, folder, tmp_path / "out").count("done") == 1
    assert export_videos(graph, folder, tmp_path / "out").count("skipped") == 1
    _write_clip(folder / "a.mp4", 5)  # another video under the same name: not skipped, refused as made differently
    again = export_videos(graph, folder, tmp_path / "out")
    assert again.clips[0].status == "failed" and "made differently" in again.clips[0].error
    replaced = export_videos(graph, folder, tmp_path / "out", overwrite=True)
    assert replaced.clips[0].status == "done" and replaced.clips[0].frames == 3


def test_two_workers_write_what_one_writes(clips, tmp_path):
    from vrecore import build_graph
    from vrecore.export.many import export_videos

    videos = [str(clips / f"{n}.mp4") for n in "abc"]
    graph = build_graph(PIPELINE)
    one = export_videos(graph, videos, tmp_path / "one")
    two = export_videos(graph, videos, tmp_path / "two", workers=2)
    assert [c.status for c in one.clips] == [c.status for c in two.clips] == ["done"] * 3
    a, b = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(a) == sorted(b) and len(a) == 3 * 3 * 2
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])


@pytest.mark.slow(seconds=11)
def test_ray_actors_write_what_one_process_writes_and_a_failing_video_is_recorded(clips, tmp_path, local_ray):
    """runner=ray: the videos spread over Ray actors give exactly the files of one process; the corrupt one is
    recorded as failed (in the list's order) and the others finish."""
    import json

    from vrecore import build_graph
    from vrecore.export.many import export_videos

    videos = [str(clips / "a.mp4"), str(clips / "corrupt.mp4"), str(clips / "b.mp4"), str(clips / "c.mp4")]
    graph = build_graph(PIPELINE)
    one = export_videos(graph, videos, tmp_path / "one")
    seen = []
    on_ray = export_videos(graph, videos, tmp_path / "ray", runner="ray", workers=2, on_clip=seen.append)
    assert [c.status for c in one.clips] == [c.status for c in on_ray.clips] == ["done", "failed", "done", "done"]
    assert on_ray.exit_code == 1 and sorted(c.video for c in seen) == sorted(videos)
    assert on_ray.clips[1].video == videos[1] and on_ray.clips[1].error
    assert [c.frames for c in on_ray.clips] == [3, 0, 3, 3]
    a, b = _files(tmp_path / "one"), _files(tmp_path / "ray")
    assert sorted(a) == sorted(b) and len(a) == 3 * 3 * 2
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    # the videos ran in other processes (the actors), and each finished one has its skip record
    for name in "abc":
        runs = [json.loads(p.read_text()) for p in (tmp_path / "ray" / name / ".logs").glob("run_metadata_*.json")]
        assert [r["status"] for r in runs] == ["ok"] and runs[0]["pid"] != os.getpid()
    again = export_videos(graph, videos, tmp_path / "ray", runner="ray", workers=2)
    assert [c.status for c in again.clips] == ["skipped", "failed", "skipped", "skipped"]


def test_an_interrupted_run_resumes(clips, tmp_path, monkeypatch):
    """SIGINT while the second video computes: it stops after the frames in flight; the next run skips the first
    video, computes only the second's missing frames and then the third."""
    from vrecore import build_graph
    from vrecore.export.chunks import ChunkRunner
    from vrecore.export.many import export_videos

    videos = [str(clips / f"{n}.mp4") for n in "abc"]
    config = {**PIPELINE, "batch_size": 1}
    real_run = ChunkRunner.run

    def interrupted_after_first_task(self, tasks, **kwargs):
        if self.store.root.name != "b":
            return real_run(self, tasks, **kwargs)
        tasks = list(tasks)

        def signalling():
            yield tasks[0]
            os.kill(os.getpid(), signal.SIGINT)
            yield from tasks[1:]

        return real_run(self, signalling(), **kwargs)

    monkeypatch.setattr(ChunkRunner, "run", interrupted_after_first_task)
    first = export_videos(build_graph(config), videos, tmp_path / "out")
    assert [c.status for c in first.clips] == ["done", "interrupted", "interrupted"]
    assert first.exit_code == 130
    assert first.clips[1].frames < 3
    monkeypatch.setattr(ChunkRunner, "run", real_run)
    second = export_videos(build_graph(config), videos, tmp_path / "out")
    assert [c.status for c in second.clips] == ["skipped", "done", "done"]
    assert second.clips[1].frames == 3 - first.clips[1].frames and second.clips[2].frames == 3
    clean = export_videos(build_graph(config), videos, tmp_path / "clean")
    a, b = _files(tmp_path / "out"), _files(tmp_path / "clean")
    assert sorted(a) == sorted(b) and len(a) == 3 * 3 * 2
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert clean.exit_code == 0


@pytest.mark.parametrize(("args", "expected"), [
    (["videos=NOPE_DIR", "output_root=o"], "videos 'NOPE_DIR' does not exist"),
    (["videos=/dev/null", "output_root=o"], "videos '/dev/null' is a character device, not a file or folder"),
    (["videos=[x.mp4]", "output_dir=o"], "give output_root instead of output_dir"),
    (["videos=[x.mp4]", "video=x.mp4"], "videos= and video= together"),
    (["videos=[a/x.mp4,b/x.mp4]", "output_root=o"], "would both export into"),
])
def test_mistakes_are_one_line(capsys, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    code, err = _cli(capsys, *args)
    assert code == 2, err
    assert expected in err and len(err.strip().splitlines()) == 1, err


def test_many_videos_sync_the_room_probe_once(clips, tmp_path, monkeypatch):
    """The free-space probe of an output folder (256 KiB written and synced) runs once per file system and minute,
    not once per video."""
    from vrecore import build_graph
    from vrecore.export.many import export_videos

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    result = export_videos(build_graph(PIPELINE), [str(clips / f"{n}.mp4") for n in "abc"], tmp_path / "out")
    assert result.count("done") == 3
    assert len(synced) <= 1


def test_many_videos_start_their_writer_threads_once(clips, tmp_path, monkeypatch):
    """The writer threads are kept across videos, and a video of one chunk is decoded without a decoding thread."""
    import threading

    from vrecore import build_graph
    from vrecore.export.many import export_videos

    started = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (started.append(self.name), real_start(self))[1])
    result = export_videos(build_graph(PIPELINE), [str(clips / f"{n}.mp4") for n in "abc"], tmp_path / "out")
    assert result.count("done") == 3 and len(_files(tmp_path / "out")) == 3 * 3 * 2
    assert len([n for n in started if n.startswith("vre-write")]) <= 2  # writers=2, for all three videos
    assert not [n for n in started if n.startswith("vre-decode")]


def test_the_folders_are_those_of_a_multirun(clips, tmp_path, capsys):
    a, b = clips / "a.mp4", clips / "b.mp4"
    assert _cli(capsys, "-m", f"video={a},{b}", f"output_root={tmp_path / 'multirun'}", "pipeline=rgb_hsv")[0] == 0
    assert _cli(capsys, f"videos=[{a},{b}]", f"output_root={tmp_path / 'videos'}", "pipeline=rgb_hsv")[0] == 0
    m, v = _files(tmp_path / "multirun"), _files(tmp_path / "videos")
    assert sorted(m) == sorted(v) and len(m) == 2 * 3 * 2
    for name in m:
        np.testing.assert_array_equal(m[name], v[name])
