"""The `vre` command: export (a Hydra app), list, plugins, metadata, convert-weights, demo."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vrecore.errors import VreError

USAGE = """usage: vre COMMAND [ARGS]

commands:
  export [KEY=VALUE ...]   export representations of a video (Hydra overrides; -m for multirun)
  demo [KEY=VALUE ...]     export the embedded sample clip with previews into ./vre_demo
  list [--json]            representation types with provider, parameters and dependencies
  plugins                  installed plugin distributions and versions
  metadata OUTPUT_DIR      regenerate the metadata of an export from the files on disk
  convert-weights SRC DST  convert a legacy .pth/.ckpt checkpoint to safetensors

examples:
  vre export video=clip.mp4 output_dir=out pipeline=rgb_hsv frames=0..100 image_format=jpg
  vre export -m video=a.mp4,b.mp4 output_root=exports     (exports/a, exports/b)
  vre export --config-dir my_configs pipeline=my_pipeline video=clip.mp4
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vre` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    handlers = {"export": _export, "demo": _demo, "list": _list, "plugins": _plugins, "metadata": _metadata,
                "convert-weights": _convert_weights}
    if command not in handlers:
        print(f"vre: error: unknown command {command!r}; run `vre --help` for the commands", file=sys.stderr)
        return 2
    try:
        return handlers[command](rest)
    except VreError as e:
        print(f"vre {command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"vre {command}: interrupted; frames already written are kept", file=sys.stderr)
        return 130


# -- export ----------------------------------------------------------------------------------------
def _export(args: list[str]) -> int:
    import hydra

    from vrecore.config import register_schemas

    register_schemas()
    codes: list[int] = []

    def task(cfg: Any) -> None:
        codes.append(_run_export_config(cfg))

    sys.argv = ["vre export", *args]
    hydra.main(version_base="1.3", config_path="conf", config_name="export")(task)()
    return max(codes, default=0)


def _demo(args: list[str]) -> int:
    """Export the sample clip with every installed plugin's ``*_demo`` pipeline preset."""
    presets = ["rgb_hsv", *demo_presets()]
    print(f"vre demo: pipelines {', '.join(presets)} on the embedded sample clip -> ./vre_demo", file=sys.stderr)
    return _export([f"pipeline=[{','.join(presets)}]", "output_dir=vre_demo", "image_format=jpg", *args])


def demo_presets() -> list[str]:
    """Names of the ``pipeline/*_demo.yaml`` presets that installed plugins ship."""
    from importlib import resources

    from vrecore.registry import CORE_DISTRIBUTION, get_registry

    names: list[str] = []
    for provider, path in get_registry().config_paths:
        if provider == CORE_DISTRIBUTION or not path.startswith("pkg://"):
            continue
        try:
            folder = resources.files(path[len("pkg://"):]).joinpath("pipeline")
            names.extend(sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith("_demo.yaml")))
        except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
            continue
    return names


def _run_export_config(cfg: Any) -> int:
    """Run one export from a composed config; user mistakes become one line and exit code 2."""
    from omegaconf import OmegaConf

    from vrecore.export import run_export
    from vrecore.graph import build_graph

    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    try:
        video = config.get("video")
        if video is None:
            from vrecore.sample import sample_clip

            video = str(sample_clip())
            print(f"vre: no video given, using the embedded sample clip {video}", file=sys.stderr)
        output_dir = config.get("output_dir")
        stem = Path(video).stem
        if output_dir is None:
            root = config.get("output_root")
            output_dir = str(Path(root) / stem if root else Path(video).parent / f"{stem}_vre_export")
        graph = build_graph(config)
        progress = config.get("progress")
        result = run_export(
            graph, video, output_dir, frames=config.get("frames"), overwrite=bool(config.get("overwrite")),
            exception_mode=config.get("exception_mode", "stop"), device=config.get("device", "cpu"),
            writers=int(config.get("writers", 2)), progress=sys.stderr.isatty() if progress is None else progress,
            video_backend=config.get("video_backend", "auto"), config=config, raise_on_error=False)
    except VreError as e:
        print(f"vre export: error: {e}", file=sys.stderr)
        return e.exit_code
    print(result.summary(), file=sys.stderr)
    if not result.ok:
        print(f"vre export: error: {result.error} (log: {result.log_file}; frames already written are kept)",
              file=sys.stderr)
        return 1
    return 0


# -- registry listings -------------------------------------------------------------------------------
def _list(args: list[str]) -> int:
    import attrs

    from vrecore.registry import get_registry

    parser = argparse.ArgumentParser(prog="vre list", description="List representation types.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    ns = parser.parse_args(args)
    rows = []
    for name, entry in sorted(get_registry().types.items()):
        row: dict[str, Any] = {"type": name, "provider": entry.provider, "description": entry.description}
        try:
            cls = entry.load()
            row["parameters"] = {f.name: _default_text(f) for f in attrs.fields(cls)
                                 if f.name not in ("name", "dependencies") and f.init}
            row["dependencies"] = [r.name + ("?" if r.optional else "") + ("..." if r.many else "")
                                   for r in cls.roles]
        except VreError as e:
            row["error"] = str(e)
        rows.append(row)
    if ns.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        print(f"{row['type']}  [{row['provider']}]  {row['description']}")
        if "error" in row:
            print(f"    unavailable: {row['error']}")
            continue
        deps = ", ".join(row["dependencies"]) or "none"
        params = ", ".join(f"{k}={v}" for k, v in row["parameters"].items()) or "none"
        print(f"    dependencies: {deps}")
        print(f"    parameters: {params}")
    return 0


def _default_text(f: Any) -> str:
    import attrs

    if f.default is attrs.NOTHING:
        return "<required>"
    if isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
        return repr(f.default.factory())
    return repr(f.default)


def _plugins(args: list[str]) -> int:
    from vrecore.registry import get_registry

    registry = get_registry()
    print("vrecore (core)")
    for p in registry.plugins:
        note = "" if p.status == "loaded" else f"  [{p.status}: {p.reason}]"
        print(f"{p.name} {p.version}  ({p.module}){note}")
    return 0


# -- maintenance -------------------------------------------------------------------------------------
def _metadata(args: list[str]) -> int:
    from vrecore.metadata import regenerate_metadata

    parser = argparse.ArgumentParser(prog="vre metadata", description="Regenerate an export's metadata from disk.")
    parser.add_argument("output_dir")
    ns = parser.parse_args(args)
    counts = regenerate_metadata(ns.output_dir)
    for name, n in counts.items():
        print(f"{name}: {n} frames")
    if not counts:
        print(f"vre metadata: no representation folders found in {ns.output_dir}", file=sys.stderr)
    return 0


def _convert_weights(args: list[str]) -> int:
    from vrecore.weights import convert_main

    return convert_main(args)


if __name__ == "__main__":
    sys.exit(main())
