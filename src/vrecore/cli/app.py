"""The `vre` command: export and stream (Hydra apps), list, plugins, metadata, convert-weights, demo."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from vrecore.errors import VreError

USAGE = """usage: vre COMMAND [ARGS]

commands:
  export [KEY=VALUE ...]   export representations of a video (Hydra overrides; -m for multirun)
  stream [KEY=VALUE ...]   run representations live on a camera, pipe, socket or file; nothing is stored
  demo [KEY=VALUE ...]     export the demo footage with every expert into ./vre_demo; collages, video, report
  list [--json]            representation types with provider, parameters and dependencies
  plugins                  installed plugin distributions and versions
  metadata OUTPUT_DIR      regenerate the metadata of an export from the files on disk
  verify OUTPUT_DIR        check stored frames: complete, missing, corrupt, stale (--deep, --repair)
  convert-weights SRC DST  convert a legacy .pth/.ckpt checkpoint to safetensors
  weights list|fetch|verify|import   model weights: status, download ahead, check hashes, import a file
  collage OUTPUT_DIR       per frame, one labelled picture of every representation (OUT/.collage/<frame>.jpg)
  video OUTPUT_DIR         a preview MP4 of the collages over time (OUT/preview.mp4)
  report OUTPUT_DIR        one self-contained HTML page: graph, timings, runs, samples (OUT/report.html)
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
    "verify": "vrecore.cli.verify:main",
    "weights": "vrecore.cli.weights:main",
    "collage": "vrecore.visual.collage:main",
    "video": "vrecore.visual.preview_video:main",
    "report": "vrecore.visual.report:main",
    "read": "vrecore.cli.read:main",
    "pack": "vrecore.cli.pack:main",
    "convert-config": "vrecore.cli.convert_config:main",
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
        if command in STORED_EXPORT_COMMANDS:
            rest = local_folder_arguments(rest)
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


# Commands that read (or pack) a stored export: their folder arguments are local paths (file:// URLs), never URLs.
STORED_EXPORT_COMMANDS = ("verify", "read", "collage", "video", "report", "metadata", "pack")


def local_folder_arguments(args: list[str]) -> list[str]:
    """``args`` with each folder as a local path (``file:///x`` -> ``/x``); any other URL (``vre verify
    s3://bucket/x``) is refused before anything opens it."""
    from vrecore.store.location import check_local_path

    previous, local = "", []
    for arg in args:
        if not arg.startswith("-") and "=" not in arg.partition("://")[0]:
            arg = check_local_path(arg, "destination" if previous in ("-o", "--output") else "folder")
        elif arg.startswith(("--output=", "-o=")):
            option, _, value = arg.partition("=")
            arg = f"{option}={check_local_path(value, 'destination')}"
        local.append(arg)
        previous = arg
    return local


def check_keys(command: str, config: dict[str, Any]) -> None:
    """Reject top-level keys the command's schema does not have (``+unknownkey=1`` gets past Hydra)."""
    import dataclasses

    from vrecore.cli.config import ExportConfig, StreamConfig
    from vrecore.errors import ConfigError

    schema = ExportConfig if command == "export" else StreamConfig
    valid = [f.name for f in dataclasses.fields(schema)]
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} for `vre {command}`; valid keys: {', '.join(valid)}")


def print_error(command: str, error: BaseException | str) -> None:
    """``vre COMMAND: error: ...`` on stderr, one line per line of the message (e.g. one per missing weight);
    values of ``${oc.env:...}`` show as their expression."""
    for line in hide_environment(str(error)).splitlines() or [""]:
        print(f"vre {command}: error: {line}", file=sys.stderr)


# Environment values the current config reads through ${oc.env:NAME} -> that expression (see `hide_environment`).
_ENVIRONMENT_VALUES: dict[str, str] = {}


def remember_environment_values(cfg: Any) -> None:
    """Note the values ``cfg`` (unresolved) reads from the environment, so that errors never print them."""
    import os
    import re

    from omegaconf import OmegaConf

    _ENVIRONMENT_VALUES.clear()
    for name in set(re.findall(r"\$\{oc\.env:\s*([A-Za-z_][A-Za-z0-9_]*)", OmegaConf.to_yaml(cfg, resolve=False))):
        value = os.environ.get(name, "")
        if len(value) >= 4:  # shorter values (1, cpu) are no secret, and replacing them would garble messages
            _ENVIRONMENT_VALUES[value] = "${oc.env:" + name + "}"


def hide_environment(text: str) -> str:
    """``text`` with each value read through ``${oc.env:NAME}`` replaced by that expression (secrets stay out of
    logs)."""
    for value in sorted(_ENVIRONMENT_VALUES, key=len, reverse=True):
        text = text.replace(value, _ENVIRONMENT_VALUES[value])
    return text


def resolve_config(command: str, cfg: Any) -> dict[str, Any]:
    """The composed config with interpolations resolved; one that cannot be is a one-line ConfigError."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from vrecore.errors import ConfigError

    remember_environment_values(cfg)
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except (OmegaConfBaseException, RecursionError) as e:
        key = getattr(e, "full_key", None)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{key + ': ' if key else ''}{first}") from None
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


# -- export ----------------------------------------------------------------------------------------
def _export(args: list[str]) -> int:
    if any(a == "--seed-config" or a.startswith("--seed-config=") for a in args):
        from vrecore.cli.convert_config import seed_export_args

        with seed_export_args(args) as hydra_args:
            return _run_hydra("export", hydra_args)
    return _run_hydra("export", args)


# While a Hydra app composes its config, Hydra's stderr is captured here (see `_run_hydra`).
_COMPOSING: dict[str, Any] = {}


def _stop_capturing() -> None:
    """The first job has started: give stderr back, with what Hydra wrote meanwhile (in this process)."""
    if _COMPOSING:
        real, captured = _COMPOSING.pop("real"), _COMPOSING.pop("captured")
        sys.stderr = real
        real.write(captured.getvalue())


class HydraJob:
    """The job function Hydra calls for each run of `vre export` / `vre stream`.

    Picklable (it holds only names), so that launchers that run jobs in other processes or on other
    machines (joblib, submitit, Ray) can ship it. In a multirun each job appends its outcome to the
    ledger named by ``VRE_MULTIRUN_LEDGER``, and a failing job never stops the others.
    """

    def __init__(self, command: str) -> None:
        self.command = command

    def __call__(self, cfg: Any) -> int:
        import os
        import time

        _stop_capturing()
        ledger = os.environ.get("VRE_MULTIRUN_LEDGER")
        outcome: dict[str, Any] = {}
        t0 = time.monotonic()
        try:
            code = (_run_export_config(cfg, outcome) if self.command == "export" else _run_stream_config(cfg))
        except Exception as e:
            if not ledger:
                raise
            import traceback

            traceback.print_exc()
            code, outcome["status"], outcome["error"] = 1, "crashed", f"{type(e).__name__}: {e}"
        if ledger:
            _record_outcome(ledger, cfg, code, outcome, time.monotonic() - t0)
        return code


def _record_outcome(ledger: str, cfg: Any, code: int, outcome: dict[str, Any], seconds: float) -> None:
    import json
    import os

    line = {"video": outcome.get("video") or cfg.get("video"), "output_dir": outcome.get("output_dir"),
            "exit_code": code, "status": outcome.get("status") or ("ok" if code == 0 else "failed"),
            "error": outcome.get("error"), "frames": outcome.get("frames"), "seconds": round(seconds, 2)}
    os.makedirs(os.path.dirname(ledger), exist_ok=True)
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def _multirun_ledger(args: list[str]) -> str:
    """Where the jobs of a multirun record their outcome: in ``output_root`` when given (a shared file
    system for launchers on other machines), else in the temporary folder."""
    import os
    import tempfile

    from vrecore.export.runlog import new_run_id

    root = next((a.split("=", 1)[1] for a in args if a.startswith("output_root=")), None)
    name = f"multirun_{new_run_id()}.jsonl"
    if root and "," not in root:
        return os.path.abspath(os.path.join(root, ".multirun", name))
    return os.path.join(tempfile.gettempdir(), "vre-" + name)


def _multirun_summary(command: str, ledger: str) -> int:
    """Print a table of the multirun's jobs and their outcome; the exit code is the worst one."""
    import json
    import os

    rows = []
    if os.path.exists(ledger):
        with open(ledger) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        print(f"vre {command}: error: no job reported an outcome (jobs on other machines need output_root on a "
              f"shared file system); see the launcher's logs", file=sys.stderr)
        return 1
    table = [("video", "status", "frames", "seconds", "output / error")]
    for r in rows:
        table.append((str(r["video"]), str(r["status"]), str(r.get("frames") or "-"), f"{r['seconds']:.1f}",
                      str(r["error"] or r["output_dir"] or "")))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    print(f"vre {command}: multirun of {len(rows)} job(s):", file=sys.stderr)
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4], file=sys.stderr)
    return max(int(r["exit_code"]) for r in rows)


def _run_hydra(command: str, args: list[str]) -> int:
    """Run a Hydra app (config ``conf/<command>.yaml``); its composition errors become one line.

    Hydra prints a config mistake (an unknown key, a missing preset) over several lines and exits
    1. Until the first job starts, its stderr is captured; a failure there is condensed into one
    ``vre COMMAND: error:`` line with exit status 2, like every other user mistake. A multirun
    (``-m``) ends with a table of its jobs and their outcome.
    """
    import io
    import os

    import hydra

    from vrecore.cli.config import register_schemas

    register_schemas()
    multirun = any(a in ("-m", "--multirun") for a in args)
    ledger = _multirun_ledger(args) if multirun else None
    codes: list[int] = []
    real_stderr, captured = sys.stderr, io.StringIO()
    job = HydraJob(command)

    def single(cfg: Any) -> int:
        code = job(cfg)
        codes.append(code)
        return code

    sys.argv = [f"vre {command}", *args]
    _COMPOSING.update(real=real_stderr, captured=captured)
    sys.stderr = captured
    if ledger:
        os.environ["VRE_MULTIRUN_LEDGER"] = ledger
    condensed = False
    root_level = logging.getLogger().level
    try:
        hydra.main(version_base="1.3", config_path="conf", config_name=command)(job if multirun else single)()
    except SystemExit as e:
        if not _COMPOSING or not e.code:
            raise
        condensed = True
        print(f"vre {command}: error: {_condense_hydra_error(captured.getvalue())}", file=real_stderr)
        return 2
    finally:
        if _COMPOSING:  # no job started in this process
            _COMPOSING.clear()
            sys.stderr = real_stderr
            if not condensed:
                real_stderr.write(captured.getvalue())
        if ledger:
            os.environ.pop("VRE_MULTIRUN_LEDGER", None)
        _enable_vrecore_loggers()  # Hydra's logging set-up disables loggers made before it: a caller keeps vre's
        logging.getLogger().setLevel(root_level)  # ... and sets the root level, which would hide their warnings
    if ledger:
        return _multirun_summary(command, ledger)
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
    """Export the demo footage with every installed plugin's ``*_demo`` pipeline preset, then write its collages,
    preview video and report and say where they are."""
    from vrecore.frames.sample import DEMO_CLIP_CREDIT, demo_clip

    presets = ["rgb_hsv", *demo_presets()]
    given = {a.partition("=")[0].lstrip("+~") for a in args if "=" in a}
    output_dir = next((a.partition("=")[2] for a in args if a.startswith("output_dir=")), "vre_demo")
    defaults = [f"{key}={value}" for key, value in (("video", demo_clip()), ("output_dir", output_dir),
                                                      ("image_format", "jpg")) if key not in given]
    footage = "the demo footage" if "video" in given else f"the demo footage ({DEMO_CLIP_CREDIT})"
    print(f"vre demo: pipelines {', '.join(presets)} on {footage} -> {output_dir}", file=sys.stderr)
    code = _export([f"pipeline=[{','.join(presets)}]", *defaults, *args])
    if code != 0:
        return code
    from vrecore.visual.args import printer
    from vrecore.visual.showcase import write_pictures

    pictures = write_pictures(output_dir, warn=printer("demo"))
    collages, video = pictures.collages, pictures.video
    paths = collages.paths()
    print(f"vre demo: collages      {paths[0]} .. {paths[-1].name} ({len(paths)} frames, "
          f"{collages.layout.rows}x{collages.layout.cols} tiles)", file=sys.stderr)
    print(f"vre demo: preview video {video.path} ({video.frames} frames, {float(video.fps):.3g} frames/s)",
          file=sys.stderr)
    print(f"vre demo: report        {pictures.report} (open it in a browser)", file=sys.stderr)
    return 0


def demo_presets() -> list[str]:
    """Names of the ``pipeline/*_demo.yaml`` presets that installed plugins ship."""
    from importlib import resources

    from vrecore.graph.registry import CORE_DISTRIBUTION, get_registry

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


def _run_export_config(cfg: Any, outcome: dict[str, Any] | None = None) -> int:
    """Run one export from a composed config; user mistakes become one line and exit code 2.
    ``outcome`` receives the video, output folder, status and error (for a multirun's table)."""
    outcome = {} if outcome is None else outcome
    try:
        config = resolve_config("export", cfg)
    except VreError as e:
        print_error("export", e)
        outcome.update(status="failed", error=hide_environment(str(e)))
        return e.exit_code
    outcome["video"] = config.get("video")
    undo_logging = _cli_logging("export", errors=False)  # warnings (e.g. a frame quarantined) show; errors are ours
    try:
        return _export_from_config(config, outcome)
    finally:
        undo_logging()


def _export_from_config(config: dict[str, Any], outcome: dict[str, Any]) -> int:
    from vrecore.export.run import run_export
    from vrecore.graph.build import build_graph

    try:
        check_keys("export", config)
        video = config.get("video")
        if video is None:
            from vrecore.frames.sample import sample_clip

            video = str(sample_clip())
            print(f"vre: no video given, using the embedded sample clip {video}", file=sys.stderr)
        output_dir = config.get("output_dir")
        stem = Path(video).stem
        if output_dir is None:
            root = config.get("output_root")
            output_dir = str(Path(root) / stem if root else Path(video).parent / f"{stem}_vre_export")
        outcome["output_dir"] = output_dir
        graph = build_graph(config)
        progress = config.get("progress")
        result = run_export(
            graph, video, output_dir, frames=config.get("frames"), overwrite=bool(config.get("overwrite")),
            on_mismatch=config.get("on_mismatch", "error"), exception_mode=config.get("exception_mode", "stop"),
            device=config.get("device", "cpu"), writers=config.get("writers", 2), threads=config.get("threads"),
            durable=bool(config.get("durable")), progress=sys.stderr.isatty() if progress is None else progress,
            workers=config.get("workers", 1), devices=config.get("devices"), placement=config.get("placement"),
            runner=config.get("runner", "local"), ray_address=config.get("ray_address"),
            video_backend=config.get("video_backend", "auto"), store=config.get("store"), config=config,
            raise_on_error=False)
    except VreError as e:
        print_error("export", e)
        outcome.update(status="failed", error=hide_environment(str(e)).splitlines()[0])
        return e.exit_code
    print(result.summary(), file=sys.stderr)
    if config.get("report"):
        from vrecore.visual.report import report_after_export

        report_after_export(result.output_dir)
    failed = sum(s.failed for s in result.stats.values())
    outcome.update(status=result.status, error=result.error and result.error.splitlines()[0],
                   frames=f"{len(result.frames)} x {len(result.stats)} representations: "
                          f"{sum(s.computed for s in result.stats.values())} computed, "
                          f"{sum(s.skipped for s in result.stats.values())} skipped, {failed} failed")
    if result.ok and failed:
        print(f"vre export: warning: {failed} frame(s) failed and were skipped (exception_mode=skip); the log says "
              f"why: {result.log_file}", file=sys.stderr)
    if result.status == "interrupted":
        print(f"vre export: {result.error} (log: {result.log_file})", file=sys.stderr)
        return result.exit_code
    if not result.ok:
        print_error("export", f"{result.error} (log: {result.log_file}; frames already written are kept)")
        return result.exit_code
    return 0


# -- stream ----------------------------------------------------------------------------------------
def _stream(args: list[str]) -> int:
    if any(a in ("-m", "--multirun") for a in args):
        print("vre stream: error: -m (multirun) does not apply to a live stream; run one vre stream per source",
              file=sys.stderr)
        return 2

    return _run_hydra("stream", args)


class _LevelFormatter:
    """``vre COMMAND: warning: ...`` lines for the vrecore loggers."""

    def __init__(self, command: str) -> None:
        self.command = command

    def format(self, record: Any) -> str:
        text = record.getMessage()
        if record.exc_info and record.levelno >= 40:
            import traceback

            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        prefix = f"vre {self.command}: "
        return f"{prefix}{record.levelname.lower()}: {text}" if record.levelno >= 30 else f"{prefix}{text}"


def _enable_vrecore_loggers() -> None:
    """Undo what Hydra's logging configuration does to loggers created before it ran (it disables them)."""
    import logging

    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("vrecore") and isinstance(logger, logging.Logger):
            logger.disabled = False


def _cli_logging(command: str, *, verbose: bool = False, errors: bool = True) -> Any:
    """Show vrecore warnings (INFO too when verbose; ERROR records unless ``errors`` is false, for a command
    that reports its error itself in one line) on stderr; returns a function that undoes it."""
    import logging

    _enable_vrecore_loggers()
    root = logging.getLogger("vrecore")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter(command))  # type: ignore[arg-type]
    handler.setLevel(logging.INFO if verbose else logging.WARNING)
    if not errors:
        handler.addFilter(lambda record: record.levelno < logging.ERROR)
    old = (root.level, root.propagate)
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO if verbose else logging.WARNING))
    root.propagate = False

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(old[0])
        root.propagate = old[1]

    return undo


def _run_stream_config(cfg: Any) -> int:
    """Run one stream from a composed config: set-up, run and report live in `vrecore.streaming.session`."""

    from vrecore.streaming.session import run_stream_command

    try:
        config = resolve_config("stream", cfg)
    except VreError as e:
        print_error("stream", e)
        return e.exit_code
    undo_logging = _cli_logging("stream", verbose=bool(config.get("verbose")))
    try:
        check_keys("stream", config)
        return run_stream_command(config)
    except VreError as e:
        print_error("stream", e)
        return e.exit_code
    finally:
        undo_logging()


# -- registry listings -------------------------------------------------------------------------------
def _list(args: list[str]) -> int:
    import attrs

    from vrecore.graph.registry import get_registry

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
    from vrecore.graph.registry import get_registry

    registry = get_registry()
    print("vrecore (core)")
    for p in registry.plugins:
        note = "" if p.status == "loaded" else f"  [{p.status}: {p.reason}]"
        print(f"{p.name} {p.version}  ({p.module}){note}")
    return 0


# -- maintenance -------------------------------------------------------------------------------------
def _metadata(args: list[str]) -> int:
    from vrecore.export.metadata import regenerate_metadata

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
    from vrecore.weights.convert import convert_main

    return convert_main(args)


if __name__ == "__main__":
    # `python -m vrecore.cli.app`: run the imported module's main, so that the job function a launcher
    # pickles is vrecore.cli.app.HydraJob (importable in its processes), not a class of __main__.
    from vrecore.cli.app import main as _main

    sys.exit(_main())
