"""vrecore's log records on stderr as ``vre COMMAND: warning: ...`` lines while a command runs."""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["cli_logging", "enable_vrecore_loggers"]


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


def enable_vrecore_loggers() -> None:
    """Undo what Hydra's logging configuration does to loggers created before it ran (it disables them)."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("vrecore") and isinstance(logger, logging.Logger):
            logger.disabled = False


def cli_logging(command: str, *, verbose: bool = False, errors: bool = True) -> Callable[[], None]:
    """Show vrecore warnings (INFO too when verbose; ERROR records unless ``errors`` is false, for a command
    that reports its error itself in one line) on stderr; returns a function that undoes it."""
    enable_vrecore_loggers()
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
