"""The seed tool's (VRE 1.18) config files, translated into a vre pipeline.

The seed's format: ``representations`` (name -> ``type``, ``dependencies``, ``parameters`` and optional
``compute_parameters``, ``io_parameters``, ``learned_parameters``) and the ``default_compute_parameters``,
``default_io_parameters``, ``default_learned_parameters`` blocks; the paper's short listing
(``globals``, ``deps``, ``params``) too. Every key is mapped to vre's or refused with one line naming it
and the nearest vre has: nothing is dropped silently.

The translation reproduces what the seed computes and stores where vre can: its type names, its
parameter names (``model_id``, ``disk_data_argmax``, ``inference_height``...), its conventions (Canny
on the colour image, x-mirrored normals, flow units) and its stored forms (float32, ``disk_layout:
seed``); the notes it returns say what still differs. Only the seed's own types are known here: types
of the installed plugins are taken as they are.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from vrecore.errors import ConfigError, VreError

__all__ = ["SEED_TYPES", "SeedTranslation", "load_seed_config", "translate_seed_config"]

TOP_KEYS = ("representations", "default_compute_parameters", "default_io_parameters", "default_learned_parameters",
            "globals")
REPR_KEYS = ("type", "dependencies", "parameters", "compute_parameters", "io_parameters", "learned_parameters")
PAPER_KEYS = {"deps": "dependencies", "params": "parameters"}
"""The paper's short listing (section 2.2) names these differently."""
SETTING_KEYS = ("batch_size", "binary_format", "image_format", "compress", "output_size", "output_dtype", "device")
"""Keys of the seed's compute, io and learned blocks (the seed moved some between blocks over versions, so
each is accepted in any block)."""

Translator = Callable[[Any, Mapping[str, Any]], dict[str, Any]]


def _same(name: str) -> Translator:
    return lambda value, _: {name: value}


def _mask2former_variant(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    return {"variant": str(value)}  # vre accepts the seed's model ids (47429163_0...) as variant names


def _disk_form(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    return {"disk_form": "argmax" if value else "probabilities"}


def _marigold_variant(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    text = str(value)
    return {"variant": text[len("marigold-"):] if text.startswith("marigold-") else text}


def _pair(first: str, second: str, build: Callable[[Any, Any], dict[str, Any]]) -> tuple[Translator, Translator]:
    """Translators of two seed parameters that make one of ours (both must be given)."""
    def from_first(value: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        if second not in params:
            raise ValueError(f"needs '{second}' too")
        return build(value, params[second])

    def from_second(value: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        if first not in params:
            raise ValueError(f"needs '{first}' too")
        return {}

    return from_first, from_second


_RAFT_HEIGHT, _RAFT_WIDTH = _pair("inference_height", "inference_width",
                                  lambda h, w: {"input_size": [int(h), int(w)]})
_SENSOR_WIDTH, _SENSOR_HEIGHT = _pair("sensor_width", "sensor_height",
                                      lambda w, h: {"sensor_size": [int(w), int(h)]})


def _raft_small(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
    return {"variant": "small" if value else "things"}


def _only(expected: Any, why: str) -> Translator:
    def check(value: Any, _: Mapping[str, Any]) -> dict[str, Any]:
        if value != expected and not (expected is None and value is None):
            raise ValueError(f"only {expected!r} is supported ({why})")
        return {}

    return check


@attrs.frozen
class SeedType:
    """How one of the seed's types becomes vre's."""

    ours: str
    parameters: Mapping[str, Translator] = attrs.field(factory=dict)
    reads_frames: bool = False
    """The seed reads the video itself where vre's type takes an ``rgb`` dependency."""
    fixed: Mapping[str, Any] = attrs.field(factory=dict)
    """vre parameters that make it compute and store what the seed does."""
    note: str | None = None
    """What still differs from the seed's output."""


_FLOW = {"delta": _same("delta"), "flow_delta_frames": _same("delta")}

SEED_TYPES: dict[str, SeedType | None] = {
    "color/rgb": SeedType("color/rgb"),
    "color/hsv": SeedType("color/hsv"),
    "soft-segmentation/python-halftone": SeedType("soft-segmentation/halftone", {
        k: _same(k) for k in ("sample", "scale", "percentage", "angles", "antialias", "resolution")},
        reads_frames=True),
    "soft-segmentation/generalized-boundaries": SeedType("soft-segmentation/generalized-boundaries", {
        k: _same(k) for k in ("use_median_filtering", "adjust_to_rgb", "max_channels")}, reads_frames=True),
    "soft-segmentation/fastsam": SeedType("soft-segmentation/fastsam", {
        "variant": _same("variant"), "iou": _same("iou"), "conf": _same("conf")},
        note="FastSAM stores one instance map (uint16) where the seed stores its 32 mask prototypes and boxes"),
    "edges/canny": SeedType("edges/canny", {k: _same(k) for k in ("threshold1", "threshold2", "aperture_size",
                                                                   "l2_gradient")},
                            reads_frames=True, fixed={"color": True, "disk_layout": "seed"}),
    "edges/dexined": SeedType("edges/dexined", fixed={"disk_layout": "seed"}),
    "depth/dpt": SeedType("depth/dpt", fixed={"disk_layout": "seed"}),
    "depth/marigold": SeedType("depth/marigold", {
        "variant": _marigold_variant, "denoising_steps": _same("denoising_steps"),
        "ensemble_size": _same("ensemble_size"), "processing_resolution": _same("processing_resolution"),
        "seed": _same("seed")}, fixed={"disk_layout": "seed"}),
    "semantic-segmentation/safeuav": SeedType("semantic/phg-mae-distil", {
        "variant": _same("variant"), "disk_data_argmax": _disk_form}),
    "semantic-segmentation/mask2former": SeedType("semantic/mask2former", {
        "model_id": _mask2former_variant, "disk_data_argmax": _disk_form}),
    "optical-flow/rife": SeedType("optical-flow/rife", {
        "uhd": _same("uhd"), "compute_backward_flow": _only(False, "the seed itself supports only forward flow"),
        **_FLOW}, fixed={"units": "seed"}),
    "optical-flow/raft": SeedType("optical-flow/raft", {
        "inference_height": _RAFT_HEIGHT, "inference_width": _RAFT_WIDTH, "iters": _same("iters"),
        "small": _raft_small, "seed": _only(None, "vre's RAFT is deterministic; leave seed out"), **_FLOW},
        fixed={"units": "seed"}),
    "normals/depth-svd": SeedType("normals/depth-svd", {
        "sensor_fov": _same("sensor_fov"), "sensor_size": _same("sensor_size"), "window_size": _same("window_size"),
        "sensor_width": _SENSOR_WIDTH, "sensor_height": _SENSOR_HEIGHT,
        "input_downsample_step": _only(None, "vre fits every pixel's window"),
        "stride": _only(None, "vre fits every pixel's window")}, fixed={"convention": "seed"}),
    "descriptor/sift": SeedType("descriptor/sift", {
        "sigma": _same("sigma"), "num_intervals": _same("num_intervals"), "max_keypoints": _same("max_keypoints"),
        "process_scale": _same("process_scale"),
        "assumed_blur": _only(0.5, "OpenCV's SIFT assumes the seed's default blur"),
        "image_border_width": _only(5, "OpenCV's SIFT uses the seed's default border")},
        note="OpenCV's SIFT where the seed has its own numpy SIFT: keypoints differ slightly"),
}
"""Every type of the seed's repository (VRE 1.18.6) -> its vre translation (None: not provided by vre)."""

_IMPLICIT_RGB = "\0rgb"  # stands for the rgb representation until its name is known
_NOT_PROVIDED: dict[str, str] = {}  # every type of the seed has a vre translation



def _setting_blocks(source: Mapping[str, Any], blocks: tuple[str, ...], where: str,
                    problems: list[str]) -> dict[str, Any]:
    """The engine settings a seed config gives in ``blocks`` of ``source``; each unsupported key is a problem."""
    settings: dict[str, Any] = {}
    for block in blocks:
        values = source.get(block) or {}
        if not isinstance(values, Mapping):
            problems.append(f"{where}'{block}' must be a mapping, got {values!r}")
            continue
        for key, value in values.items():
            if key not in SETTING_KEYS:
                problems.append(f"{where}'{block}.{key}' is not supported{_nearest(key, SETTING_KEYS)}")
            else:
                settings[key] = value
    return settings

@attrs.frozen
class SeedTranslation:
    """A seed config as a vre pipeline (``config``) and what the reader should know about it (``notes``)."""

    config: dict[str, Any]
    notes: list[str]

    def to_yaml(self, source: str = "") -> str:
        """The pipeline as a ``conf/pipeline/NAME.yaml`` file (``# @package _global_``) with the notes on top."""
        import yaml

        origin = f" {source}" if source else ""
        head = ["# @package _global_", f"# Translated by `vre convert-config` from the seed tool's config{origin}."]
        head += [f"# note: {n}" for n in self.notes]
        return "\n".join(head) + "\n" + yaml.safe_dump(self.config, sort_keys=False, default_flow_style=None, width=110)


def load_seed_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a seed config file (YAML; ``${oc.env:VAR,default}`` is kept for Hydra to resolve)."""
    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"seed config '{path}' does not exist; give the path of the seed tool's YAML config") from None
    except (OSError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"seed config '{path}' is not readable YAML ({first})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"seed config '{path}' must be a mapping with 'representations'; got {type(data).__name__}")
    return data


def translate_seed_config(seed: Mapping[str, Any]) -> SeedTranslation:
    """Translate a seed config (as loaded) into a vre pipeline config; every problem is one line of one
    ConfigError."""
    problems: list[str] = []
    notes: list[str] = []
    for key in seed:
        if key not in TOP_KEYS:
            problems.append(f"top-level key '{key}' is not part of the seed's format{_nearest(key, TOP_KEYS)}")
    reps = seed.get("representations")
    if not isinstance(reps, Mapping) or not reps:
        raise ConfigError("the seed config has no representations; it needs a 'representations:' mapping")
    defaults = _setting_blocks(seed, ("globals", "default_compute_parameters", "default_io_parameters",
                                      "default_learned_parameters"), "", problems)
    global_settings = _settings("the defaults", defaults, problems)
    if "stored_dtype" in global_settings:
        problems.append(f"default output_dtype {global_settings.pop('stored_dtype')!r} is not supported: it applies to "
                        f"floating-point outputs in vre (float16, float32, float64); set it per representation")
    global_settings.setdefault("output_dtype", "float32")  # the seed stores floats as float32 unless told
    config: dict[str, Any] = dict(global_settings)
    out: dict[str, dict[str, Any]] = {}
    rgb_name = next((n for n, s in reps.items() if isinstance(s, Mapping) and s.get("type") == "color/rgb"), None)
    needs_rgb = False
    for name, spec in reps.items():
        entry = _representation(str(name), spec, defaults, global_settings, problems, notes)
        if entry is None:
            continue
        seed_type = SEED_TYPES.get(str(spec.get("type")))
        if seed_type is not None and seed_type.reads_frames and not entry.get("dependencies"):
            needs_rgb = True
            entry["dependencies"] = [_IMPLICIT_RGB]
        out[str(name)] = entry
    if needs_rgb:
        if rgb_name is None:
            rgb_name = "rgb" if "rgb" not in out else _free_name("rgb", out)
            out = {rgb_name: {"type": "color/rgb", "export": False}, **out}
            notes.append(f"added '{rgb_name}' (color/rgb, not exported): vre's Canny, halftone and generalized "
                         f"boundaries take an rgb dependency where the seed reads the video itself")
        for entry in out.values():
            if entry.get("dependencies") == [_IMPLICIT_RGB]:
                entry["dependencies"] = [rgb_name]
    config["representations"] = out
    if problems:
        raise ConfigError("\n".join(problems))
    _check_builds(config, notes)
    return SeedTranslation(config, notes)


def _representation(name: str, spec: Any, seed_defaults: Mapping[str, Any], defaults: Mapping[str, Any],
                    problems: list[str], notes: list[str]) -> dict[str, Any] | None:
    """One representation's vre entry: its type, dependencies, parameters and the settings where its own
    differ from the run's (``defaults``, translated from the seed's ``seed_defaults``)."""
    where = f"representation '{name}'"
    if not isinstance(spec, Mapping):
        problems.append(f"{where} must be a mapping with type, dependencies and parameters; got {spec!r}")
        return None
    spec = {PAPER_KEYS.get(k, k): v for k, v in spec.items()}
    for key in spec:
        if key not in REPR_KEYS:
            problems.append(f"{where}: key '{key}' is not part of the seed's format{_nearest(key, REPR_KEYS)}")
    type_name = spec.get("type")
    if not isinstance(type_name, str) or not type_name:
        problems.append(f"{where} has no type")
        return None
    params = dict(spec.get("parameters") or {})
    settings = _setting_blocks(spec, ("compute_parameters", "io_parameters", "learned_parameters"), f"{where}: ",
                               problems)
    entry: dict[str, Any] = {}
    if type_name in SEED_TYPES:
        seed_type = SEED_TYPES[type_name]
        if seed_type is None:
            problems.append(f"{where}: type '{type_name}' is not supported: {_NOT_PROVIDED[type_name]}")
            return None
        entry["type"] = seed_type.ours
        ours: dict[str, Any] = dict(seed_type.fixed)
        for key, value in params.items():
            if key in seed_type.parameters:
                try:
                    ours.update(seed_type.parameters[key](value, params))
                except (ValueError, KeyError, TypeError) as e:
                    problems.append(f"{where} ({type_name}): parameter '{key}': {e}")
            elif key in SETTING_KEYS:  # the paper's listing puts batch_size among the parameters
                settings[key] = value
            else:
                problems.append(f"{where} ({type_name}): parameter '{key}' is not supported"
                                f"{_nearest(key, list(seed_type.parameters))}")
        if seed_type.note:
            notes.append(f"'{name}' ({seed_type.ours}): {seed_type.note}")
        if type_name.startswith("semantic-segmentation/") and ours.get("disk_form") == "probabilities":
            settings.setdefault("output_dtype", "float16")  # the seed stores probabilities as float16
    else:
        entry["type"] = type_name  # not a seed type: one of the installed plugins', taken as it is
        ours = params
    deps = spec.get("dependencies") or []
    if not isinstance(deps, (list, tuple)):
        problems.append(f"{where}: dependencies must be a list of names, got {deps!r}")
        deps = []
    if deps:
        entry["dependencies"] = [str(d) for d in deps]
    if ours:
        entry["parameters"] = ours
    _settings(where, settings, problems)  # its own keys' problems (the defaults' are reported once)
    mine = _settings(where, {**seed_defaults, **settings}, [])  # e.g. its compress with the default binary_format
    device = mine.pop("device", None)
    if device is not None and device != defaults.get("device"):
        problems.append(f"{where}: learned_parameters.device {device!r} differs from the default "
                        f"{defaults.get('device')!r}; vre runs every learned representation on one device "
                        f"(device=...): split the config in two runs to use two devices")
    entry.update({k: v for k, v in mine.items() if defaults.get(k) != v})
    return entry


def _settings(where: str, values: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """The seed's compute/io/learned keys as vre's settings."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "batch_size":
            out["batch_size"] = value
        elif key == "output_size":
            if value is not None:
                out["output_size"] = list(value) if isinstance(value, (list, tuple)) else value
        elif key == "output_dtype":
            text = str(value)
            if text.startswith("float"):
                out["output_dtype"] = text
            else:
                out["stored_dtype"] = text  # checked against what vre stores once the graph is built
        elif key == "binary_format":
            if value in ("not-set", None):
                out["binary_format"] = "none"
            elif value == "npz":
                out["binary_format"] = "npz-compressed" if values.get("compress", True) else "npz"
            else:
                problems.append(f"{where}: binary_format {value!r} is not supported; nearest: npz (vre stores "
                                f"npz, plain or compressed)")
        elif key == "image_format":
            if value in ("not-set", None):
                out["image_format"] = "none"
            elif value in ("png", "jpg"):
                out["image_format"] = value
            else:
                problems.append(f"{where}: image_format {value!r} is not supported; nearest: png, jpg")
        elif key == "compress":
            if "binary_format" not in values and isinstance(value, bool):
                out["binary_format"] = "npz-compressed" if value else "npz"
        elif key == "device":
            out["device"] = value
    return out


def _check_builds(config: dict[str, Any], notes: list[str]) -> None:
    """Build the graph now, so that a wrong parameter or a missing plugin is found here; resolve the
    seed's non-float output_dtype against what vre stores."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from vrecore.export.fingerprint import disk_form
    from vrecore.graph.build import build_graph

    try:
        container = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    except (OmegaConfBaseException, RecursionError) as e:
        key = str(getattr(e, "full_key", "") or "")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"the seed config's value {key}={_raw_value(config, key)!r} has an interpolation that cannot be "
                          f"resolved ({first}); write the value itself") from None
    assert isinstance(container, dict)
    resolved: dict[str, Any] = {str(k): v for k, v in container.items()}
    stored_dtypes = {n: s.pop("stored_dtype") for n, s in config["representations"].items() if "stored_dtype" in s}
    for spec in resolved["representations"].values():
        spec.pop("stored_dtype", None)
    try:
        graph = build_graph(resolved)
    except VreError as e:
        raise ConfigError(f"the translated config does not build: {e}") from e
    problems = []
    for name, wanted in stored_dtypes.items():
        _, dtype = disk_form(graph[name], (2, 3))
        if dtype == wanted:
            notes.append(f"'{name}': output_dtype {wanted} is what vre stores for it already")
        else:
            problems.append(f"representation '{name}': output_dtype {wanted!r} is not supported for it: vre stores "
                            f"{dtype} (output_dtype applies to floating-point outputs: float16, float32, float64)")
    if problems:
        raise ConfigError("\n".join(problems))


def _raw_value(config: Mapping[str, Any], key: str) -> str | None:
    """The unresolved text at dotted ``key`` of ``config`` (the interpolation as written), if it is one."""
    value: Any = config
    for part in key.split(".") if key else ():
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value if isinstance(value, str) else None


def _free_name(base: str, taken: Mapping[str, Any]) -> str:
    k = 2
    while f"{base}{k}" in taken:
        k += 1
    return f"{base}{k}"


def _nearest(key: str, choices: Any) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f"; nearest: {close[0]}" if close else f"; supported: {', '.join(choices) or 'none'}"
