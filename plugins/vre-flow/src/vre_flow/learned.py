"""optical-flow/raft and optical-flow/rife: learned flows, batched with torch on the device given to setup().

torch and the networks are imported in setup()/compute() only, so that listing or configuring these types stays
light. Weights are converted safetensors (`vre_flow.variants`); `LearnedRepresentation` places and frees the network.
"""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from vre_flow.flow import OpticalFlow
from vre_flow.variants import RAFT_VARIANTS, RIFE_VARIANTS
from vrecore.plugin import Batch, LearnedRepresentation, load_into, load_safetensors, optional_size, variant_field

__all__ = ["RAFTFlow", "RIFEFlow"]


def _pad_to(x: Any, multiple: int, *, centred: bool, mode: str) -> tuple[Any, tuple[int, int, int, int]]:
    """``x`` (B, C, H, W) padded up to multiples of ``multiple``; returns it and (left, right, top, bottom)."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2) if centred else (0, pw, 0, ph)
    return F.pad(x, pad, mode=mode), pad


@attrs.define(kw_only=True, eq=False)
class _LearnedFlow(LearnedRepresentation, OpticalFlow):
    """A network mapping pairs of uint8 frames to flow; weights from a declared variant or ``weights_path``."""

    def load_model(self, device: Any) -> Any:
        return load_into(self._network(), load_safetensors(self.weights().path), self.weight_variant.name)

    def predict(self, batch: Batch) -> np.ndarray:
        return OpticalFlow.compute(self, batch)

    def _flows(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        import torch

        if len(sources) == 0:
            return np.zeros((0, *self._output_size(sources.shape[1:3]), 2), np.float32)

        def tensor(frames: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()

        return self._infer(tensor(sources), tensor(targets)).float().permute(0, 2, 3, 1).cpu().numpy()

    def _output_size(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the flow `_infer` returns for frames of ``frame_size``."""
        raise NotImplementedError

    def native_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return self._output_size(input_size)

    def _network(self) -> Any:
        """The torch module, randomly initialised (the weights are loaded into it)."""
        raise NotImplementedError

    def _infer(self, sources: Any, targets: Any) -> Any:
        """float tensors (K, 3, H, W) in [0, 255] -> flow (K, 2, h, w) in pixels of (h, w)."""
        raise NotImplementedError


@attrs.define(kw_only=True, eq=False)
class RAFTFlow(_LearnedFlow):
    """RAFT: ``variant`` things (the seed's), sintel, kitti (large) or small; ``iters`` refinement steps; run at
    ``input_size`` [height, width] when set (the seed's inference_height/width), else at the frame's size."""

    type_name = "optical-flow/raft"

    variants = RAFT_VARIANTS
    variant: str = variant_field("things")
    iters: int = attrs.field(default=12, validator=[attrs.validators.instance_of(int), attrs.validators.ge(1)])
    input_size: tuple[int, int] | None = attrs.field(default=None, converter=optional_size)

    def _output_size(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        return self.input_size or frame_size

    def _network(self) -> Any:
        from vre_flow._raft import RAFT

        return RAFT(small=self.weight_variant.meta["small"])

    def _infer(self, sources: Any, targets: Any) -> Any:
        import torch.nn.functional as F

        if self.input_size is not None and tuple(sources.shape[-2:]) != self.input_size:
            sources, targets = (F.interpolate(x, self.input_size, mode="bilinear", align_corners=False)
                                for x in (sources, targets))
        h, w = sources.shape[-2:]
        # RAFT works at 1/8: pad by repeating the border, centred, as the official evaluation does.
        (a, pad), (b, _) = (_pad_to(x, 8, centred=True, mode="replicate") for x in (sources, targets))
        flow = self.model(a, b, iters=self.iters)
        return flow[..., pad[2]:pad[2] + h, pad[0]:pad[0] + w]


@attrs.define(kw_only=True, eq=False)
class RIFEFlow(_LearnedFlow):
    """RIFE HDv2's flow network as the seed tool uses it: twice the flow from the middle instant to frame t + delta
    (the flow from t to t + delta under constant motion), computed at half the frame's size (a quarter with
    ``uhd``) and resized to the output by the engine."""

    type_name = "optical-flow/rife"

    variants = RIFE_VARIANTS
    variant: str = variant_field("hdv2")
    uhd: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def _output_size(self, frame_size: tuple[int, int]) -> tuple[int, int]:
        f = 4 if self.uhd else 2
        return -(-frame_size[0] // f), -(-frame_size[1] // f)

    def _network(self) -> Any:
        from vre_flow._rife import IFNet

        return IFNet()

    def _infer(self, sources: Any, targets: Any) -> Any:
        import torch

        h, w = sources.shape[-2:]
        # Zeros after the bottom and right edges, as the seed pads; the network needs multiples of 32 at its input.
        pairs, _ = _pad_to(torch.cat([sources, targets], dim=1) / 255.0, 64 if self.uhd else 32, centred=False,
                           mode="constant")
        flow = 2.0 * self.model(pairs, uhd=self.uhd)[:, 2:4]
        oh, ow = self._output_size((h, w))
        return flow[..., :oh, :ow]
