"""Model weights as data: variants declared by learned types, found in the Hub's or vre's cache, checked
against the lock file, converted from legacy checkpoints."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "ConvertRecipe": "vrecore.weights.variants",
    "DeclaredVariant": "vrecore.weights.variants",
    "PackageSource": "vrecore.weights.variants",
    "ResolvedWeights": "vrecore.weights.variants",
    "WeightVariant": "vrecore.weights.variants",
    "WeightedRepresentation": "vrecore.weights.variants",
    "declared_variants": "vrecore.weights.variants",
    "find_variant": "vrecore.weights.variants",
    "load_into": "vrecore.weights.variants",
    "load_safetensors": "vrecore.weights.variants",
    "recorded_identity": "vrecore.weights.variants",
    "resolve": "vrecore.weights.variants",
    "sha256_file": "vrecore.weights.variants",
    "size_text": "vrecore.weights.variants",
    "variant_field": "vrecore.weights.variants",
    "variant_status": "vrecore.weights.variants",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
