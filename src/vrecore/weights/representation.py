"""`WeightedRepresentation`: a learned type whose weights are declared as data, and its ``variant`` parameter."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from vrecore.errors import WeightsError
from vrecore.graph.representation import Representation
from vrecore.weights.resolving import ResolvedWeights, recorded_identity, resolve
from vrecore.weights.variants import WeightVariant

__all__ = ["WeightedRepresentation", "variant_field"]


def _check_variant(instance: Any, attribute: Any, value: str) -> None:
    cls = type(instance)
    if value not in cls.variants and value not in cls.variant_aliases:
        also = f" (or {', '.join(cls.variant_aliases)})" if cls.variant_aliases else ""
        raise ValueError(f"unknown variant {value!r}; choose one of {', '.join(cls.variants)}{also}")


def variant_field(default: str) -> Any:
    """The ``variant`` parameter of a learned type, with the type's default: a key of `variants` or an alias."""
    return attrs.field(default=default, validator=_check_variant)


def _to_opt_str(value: str | os.PathLike[str] | None) -> str | None:
    # A str, not a Path, so that the parameter is stored as is in the run metadata (JSON).
    return None if value is None else os.fspath(value)


# Not slotted: a learned type also derives from its family's base (e.g. a semantic map), and two slotted bases
# with fields of their own cannot be combined.
@attrs.define(kw_only=True, eq=False, slots=False)
class WeightedRepresentation(Representation):
    """A learned type whose weights are declared as data: ``variants`` (and the seed's names, ``variant_aliases``).

    It gets the ``variant`` parameter (subclasses give its default with `variant_field`) and ``weights_path``
    (local files instead of the variant's source), `preflight` (resolve the weights, downloading when
    allowed, before anything is decoded), `weights_identity` and the weights' origin in `metadata`.
    `setup` calls `weights()` for the files.
    """

    learned = True
    variants: ClassVar[Mapping[str, WeightVariant]] = {}
    variant_aliases: ClassVar[Mapping[str, str]] = {}
    unfingerprinted_parameters: ClassVar[tuple[str, ...]] = ("weights_path",)
    """Where the weights are read from does not change the output: `weights_identity` names their content."""

    variant: str = attrs.field(validator=_check_variant)
    weights_path: str | None = attrs.field(default=None, converter=_to_opt_str)
    """Local files (a file, or a folder laid out like the variant's source) used instead of the variant's source."""

    @property
    def weight_variant(self) -> WeightVariant:
        """The `WeightVariant` the ``variant`` parameter selects."""
        return self.variants[self.variant_aliases.get(self.variant, self.variant)]

    def weights(self, *, download: bool = True) -> ResolvedWeights:
        """The files of the selected weights (see `resolve`)."""
        return resolve(self.weight_variant, self.weights_path, download=download)

    def preflight(self) -> None:
        self.weights()

    def weights_identity(self) -> Mapping[str, Any] | None:
        """Variant, commit and sha256 of each file: from the lock file when it recorded them (no file is read, and
        finished output keeps its identity where the weights are gone), else from the files."""
        v = self.weight_variant
        if self.weights_path is None and (recorded := recorded_identity(v)) is not None:
            return recorded
        try:
            return self.weights(download=False).identity()
        except WeightsError:  # not there (preflight says so when they are needed)
            return {"variant": v.name, "commit": None, "sha256": None}

    def metadata(self) -> dict[str, Any]:
        v = self.weight_variant
        source = f"local path {self.weights_path}" if self.weights_path is not None else v.source
        return {**super().metadata(), "weights": {"variant": v.name, "source": source, "license": v.license}}
