"""The `vre` command: runs the sub-command that core or a plugin registered (`register_commands`) under that name."""
from __future__ import annotations

import difflib
import sys
from typing import TYPE_CHECKING

from vrecore.cli._messages import print_error
from vrecore.errors import VreError

if TYPE_CHECKING:
    from vrecore.graph.registry import Extension

__all__ = ["local_folder_arguments", "main", "usage"]

EXAMPLES = """examples:
  vre export video=clip.mp4 output_dir=out pipeline=rgb_hsv frames=0..100 image_format=jpg
  vre export -m video=a.mp4,b.mp4 output_root=exports     (exports/a, exports/b)
  vre export --config-dir my_configs pipeline=my_pipeline video=clip.mp4
  vre stream source=- width=960 height=540 pipeline=rgb_hsv output=-   (raw rgb24 in and out)
  vre stream source=/dev/video0 output=web        (live viewer; the URL is printed)
"""

STORED_EXPORT_COMMANDS = ("verify", "read", "collage", "video", "report", "metadata", "pack")
"""Core's commands that read (or pack) a stored export: their folder arguments are local paths, never URLs
(except a store's location for `STORE_COMMANDS`)."""
STORE_COMMANDS = ("verify", "read", "collage", "video", "report", "pack")
"""Those that read an export of any registered store, at its URL too (``vre verify s3://bucket/x``); what they write
(``--output``) is a local path."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vre` command: ``vre COMMAND ARGS...``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        try:
            print(usage())
        except VreError as e:
            print(f"vre: error: {e}", file=sys.stderr)
            return e.exit_code
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        commands = _commands()
        if command not in commands:
            close = difflib.get_close_matches(command, list(commands), n=1)
            hint = f"did you mean `vre {close[0]}`?" if close else "run `vre --help` for the commands"
            print(f"vre: error: unknown command {command!r}; {hint}", file=sys.stderr)
            return 2
        entry = commands[command]
        if command in STORED_EXPORT_COMMANDS and _is_core(entry):
            rest = local_folder_arguments(rest, stores=command in STORE_COMMANDS)
        return int(entry.load()(rest))
    except VreError as e:
        print_error(command, e)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"vre {command}: interrupted; frames already written are kept", file=sys.stderr)
        return 130


def usage() -> str:
    """The text of `vre --help`: core's commands, then the plugins' (with their distribution), then examples."""
    commands = list(_commands().values())
    width = max(len(c.name) for c in commands) + 2
    lines = ["usage: vre COMMAND [ARGS]   (vre COMMAND --help: the command's arguments)", "", "commands:"]
    lines += [f"  {c.name:<{width}}{c.description}" for c in commands if _is_core(c)]
    added = [c for c in commands if not _is_core(c)]
    if added:
        lines += ["", "commands added by plugins:"]
        lines += [f"  {c.name:<{width}}{c.description}  [{c.provider}]" for c in added]
    return "\n".join(lines) + "\n\n" + EXAMPLES


def _commands() -> dict[str, Extension]:
    """Every registered command by name: core's in their registration order, then the plugins' by name."""
    from vrecore.graph.registry import get_registry

    table = get_registry().extensions("command")
    ordered = [c for c in table.values() if _is_core(c)] + sorted(
        (c for c in table.values() if not _is_core(c)), key=lambda c: c.name)
    return {c.name: c for c in ordered}


def _is_core(command: Extension) -> bool:
    from vrecore.graph.registry import CORE_DISTRIBUTION

    return command.provider == CORE_DISTRIBUTION


def local_folder_arguments(args: list[str], *, stores: bool = False) -> list[str]:
    """``args`` with each folder as a local path (``file:///x`` -> ``/x``); any other URL (``vre collage
    s3://bucket/x``) is refused before anything opens it, unless ``stores`` and a registered store handles it
    (left as given)."""
    from vrecore.store.location import check_local_path, choose_store

    previous, local = "", []
    for arg in args:
        if not arg.startswith("-") and "=" not in arg.partition("://")[0]:
            what = "destination" if previous in ("-o", "--output") else "folder"
            if not (stores and what == "folder" and "://" in arg and not choose_store(arg, what=what).local):
                arg = check_local_path(arg, what)
        elif arg.startswith(("--output=", "-o=")):
            option, _, value = arg.partition("=")
            arg = f"{option}={check_local_path(value, 'destination')}"
        local.append(arg)
        previous = arg
    return local
