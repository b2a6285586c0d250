"""Helpers for vre's tests and for plugin authors' tests.

Each helper family lives in its own clearly named section; nothing here is imported by vre at run
time, and heavy libraries are imported inside the functions.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["populate_hub_cache", "use_hub_cache"]


# ============================================================================================
# Section: Hugging Face Hub cache (weights tests, offline)
# ============================================================================================
#
# `populate_hub_cache` lays files out exactly like huggingface_hub's cache (checked against
# huggingface_hub 2.4, file_download.py: `_hf_hub_download_to_cache_dir`, `_get_pointer_path`,
# `_cache_commit_hash_for_specific_revision`, `repo_folder_name`):
#
#   <cache_dir>/models--<org>--<name>/
#       blobs/<etag>                          file content; etag = sha256 (LFS files) or git blob sha1
#       snapshots/<commit>/<filename>         relative symlink -> ../../blobs/<etag> (copy if no symlinks)
#       refs/<revision>                       the commit hash, no newline (only when revision is a tag/branch)
#
# so that ``hf_hub_download(repo_id, filename, revision=...)`` with HF_HUB_OFFLINE=1 and
# HF_HUB_CACHE=<cache_dir> finds them through the real huggingface_hub code: offline, its HEAD call
# fails with OfflineModeIsEnabled, it resolves refs/<revision> (or takes a 40-hex revision as the
# commit) and returns snapshots/<commit>/<filename> when it exists.
#
# huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE from the environment once, at import time,
# into ``huggingface_hub.constants``, and every later call reads those module attributes. Setting
# the environment variables after import therefore has no effect: use `use_hub_cache`, which sets
# both the variables and the already-imported constants.

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# Extensions the Hub stores through LFS by default (its default .gitattributes); files over 10 MiB
# are LFS too. LFS blobs are named by sha256, regular git files by their git blob sha1.
_LFS_SUFFIXES = frozenset(
    ".safetensors .bin .pt .pth .ckpt .h5 .onnx .msgpack .pkl .pickle .npy .npz .tflite .ot .model "
    ".gguf .zip .gz .tar .tgz .zst .xz .7z .parquet .arrow .joblib .pb .mlmodel .wasm".split()
)
_LFS_MIN_SIZE = 10 * 1024 * 1024


def _etag(filename: str, data: bytes) -> str:
    if PurePosixPath(filename).suffix.lower() in _LFS_SUFFIXES or len(data) > _LFS_MIN_SIZE:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def populate_hub_cache(
    cache_dir: str | os.PathLike[str],
    repo_id: str,
    revision: str,
    files: Mapping[str, bytes | os.PathLike[str]],
) -> str:
    """Put ``files`` (repo-relative name → bytes or a path to copy) into a huggingface_hub cache.

    ``revision`` is a 40-hex commit hash (used as the snapshot folder) or a branch/tag name (then a
    deterministic fake commit hash is derived and ``refs/<revision>`` points to it). Returns the
    commit hash. Calling it again for the same repo adds/replaces files, like a real cache.
    """
    if "/" not in repo_id or repo_id.startswith("/") or repo_id.endswith("/"):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    if not revision:
        raise ValueError("revision must not be empty")
    storage = Path(cache_dir) / "--".join(["models", *repo_id.split("/")])

    blobs: dict[str, tuple[str, bytes]] = {}
    for name, content in files.items():
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or ".." in parts or "\\" in name:
            raise ValueError(f"file name {name!r} must be relative, '/'-separated, without '..'")
        data = bytes(content) if isinstance(content, (bytes, bytearray)) else Path(content).read_bytes()
        blobs[name] = (_etag(name, data), data)

    if _COMMIT_RE.match(revision):
        commit = revision
    else:
        h = hashlib.sha1(f"vre-test-commit\n{repo_id}\n{revision}\n".encode())
        for name in sorted(blobs):
            h.update(f"{name}\0{blobs[name][0]}\n".encode())
        commit = h.hexdigest()

    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = storage / "snapshots" / commit
    for name, (etag, data) in blobs.items():
        blob = storage / "blobs" / etag
        if not blob.exists():
            tmp = blob.with_name(etag + ".incomplete")
            tmp.write_bytes(data)
            os.replace(tmp, blob)
        pointer = snapshot.joinpath(*PurePosixPath(name).parts)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.is_symlink() or pointer.exists():
            pointer.unlink()
        try:
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        except OSError:  # no symlink support: huggingface_hub then copies the blob too
            shutil.copyfile(blob, pointer)

    if commit != revision:
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return commit


def use_hub_cache(monkeypatch: Any, cache_dir: str | os.PathLike[str], *, offline: bool = True) -> Path:
    """Point huggingface_hub at ``cache_dir`` (and offline mode) for one test, via ``monkeypatch``.

    Sets HF_HUB_CACHE / HF_HUB_OFFLINE in the environment (for a later import) and the
    corresponding ``huggingface_hub.constants`` attributes (read by every hf_hub_download call).
    """
    cache = Path(cache_dir).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True, raising=False)
    return cache


# ============================================================================================
# (other helper sections go below, each under its own header)
# ============================================================================================
