"""Splits of a dataset by video (never by frame: neighbouring frames would leak the test set into training)."""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from vrecore.errors import ConfigError

__all__ = ["split_videos"]


def split_videos(videos: Sequence[str], fractions: Mapping[str, float], *, seed: int = 0) -> dict[str, list[str]]:
    """Shuffle ``videos`` (seeded) and deal them into splits of about ``fractions`` of the videos (each
    split at least one video); e.g. ``{"train": 0.8, "test": 0.2}``."""
    if not fractions or any(f <= 0 for f in fractions.values()):
        raise ConfigError(f"split fractions must be positive, got {dict(fractions)}")
    if len(videos) < len(fractions):
        raise ConfigError(f"{len(videos)} video(s) cannot make {len(fractions)} splits by video "
                          f"({', '.join(fractions)}); export more videos or ask for fewer splits")
    order = list(videos)
    random.Random(seed).shuffle(order)
    total = sum(fractions.values())
    exact = {k: f / total * len(order) for k, f in fractions.items()}
    counts = {k: max(1, int(e)) for k, e in exact.items()}
    while sum(counts.values()) < len(order):  # largest remainders first
        k = max(exact, key=lambda key: exact[key] - counts[key])
        counts[k] += 1
    while sum(counts.values()) > len(order):
        k = max((key for key in counts if counts[key] > 1), key=lambda key: counts[key] - exact[key])
        counts[k] -= 1
    out: dict[str, list[str]] = {}
    start = 0
    for k in fractions:
        out[k] = sorted(order[start:start + counts[k]])
        start += counts[k]
    return out
