"""A local Hugging Face Hub cache laid out as huggingface_hub's own, for weights tests that run offline."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

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


def use_hub_cache(monkeypatch: Any, cache_dir: str | os.PathLike[str], *, offline: bool = True,
                  endpoint: str | None = None) -> Path:
    """Point huggingface_hub at ``cache_dir`` (and offline mode, and ``endpoint`` when given: a `LocalHub`, or a
    closed port to stand for a machine without network) for one test, via ``monkeypatch``.

    Sets HF_HUB_CACHE / HF_HUB_OFFLINE (/ HF_ENDPOINT) in the environment (for a later import) and the
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
    if endpoint is not None:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    return cache


class LocalHub:
    """The part of the Hugging Face Hub that ``hf_hub_download`` talks to, served on 127.0.0.1 for tests.

    ``HEAD`` / ``GET /{repo_id}/resolve/{revision}/{filename}`` answer with the file and the headers
    huggingface_hub reads (``X-Repo-Commit``, ``ETag``, ``Content-Length``); an unknown repo, revision or
    file is a 404 with the Hub's ``X-Error-Code``. `publish` moves a branch to a new commit, as a push does.
    Use as a context manager; `use_hub_cache(..., endpoint=hub.url)` points huggingface_hub at it.
    """

    def __init__(self) -> None:
        self.refs: dict[str, dict[str, str]] = {}
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._server: Any = None

    def publish(self, repo_id: str, files: Mapping[str, bytes | os.PathLike[str]], branch: str = "main") -> str:
        """Make ``files`` the content of ``branch`` of ``repo_id`` at a new commit; returns the commit."""
        data = {name: bytes(c) if isinstance(c, (bytes, bytearray)) else Path(c).read_bytes() for name, c in files.items()}
        h = hashlib.sha1(f"vre-local-hub\n{repo_id}\n".encode())
        for name in sorted(data):
            h.update(f"{name}\0{_etag(name, data[name])}\n".encode())
        commit = h.hexdigest()
        self.commits.setdefault(repo_id, {})[commit] = data
        self.refs.setdefault(repo_id, {})[branch] = commit
        return commit

    @property
    def url(self) -> str:
        """The endpoint, e.g. ``http://127.0.0.1:41234``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _answer(self, handler: Any, body: bool) -> None:
        from urllib.parse import unquote

        self.requests.append((handler.command, handler.path))
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", handler.path.split("?")[0])
        error, data, commit = "RepoNotFound", None, None
        if match:
            repo_id, revision, filename = match.group(1), unquote(match.group(2)), unquote(match.group(3))
            if repo_id in self.commits:
                commit = self.refs[repo_id].get(revision, revision if revision in self.commits[repo_id] else None)
                error = "RevisionNotFound" if commit is None else "EntryNotFound"
                data = None if commit is None else self.commits[repo_id][commit].get(filename)
        if data is None:
            handler.send_response(404)
            handler.send_header("X-Error-Code", error)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", str(commit))
        handler.send_header("ETag", f'"{_etag(filename, data)}"')
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)

    def __enter__(self) -> LocalHub:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 - the http.server protocol
                hub._answer(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._answer(self, body=True)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="vre-local-hub").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# ============================================================================================
# (other helper sections go below, each under its own header)
# ============================================================================================


def link_imported_weights(made: str | os.PathLike[str]) -> None:
    """What `vre weights import` put in the vre cache ``made`` (a session's, say), in the current vre cache: the lock
    file and digest memo copied, each weights file a link to ``made``'s. Weights of 20-140 MB imported again for
    every test that needs them would write gigabytes a test run."""
    from vrecore.weights.cache import weights_dir

    source, here = Path(made) / "weights", weights_dir()
    for path in sorted(source.rglob("*")):
        if path.is_dir() or path.name.endswith(".lck"):
            continue
        target = here / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".safetensors", ".h5", ".onnx", ".bin"):
            target.symlink_to(path)
        else:
            shutil.copy2(path, target)
