"""`vre stream [KEY=VALUE ...]`: run representations live on a camera, pipe, socket or file; nothing is stored."""
from __future__ import annotations

import sys
from typing import Any

from vrecore.cli._hydra import check_keys, resolve_config
from vrecore.cli._hydra import run_hydra as _run_hydra
from vrecore.cli._logging import cli_logging as _cli_logging
from vrecore.cli._messages import print_error
from vrecore.errors import VreError

__all__ = ["main", "run_stream_config"]


def main(args: list[str]) -> int:
    """`vre stream [KEY=VALUE ...]`."""
    from vrecore._malloc import tune_malloc_for_frames

    tune_malloc_for_frames()
    return _stream(args)


def run_stream_config(cfg: Any, outcome: dict[str, Any]) -> int:
    """The Hydra job of `vre stream`: one stream from a composed config (a stream reports no ``outcome``)."""
    return _run_stream_config(cfg)


def _stream(args: list[str]) -> int:
    if any(a in ("-m", "--multirun") for a in args):
        print("vre stream: error: -m (multirun) does not apply to a live stream; run one vre stream per source",
              file=sys.stderr)
        return 2

    return _run_hydra("stream", args)


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
