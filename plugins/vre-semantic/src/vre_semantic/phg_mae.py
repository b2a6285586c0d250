"""The ``semantic/phg-mae-distil`` representation: the seed's "safeuav" Dronescapes segmenter, or a student that
`vre distill` trained (torch in setup)."""
from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from vre_semantic.base import SemanticMapRepresentation
from vre_semantic.student import read_student_header, student_input
from vre_semantic.variants import PHG_MAE_ALIASES, PHG_MAE_DEFAULT, PHG_MAE_SIZES, PHG_MAE_VARIANTS
from vrecore.plugin import (
    Batch,
    LearnedRepresentation,
    OutputSpec,
    Representation,
    Role,
    WeightsError,
    load_into,
    load_safetensors,
    variant_field,
)

__all__ = ["PHGMAEDistilSemantic"]


def _check_size(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None:
        return
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ValueError(f"input_size must be [height, width] in pixels, got {value!r}")


_FLOAT_HEADS = ("edges", "dense")


@attrs.define(kw_only=True, eq=False)
class PHGMAEDistilSemantic(LearnedRepresentation, SemanticMapRepresentation):
    """PHG-MAE-Distil: 8 Dronescapes classes from RGB with a 150k-4.4M parameter UNet, or a student of it.

    ``variant``: ``150k``, ``430k`` (default), ``1.1M`` or ``4.4M`` (or the seed's ``model_150k``...).
    The weights are the seed's Lightning checkpoints, converted and imported once (``vre weights list``
    shows the commands); ``weights_path``: a local ``.safetensors`` used instead. Frames are resized
    (nearest) to ``input_size`` (default: the variant's training size, 540x960) and normalised with the
    variant's mean/std; the output (softmax probabilities, or the raw scores with ``scores: logits``, which
    the seed tool stores with ``disk_data_argmax: False``) comes at that size and the engine resizes it to the
    frames' (``output_size: native`` keeps that size, as the seed tool stores it).

    A student that ``vre distill`` trained (its file, through ``weights_path`` or ``vre weights import``) says in
    its header what it outputs, the teacher's kind: a class map or a two-class mask (semantic maps with the
    teacher's classes), an edge probability (one float channel) or dense floats. Its inputs are its
    dependencies (role ``inputs``: the export's input tasks, in training order), or the frames when it has none;
    ``input_size`` defaults to its training size.
    """

    type_name = "semantic/phg-mae-distil"
    uses_frames = True
    roles = (Role("inputs", optional=True, many=True),)
    variants = PHG_MAE_VARIANTS
    variant_aliases = PHG_MAE_ALIASES

    variant: str = variant_field(PHG_MAE_DEFAULT)
    input_size: list[int] | None = attrs.field(default=None, validator=_check_size)
    scores: str = attrs.field(default="softmax", validator=attrs.validators.in_(("softmax", "logits")))
    _student_header: Any = attrs.field(init=False, default=False, repr=False)

    @property
    def student(self) -> dict[str, Any] | None:
        """The header of the student these weights are (see `vre_semantic.student`), or None for the seed's model
        (and while the weights are not there: then `preflight` says how to get them)."""
        if self._student_header is False:
            try:
                path = self.weights(download=False).path
            except WeightsError:
                return None  # not cached: not known yet
            self._student_header = read_student_header(path)
        return self._student_header  # type: ignore[no-any-return]

    def label_set(self) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
        student = self.student
        if student is not None and student["head"] not in _FLOAT_HEADS:
            return tuple(student["classes"]), tuple(tuple(c) for c in student["colors"])
        meta = self.weight_variant.meta
        return tuple(meta["classes"]), tuple(meta["colors"])

    def _float_head(self) -> bool:
        student = self.student
        return student is not None and student["head"] in _FLOAT_HEADS

    def output_spec(self) -> OutputSpec:
        student = self.student
        if student is not None and student["head"] in _FLOAT_HEADS:
            return OutputSpec(channels=int(student["channels"]),
                              disk_dtype="float16" if student["head"] == "edges" else "float32")
        return super().output_spec()

    def to_disk(self, memory: np.ndarray) -> np.ndarray:
        return Representation.to_disk(self, memory) if self._float_head() else super().to_disk(memory)

    def from_disk(self, disk: np.ndarray) -> np.ndarray:
        if self._float_head():
            return Representation.from_disk(self, disk).astype(np.float32)
        return super().from_disk(disk)

    def make_images(self, memory: np.ndarray) -> np.ndarray:
        return Representation.make_images(self, memory) if self._float_head() else super().make_images(memory)

    def metadata(self) -> dict[str, Any]:
        student = self.student
        meta = Representation.metadata(self) if self._float_head() else super().metadata()
        if student is not None:
            meta["distilled_from"] = {k: student.get(k) for k in (
                "teacher", "teacher_type", "head", "metric", "student_vs_teacher", "trivial_baseline", "held_out",
                "inputs")}
        return meta

    def native_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """The network's size (``input_size``, else a student's training size or the variant's), whatever the
        frame's."""
        student = self.student
        h, w = self.input_size or (student["input_size"] if student is not None else None) \
            or self.weight_variant.meta["input_size"]
        return int(h), int(w)

    def load_model(self, device: Any) -> Any:
        import torch

        from vre_semantic._phg_mae import PHGMAEDistil

        weights = self.weights()
        variant, meta = weights.variant, weights.variant.meta
        student = read_student_header(weights.path)
        self._student_header = student
        if student is None:
            model = PHGMAEDistil(meta["num_filters"], in_channels=meta["in_channels"],
                                 out_channels=meta["out_channels"], rgb_offset=meta["rgb_offset"],
                                 semantic_offset=meta["semantic_offset"], num_classes=len(meta["classes"]))
        else:
            if int(student["num_filters"]) != PHG_MAE_SIZES[meta["size"]]:
                raise WeightsError(f"{weights.path} is a student of {student['num_filters']} filters, not the "
                                   f"{meta['size']} variant; set variant: {student.get('variant')}")
            got = sum(int(c) for c in student["input_channels"])
            model = PHGMAEDistil(int(student["num_filters"]), in_channels=got, out_channels=int(student["channels"]),
                                 rgb_offset=0, semantic_offset=0, num_classes=int(student["channels"]))
        load_into(model, load_safetensors(weights.path), variant.name)
        # channels-last convolutions are 1.5-2x faster on CPU (oneDNN) for these narrow layers, measured at 540p
        net: Any = model  # Module.to's stubs lack memory_format, which it accepts
        return net.to(device, memory_format=torch.channels_last)

    def predict(self, batch: Batch) -> np.ndarray:
        if self._student_header:
            return self._predict_student(batch, self._student_header)
        from vre_semantic._phg_mae import preprocess_rgb

        meta = self.weight_variant.meta
        size = tuple(self.input_size or meta["input_size"])
        x = preprocess_rgb(batch.frames, mean=meta["rgb_mean"], std=meta["rgb_std"], size=size, device=self.device)
        scores = self.model(x)
        if self.scores == "softmax":
            scores = scores.softmax(dim=1)
        return scores.permute(0, 2, 3, 1).float().cpu().numpy()

    def _predict_student(self, batch: Batch, student: dict[str, Any]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        from vre_semantic._distill_train import head_output

        inputs = batch.deps.get("inputs") or (batch.frames,)
        channels = [a.shape[-1] for a in inputs]
        if channels != [int(c) for c in student["input_channels"]]:
            raise WeightsError(f"'{self.name}': the student was trained on inputs of {student['input_channels']} "
                               f"channels ({', '.join(student['inputs'])}), it got {channels}; give it those "
                               f"representations as dependencies (inputs: [...])")
        x = torch.from_numpy(student_input(inputs, student["mean"], student["std"])).to(self.device)
        size = tuple(self.input_size or student["input_size"])
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = x.contiguous(memory_format=torch.channels_last)
        scale = (student["target_mean"], student["target_std"]) if student.get("target_mean") is not None else None
        y = head_output(student["head"], self.model.forward_all(x), scale)
        return y.permute(0, 2, 3, 1).float().cpu().numpy()
