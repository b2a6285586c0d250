"""A global output_dtype=float16 changes only floating-point stored forms: the edge and soft-segmentation types
that read rgb give exactly what they give without it."""
from __future__ import annotations

import numpy as np

from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.store.npz import load_npz

REPS = {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
        "canny": {"type": "edges/canny", "dependencies": ["rgb"]},
        "halftone": {"type": "soft-segmentation/halftone", "dependencies": ["rgb"]},
        "boundaries": {"type": "soft-segmentation/generalized-boundaries", "dependencies": ["rgb"]}}


def test_global_float16_leaves_edges_and_images_bit_exact(sample_video, tmp_path):
    run_export(build_graph({"representations": REPS}), sample_video, tmp_path / "plain", frames="0..3")
    run_export(build_graph({"representations": REPS, "output_dtype": "float16"}), sample_video, tmp_path / "half",
               frames="0..3")
    for i in range(3):
        plain = {n: load_npz(tmp_path / "plain" / n / "npz" / f"{i}.npz") for n in REPS}
        half = {n: load_npz(tmp_path / "half" / n / "npz" / f"{i}.npz") for n in REPS}
        for name in ("rgb", "canny"):  # uint8 frames and bool edges keep their type and values
            assert half[name].dtype == plain[name].dtype and np.array_equal(half[name], plain[name]), name
        assert half["canny"].any(), "edges were found (the float16 bug made them all zeros)"
        for name in ("hsv", "halftone", "boundaries"):  # floats are stored as float16, values rounded only
            assert half[name].dtype == np.float16
            np.testing.assert_array_equal(half[name], plain[name].astype(np.float16), err_msg=name)
