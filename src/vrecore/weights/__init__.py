"""Model weights as data: variants declared by learned types, found in the Hub's or vre's cache, checked
against the lock file, loaded from safetensors, converted from legacy checkpoints."""
from __future__ import annotations

from vrecore._lazy import lazy_exports

_LAZY = {
    "ConvertRecipe": "vrecore.weights.variants",
    "DeclaredVariant": "vrecore.weights.declared",
    "PackageSource": "vrecore.weights.variants",
    "ResolvedWeights": "vrecore.weights.resolving",
    "WeightVariant": "vrecore.weights.variants",
    "WeightedRepresentation": "vrecore.weights.representation",
    "declared_variants": "vrecore.weights.declared",
    "find_variant": "vrecore.weights.declared",
    "load_into": "vrecore.weights.loading",
    "load_safetensors": "vrecore.weights.loading",
    "recorded_identity": "vrecore.weights.resolving",
    "resolve": "vrecore.weights.resolving",
    "sha256_file": "vrecore.weights.cache",
    "size_text": "vrecore.weights.variants",
    "variant_field": "vrecore.weights.representation",
    "variant_status": "vrecore.weights.resolving",
}
__all__ = list(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
