"""One-line `vre COMMAND: error: ...` messages, with the values a config reads from the environment hidden."""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["hide_environment", "print_error", "remember_environment_values", "remember_secret_values"]


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

    _ENVIRONMENT_VALUES.clear()
    if isinstance(cfg, dict):  # composed without interpolations (vrecore.cli._compose_cache): nothing read
        return
    from omegaconf import OmegaConf

    for name in set(re.findall(r"\$\{oc\.env:\s*([A-Za-z_][A-Za-z0-9_]*)", OmegaConf.to_yaml(cfg, resolve=False))):
        value = os.environ.get(name, "")
        if len(value) >= 4:  # shorter values (1, cpu) are no secret, and replacing them would garble messages
            _ENVIRONMENT_VALUES[value] = "${oc.env:" + name + "}"


def remember_secret_values(values: list[str], shown: str) -> None:
    """Note values that errors must show as ``shown`` (credentials given in ``store_options.storage_options``)."""
    for value in values:
        if len(value) >= 4:
            _ENVIRONMENT_VALUES[value] = shown


def hide_environment(text: str) -> str:
    """``text`` with each value read through ``${oc.env:NAME}`` replaced by that expression (secrets stay out of
    logs)."""
    for value in sorted(_ENVIRONMENT_VALUES, key=len, reverse=True):
        text = text.replace(value, _ENVIRONMENT_VALUES[value])
    return text
