"""`vre list` and `vre plugins`: the installed representation types and plugin distributions."""
from __future__ import annotations

import argparse
import json
from typing import Any

from vrecore.errors import VreError

__all__ = ["list_plugins", "list_types"]


def list_types(args: list[str]) -> int:
    """`vre list [--json]`: each type with its provider, description, parameters and dependencies."""
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


def list_plugins(args: list[str]) -> int:
    """`vre plugins`: each installed plugin distribution, its version and whether it loaded."""
    from vrecore.graph.registry import get_registry

    registry = get_registry()
    print("vrecore (core)")
    for p in registry.plugins:
        note = "" if p.status == "loaded" else f"  [{p.status}: {p.reason}]"
        print(f"{p.name} {p.version}  ({p.module}){note}")
    return 0
