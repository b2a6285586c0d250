"""The diffusers side of depth/marigold: loading the pipeline and running it on a batch of frames.

Imported only from `Marigold.setup()`, so that discovering vre-depth never imports torch or diffusers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import diffusers
import numpy as np
import torch

from vre_depth._models import stretch
from vrecore.plugin import ResolvedWeights, WeightsError, damaged_fix

__all__ = ["MarigoldNet", "load_pipeline"]


class MarigoldNet:
    """A loaded MarigoldDepthPipeline on one device."""

    def __init__(self, pipe: Any, device: torch.device) -> None:
        self.pipe, self.device = pipe, device

    def predict(self, frames: np.ndarray, indices: np.ndarray, *, steps: int | None, ensemble_size: int,
                resolution: int | None, seed: int, percentiles: Sequence[float]) -> np.ndarray:
        """uint8 (B, H, W, 3) frames → float32 (B, h, w, 1) depth in [0, 1] at the processing resolution."""
        # One CPU generator per (frame, ensemble member), seeded from (seed, frame index, member), in the
        # pipeline's latent order: a frame's noise does not depend on its batch, nor on the device. All
        # latents denoise in one pipeline batch, so that a stochastic scheduler (LCM) also draws each
        # latent's step noise from that latent's own generator.
        generators = [torch.Generator().manual_seed(int(np.random.SeedSequence([seed, int(i), k]).generate_state(1)[0]))
                      for i in indices for k in range(ensemble_size)]
        # Called under torch.inference_mode by LearnedRepresentation.compute.
        images = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float() / 255
        out = self.pipe(images, num_inference_steps=steps, ensemble_size=ensemble_size,
                        processing_resolution=resolution, match_input_resolution=False,
                        batch_size=len(generators), generator=generators, output_type="pt")
        # A featureless frame is all far, as for the other depth types.
        return stretch(out.prediction[:, 0], percentiles, flat_value=1.0).unsqueeze(-1).cpu().numpy()


def load_pipeline(weights: ResolvedWeights, device: str | torch.device) -> MarigoldNet:
    """Load the MarigoldDepthPipeline of resolved weights (a folder laid out like the Hub repo), safetensors only."""
    from safetensors import SafetensorError

    variant, folder, where = weights.variant, weights.path, weights.source
    try:
        pipe = diffusers.MarigoldDepthPipeline.from_pretrained(folder, use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        msg = " ".join(str(err).split())[:200]
        raise WeightsError(
            f"weights {variant.name!r} ({where}): cannot load the Marigold pipeline from {folder} "
            f"({type(err).__name__}: {msg}); the files are corrupt or do not belong together: "
            f"{damaged_fix(variant, folder)}") from err
    if pipe.config.prediction_type != "depth":
        raise WeightsError(f"weights {variant.name!r} ({where}) predict {pipe.config.prediction_type!r}, not depth; "
                           "use a Marigold depth checkpoint")
    pipe.set_progress_bar_config(disable=True)
    target = torch.device(device)
    return MarigoldNet(pipe.to(target), target)
