"""The weight variants every installed learned type declares: listing them, finding one, checking files against it."""
from __future__ import annotations

import os

import attrs

from vrecore.errors import VreError, WeightsError
from vrecore.weights.representation import WeightedRepresentation
from vrecore.weights.variants import WeightVariant

__all__ = ["DeclaredVariant", "check_loadable", "declared_variants", "find_variant"]


@attrs.frozen
class DeclaredVariant:
    """A variant with the representation type that declares it and the ``variant`` value that selects it."""

    type_name: str
    key: str
    variant: WeightVariant
    cls: type[WeightedRepresentation] = attrs.field(eq=False, repr=False)


def declared_variants() -> list[DeclaredVariant]:
    """Every weight variant of every installed learned type, by type name then declaration order."""
    from vrecore.graph.registry import get_registry

    found: list[DeclaredVariant] = []
    for type_name, entry in sorted(get_registry().types.items()):
        try:
            cls = entry.load()
        except VreError:
            continue  # a broken plugin is reported by `vre list`; its variants are not offered
        if isinstance(cls, type) and issubclass(cls, WeightedRepresentation):
            found.extend(DeclaredVariant(type_name, key, v, cls) for key, v in cls.variants.items())
    return found


def check_loadable(declared: DeclaredVariant, path: str | os.PathLike[str], what: str) -> None:
    """Load the files at ``path`` into the declared type's model on the CPU, through the code an export runs, or raise
    a one-line WeightsError saying why ``what`` is not usable as the variant (the names, shapes, dtypes it expects)."""
    rep = declared.cls(name="vre-weights-check", variant=declared.key, weights_path=os.fspath(path))
    try:
        rep.setup("cpu")
    except WeightsError as err:
        raise WeightsError(f"{what} is not usable as weights {declared.variant.name!r}: {err}") from None
    finally:
        rep.teardown()


def find_variant(name: str) -> DeclaredVariant:
    """The declared variant called ``name``; a WeightsError listing the names otherwise."""
    declared = declared_variants()
    for d in declared:
        if d.variant.name == name:
            return d
    names = sorted({d.variant.name for d in declared})
    raise WeightsError(f"no weight variant is called {name!r}; `vre weights list` shows them: {', '.join(names)}")
