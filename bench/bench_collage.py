"""Collage benchmark: `vre collage` frames/s at 540p with 6 representations, `vre video`, and where the time goes.

    python bench/bench_collage.py [--frames 100] [--repeat 3] [--workers N]

Exports a 960x540 clip with rgb, hsv, a one-channel float map, Canny edges, generalized boundaries and
DIS optical flow (needs vre-edges and vre-flow), then times `write_collages` (load each npz, the
type's preview, the tile grid, JPEG, write) and its parts on one thread. Target: >= 20 frames/s on
2 cores. Figures go to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vrecore.export.run import run_export
from vrecore.frames.sample import make_sample_clip
from vrecore.graph.build import build_graph
from vrecore.graph.registry import get_registry
from vrecore.testing import register_test_types
from vrecore.visual.collage import CollageMaker, default_workers, encode_jpeg, write_collages
from vrecore.visual.preview_video import write_preview_video
from vrecore.visual.stored import ExportView

TARGET = 20.0
SIX = {
    "rgb": {"type": "color/rgb"},
    "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
    "grey": {"type": "test/grey"},  # one float32 channel, as a depth map is stored
    "canny": {"type": "edges/canny", "dependencies": ["rgb"]},
    "boundaries": {"type": "soft-segmentation/generalized-boundaries", "dependencies": ["rgb"]},
    "flow": {"type": "optical-flow/dis", "parameters": {"preset": "ultrafast"}, "output_dtype": "float16"},
}


def _median_ms(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="drawing threads (default: the cores, at most 8)")
    args = parser.parse_args()
    register_test_types(get_registry())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        video = make_sample_clip(root / "clip540.mp4", width=960, height=540, frames=args.frames)
        out = root / "out"
        t = time.perf_counter()
        result = run_export(build_graph({"representations": SIX}), video, out, config={"representations": SIX})
        assert result.ok, result.error
        print(f"export of {args.frames} frames of 6 representations at 960x540: {time.perf_counter() - t:.1f} s")

        view = ExportView(out)
        maker = CollageMaker(view)
        lay = maker.layout
        workers = args.workers or default_workers()
        print(f"collage: {lay.rows}x{lay.cols} tiles of {lay.tile_width}x{lay.tile_height}, {lay.width}x{lay.height} "
              f"pixels; {workers} drawing threads")
        rates = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            written = write_collages(view, root / "collages", workers=workers)
            rates.append(len(written.frames) / (time.perf_counter() - t))
        rates.sort()
        median = rates[len(rates) // 2]
        print(f"vre collage, {args.frames} frames: {median:.1f} frames/s (runs: {', '.join(f'{r:.1f}' for r in rates)}; "
              f"target {TARGET:.0f}: x{median / TARGET:.2f})")

        t = time.perf_counter()
        video = write_preview_video(view, root / "preview.mp4", workers=workers)
        print(f"vre video ({video.width}x{video.height}, {video.codec}): "
              f"{video.frames / (time.perf_counter() - t):.1f} frames/s")

        frame = args.frames // 2
        n = 15
        print("one frame on one thread, median ms:")
        for name in view.names:
            load = _median_ms(lambda name=name: view.stored(name, frame), n)
            disk = view.stored(name, frame)
            assert disk is not None
            preview = _median_ms(lambda name=name, disk=disk: view.picture(name, disk, frame), n)
            print(f"  {name:<11} load npz {load:5.1f}  preview {preview:5.1f}   ({disk.dtype} {disk.shape})")
        images = {name: view.preview(name, frame) for name in view.names}
        grid = _median_ms(lambda: maker.compose(images), n)
        collage = maker.render(frame)
        jpeg = _median_ms(lambda: encode_jpeg(collage), n)
        whole = _median_ms(lambda: encode_jpeg(maker.render(frame)), n)
        print(f"  tile grid {grid:.1f}, JPEG {jpeg:.1f}; whole collage {whole:.1f} ms "
              f"({1000 / whole:.1f} frames/s on one thread)")


if __name__ == "__main__":
    main()
