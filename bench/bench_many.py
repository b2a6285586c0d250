"""Many short clips: `vre export videos=...` against the same frames as one video, a multirun, and Ray Data by hand;
and the cold start of `vre export` (one frame).

    python bench/bench_many.py clips [--clips 500] [--seconds 2] [--multirun 20] [--ray-data]
    python bench/bench_many.py cold [--repeat 10] [--src OTHER_CHECKOUT/src]
    python bench/bench_many.py clipcpu [--clips 40] [--repeat 8] [--rounds 3] [--src OTHER_CHECKOUT/src]

``clips`` cuts ``--clips`` clips of ``--seconds`` s at 240p (426x240, 25 fps) from the shipped footage (its 44 frames
repeated), and one video of all their frames back to back, then times, as processes, rgb+hsv -> npz of: the one
video; every clip through ``vre export videos=FOLDER output_root=OUT``; a re-run of that (every clip skipped);
``--multirun N`` clips through ``vre export -m video=a,b,... output_root=OUT`` (today's way, per clip figures scaled);
``--ray-data``: the clips through Ray Data by hand (read_videos -> map_batches(hsv) -> write_numpy; needs
``pip install 'ray[data]'``). Overhead per clip = (time of the clips - time of the one video) / clips.

``cold`` times ``vre export`` of one frame of the shipped clip (rgb+hsv) ``--repeat`` times as a process (wall and
CPU seconds, median; the venv's ``vre`` script, as a user types it, with bytecode kept as an install keeps it), twice:
without vre's start-up records (`vrecore.cli._compose_cache`, `vrecore.graph.registry.installed_plugins`), as the
first run of a command line's shape, and with them, as the same command again with another ``output_dir``. Each
series begins with one untimed run (the page cache; the records). ``--src`` runs another checkout's code the same
way (PYTHONPATH) for a side-by-side figure.

``clipcpu`` is the CPU a clip costs in one process (what a shared machine's load distorts least): ``--clips`` tiny
clips (64x48, 2 frames: nearly all of it is the per-clip cost) through `vrecore.export_videos`, ``--repeat`` times,
the least CPU time (all threads) of a repeat divided by the clips (nothing is deleted between repeats: the journal
work of a large deletion slows the file operations that follow); with ``--src`` the other checkout runs too, the
two taking turns ``--rounds`` times (run side by side, each would take CPU from the other's threads).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = ROOT / "src" / "vrecore" / "frames" / "footage" / "big_buck_bunny_640x360.mp4"
VRE = [sys.executable, "-m", "vrecore.cli", "export"]


def _frames(size: tuple[int, int]) -> list:
    import av
    import cv2

    with av.open(str(FOOTAGE)) as src:
        return [cv2.resize(f.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA)
                for f in src.decode(video=0)]


def _write(path: Path, frames: list, first: int, count: int) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for k in range(first, first + count):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[k % len(frames)], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of a process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])}... failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def clips(ns: argparse.Namespace) -> None:
    per_clip = int(ns.seconds * 25)
    with tempfile.TemporaryDirectory(prefix="many-", dir=ns.workdir) as tmp:
        work = Path(tmp)
        frames = _frames((426, 240))
        folder = work / "clips"
        folder.mkdir()
        for k in range(ns.clips):
            _write(folder / f"clip{k:05d}.mp4", frames, k * 7, per_clip)
        _write(work / "all.mp4", frames, 0, per_clip * ns.clips)
        total = per_clip * ns.clips
        print(f"{ns.clips} clips of {ns.seconds} s (426x240, {per_clip} frames each, {total} frames); rgb+hsv -> npz; "
              f"load before: {os.getloadavg()[0]:.1f}")
        rows = []
        for r in range(ns.repeat):
            one, _ = timed([*VRE, f"video={work / 'all.mp4'}", "output_dir=one"], work)
            many, _ = timed([*VRE, f"videos={folder}", "output_root=many"], work)
            again, _ = timed([*VRE, f"videos={folder}", "output_root=many"], work)
            rows.append((one, many, again))
            print(f"  run {r + 1}: one video {one:.2f} s, videos= {many:.2f} s, re-run (all skipped) {again:.2f} s",
                  flush=True)
            shutil.rmtree(work / "one")
            shutil.rmtree(work / "many")
        one, many, again = (statistics.median(x) for x in zip(*rows, strict=True))
        print(f"| one video of the same {total} frames | {one:.2f} s | {total / one:.0f} frames/s |")
        print(f"| videos= over {ns.clips} clips | {many:.2f} s | {ns.clips / many:.1f} clips/s, "
              f"{(many - one) / ns.clips * 1e3:.1f} ms overhead per clip |")
        print(f"| re-run, every clip finished | {again:.2f} s | {(again) / ns.clips * 1e3:.2f} ms per clip |")
        if ns.multirun:
            names = sorted(folder.iterdir())[:ns.multirun]
            sub = work / "sub.mp4"
            _write(sub, frames, 0, per_clip * len(names))
            base, _ = timed([*VRE, f"video={sub}", "output_dir=one"], work)
            multi, _ = timed([*VRE, "-m", "video=" + ",".join(str(p) for p in names), "output_root=multi"], work)
            shutil.rmtree(work / "one")
            print(f"| -m video=... over {len(names)} clips | {multi:.2f} s (one video of their frames: {base:.2f} s) | "
                  f"{len(names) / multi:.1f} clips/s, {(multi - base) / len(names) * 1e3:.0f} ms overhead per clip |")
        if ns.ray_data:
            script = work / "ray_data.py"
            script.write_text(RAY_DATA)
            t, _ = timed([sys.executable, str(script), str(folder), str(work / "ray_out")], work)
            print(f"| Ray Data by hand (read_videos -> map_batches(hsv) -> write_numpy(hsv only), 2 CPUs) | {t:.2f} s "
                  f"| {ns.clips / t:.1f} clips/s, {(t - one) / ns.clips * 1e3:.1f} ms over vre's one video per clip |")
            shutil.rmtree(work / "ray_out", ignore_errors=True)
        print(f"load after: {os.getloadavg()[0]:.1f}")


RAY_DATA = '''
import sys
import cv2
import numpy as np
import ray

def hsv(batch):
    rgb = batch["frame"]
    out = np.multiply(rgb, np.float32(1 / 255), dtype=np.float32)
    for f in out:
        cv2.cvtColor(f, cv2.COLOR_RGB2HSV, dst=f)
    out[..., 0] *= np.float32(1 / 360)
    return {"rgb": rgb, "hsv": out}

ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
ds = ray.data.read_videos(sys.argv[1])
ds.map_batches(hsv, batch_size=8).write_numpy(sys.argv[2], column="hsv")
'''


def cold(ns: argparse.Namespace) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as installed: bytecode kept
    label = "this checkout"
    if ns.src:
        env["PYTHONPATH"] = str(Path(ns.src).resolve())
        label = str(ns.src)
    script = Path(sys.executable).with_name("vre")
    vre = [str(script), "export"] if script.exists() else VRE
    with tempfile.TemporaryDirectory(prefix="cold-") as tmp:
        work = Path(tmp)
        shutil.copy(FOOTAGE, work / "clip.mp4")
        env["VRE_CACHE"] = str(work / "cache")  # vre's records start empty, the user's cache untouched
        command = [*vre, "video=clip.mp4", "output_dir=o0", "frames=0..1", "pipeline=rgb_hsv"]
        series = [("first run of a command line's shape (no records: VRE_CONFIG_CACHE=0 VRE_PLUGINS_CACHE=0)",
                   {**env, "VRE_CONFIG_CACHE": "0", "VRE_PLUGINS_CACHE": "0"}),
                  ("the same command again, another output_dir each time (records kept)", env)]
        for n, (name, series_env) in enumerate(series):
            timed([*command[:-3], "output_dir=warm", *command[-2:]], work, series_env)  # page cache, records
            walls, cpus = [], []
            for k in range(ns.repeat):
                wall, cpu = timed([*command[:-3], f"output_dir=s{n}_{k}", *command[-2:]], work, series_env)
                walls.append(wall)
                cpus.append(cpu)
            print(f"cold start of `vre export` (1 frame, rgb+hsv), {label}, {name}, {ns.repeat} runs, load "
                  f"{os.getloadavg()[0]:.1f}: median {statistics.median(walls):.3f} s wall (min {min(walls):.3f}), "
                  f"{statistics.median(cpus):.3f} s CPU (target 0.4 s wall, idle); runs: "
                  f"{' '.join(f'{w:.2f}' for w in walls)}", flush=True)


def clipcpu(ns: argparse.Namespace) -> None:
    runs = [("this checkout", dict(os.environ))]
    if ns.src:
        runs.append((str(ns.src), {**os.environ, "PYTHONPATH": str(Path(ns.src).resolve())}))
    cmd = [sys.executable, __file__, "_clipcpu", "--clips", str(ns.clips), "--repeat", str(ns.repeat)]
    least: dict[str, float] = {}
    for r in range(ns.rounds):
        for label, env in runs:
            time.sleep(6)  # the file system's journal commits the previous run's deletions (they cost CPU here)
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{label}: failed ({done.returncode}): {done.stderr[-2000:]}")
            ms = float(done.stdout.split()[0])
            least[label] = min(least.get(label, ms), ms)
            print(f"round {r + 1}, {label}: {done.stdout.strip()}, load {os.getloadavg()[0]:.1f}", flush=True)
    for label, ms in least.items():
        print(f"| {label} | {ms:.1f} ms CPU per clip (least of {ns.rounds} rounds) |")


def _clipcpu_here(ns: argparse.Namespace) -> None:
    import av
    import numpy as np

    from vrecore import build_graph
    from vrecore.export.many import export_videos

    graph = build_graph({"representations": {"rgb": {"type": "color/rgb"},
                                              "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}})
    with tempfile.TemporaryDirectory(prefix="clipcpu-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for k in range(ns.clips):
            with av.open(str(folder / f"c{k:04d}.mp4"), "w") as c:
                stream = c.add_stream("mpeg4", rate=25)
                stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
                for _ in range(2):
                    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
                    for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                        c.mux(packet)
                for packet in stream.encode():
                    c.mux(packet)
        export_videos(graph, folder, Path(tmp) / "warm")  # imports and first-time set-up
        cpu = []
        for r in range(ns.repeat):
            t = time.process_time()
            result = export_videos(graph, folder, Path(tmp) / f"o{r}")
            cpu.append(time.process_time() - t)
            assert result.count("done") == ns.clips, result.summary()
    print(f"{min(cpu) / ns.clips * 1e3:.1f} ms CPU per clip (least of {ns.repeat} repeats of {ns.clips} clips; "
          f"median {statistics.median(cpu) / ns.clips * 1e3:.1f} ms)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("clips")
    a.add_argument("--clips", type=int, default=500)
    a.add_argument("--seconds", type=float, default=2.0)
    a.add_argument("--repeat", type=int, default=1)
    a.add_argument("--multirun", type=int, default=0)
    a.add_argument("--ray-data", action="store_true")
    a.add_argument("--workdir", type=Path, default=None)
    b = sub.add_parser("cold")
    b.add_argument("--repeat", type=int, default=10)
    b.add_argument("--src", type=Path, default=None)
    for name in ("clipcpu", "_clipcpu"):
        c = sub.add_parser(name)
        c.add_argument("--clips", type=int, default=40)
        c.add_argument("--repeat", type=int, default=8)
        c.add_argument("--src", type=Path, default=None)
        c.add_argument("--rounds", type=int, default=3)
    ns = ap.parse_args()
    {"clips": clips, "cold": cold, "clipcpu": clipcpu, "_clipcpu": _clipcpu_here}[ns.what](ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
