"""Representation metadata: the compact per-frame view, and its regeneration from the files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vrecore.errors import ConfigError
from vrecore.store import DirectoryStore, Store, required_folders

if TYPE_CHECKING:
    from vrecore.graph import Node

__all__ = ["regenerate_metadata", "write_representation_metadata"]

METADATA_FILE = "representation_metadata.json"
_FORMAT_FOLDERS = ("npz", "jpg", "png")


def write_representation_metadata(store: Store, node: Node) -> None:
    """Rewrite a representation's metadata (``<name>/representation_metadata.json``) from its
    append-only records and the frames present (caller holds ``store.lock(name)``)."""

    # The files are the truth: records of deleted frames are dropped, and frames whose record was
    # lost (a kill -9 between the rename and the append) are listed as unrecorded.
    present = store.done_frames(node.name, required_folders(node.settings.binary_format, node.settings.image_format))
    frames: dict[int, dict[str, Any]] = {}
    for record in store.read_records(node.name):
        frame = record.pop("frame", None)
        if isinstance(frame, int) and frame in present:
            frames[frame] = record
    for frame in present - frames.keys():
        frames[frame] = {"run": "unrecorded"}
    store.write_metadata(node.name, {
        "name": node.name, "type": node.type_name, "parameters": dict(node.parameters),
        "dependencies": list(node.dependency_names), "metadata": node.representation.metadata(),
        "binary_format": node.settings.binary_format, "image_format": node.settings.image_format,
        "frames": {str(k): frames[k] for k in sorted(frames)},
    })


def regenerate_metadata(output_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Rebuild every representation's records and metadata file from the frames on disk."""
    import json

    root = Path(output_dir)
    if not root.is_dir():
        raise ConfigError(f"output_dir '{output_dir}' is not a folder; give the folder of an export")
    store = DirectoryStore(root)
    counts: dict[str, int] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        present = {sub: store.done_frames(folder.name, [sub]) for sub in _FORMAT_FOLDERS if (folder / sub).is_dir()}
        if not present:
            continue
        old: dict[str, Any] = {}
        meta_path = folder / METADATA_FILE
        if meta_path.exists():
            try:
                old = json.loads(meta_path.read_text())
            except ValueError:
                old = {}
        old_frames = old.get("frames", {})
        frames: dict[str, Any] = {}
        for i in sorted(set().union(*present.values())):
            previous = old_frames.get(str(i), {})
            frames[str(i)] = {"run": previous.get("run", "regenerated"), "seconds": previous.get("seconds"),
                              "formats": [sub for sub, idx in present.items() if i in idx]}
        with store.lock(folder.name):
            lines = "".join(json.dumps({"frame": int(k), **v}, separators=(",", ":")) + "\n"
                            for k, v in frames.items())
            tmp = folder / f"frames.jsonl.tmp-{os.getpid()}"
            tmp.write_text(lines)
            os.replace(tmp, folder / "frames.jsonl")
            store.write_json(meta_path, {**{k: v for k, v in old.items() if k != "frames"},
                                         "name": folder.name, "frames": frames})
        counts[folder.name] = len(frames)
    return counts
