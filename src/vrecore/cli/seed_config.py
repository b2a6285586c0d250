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
of the installed plugins are taken as they are. Each plugin maps the seed's names it owns
(`register_seed_types`, `vrecore.graph.seed_types.SeedType`).
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from vrecore.errors import ConfigError, VreError
from vrecore.graph.build import NATIVE
from vrecore.graph.seed_types import SeedType

__all__ = ["SeedTranslation", "load_seed_config", "seed_types", "translate_seed_config"]

TOP_KEYS = ("representations", "default_compute_parameters", "default_io_parameters", "default_learned_parameters",
            "globals")
REPR_KEYS = ("type", "dependencies", "parameters", "compute_parameters", "io_parameters", "learned_parameters")
PAPER_KEYS = {"deps": "dependencies", "params": "parameters"}
"""The paper's short listing (section 2.2) names these differently."""
SETTING_KEYS = ("batch_size", "binary_format", "image_format", "compress", "output_size", "output_dtype", "device")
"""Keys of the seed's compute, io and learned blocks (the seed moved some between blocks over versions, so
each is accepted in any block)."""

def seed_types() -> dict[str, SeedType]:
    """The seed's type names the installed plugins (core's own included) translate, each with its `SeedType`."""
    from vrecore.graph.registry import get_registry

    return {name: entry.load() for name, entry in get_registry().extensions("seed type").items()}


_IMPLICIT_RGB = "\0rgb"  # stands for the rgb representation until its name is known


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
    """Read a seed config file (YAML; its ``${oc.env:...}`` / ``${oc.decode:...}`` are resolved on translation)."""
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
    seed = _resolved(seed)
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
    global_settings.setdefault("output_size", NATIVE)  # without output_size the seed stores each type at its own size
    config: dict[str, Any] = dict(global_settings)
    out: dict[str, dict[str, Any]] = {}
    types = seed_types()
    rgb_name = next((n for n, s in reps.items() if isinstance(s, Mapping) and s.get("type") == "color/rgb"), None)
    frame_readers: list[str] = []
    for name, spec in reps.items():
        entry = _representation(str(name), spec, types, defaults, global_settings, problems, notes)
        if entry is None:
            continue
        seed_type = types.get(str(spec.get("type")))
        if seed_type is not None and seed_type.reads_frames and not entry.get("dependencies"):
            frame_readers.append(seed_type.ours)
            entry["dependencies"] = [_IMPLICIT_RGB]
        out[str(name)] = entry
    if frame_readers:
        resized = rgb_name is not None and out[rgb_name].get("output_size", config.get("output_size")) not in (None, NATIVE)
        if rgb_name is None or resized:  # the seed's readers see the video's own frames, never a resized rgb
            rgb_name = "rgb" if "rgb" not in out else _free_name("rgb", out)
            out = {rgb_name: {"type": "color/rgb", "export": False}, **out}
            notes.append(f"added '{rgb_name}' (color/rgb, not exported, at the frame's size): vre's "
                         f"{', '.join(sorted(set(frame_readers)))} take an rgb dependency where the seed reads the "
                         f"video itself")
            if config.get("output_size") not in (None, NATIVE):  # every other representation keeps the config's size
                size = config.pop("output_size")
                for name, entry in out.items():
                    if name != rgb_name:
                        entry.setdefault("output_size", size)
        for entry in out.values():
            if entry.get("dependencies") == [_IMPLICIT_RGB]:
                entry["dependencies"] = [rgb_name]
    config["representations"] = out
    if problems:
        raise ConfigError("\n".join(problems))
    _check_builds(config, notes)
    return SeedTranslation(config, notes)


def _resolved(seed: Mapping[str, Any]) -> dict[str, Any]:
    """The config with its interpolations (``${oc.env:VAR,default}``, ``${oc.decode:...}``) resolved first, in this
    process's environment, as the seed does when it loads a config: ``compress: ${oc.decode:${oc.env:COMPRESS,False}}``
    is False unless COMPRESS says otherwise."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        resolved = OmegaConf.to_container(OmegaConf.create(dict(seed)), resolve=True)
    except (OmegaConfBaseException, RecursionError, ValueError) as e:
        key = str(getattr(e, "full_key", "") or "")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"the seed config's value {key}={_raw_value(seed, key)!r} has an interpolation that cannot be "
                          f"resolved ({first}); set the environment variable it names or write the value itself") from None
    assert isinstance(resolved, dict)
    return {str(k): v for k, v in resolved.items()}


def _representation(name: str, spec: Any, types: Mapping[str, SeedType], seed_defaults: Mapping[str, Any],
                    defaults: Mapping[str, Any], problems: list[str], notes: list[str]) -> dict[str, Any] | None:
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
    if type_name in types:
        seed_type = types[type_name]
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
        for key, value in (seed_type.settings(ours) if seed_type.settings is not None else {}).items():
            if key == "output_size" and seed_defaults.get("output_size") is not None:
                continue  # the config's size wins over the type's own, as in the seed
            settings.setdefault(key, value)
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

    from vrecore.graph.build import build_graph, disk_form

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
