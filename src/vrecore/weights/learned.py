"""The base of a learned type with a torch model: device placement, eval mode, set-up check and tear-down.

A subclass of `LearnedRepresentation` implements `load_model` (build the network and load its weights) and
`predict` (the body of `compute`, reading `model` and `device`); the base does the rest, the same way for
every plugin: `setup` keeps the device and puts a ``torch.nn.Module`` on it in eval mode, `compute` refuses
to run before `setup` and runs `predict` under ``torch.inference_mode``, and `teardown` drops the model and
gives cached accelerator memory back. torch is imported only by `setup` and `compute`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from vrecore.graph.devices import release_accelerator_memory
from vrecore.graph.representation import Batch
from vrecore.weights.representation import WeightedRepresentation

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = ["LearnedRepresentation", "release_accelerator_memory"]


# Not slotted, as WeightedRepresentation: a learned type also derives from its family's base.
@attrs.define(kw_only=True, eq=False, slots=False)
class LearnedRepresentation(WeightedRepresentation):
    """A `WeightedRepresentation` that computes with a torch model it loads in `setup` and drops in `teardown`.

    A subclass implements `load_model` and `predict`; `model` and `device` are there between `setup` and
    `teardown`.
    """

    _model: Any = attrs.field(default=None, init=False, repr=False)
    _device: Any = attrs.field(default=None, init=False, repr=False)

    def load_model(self, device: torch.device) -> Any:
        """The model holding its weights (usually from `weights()` with `load_into`/`load_safetensors`).

        A ``torch.nn.Module`` may be returned on the CPU: `setup` moves it to ``device`` and sets eval mode.
        Anything else (a diffusers pipeline, a wrapper holding a module and its preprocessing) is returned
        ready on ``device``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement load_model(device)")

    def predict(self, batch: Batch) -> np.ndarray:
        """The body of `compute`, run under ``torch.inference_mode`` once `setup` has loaded the model."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict(batch)")

    @property
    def model(self) -> Any:
        """The loaded model; a RuntimeError before `setup` and after `teardown`."""
        self._check_set_up()
        return self._model

    @property
    def device(self) -> torch.device:
        """The device `setup` placed the model on; a RuntimeError before `setup` and after `teardown`."""
        self._check_set_up()
        return self._device  # type: ignore[no-any-return]

    def _check_set_up(self) -> None:
        if self._model is None:
            raise RuntimeError(f"'{self.type_name}' ({self.name!r}) used before setup(); call setup(device) first")

    def setup(self, device: str) -> None:
        import torch

        target = torch.device(device)
        model = self.load_model(target)
        if isinstance(model, torch.nn.Module):
            model = model.to(target).eval()
        self._device, self._model = target, model

    def teardown(self) -> None:
        self._model = None
        release_accelerator_memory()

    def compute(self, batch: Batch) -> np.ndarray:
        self._check_set_up()
        import torch

        with torch.inference_mode():
            return self.predict(batch)
