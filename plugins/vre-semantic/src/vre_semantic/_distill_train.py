"""The training loop of `vre distill` (torch): the student network, its loss by head, a checkpoint each epoch.

Deterministic for a seed: the weights are initialised under ``torch.manual_seed(seed)``, and epoch e's order of
frames and flips comes from ``numpy.random.default_rng([seed, e])``, so a run resumed from the checkpoint of
epoch e goes on exactly as an uninterrupted one. The checkpoint (``NAME.checkpoint.safetensors``) holds the
network, Adam's moments and, in its header, the epoch, the losses, the seconds spent and the key of the run
(export, teacher, inputs, student, seed, split...): a checkpoint of another run is refused, never mixed in.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vre_semantic._phg_mae import PHGMAEDistil
from vre_semantic.student import best_f_score, delta1, intersection_over_union, mean_iou
from vrecore.plugin import ConfigError

__all__ = ["Trainer", "head_output"]

CHECKPOINT_KEY = "vre.checkpoint"

Loader = Callable[[Sequence[int]], tuple[np.ndarray, np.ndarray]]
"""Item positions -> (network input (B, C, H, W) float32, target: (B, H, W) int64 classes or (B, C, H, W) float32)."""


def head_output(head: str, logits: torch.Tensor, scale: tuple[Sequence[float], Sequence[float]] | None = None
                ) -> torch.Tensor:
    """The memory form (B, C, H, W) of a head's raw output: probabilities (a mask as [background, foreground])
    or, for dense floats, the values (``scale``: the training targets' per-channel mean and standard deviation,
    which the network learns to predict in units of)."""
    if head == "classes":
        return logits.softmax(dim=1)
    if head == "mask":
        p = logits.sigmoid()
        return torch.cat([1 - p, p], dim=1)
    if head == "edges":
        return logits.sigmoid()
    if scale is not None:
        mean, std = (torch.tensor(v, dtype=logits.dtype, device=logits.device).reshape(1, -1, 1, 1) for v in scale)
        return logits * std + mean
    return logits


def loss_of(head: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classes, BCE for a mask, class-balanced BCE for edges (HED's: the rare edge pixels
    weigh the share of non-edge pixels), L1 for dense floats."""
    if head == "classes":
        return F.cross_entropy(logits, target)
    if head == "mask":
        return F.binary_cross_entropy_with_logits(logits, target)
    if head == "edges":
        positive = target > 0.5
        beta = (1 - positive.float().mean()).clamp(0.05, 0.95)
        weight = torch.where(positive, beta, 1 - beta)
        return F.binary_cross_entropy_with_logits(logits, target, weight=weight) * 2
    return F.l1_loss(logits, target)


def metric_of(head: str, output: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    """Student (memory form, (N, C, H, W)) against teacher on the held-out frames."""
    if head == "classes":
        return mean_iou(output.argmax(axis=1), target, num_classes)
    if head == "mask":
        return intersection_over_union(output[:, 1] > 0.5, target[:, 0] > 0.5)
    if head == "edges":
        return best_f_score(output, target > 0.5)[0]
    return delta1(output, target)


class Trainer:
    """Trains one student; `run` goes from the checkpoint's epoch (or 0) to ``epochs``."""

    def __init__(self, *, head: str, num_filters: int, in_channels: int, out_channels: int, train: Sequence[int],
                 load: Loader, batch_size: int, lr: float, seed: int, device: str, checkpoint: Path,
                 key: dict[str, Any], target_scale: tuple[Sequence[float], Sequence[float]] | None = None) -> None:
        self.head, self.train, self.load, self.batch_size = head, list(train), load, batch_size
        self.target_scale = target_scale
        self.seed, self.device, self.checkpoint, self.key = seed, torch.device(device), checkpoint, key
        torch.manual_seed(seed)
        net: Any = PHGMAEDistil(num_filters, in_channels=in_channels, out_channels=out_channels, rgb_offset=0,
                                semantic_offset=0, num_classes=out_channels)
        self.model: PHGMAEDistil = net.to(self.device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.epoch, self.seconds = 0, 0.0
        self.losses: list[float] = []
        self._resume()

    # -- checkpoint ------------------------------------------------------------------------------------------
    def _resume(self) -> None:
        if not self.checkpoint.is_file():
            return
        from safetensors import safe_open

        try:
            with safe_open(str(self.checkpoint), framework="pt") as f:
                state = json.loads((f.metadata() or {}).get(CHECKPOINT_KEY, "{}"))
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types, and OSError
            raise ConfigError(f"cannot read the checkpoint {self.checkpoint} ({' '.join(str(err).split())[:120]}); "
                              f"delete it to start over") from None
        if state.get("key") != self.key:
            changed = sorted(k for k in set(self.key) | set(state.get("key") or {})
                             if (state.get("key") or {}).get(k) != self.key.get(k))
            raise ConfigError(f"{self.checkpoint} is the checkpoint of another run ({', '.join(changed)} changed); "
                              f"give another --out, or delete it to start over")
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer = self.optimizer.state_dict()
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, index, name = k.split(".")
                moments.setdefault(int(index), {})[name] = v
        optimizer["state"] = moments
        self.optimizer.load_state_dict(optimizer)
        self.epoch, self.losses, self.seconds = int(state["epoch"]), list(state["losses"]), float(state["seconds"])

    def _save(self) -> None:
        from safetensors.torch import save_file

        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        for index, moments in self.optimizer.state_dict()["state"].items():
            tensors.update({f"optim.{index}.{name}": v.detach().cpu().contiguous() for name, v in moments.items()})
        state = {"key": self.key, "epoch": self.epoch, "losses": self.losses, "seconds": self.seconds}
        tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp), metadata={CHECKPOINT_KEY: json.dumps(state)})
        os.replace(tmp, self.checkpoint)  # a run killed while saving keeps the previous epoch's checkpoint

    # -- training ------------------------------------------------------------------------------------------
    def run(self, epochs: int) -> None:
        """Train up to ``epochs`` (from where the checkpoint stopped), saving a checkpoint after each epoch; the
        progress bar (on stderr) shows in a terminal only."""
        from tqdm import tqdm

        steps = -(-len(self.train) // self.batch_size)
        bar = tqdm(total=epochs * steps, initial=min(self.epoch, epochs) * steps, unit="batch", file=sys.stderr,
                   disable=None, desc="distill", dynamic_ncols=True)
        try:
            while self.epoch < epochs:
                start = time.perf_counter()
                rng = np.random.default_rng([self.seed, self.epoch])
                order = rng.permutation(len(self.train))
                flips = rng.random(len(self.train)) < 0.5
                self.model.train()
                total = 0.0
                for b in range(steps):
                    picks = order[b * self.batch_size:(b + 1) * self.batch_size]
                    loss = self._step([self.train[i] for i in picks], flips[picks])
                    total += loss * len(picks)
                    bar.set_postfix(epoch=f"{self.epoch + 1}/{epochs}", loss=f"{loss:.4f}")
                    bar.update()
                self.losses.append(total / len(self.train))
                self.seconds += time.perf_counter() - start
                self.epoch += 1
                self._save()
        finally:
            bar.close()

    def _step(self, items: list[int], flips: np.ndarray) -> float:
        x, y = self.load(items)
        x, y = x.copy(), y.copy()
        x[flips] = x[flips][..., ::-1]
        y[flips] = y[flips][..., ::-1]
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(self.device).contiguous(memory_format=torch.channels_last)
        yt = torch.from_numpy(np.ascontiguousarray(y)).to(self.device)
        loss = loss_of(self.head, self.model.forward_all(xt), yt)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    # -- evaluation ------------------------------------------------------------------------------------------
    def predict(self, items: Sequence[int]) -> np.ndarray:
        """The student's memory form (N, C, H, W) of items, in eval mode."""
        self.model.eval()
        outputs = []
        with torch.inference_mode():
            for b in range(0, len(items), self.batch_size):
                x, _ = self.load(items[b:b + self.batch_size])
                xt = torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)
                output = head_output(self.head, self.model.forward_all(xt), self.target_scale)
                outputs.append(output.float().cpu().numpy())
        return np.concatenate(outputs)

    def ms_per_frame(self, item: int, repeats: int = 5) -> float:
        """Median milliseconds of one forward pass and head (batch of one frame, at the training size)."""
        self.model.eval()
        x, _ = self.load([item])
        xt = torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)
        times = []
        with torch.inference_mode():
            for k in range(repeats + 2):
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                head_output(self.head, self.model.forward_all(xt), self.target_scale).cpu()
                if k >= 2:  # the first calls pick oneDNN's kernels
                    times.append(time.perf_counter() - start)
        return float(np.median(times) * 1000)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's tensors, by the seed's names (what `semantic/phg-mae-distil` loads)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}


def save_student(tensors: dict[str, torch.Tensor], header: dict[str, Any], path: Path) -> None:
    """Write the student's file (atomically), its header under ``vre.student``."""
    from safetensors.torch import save_file

    from vre_semantic.student import HEADER_KEY

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata={HEADER_KEY: json.dumps(header)})
    os.replace(tmp, path)
