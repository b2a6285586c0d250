"""`vre convert-config CFG`: the seed tool's config as a vre pipeline file; and `vre export --seed-config CFG`."""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vrecore.cli.seed_config import load_seed_config, translate_seed_config
from vrecore.errors import ConfigError

__all__ = ["PIPELINE_NAME", "main", "seed_export_args"]

PIPELINE_NAME = "seed_config"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vre convert-config", description=(
        "Translate a config file of the seed tool (VRE 1.18: representations with type, dependencies, parameters, "
        "compute/io/learned parameters and their default_* blocks) into a vre pipeline file. Keys vre does not "
        "support are errors naming them."))
    parser.add_argument("config", type=Path, help="the seed tool's YAML config")
    parser.add_argument("-o", "--output", type=Path, help="write the pipeline here (default: stdout), e.g. "
                                                          "conf/pipeline/mine.yaml, then `vre export --config-dir conf "
                                                          "pipeline=mine`")
    ns = parser.parse_args(argv)
    translation = translate_seed_config(load_seed_config(ns.config))
    text = translation.to_yaml(ns.config.name)
    if ns.output is None:
        sys.stdout.write(text)
        return 0
    ns.output.parent.mkdir(parents=True, exist_ok=True)
    ns.output.write_text(text)
    for note in translation.notes:
        print(f"vre convert-config: note: {note}", file=sys.stderr)
    print(f"vre convert-config: wrote {ns.output}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def seed_export_args(args: list[str]) -> Iterator[list[str]]:
    """`vre export` arguments with ``--seed-config CFG`` replaced by the translated pipeline (a file in a
    temporary config folder, ``pipeline=seed_config``); the other overrides apply on top of it."""
    rest: list[str] = []
    config: str | None = None
    k = 0
    while k < len(args):
        arg = args[k]
        if arg == "--seed-config":
            if k + 1 >= len(args):
                raise ConfigError("--seed-config needs the path of the seed tool's config: --seed-config cfg.yaml")
            config, k = args[k + 1], k + 2
            continue
        if arg.startswith("--seed-config="):
            config = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        k += 1
    assert config is not None
    clashes = [a for a in rest if a.startswith(("pipeline=", "--config-dir", "-cd"))]
    if clashes:
        raise ConfigError(f"--seed-config gives the pipeline; leave out {', '.join(clashes)} (or translate the seed "
                          f"config with `vre convert-config` into your own config folder)")
    translation = translate_seed_config(load_seed_config(config))
    for note in translation.notes:
        print(f"vre export: note: {note}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="vre-seed-config-") as tmp:
        folder = Path(tmp) / "pipeline"
        folder.mkdir()
        (folder / f"{PIPELINE_NAME}.yaml").write_text(translation.to_yaml(Path(config).name))
        yield ["--config-dir", tmp, f"pipeline={PIPELINE_NAME}", *rest]
