"""The one image a raw output writes per frame: a chosen representation or a side-by-side mosaic, at a fixed size."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from vrecore.errors import ConfigError
from vrecore.visual.tiles import as_rgb8

from .base import INPUT_NAME

__all__ = ["FramePicker", "flat", "mosaic"]

logger = logging.getLogger(__name__)


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if width < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def mosaic(images: Sequence[np.ndarray], height: int | None = None) -> np.ndarray:
    """Place RGB images side by side, each scaled to `height` (default: the first one's)."""
    if not images:
        raise ValueError("mosaic() needs at least one image")
    height = images[0].shape[0] if height is None else height
    parts = []
    for img in images:
        if img.shape[0] != height:
            width = max(1, round(img.shape[1] * height / img.shape[0]))
            img = _resize(img, width, height)
        parts.append(img)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


class FramePicker:
    """Turns (input, outputs) into the one image a raw target writes, at a fixed size."""

    def __init__(self, representation: str | None, use_mosaic: bool, include_input: bool) -> None:
        self.representation = representation
        self.use_mosaic = use_mosaic
        self.include_input = include_input
        self.size: tuple[int, int] | None = None  # (width, height), fixed by the first frame

    def pick(self, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        if self.use_mosaic:
            images = [as_rgb8(INPUT_NAME, input_frame)] if self.include_input or not outputs else []
            images += [as_rgb8(n, im) for n, im in outputs.items()]
            img = mosaic(images, None if self.size is None else self.size[1])
        else:
            name = self.representation
            if name is None:
                if len(outputs) > 1:
                    raise ConfigError(
                        f"several representations ({', '.join(outputs)}) for one raw stream: "
                        "choose one (representation=NAME) or ask for a mosaic"
                    )
                name = next(iter(outputs), INPUT_NAME)
            if name in outputs:
                img = outputs[name]
            elif name == INPUT_NAME:
                img = input_frame
            else:
                raise ConfigError(
                    f"representation {name!r} is not produced: choose one of {', '.join([INPUT_NAME, *outputs])}"
                )
            img = as_rgb8(name, img)
        h, w = img.shape[:2]
        if self.size is None:
            self.size = (w, h)
            logger.info("raw rgb24 output frames are %dx%d", w, h)
        elif (w, h) != self.size:
            # Raw streams have no header, so every frame must keep the first frame's size.
            img = _resize(img, *self.size)
        # Writes need one contiguous buffer; this copies only when the producer gave a view.
        return np.ascontiguousarray(img)


def flat(img: np.ndarray) -> memoryview:
    """A flat byte view of a contiguous image, no copy."""
    return img.reshape(-1).data
