"""`vre distill EXPORT --teacher TASK --student TYPE[:VARIANT] --out DIR/NAME`: train a student on an export.

The student (a PHG-MAE-Distil network, its head sized to the teacher) learns the export's teacher task from its
input tasks, read with `MultiTaskDataset`; the last frames (or, for a folder of exports, some videos) are held out.
It writes DIR/NAME.safetensors (the student, loadable by `semantic/phg-mae-distil` through ``weights_path``),
DIR/pipeline/NAME.yaml (a preset that runs it: ``vre stream --config-dir DIR pipeline=NAME source=...``),
DIR/NAME.checkpoint.safetensors (each epoch: run the command again to resume) and DIR/NAME.json, the JSON
line it prints last. torch is imported only once the arguments and the export have been checked.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from vre_semantic.student import METRICS, student_input, trivial_baseline
from vre_semantic.variants import PHG_MAE_ALIASES, PHG_MAE_SIZES
from vrecore.plugin import ConfigError, MultiTaskDataset

__all__ = ["main"]

STUDENT_TYPES = ("semantic/phg-mae-distil",)
DEFAULT_VARIANT = "150k"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_STATISTICS_FRAMES = 64
"""Training frames read (evenly spread) for the inputs' mean and standard deviation."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vre distill", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("export", help="an export folder, or a folder of exports (one per video)")
    p.add_argument("--teacher", required=True, help="the representation the student learns (pseudo-labels)")
    p.add_argument("--student", required=True, help=f"TYPE[:VARIANT]: {', '.join(STUDENT_TYPES)} with "
                                                     f"{', '.join(PHG_MAE_SIZES)} (default {DEFAULT_VARIANT})")
    p.add_argument("--out", required=True, help="DIR/NAME: writes DIR/NAME.safetensors, DIR/pipeline/NAME.yaml")
    p.add_argument("--inputs", default="rgb", help="the input representations, comma-separated")
    p.add_argument("--epochs", type=int, default=30, help="epochs in all (a resumed run goes on to this many)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held out: the last frames, or videos")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0, help="weights, order of frames and flips")
    p.add_argument("--batch-size", type=int, default=4, help="frames per step")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate")
    p.add_argument("--threads", type=int, default=None, help="torch's CPU threads (1 is often fastest on a busy "
                                                               "machine; default: torch's choice)")
    return p


@attrs.frozen
class Plan:
    """Everything checked before torch is imported."""

    export: Path
    teacher: str
    teacher_type: str | None
    inputs: tuple[str, ...]
    head: str
    classes: tuple[str, ...] | None
    colors: tuple[tuple[int, int, int], ...] | None
    channels: int
    input_channels: tuple[int, ...]
    size: tuple[int, int]
    variant: str
    out_dir: Path
    name: str
    dataset: Any
    train: tuple[int, ...]
    held_out: tuple[int, ...]
    held_out_text: str


def _variant(student: str) -> str:
    type_name, _, variant = student.partition(":")
    if type_name not in STUDENT_TYPES:
        raise ConfigError(f"--student {student!r}: {type_name!r} is not a student type; use "
                          f"{' or '.join(STUDENT_TYPES)}[:{'|'.join(PHG_MAE_SIZES)}]")
    variant = PHG_MAE_ALIASES.get(variant, variant or DEFAULT_VARIANT)
    if variant not in PHG_MAE_SIZES:
        raise ConfigError(f"--student {student!r}: no variant {variant!r}; choose one of {', '.join(PHG_MAE_SIZES)}")
    return variant


def _representation_metadata(export: Path, dataset: Any, task: str) -> dict[str, Any]:
    """The stored ``.repr_metadata.json`` of ``task`` (in the first video holding it, for a folder of exports)."""
    folders = [export / v for v in dataset.videos] if len(dataset.videos) > 1 else [export]
    for folder in folders:
        path = folder / task / ".repr_metadata.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            return data if isinstance(data, dict) else {}
    return {}


def _kind(dataset: Any, teacher: str, metadata: dict[str, Any]) -> tuple[str, tuple[str, ...] | None, Any, int]:
    """(head, classes, colours, output channels) of the teacher."""
    type_name = dataset.task_types()[teacher] or metadata.get("type") or ""
    dtype, shape = dataset.dtypes[teacher], dataset.data_shape[teacher]
    edges = type_name.split("/", 1)[0] == "edges"
    stored = metadata.get("metadata") or {}
    if teacher in dataset.classification_tasks and dtype != "bool":
        classes = tuple(stored.get("classes") or (f"class {i}" for i in range(int(stored.get("num_classes", 0)))))
        if len(classes) < 2:
            raise ConfigError(f"teacher {teacher!r} ({type_name}) is a class map whose classes are not recorded in "
                              f"its metadata; export it again with vre")
        colors = stored.get("colors") or [[int(c) for c in np.random.default_rng(i).integers(0, 255, 3)]
                                          for i in range(len(classes))]
        return ("mask" if len(classes) == 2 else "classes"), classes, tuple(map(tuple, colors)), \
            1 if len(classes) == 2 else len(classes)
    channels = shape[-1] if len(shape) == 3 else 1
    if edges:
        if channels != 1:
            raise ConfigError(f"teacher {teacher!r} ({type_name}) is an edge map of {channels} channels; a student "
                              f"learns one-channel edge maps")
        return "edges", None, None, 1
    if dtype == "bool":
        return "mask", ("background", teacher), ((0, 0, 0), (255, 255, 255)), 1
    return "dense", None, None, channels


def _split(dataset: Any, fraction: float, seed: int) -> tuple[list[int], list[int], str]:
    """Training and held-out item positions: by video for a folder of exports, else the last frames."""
    names = dataset.names
    if len(dataset.videos) > 1:
        parts = dataset.split({"train": 1 - fraction, "held_out": fraction}, seed=seed)
        held = set(parts["held_out"].videos)
        held_out = [i for i, n in enumerate(names) if n.split("/", 1)[0] in held]
        text = f"videos {', '.join(sorted(held))}"
    else:
        order = sorted(range(len(names)), key=lambda i: int(names[i]))
        k = math.ceil(fraction * len(order))
        held_out = order[len(order) - k:]
        text = f"frames {names[held_out[0]]}..{int(names[held_out[-1]]) + 1}" if held_out else "none"
    train = [i for i in range(len(names)) if i not in set(held_out)]
    if not train or not held_out:
        raise ConfigError(f"{dataset.path}: {len(names)} frame(s) in {len(dataset.videos)} video(s) cannot be split "
                          f"into training and held-out parts with --val-fraction {fraction}; export more frames")
    return train, held_out, text


def plan(args: argparse.Namespace) -> Plan:
    """Check the arguments and the export (no torch): a ConfigError naming the problem and its fix otherwise."""
    variant = _variant(args.student)
    out = Path(args.out)
    if not _NAME.match(out.name) or out.suffix == ".safetensors":
        raise ConfigError(f"--out {args.out!r}: give DIR/NAME, NAME a plain file name without suffix (letters, "
                          f"digits, '.', '_', '-'); it writes DIR/NAME.safetensors")
    inputs = tuple(t.strip() for t in args.inputs.split(",") if t.strip())
    for what, name in [("--teacher", args.teacher), *(("--inputs", t) for t in inputs)]:
        if not _NAME.match(name):
            raise ConfigError(f"{what} {name!r} is not a representation name (letters, digits, '.', '_', '-')")
    if not inputs or args.teacher in inputs:
        raise ConfigError(f"--inputs {args.inputs!r}: give the input representations, without the teacher")
    if not 0 < args.val_fraction < 1:
        raise ConfigError(f"--val-fraction {args.val_fraction}: give a fraction between 0 and 1, e.g. 0.2")
    for what, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--threads", args.threads or 1)):
        if value < 1:
            raise ConfigError(f"{what} {value}: give a positive number")
    export = Path(args.export)
    if not export.is_dir():
        raise ConfigError(f"export {export} does not exist; give the output_dir of a `vre export`")
    try:
        everything = MultiTaskDataset(export, to_tensor=False, progress=False)
    except ConfigError as err:
        raise ConfigError(f"export {export} holds no stored representation to learn from ({err})") from None
    stored = everything.task_names
    for what, task in [("teacher", args.teacher), *(("input", t) for t in inputs)]:
        if task not in stored:
            raise ConfigError(f"{what} {task!r} is not in export {export}; it holds {', '.join(stored)}")
    dataset = MultiTaskDataset(export, tasks=[*inputs, args.teacher], handle_missing="drop", to_tensor=False,
                               progress=False)
    if len(dataset) == 0:
        raise ConfigError(f"export {export} has no frame where {', '.join([*inputs, args.teacher])} are all stored; "
                          f"export those frames first")
    shapes = dataset.data_shape
    size = tuple(shapes[args.teacher][:2])
    for task in inputs:
        if tuple(shapes[task][:2]) != size:
            raise ConfigError(f"input {task!r} is {shapes[task][0]}x{shapes[task][1]} but teacher {args.teacher!r} is "
                              f"{size[0]}x{size[1]} (height x width); export both at one size (output_size=[h, w])")
        if task in dataset.classification_tasks and dataset.dtypes[task] != "bool":
            raise ConfigError(f"input {task!r} is a class map; a student's inputs are images or float maps")
    metadata = _representation_metadata(export, dataset, args.teacher)
    head, classes, colors, channels = _kind(dataset, args.teacher, metadata)
    train, held_out, text = _split(dataset, args.val_fraction, args.seed)
    return Plan(export=export, teacher=args.teacher, teacher_type=dataset.task_types()[args.teacher],
                inputs=inputs, head=head, classes=classes, colors=colors, channels=channels,
                input_channels=tuple(shapes[t][-1] if len(shapes[t]) == 3 else 1 for t in inputs),
                size=(int(size[0]), int(size[1])), variant=variant, out_dir=out.parent, name=out.name,
                dataset=dataset, train=tuple(train), held_out=tuple(held_out), held_out_text=text)


# -- reading items ------------------------------------------------------------------------------------------------
class Items:
    """Network inputs and targets of dataset items (what the training loop asks for)."""

    def __init__(self, p: Plan, mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,),
                 target_scale: tuple[Sequence[float], Sequence[float]] | None = None) -> None:
        self.plan, self.mean, self.std, self.target_scale = p, list(mean), list(std), target_scale

    def arrays(self, positions: Sequence[int]) -> tuple[list[np.ndarray], np.ndarray]:
        """The inputs' memory forms (B, H, W, c) and the teacher's items (B, ...)."""
        items = [self.plan.dataset[int(i)][0] for i in positions]
        inputs = [np.stack([np.asarray(it[t]) for it in items]) for t in self.plan.inputs]
        inputs = [a[..., None] if a.ndim == 3 else a for a in inputs]
        return inputs, np.stack([np.asarray(it[self.plan.teacher]) for it in items])

    def __call__(self, positions: Sequence[int], standardized: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Network input and target; dense targets in units of the training targets' spread (`target_scale`)
        unless not ``standardized``."""
        inputs, target = self.arrays(positions)
        x = student_input(inputs, self.mean, self.std)
        if self.plan.head == "classes":
            return x, target.astype(np.int64)
        if self.plan.head == "mask":
            foreground = target if target.dtype == np.bool_ else (target == 1)[..., None]
            return x, np.ascontiguousarray(foreground.astype(np.float32).transpose(0, 3, 1, 2))
        target = target[..., None] if target.ndim == 3 else target
        if standardized and self.target_scale is not None:
            m, s = (np.asarray(v, np.float32) for v in self.target_scale)
            target = (target - m) / np.maximum(s, np.float32(1e-6))
        return x, np.ascontiguousarray(target.astype(np.float32).transpose(0, 3, 1, 2))

    def statistics(self) -> tuple[list[float], list[float], tuple[list[float], list[float]] | None]:
        """Per-channel mean and standard deviation of the inputs over (a spread of) the training frames; for a
        dense teacher, those of its values too."""
        train = self.plan.train
        picks = [train[i] for i in np.linspace(0, len(train) - 1, min(len(train), _STATISTICS_FRAMES)).astype(int)]
        inputs, target = self.arrays(picks)
        x = np.concatenate(inputs, axis=-1).astype(np.float64)
        x = x.reshape(-1, x.shape[-1])
        scale = None
        if self.plan.head == "dense":
            y = target.astype(np.float64).reshape(-1, self.plan.channels)
            scale = (y.mean(axis=0).tolist(), y.std(axis=0).tolist())
        return x.mean(axis=0).tolist(), x.std(axis=0).tolist(), scale


def _teacher_ms(p: Plan) -> float | None:
    """Milliseconds per frame the export recorded for the teacher (each record: a frame's share of its batch)."""
    folders = [p.export / v for v in p.dataset.videos] if len(p.dataset.videos) > 1 else [p.export]
    seconds = []
    for folder in folders:
        path = folder / p.teacher / ".frames.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    value = json.loads(line).get("seconds")
                except (ValueError, AttributeError):
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    seconds.append(float(value))
    return round(float(np.mean(seconds)) * 1000, 2) if seconds else None


def _run_key(p: Plan, args: argparse.Namespace) -> dict[str, Any]:
    digests = {}
    for task in (*p.inputs, p.teacher):
        digests[task] = _representation_metadata(p.export, p.dataset, task).get("fingerprint_digest")
    return {"export": str(p.export.resolve()), "teacher": p.teacher, "inputs": list(p.inputs),
            "fingerprints": digests, "student": f"{STUDENT_TYPES[0]}:{p.variant}", "seed": args.seed,
            "val_fraction": args.val_fraction, "batch_size": args.batch_size, "lr": args.lr,
            "frames": hashlib.sha256("\n".join(p.dataset.names).encode()).hexdigest()[:16]}


def _preset(p: Plan, weights: Path) -> str:
    """The pipeline file that runs the student: its inputs as the export made them, then the student."""
    import yaml

    reps: dict[str, Any] = {}

    def add(task: str) -> None:
        if task in reps:
            return
        meta = _representation_metadata(p.export, p.dataset, task)
        if not meta.get("type"):
            raise ConfigError(f"input {task!r} of {p.export} records no type; export it with vre")
        roles = meta.get("dependency_roles") or {}
        for value in roles.values():
            for dep in (value if isinstance(value, list) else [value]):
                add(dep)
        entry: dict[str, Any] = {"type": meta["type"]}
        if roles:
            entry["dependencies"] = roles
        if meta.get("parameters"):
            entry["parameters"] = meta["parameters"]
        reps[task] = entry

    for task in p.inputs:
        add(task)
    reps[p.name] = {"type": STUDENT_TYPES[0], "dependencies": {"inputs": list(p.inputs)},
                    "parameters": {"variant": p.variant, "weights_path": str(weights.resolve())}}
    head = (f"# @package _global_\n# {p.name}: a {p.variant} PHG-MAE-Distil student of {p.teacher!r} ({p.teacher_type}),"
            f" made by `vre distill`\n# vre stream --config-dir {p.out_dir} pipeline={p.name} source=...\n")
    return head + yaml.safe_dump({"representations": reps}, sort_keys=False, default_flow_style=None)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _train(p: Plan, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from vre_semantic._distill_train import Trainer, metric_of, save_student

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: no CUDA device here; use --device cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    p.out_dir.mkdir(parents=True, exist_ok=True)
    mean, std, target_scale = Items(p).statistics()
    items = Items(p, mean, std, target_scale)
    trainer = Trainer(head=p.head, num_filters=PHG_MAE_SIZES[p.variant], in_channels=sum(p.input_channels),
                      out_channels=p.channels, train=p.train, load=items, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, device=args.device, checkpoint=p.out_dir / f"{p.name}.checkpoint.safetensors",
                      key=_run_key(p, args), target_scale=target_scale)
    trainer.run(args.epochs)
    held = list(p.held_out)
    output = trainer.predict(held)
    target = items(held, standardized=False)[1]
    n = len(p.classes or ())
    value = metric_of(p.head, output, target, n)
    if p.head == "classes":
        counts = np.bincount(np.concatenate([items(p.train[i:i + 8])[1].ravel()
                                             for i in range(0, len(p.train), 8)]), minlength=n)
        typical: Any = int(counts.argmax())
    elif p.head == "dense":
        assert target_scale is not None
        typical = np.asarray(target_scale[0], np.float32)[None, :, None, None]
    else:
        typical = None
    baseline = trivial_baseline(p.head, target > 0.5 if p.head in ("mask", "edges") else target, n, typical)
    result = {"metric": METRICS[p.head], "student_vs_teacher": round(value, 4), "trivial_baseline": round(baseline, 4),
              "student_ms_per_frame": round(trainer.ms_per_frame(held[0]), 2), "teacher_ms_per_frame": _teacher_ms(p),
              "train_seconds": round(trainer.seconds, 1), "epochs": trainer.epoch,
              "losses": [round(v, 5) for v in trainer.losses], "held_out": p.held_out_text,
              "size": list(p.size), "device": args.device, "threads": torch.get_num_threads()}
    header = {"variant": p.variant, "num_filters": PHG_MAE_SIZES[p.variant], "head": p.head, "channels": p.channels,
              "classes": list(p.classes) if p.classes else None,
              "colors": [list(c) for c in p.colors] if p.colors else None, "inputs": list(p.inputs),
              "input_channels": list(p.input_channels), "mean": mean, "std": std, "input_size": list(p.size),
              "target_mean": target_scale[0] if target_scale else None,
              "target_std": target_scale[1] if target_scale else None,
              "teacher": p.teacher, "teacher_type": p.teacher_type, **{k: result[k] for k in (
                  "metric", "student_vs_teacher", "trivial_baseline", "held_out", "epochs")}, "seed": args.seed}
    weights = p.out_dir / f"{p.name}.safetensors"
    save_student(trainer.state_dict(), header, weights)
    (p.out_dir / "pipeline").mkdir(exist_ok=True)
    _write_text(p.out_dir / "pipeline" / f"{p.name}.yaml", _preset(p, weights))
    result.update({"weights": str(weights), "preset": str(p.out_dir / "pipeline" / f"{p.name}.yaml")})
    _write_text(p.out_dir / f"{p.name}.json", json.dumps(result) + "\n")
    return result


def main(argv: list[str]) -> int:
    """Train, save, evaluate; print the result as the last line (JSON). Exit 2 on a bad argument or export."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage line and the error
        return int(exc.code) if isinstance(exc.code, int) else 2
    p = plan(args)
    print(f"vre distill: {p.teacher!r} ({p.teacher_type}, {p.head}) <- {', '.join(p.inputs)} at {p.size[0]}x"
          f"{p.size[1]}: {len(p.train)} training frames, held out {p.held_out_text}; {p.variant} student "
          f"-> {p.out_dir / p.name}.safetensors", file=sys.stderr)
    try:
        result = _train(p, args)
    except KeyboardInterrupt:
        print(f"vre distill: interrupted; the checkpoint of the last finished epoch is kept in {p.out_dir}: run the "
              f"same command again to resume", file=sys.stderr)
        return 130
    print(json.dumps(result))
    return 0

