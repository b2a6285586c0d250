"""Where compute runs: device checks, compute-thread limits, out-of-memory detection and release.

torch is imported only to check a non-CPU device; the rest looks torch up in ``sys.modules`` (it is
used once a learned type's set-up imported it).
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from vrecore.errors import ConfigError

__all__ = ["check_device", "is_out_of_memory", "release_accelerator_memory", "thread_limit"]


def check_device(device: str) -> None:
    """Raise a one-line ConfigError unless ``device`` exists here (torch is imported only for a non-CPU one)."""
    if not isinstance(device, str) or not device.strip():
        raise ConfigError(f"device {device!r} is not a device; use cpu, cuda, cuda:N or mps")
    if device == "cpu" or re.fullmatch(r"cpu:\d+", device):  # cpu:N names a CPU group of a placement
        return
    try:
        import torch
    except ImportError:
        raise ConfigError(f"device '{device}' needs torch, which is not installed (pip install 'vrecore[torch]'); "
                          f"or use device=cpu") from None
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device '{device}' is not a device torch knows; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device '{device}' is not available: this machine has no CUDA GPU that torch can use; "
                              f"use device=cpu")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device '{device}' is not available: this machine has {count} CUDA device(s) "
                              f"(cuda:0..cuda:{count - 1})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{device}' is not available on this machine; use device=cpu")


class thread_limit:  # noqa: N801 - used as a context manager, like contextlib's
    """Cap OpenCV's and (once imported) torch's compute threads; `apply` again after a setup that
    imported torch; leaving restores the libraries' own settings."""

    def __init__(self, threads: int | None) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a positive integer or null, got {threads!r}")
        self.threads = threads
        self._restore: list[Callable[[], None]] = []
        self._cv = False

    def apply(self) -> None:
        if self.threads is None:
            return
        if not self._cv:
            import cv2

            before_cv = cv2.getNumThreads()
            cv2.setNumThreads(self.threads)
            self._restore.append(lambda: cv2.setNumThreads(before_cv))
            self._cv = True
        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() != self.threads:
            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            self._restore.append(lambda: torch.set_num_threads(before))

    def __enter__(self) -> thread_limit:
        self.apply()
        return self

    def __exit__(self, *exc: Any) -> None:
        for restore in reversed(self._restore):
            restore()
        self._restore.clear()
        self._cv = False


def is_out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an out-of-memory error (host MemoryError, torch's OutOfMemoryError, CUDA text)."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or (
        isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def release_accelerator_memory() -> None:
    """Return cached accelerator memory to the device (after a model is dropped, or an out-of-memory error);
    a no-op without torch or CUDA."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
