"""The Hydra apps behind `vre export` and `vre stream`: compose the config, condense Hydra's errors into one line,
run each job (a multirun's too) and sum a multirun up in a table."""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib
import io
import json
import logging
import logging.config
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vrecore.cli._logging import enable_vrecore_loggers
from vrecore.cli._messages import remember_environment_values

__all__ = ["HydraJob", "check_keys", "resolve_config", "run_hydra"]

JOBS = {"export": "vrecore.cli.export:run_export_config", "stream": "vrecore.cli.stream:run_stream_config"}
"""Command -> ``module:function`` running one composed config (imported in the job's process)."""


def _schema_keys(schema_name: str) -> list[str] | None:
    """The keys of one of the CLI's config schemas, by its class name (None for another name)."""
    from vrecore.cli import config

    schema = {c.__name__: c for c in (config.ExportConfig, config.StreamConfig, config.RepresentationConfig)}
    return [f.name for f in dataclasses.fields(schema[schema_name])] if schema_name in schema else None


def unknown_key_message(command: str, key: str, valid: list[str]) -> str:
    """One line for a key its schema lacks: the nearest valid key when one is close, else every valid key."""
    parent, _, name = key.rpartition(".")
    nearest = difflib.get_close_matches(name, valid, n=1)
    if nearest:
        return f"unknown key '{key}'; did you mean '{parent + '.' if parent else ''}{nearest[0]}'?"
    return f"unknown key '{key}' for `vre {command}`; valid keys: {', '.join(valid)}"


def check_keys(command: str, config: dict[str, Any]) -> None:
    """Reject top-level keys the command's schema does not have (``+unknownkey=1`` gets past Hydra)."""
    from vrecore.errors import ConfigError

    valid = _schema_keys("ExportConfig" if command == "export" else "StreamConfig") or []
    unknown = sorted(set(config) - set(valid))
    if len(unknown) == 1:
        raise ConfigError(unknown_key_message(command, unknown[0], valid))
    if unknown:
        raise ConfigError(f"unknown keys {', '.join(unknown)} for `vre {command}`; valid keys: {', '.join(valid)}")


def resolve_config(command: str, cfg: Any) -> dict[str, Any]:
    """The composed config with interpolations resolved; one that cannot be is a one-line ConfigError. A plain
    dict is a composition without interpolations (served by `vrecore.cli._compose_cache`): taken as it is."""
    if isinstance(cfg, dict):
        remember_environment_values(cfg)
        return {str(k): v for k, v in cfg.items()}
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


# While a Hydra app composes its config, Hydra's stderr is captured here (see `run_hydra`).
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

        _stop_capturing()
        ledger = os.environ.get("VRE_MULTIRUN_LEDGER")
        outcome: dict[str, Any] = {}
        t0 = time.monotonic()
        try:
            module, _, function = JOBS[self.command].partition(":")
            code = int(getattr(importlib.import_module(module), function)(cfg, outcome))
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

    from vrecore.export.runlog import new_run_id

    root = next((a.split("=", 1)[1] for a in args if a.startswith("output_root=")), None)
    name = f"multirun_{new_run_id()}.jsonl"
    if root and "," not in root:
        return os.path.abspath(os.path.join(root, ".multirun", name))
    return os.path.join(tempfile.gettempdir(), "vre-" + name)


def _sweep_dir(args: list[str], ledger: str) -> tuple[str | None, bool]:
    """Where Hydra writes a multirun's ``multirun.yaml`` (and a launcher its logs), and whether vre made it for the
    run alone: beside the ledger in ``output_root``, else a new temporary folder; never the working folder
    (Hydra's default here, where it would replace a user's file of that name). None when the command line sets
    ``hydra.sweep.dir`` itself. ``multirun.yaml`` holds the whole command line: with credentials on it
    (``store_options.storage_options...``) it goes to a new private temporary folder, removed at the end."""
    from vrecore.store.location import hide_secret_args

    if any(re.match(r"^[+~]*hydra\.sweep\.dir=", a) for a in args):
        return None, False
    if os.path.dirname(ledger) != tempfile.gettempdir() and hide_secret_args(args) == list(args):
        return os.path.dirname(ledger), False
    return tempfile.mkdtemp(prefix="vre-multirun-"), True


def _remove_temporary_sweep_dir(folder: str) -> None:
    """Remove the temporary sweep folder vre made: Hydra's ``multirun.yaml`` in it, then the folder if empty."""
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(folder, "multirun.yaml"))
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _multirun_summary(command: str, ledger: str) -> int:
    """Print a table of the multirun's jobs and their outcome; the exit code is the worst one."""

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


def run_hydra(command: str, args: list[str]) -> int:
    """Run a Hydra app (config ``conf/<command>.yaml``); its composition errors become one line.

    Hydra prints a config mistake (an unknown key, a missing preset) over several lines and exits
    1. Until the first job starts, its stderr is captured; a failure there is condensed into one
    ``vre COMMAND: error:`` line with exit status 2, like every other user mistake. A multirun
    (``-m``) ends with a table of its jobs and their outcome.
    """

    from vrecore.cli import _compose_cache
    from vrecore.errors import ConfigError

    try:
        os.getcwd()
    except FileNotFoundError:
        raise ConfigError("the current folder no longer exists; cd into an existing folder and run again") from None
    sys.argv = [f"vre {command}", *args]  # what Hydra sees; the run's records keep it as the command
    multirun = any(a in ("-m", "--multirun") for a in args)
    composed = None if multirun else _compose_cache.lookup(command, args)
    if composed is not None:
        with _logging_as_hydra_leaves_it(configure=True):
            return HydraJob(command)(composed)

    import hydra

    from vrecore.cli.config import register_schemas

    register_schemas()
    ledger = _multirun_ledger(args) if multirun else None
    sweep_dir, temporary_sweep_dir = _sweep_dir(args, ledger) if ledger else (None, False)
    if sweep_dir:
        args = [*args, f"hydra.sweep.dir={sweep_dir}"]
    codes: list[int] = []
    real_stderr, captured = sys.stderr, io.StringIO()
    job = HydraJob(command)

    def single(cfg: Any) -> int:
        if _COMPOSING:
            _compose_cache.store(command, args, cfg, captured.getvalue())
        code = job(cfg)
        codes.append(code)
        return code

    sys.argv = [f"vre {command}", *args]  # with the sweep folder
    _COMPOSING.update(real=real_stderr, captured=captured)
    sys.stderr = captured
    if ledger:
        os.environ["VRE_MULTIRUN_LEDGER"] = ledger
    condensed = False
    try:
        with _logging_as_hydra_leaves_it(), _mode_from_the_command_line(args):
            hydra.main(version_base="1.3", config_path="conf", config_name=command)(job if multirun else single)()
    except SystemExit as e:
        if not _COMPOSING or not e.code:
            raise
        condensed = True
        hydra_error = captured.getvalue()
        message = (_unknown_key_error(command, hydra_error) or _pipeline_without_package(hydra_error)
                   or _condense_hydra_error(hydra_error))
        print(f"vre {command}: error: {message}", file=real_stderr)
        return 2
    finally:
        if _COMPOSING:  # no job started in this process
            _COMPOSING.clear()
            sys.stderr = real_stderr
            if not condensed:
                real_stderr.write(captured.getvalue())
        if ledger:
            os.environ.pop("VRE_MULTIRUN_LEDGER", None)
        if sweep_dir and temporary_sweep_dir:
            _remove_temporary_sweep_dir(sweep_dir)
    if ledger:
        return _multirun_summary(command, ledger)
    return max(codes, default=0)


@contextlib.contextmanager
def _logging_as_hydra_leaves_it(configure: bool = False) -> Iterator[None]:
    """Give a caller (a test, a script) its logging back after a Hydra run: Hydra's logging set-up (the configs'
    ``disabled``: root at ERROR, every existing logger disabled) replaces the root's level and handlers. With
    ``configure``, apply that set-up here (a run served by `vrecore.cli._compose_cache`, without Hydra), so that the
    job sees the logging it sees under Hydra."""
    root = logging.getLogger()
    root_level, root_handlers = root.level, list(root.handlers)
    disabled = {name: logger.disabled for name, logger in logging.Logger.manager.loggerDict.items()
                if isinstance(logger, logging.Logger)}
    try:
        if configure:
            logging.config.dictConfig({"version": 1, "root": {"level": "ERROR"}, "disable_existing_loggers": True})
        yield
    finally:
        for name, was_disabled in disabled.items():
            logging.getLogger(name).disabled = was_disabled
        enable_vrecore_loggers()
        root.setLevel(root_level)
        for handler in [h for h in root.handlers if h not in root_handlers]:
            root.removeHandler(handler)
        for handler in root_handlers:
            if handler not in root.handlers:
                root.addHandler(handler)


_MODE_OVERRIDE = re.compile(r"^[+~]*hydra\.mode\b|^hydra=")
_MODE_IN_YAML = re.compile(r"^\s*mode\s*:", re.MULTILINE)


@contextlib.contextmanager
def _mode_from_the_command_line(args: list[str]) -> Iterator[None]:
    """Hydra composes the whole config once only to read ``hydra.mode``, then again for the run. When nothing
    on the command line can set that key (no ``hydra.mode`` override, no other primary config, no config
    folder mentioning a ``mode:`` key), it is unset and the mode is the ``-m`` flag's: Hydra's answer for an
    unset mode (None) is given without composing."""
    if not _mode_is_only_the_flag(args):
        yield
        return
    from hydra._internal.hydra import Hydra

    real = Hydra.get_mode
    Hydra.get_mode = lambda self, config_name, overrides: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Hydra.get_mode = real  # type: ignore[method-assign]


def _mode_is_only_the_flag(args: list[str]) -> bool:
    folders = []
    for k, arg in enumerate(args):
        option, _, value = arg.partition("=")
        if option in ("--config-name", "-cn", "--config-path", "-cp") or _MODE_OVERRIDE.match(arg):
            return False
        if option in ("--config-dir", "-cd"):
            folders.append(value if value else (args[k + 1] if k + 1 < len(args) else ""))
    for folder in folders:
        for path in Path(folder).rglob("*.y*ml") if os.path.isdir(folder) else ():
            try:
                if _MODE_IN_YAML.search(path.read_text(encoding="utf-8", errors="replace")):
                    return False
            except OSError:
                return False
    return True


def _unknown_key_error(command: str, text: str) -> str | None:
    """Hydra's report of an override of a key the schema lacks, as one line naming the nearest key.

    Hydra advises ``+key=value`` there, which would only move the mistake past it."""
    found = re.search(r"Could not override '([^']+)'.*?Key '[^']+' not in '(\w+)'", text, re.DOTALL)
    valid = _schema_keys(found.group(2)) if found else None
    return unknown_key_message(command, found.group(1), valid) if found and valid else None


def _pipeline_without_package(text: str) -> str | None:
    """Hydra's report of a pipeline file that lacks ``# @package _global_`` (read into a key ``pipeline``, which the
    schema refuses), as one line naming the file and the line to add."""
    found = re.search(r"In '(pipeline/[^']+)'.*?Key 'pipeline' not in '\w+'", text, re.DOTALL)
    if not found:
        return None
    return (f"the pipeline file {found.group(1)}.yaml needs '# @package _global_' as its first line (without it Hydra "
            f"reads the file into a key 'pipeline'); add that line")


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
