"""soft-segmentation/fastsam: every instance mask FastSAM finds in a frame, as one map of instance numbers.

torch and the network are imported in setup()/compute() only (`LearnedRepresentation` places and frees the
network). The weights are Ultralytics' FastSAM-s.pt / FastSAM-x.pt, converted once
(`vre_edges.variants.FASTSAM_VARIANTS`) and loaded from safetensors, strictly.
"""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from vre_edges.variants import FASTSAM_VARIANTS
from vrecore.plugin import Batch, LearnedRepresentation, OutputSpec, WeightsError, load_into, load_safetensors, variant_field

__all__ = ["FastSAM", "instance_palette", "render_instances"]

_CONTOUR_RGB = np.array([0, 0, 255], np.float32)  # the seed outlines every mask in blue, at 80% opacity
_CONTOUR_ALPHA = 0.8


def instance_palette(n: int) -> np.ndarray:
    """uint8 (n + 1, 3) colours of instance numbers 0..n: black for 0, fixed random colours after (the seed draws a
    new random colour per mask each time; fixed ones keep an instance's colour across frames and runs)."""
    colours = np.random.default_rng(0).integers(48, 256, (n + 1, 3), dtype=np.uint8)
    colours[0] = 0
    return colours


def render_instances(ids: np.ndarray) -> np.ndarray:
    """uint8 RGB (B, H, W, 3) pictures of instance maps (B, H, W): a colour per instance on black, region borders
    outlined in blue, 2 pixels wide, as the seed outlines its masks (here over the instances' colours, not the frame:
    overlay the rgb preview to see both)."""
    ids = ids.astype(np.int64)
    palette = instance_palette(max(int(ids.max(initial=0)), 1))
    images = palette[ids].astype(np.float32)
    # A pixel on either side of a change of instance (right or down neighbour) is on a border: 2 pixels wide.
    border = np.zeros(ids.shape, bool)
    dx = ids[:, :, 1:] != ids[:, :, :-1]
    dy = ids[:, 1:, :] != ids[:, :-1, :]
    border[:, :, 1:] |= dx
    border[:, :, :-1] |= dx
    border[:, 1:, :] |= dy
    border[:, :-1, :] |= dy
    images[border] = (1 - _CONTOUR_ALPHA) * images[border] + _CONTOUR_ALPHA * _CONTOUR_RGB
    return (images + 0.5).astype(np.uint8)


def _check_unit(instance: Any, attribute: attrs.Attribute, value: float) -> None:  # type: ignore[type-arg]
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be in [0, 1], got {value}")


def _check_input_size(instance: Any, attribute: attrs.Attribute, value: int) -> None:  # type: ignore[type-arg]
    if isinstance(value, bool) or not isinstance(value, int) or value < 32:
        raise ValueError(f"input_size must be an integer number of pixels >= 32 (the longer side the network sees), "
                         f"got {value!r}")


@attrs.define(kw_only=True, eq=False)
class FastSAM(LearnedRepresentation):
    """FastSAM (Zhao et al. 2023; a YOLOv8-seg network) in its "everything" mode, as the seed tool runs it: one
    channel, uint16, at each pixel the number of the smallest mask covering it (1 = the most confident mask, 2 the
    next...; 0: no mask). The steps and their constants are described in `vre_edges._fastsam`.

    ``variant``: ``s`` (FastSAM-s, YOLOv8s-seg, default) or ``x`` (FastSAM-x, YOLOv8x-seg; 6x the compute); the seed's
    names ``fastsam-s`` and ``fastsam-x`` also work. ``conf``: the least class probability of a mask (0.4);
    ``iou``: masks whose boxes overlap a more confident one's by more than this IoU are dropped (0.9); both as the
    seed's configurations and FastSAM's README set them. ``input_size``: the longer side of the frame the network
    sees, in pixels (1024, as the seed; the output has that size and the engine resizes it to the frame with
    nearest-neighbour sampling). ``weights_path``: a converted ``model.safetensors`` used instead of the variant's.
    """

    type_name = "soft-segmentation/fastsam"
    uses_frames = True
    variants = FASTSAM_VARIANTS
    variant_aliases = {"fastsam-s": "s", "fastsam-x": "x"}

    variant: str = variant_field("s")
    conf: float = attrs.field(default=0.4, converter=float, validator=_check_unit)
    iou: float = attrs.field(default=0.9, converter=float, validator=_check_unit)
    input_size: int = attrs.field(default=1024, validator=_check_input_size)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="uint16")

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "values": "0: no mask; k: the k-th most confident mask, the smallest covering "
                                                "the pixel"}

    def load_model(self, device: Any) -> Any:
        from vre_edges._yolov8_seg import YoloV8Seg, arch_of

        variant = self.weight_variant
        state = load_safetensors(self.weights().path)
        try:
            arch = arch_of(state)
        except ValueError as err:
            raise WeightsError(f"weights {variant.name!r}: {err}") from err
        if arch.scale != variant.meta["scale"]:
            raise WeightsError(f"weights {variant.name!r} hold a YOLOv8{arch.scale}-seg network, not the "
                               f"{variant.meta['architecture']} of variant {self.variant!r}; choose variant "
                               f"{arch.scale!r} or other weights")
        return load_into(YoloV8Seg(arch), state, variant.name)

    def predict(self, batch: Batch) -> np.ndarray:
        from vre_edges._fastsam import instance_maps, network_size, preprocess

        assert batch.frames is not None
        size = network_size(batch.frames.shape[1], batch.frames.shape[2], self.input_size)
        pred, proto = self.model(preprocess(batch.frames, size, self.device))
        ids = instance_maps(pred, proto, self.conf, self.iou, self.model.arch.nc)
        # At the network's size; the engine resizes to the frame (or output_size), nearest for integers.
        return ids.cpu().numpy().astype(np.uint16)[..., None]

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return render_instances(memory[..., 0])
