"""The `vre` command: export and stream (Hydra apps), list, plugins, metadata, convert-weights, demo."""
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
  stream [KEY=VALUE ...]   run representations live on a camera, pipe, socket or file; nothing is stored
  demo [KEY=VALUE ...]     export the embedded sample clip with previews into ./vre_demo
  list [--json]            representation types with provider, parameters and dependencies
  plugins                  installed plugin distributions and versions
  metadata OUTPUT_DIR      regenerate the metadata of an export from the files on disk
  verify OUTPUT_DIR        check stored frames: complete, missing, corrupt, stale (--deep, --repair)
  convert-weights SRC DST  convert a legacy .pth/.ckpt checkpoint to safetensors
  read OUTPUT_DIR          tasks, shapes, dtypes, frames and missing frames of an export (--stats)
  pack OUTPUT_DIR --to F   write an export as webdataset shards or a zarr store, for training at scale
  convert-config CFG       translate the seed tool's config into a vre pipeline (or: export --seed-config CFG)

examples:
  vre export video=clip.mp4 output_dir=out pipeline=rgb_hsv frames=0..100 image_format=jpg
  vre export -m video=a.mp4,b.mp4 output_root=exports     (exports/a, exports/b)
  vre export --config-dir my_configs pipeline=my_pipeline video=clip.mp4
  vre stream source=- width=960 height=540 pipeline=rgb_hsv output=-   (raw rgb24 in and out)
  vre stream source=/dev/video0 output=web        (live viewer; the URL is printed)
"""


# Commands implemented in their own module: name -> "module:function", the function taking the
# arguments after the command name and returning the exit code (imported only when run).
COMMAND_MODULES: dict[str, str] = {
    "verify": "vrecore.verify_cli:main",
    "read": "vrecore.read_cli:main",
    "pack": "vrecore.pack_cli:main",
    "convert-config": "vrecore.convert_config_cli:main",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vre` command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in ("export", "demo", "stream"):
        from vrecore._malloc import tune_malloc_for_frames

        tune_malloc_for_frames()
    handlers = {"export": _export, "stream": _stream, "demo": _demo, "list": _list, "plugins": _plugins,
                "metadata": _metadata, "convert-weights": _convert_weights}
    if command not in handlers and command not in COMMAND_MODULES:
        print(f"vre: error: unknown command {command!r}; run `vre --help` for the commands", file=sys.stderr)
        return 2
    try:
        if command in COMMAND_MODULES:
            import importlib

            module, _, function = COMMAND_MODULES[command].partition(":")
            return int(getattr(importlib.import_module(module), function)(rest))
        return handlers[command](rest)
    except VreError as e:
        print_error(command, e)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"vre {command}: interrupted; frames already written are kept", file=sys.stderr)
        return 130


def check_keys(command: str, config: dict[str, Any]) -> None:
    """Reject top-level keys the command's schema does not have (``+unknownkey=1`` gets past Hydra)."""
    import dataclasses

    from vrecore.config import ExportConfig, StreamConfig
    from vrecore.errors import ConfigError

    schema = ExportConfig if command == "export" else StreamConfig
    valid = [f.name for f in dataclasses.fields(schema)]
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} for `vre {command}`; valid keys: {', '.join(valid)}")


def print_error(command: str, error: BaseException) -> None:
    """``vre COMMAND: error: ...`` on stderr, one line per line of the message (e.g. one per missing weight)."""
    for line in str(error).splitlines() or [""]:
        print(f"vre {command}: error: {line}", file=sys.stderr)


# -- export ----------------------------------------------------------------------------------------
def _export(args: list[str]) -> int:
    if any(a == "--seed-config" or a.startswith("--seed-config=") for a in args):
        from vrecore.convert_config_cli import seed_export_args

        with seed_export_args(args) as hydra_args:
            return _run_hydra("export", hydra_args, _run_export_config)
    return _run_hydra("export", args, _run_export_config)


def _run_hydra(command: str, args: list[str], run_config: Any) -> int:
    """Run a Hydra app (config ``conf/<command>.yaml``); its composition errors become one line.

    Hydra prints a config mistake (an unknown key, a missing preset) over several lines and exits
    1. Until the first job starts, its stderr is captured; a failure there is condensed into one
    ``vre COMMAND: error:`` line with exit status 2, like every other user mistake.
    """
    import io

    import hydra

    from vrecore.config import register_schemas

    register_schemas()
    codes: list[int] = []
    real_stderr, captured = sys.stderr, io.StringIO()
    started: list[bool] = []

    def task(cfg: Any) -> None:
        if not started:
            started.append(True)
            sys.stderr = real_stderr
            real_stderr.write(captured.getvalue())
        codes.append(run_config(cfg))

    sys.argv = [f"vre {command}", *args]
    sys.stderr = captured
    condensed = False
    try:
        hydra.main(version_base="1.3", config_path="conf", config_name=command)(task)()
    except SystemExit as e:
        if started or not e.code:
            raise
        condensed = True
        print(f"vre {command}: error: {_condense_hydra_error(captured.getvalue())}", file=real_stderr)
        return 2
    finally:
        if not started:
            sys.stderr = real_stderr
            if not condensed:
                real_stderr.write(captured.getvalue())
    return max(codes, default=0)


def _condense_hydra_error(text: str) -> str:
    """One line from Hydra's multi-line error report."""
    parts: list[str] = []
    options: list[str] = []
    skip_indented = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("Set the environment variable HYDRA_FULL_ERROR",
                                                "full_key:", "object_type=", "reference_type=")):
            continue
        if stripped == "Config search path:":
            skip_indented = True
            continue
        if stripped.startswith("Available options in"):
            skip_indented = False
            options = []
            parts.append(stripped.rstrip(":") + ": {options}")
            continue
        if line.startswith(("\t", "    ")) and parts and parts[-1].endswith("{options}") and not skip_indented:
            options.append(stripped)
            continue
        if skip_indented and line.startswith(("\t", " ")):
            continue
        skip_indented = False
        parts.append(stripped.rstrip("."))
    joined = "; ".join(parts).replace("{options}", ", ".join(options) or "none")
    return joined or "invalid command line; see `vre --help`"


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

    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    config: dict[str, Any] = {str(k): v for k, v in container.items()}
    try:
        check_keys("export", config)
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
            on_mismatch=config.get("on_mismatch", "error"), exception_mode=config.get("exception_mode", "stop"),
            device=config.get("device", "cpu"), writers=config.get("writers", 2), threads=config.get("threads"),
            durable=bool(config.get("durable")), progress=sys.stderr.isatty() if progress is None else progress,
            video_backend=config.get("video_backend", "auto"), config=config, raise_on_error=False)
    except VreError as e:
        print_error("export", e)
        return e.exit_code
    print(result.summary(), file=sys.stderr)
    failed = sum(s.failed for s in result.stats.values())
    if result.ok and failed:
        print(f"vre export: warning: {failed} frame(s) failed and were skipped (exception_mode=skip); the log says "
              f"why: {result.log_file}", file=sys.stderr)
    if result.status == "interrupted":
        print(f"vre export: {result.error} (log: {result.log_file})", file=sys.stderr)
        return result.exit_code
    if not result.ok:
        print(f"vre export: error: {result.error} (log: {result.log_file}; frames already written are kept)",
              file=sys.stderr)
        return result.exit_code
    return 0


# -- stream ----------------------------------------------------------------------------------------
def _stream(args: list[str]) -> int:


    if any(a in ("-m", "--multirun") for a in args):
        print("vre stream: error: -m (multirun) does not apply to a live stream; run one vre stream per source",
              file=sys.stderr)
        return 2

    return _run_hydra("stream", args, _run_stream_config)


def _say(message: str) -> None:
    print(f"vre stream: {message}", file=sys.stderr, flush=True)


class _LevelFormatter:
    """``vre stream: warning: ...`` lines for the vrecore loggers."""

    def format(self, record: Any) -> str:
        text = record.getMessage()
        if record.exc_info and record.levelno >= 40:
            import traceback

            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return f"vre stream: {record.levelname.lower()}: {text}" if record.levelno >= 30 else f"vre stream: {text}"


def _stream_logging(verbose: bool) -> Any:
    """Show vrecore warnings (INFO too when verbose) on stderr; returns a function that undoes it."""
    import logging

    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("vrecore") and isinstance(logger, logging.Logger):
            logger.disabled = False  # Hydra's disabled job_logging disables loggers created before it ran
    root = logging.getLogger("vrecore")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter())  # type: ignore[arg-type]
    old = (root.level, root.propagate)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(old[0])
        root.propagate = old[1]

    return undo


def _output_specs(value: Any) -> list[str]:
    from vrecore.errors import ConfigError

    specs = value if isinstance(value, (list, tuple)) else [value]
    specs = [str(v).strip() for v in specs if v is not None and str(v).strip()]
    if not specs:
        raise ConfigError("no output given: output=- (raw rgb24 on stdout), output=web, output=tcp://HOST:PORT, "
                          "output=jsonl://HOST:PORT, or a list like output=[web,-]")
    if sum(s in ("-", "jsonl:-") for s in specs) > 1:
        raise ConfigError("only one output may write to stdout (- or jsonl:-); send the other to a port, "
                          "e.g. jsonl://127.0.0.1:7000")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"output lists the same target twice: {specs}")
    return specs


def _describe_source(source: Any) -> str:
    from vrecore.streaming import CaptureDeviceSource, RawPipeSource, TcpSource, VideoFileSource

    size = source.frame_size
    fmt = f"raw rgb24 {size[0]}x{size[1]}" if size else "frames"
    if isinstance(source, RawPipeSource):
        return f"{fmt} from stdin"
    if isinstance(source, TcpSource):
        host, port = source.address
        if source._mode == "client":
            return f"{fmt} from tcp://{host}:{port} (client)"
        return f"waiting for {fmt} on tcp://{host}:{port}"
    if isinstance(source, VideoFileSource):
        how = "at its frame rate" if source.realtime else "as fast as it decodes"
        return f"video {source.path} {how}{', looping' if source.loop else ''}"
    if isinstance(source, CaptureDeviceSource):
        return f"camera {source.device}"
    return type(source).__name__


def _describe_target(target: Any, what: str) -> str:
    from vrecore.streaming import JsonLinesTarget, RawStdoutTarget, TcpTarget, WebViewerTarget

    if isinstance(target, RawStdoutTarget):
        return f"raw rgb24 ({what}) to stdout"
    if isinstance(target, TcpTarget):
        return f"raw rgb24 ({what}) on tcp://{target.address[0]}:{target.port}"
    if isinstance(target, WebViewerTarget):
        return f"web viewer on {target.url}"
    if isinstance(target, JsonLinesTarget):
        address = target.address
        return f"JSON lines on tcp://{address[0]}:{address[1]}" if address is not None else "JSON lines to stdout"
    return type(target).__name__


def _run_stream_config(cfg: Any) -> int:
    """Run one stream from a composed config; user mistakes become one line and exit code 2."""
    import signal

    from omegaconf import OmegaConf

    from vrecore.errors import ConfigError
    from vrecore.graph import build_graph
    from vrecore.streaming import (
        GraphProcessor,
        RepresentationFailed,
        VideoFileSource,
        open_stream_source,
        open_stream_target,
        run_graph_stream,
    )

    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    config: dict[str, Any] = {str(k): v for k, v in container.items()}
    undo_logging = _stream_logging(bool(config.get("verbose")))
    try:
        check_keys("stream", config)
        metrics = config.get("metrics_csv")
        if metrics and not Path(str(metrics)).expanduser().parent.is_dir():
            raise ConfigError(f"metrics_csv={metrics}: the folder {Path(str(metrics)).expanduser().parent} does not "
                              f"exist; create it or choose another path")
    except VreError as e:
        undo_logging()
        print_error("stream", e)
        return e.exit_code

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, on_term)  # `kill`/`timeout` stop as cleanly as Ctrl-C
    targets: list[Any] = []
    source = None
    try:
        spec = config.get("source")
        if spec is None or not str(spec).strip():
            raise ConfigError("no source given: source=- (raw rgb24 on stdin, with width= and height=), "
                              "source=tcp://127.0.0.1:5000, source=/dev/video0 or source=clip.mp4")
        specs = _output_specs(config.get("output"))
        graph = build_graph(config)
        processor = GraphProcessor(graph, str(config.get("device") or "cpu"),
                                   exception_mode=str(config.get("exception_mode") or "stop"))
        names = processor.output_names
        chosen = config.get("output_representation")
        mosaic = chosen == "mosaic"
        if chosen is None:
            chosen = names[-1]
        elif not mosaic and chosen not in (*names, "input"):
            raise ConfigError(f"output_representation={chosen} is not an exported representation; choose one of "
                              f"{', '.join(names)}, input or mosaic")
        if "-" in specs and sys.stdout.isatty():
            raise ConfigError("output=- writes raw rgb24 frames to stdout, which is a terminal: pipe it into a "
                              "player (| ffplay -f rawvideo -pixel_format rgb24 -video_size WxH -) or use output=web")
        width, height, max_frames = config.get("width"), config.get("height"), config.get("max_frames")
        if max_frames is not None and max_frames < 0:
            raise ConfigError(f"max_frames must be 0 or more, got {max_frames}")
        source = open_stream_source(str(spec), width=width, height=height, host=str(config.get("host")),
                                    realtime=bool(config.get("realtime", True)), fps=config.get("fps"),
                                    loop=bool(config.get("loop")))
        drop = config.get("drop_frames")
        if drop is None:
            drop = not (isinstance(source, VideoFileSource) and not source.realtime)
        has_rgb = any(n.type_name == "color/rgb" for n in processor.exported)
        for target_spec in specs:
            # The viewer shows the input frame unless the graph already shows it as an rgb representation.
            targets.append(open_stream_target(
                target_spec, representation=None if mosaic else chosen, mosaic=mosaic, host=str(config.get("host")),
                include_input=(not has_rgb) if target_spec.startswith("web") else None))
        source.open()  # now, so that a busy port or a missing camera is reported before anything runs
        _say(f"source: {_describe_source(source)}")
        _say(f"representations: {', '.join(n.name for n in processor.nodes)} on {processor.device}; "
             + ("newest frame each time, dropping what arrives meanwhile" if drop else "every frame (no drops)"))
        what = "mosaic" if mosaic else chosen
        for target in targets:
            _say(f"output: {_describe_target(target, what)}")
        summary = run_graph_stream(source, processor, targets, drop_frames=bool(drop),
                                   max_frames=max_frames, metrics_csv=config.get("metrics_csv"))
    except RepresentationFailed as e:
        _say(f"error: {e}")
        if config.get("verbose") and e.__cause__ is not None:
            import traceback

            print("".join(traceback.format_exception(e.__cause__)).rstrip(), file=sys.stderr)
        return e.exit_code
    except VreError as e:
        print_error("stream", e)
        return e.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        if source is not None:  # closing twice is harmless: the runner closed it unless we failed before
            source.close()
        for target in targets:
            try:
                target.close()
            except Exception:  # noqa: BLE001
                pass
        signal.signal(signal.SIGTERM, old_term)
        undo_logging()
    if summary.stop_reason == "target_closed":
        # The reader of stdout went away: keep Python's exit-time flush of stdout from complaining.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    headline, _, table = str(summary).partition("\n")
    _say(headline)
    print(table, file=sys.stderr)
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
