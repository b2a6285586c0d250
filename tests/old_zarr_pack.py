"""The layout `vre pack --to zarr` wrote before the zarr store (issue 23): a group whose ``vre`` attribute describes
the pack, one array per video and task. vre no longer writes it; its readers keep reading packs made then."""
from __future__ import annotations

from pathlib import Path

from vrecore.data.packed import PACK_FORMAT, PACK_VERSION
from vrecore.data.packing import _describe
from vrecore.data.sources import ExportSource, find_exports


def write_old_zarr_pack(export: Path, dest: Path, tasks: list[str] | None = None) -> None:
    import zarr

    exports = find_exports(export)
    sources = [ExportSource(path, video) for video, path in exports]
    videos = {s.video: _describe(s, [t for t in (tasks or sorted(s.tasks)) if t in s.tasks]) for s in sources}
    description = {"format": PACK_FORMAT, "version": PACK_VERSION, "multi": exports[0][1] != export, "videos": videos}
    group = zarr.open_group(str(dest), mode="w", attributes={"vre": description})
    for source in sources:
        for name, task in videos[source.video]["tasks"].items():
            first = source.read(name, task["frames"][0])
            array = group.create_array(f"{source.video}/{name}", shape=(len(task["frames"]), *first.shape),
                                       dtype=first.dtype, chunks=(1, *first.shape), attributes={"frames": task["frames"]})
            for row, frame in enumerate(task["frames"]):
                array[row] = source.read(name, frame)
