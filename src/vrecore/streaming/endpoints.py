"""Stream endpoints by spec: ``SCHEME://...`` (or a special form) to the source or target registered under that name."""
from __future__ import annotations

import re
from typing import Any

from vrecore.errors import ConfigError
from vrecore.graph.registry import get_registry

__all__ = ["SPECIAL_FORMS", "endpoint_name", "open_endpoint"]

SPECIAL_FORMS: dict[str, dict[str, str]] = {
    "source": {"pipe": "'-'", "device": "/dev/videoN", "file": "a video file"},
    "target": {"pipe": "'-'", "web": "web", "jsonl": "jsonl:-"},
}
"""Per kind, the registered names that specs without a scheme map to, and how those specs look."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def endpoint_name(kind: str, spec: str) -> str | None:
    """The registered name a spec stands for: its URL scheme, or the name of a special form (None: no name)."""
    match = _SCHEME.match(spec)
    if match:
        return match.group(1).lower()
    if spec == "-":
        return "pipe"
    if kind == "source":
        return "device" if spec.startswith("/dev/video") else "file"
    if spec in ("web", "jsonl:-"):
        return spec.partition(":")[0]
    return None


def _forms(kind: str, names: list[str]) -> str:
    special = SPECIAL_FORMS[kind]
    forms = [f"{special[n]} ({n})" if n in special else f"{n}://..." for n in names]
    forms += [f"{n}://..." for n in names if n in special and n not in ("pipe", "device", "file")]
    return ", ".join(forms)


def open_endpoint(kind: str, spec: str, options: dict[str, Any]) -> Any:
    """Call the factory registered for ``spec`` as ``factory(spec, **options)``; unknown specs: one line."""
    spec = spec.strip()
    table = get_registry().extensions(kind)
    names = sorted(table)
    if not spec:
        raise ConfigError(f"empty stream {kind}: give {_forms(kind, names)}")
    name = endpoint_name(kind, spec)
    if name is None or name not in table:
        what = f"has an unsupported scheme '{name}'" if name is not None else "is not understood"
        raise ConfigError(f"stream {kind} {spec!r} {what}: give {_forms(kind, names)} "
                          f"(a plugin may add more; see `vre plugins`)")
    return table[name].load()(spec, **options)
