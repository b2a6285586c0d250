"""The `vre` command under its earlier module path: ``python -m vrecore.cli.app`` and ``from vrecore.cli.app import
main`` keep working (the commands themselves are modules of `vrecore.cli`)."""
from __future__ import annotations

import sys

from vrecore.cli._hydra import HydraJob
from vrecore.cli.demo import demo_presets
from vrecore.cli.dispatch import main

__all__ = ["HydraJob", "demo_presets", "main"]

if __name__ == "__main__":
    sys.exit(main())
