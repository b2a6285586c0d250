"""The zarr store on a local folder (``out.zarr``) never follows a symbolic link below it: a link in place of a
shard, a pending chunk, a record object, the array metadata or a sub-folder is refused in one line by a re-run,
`vre verify` (``--repair``, ``--deep``) and `vre read`; nothing outside is written, deleted or read as data
(the directory store's rule, tests/test_faults_paths.py)."""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from tests.test_faults_paths import tree_hash

from vrecore.cli.app import main

# zarr found, not imported: collecting the tests stays light
pytestmark = pytest.mark.skipif(importlib.util.find_spec("zarr") is None, reason="needs zarr")

EXPORT = ["pipeline=rgb_hsv", "representations.rgb.output_size=[24,32]", "representations.hsv.output_size=[24,32]",
          "representations.hsv.image_format=jpg", "store_options.frames_per_shard=4"]


@pytest.fixture(scope="module")
def base(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frames 0..5 with shards of 4: shard 0 written whole, frames 4 and 5 pending; hsv with jpg previews."""
    from vrecore.graph.registry import reset_registry

    reset_registry()
    out = tmp_path_factory.mktemp("base") / "clip.zarr"
    assert main(["export", f"video={sample_video}", f"output_dir={out}", "frames=0..6", *EXPORT]) == 0
    assert (out / "rgb" / "c" / "0" / "0" / "0" / "0").is_file() and (out / "rgb" / ".pending" / "4").is_file()
    return out


@pytest.fixture
def export(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "clip.zarr"
    shutil.copytree(base, out, symlinks=True)
    return out


def damage_chunk(out: Path) -> None:
    """Make the pending chunk of rgb frame 4 bad (another size than recorded): repair quarantines it."""
    (out / "rgb" / ".pending" / "4").write_bytes(b"x")


def nothing(out: Path) -> None:
    pass


SHARD = "rgb/c/0/0/0/0"
# (command, path below the export made a link to a copy of itself outside, what else to prepare)
MATRIX = [
    ("export", SHARD, nothing),
    ("export", "rgb/c", nothing),
    ("export", "rgb/.pending", nothing),
    ("export", "rgb/.pending/4", nothing),
    ("export", "rgb/.records", nothing),
    ("export", "rgb/zarr.json", nothing),
    ("export", "hsv/jpg", nothing),
    ("export", "zarr.json", nothing),
    ("export", ".logs", nothing),
    ("overwrite", "rgb/c", nothing),
    ("overwrite", "rgb/.records", nothing),
    ("verify", SHARD, damage_chunk),
    ("verify", "rgb/.pending", damage_chunk),
    ("verify", "rgb/.records", damage_chunk),
    ("verify", ".quarantine", damage_chunk),
    ("verify-deep", SHARD, nothing),
    ("verify-deep", "hsv/jpg/1.jpg", nothing),
    ("read", SHARD, nothing),
    ("read", "rgb", nothing),
]


def run(command: str, out: Path, video: Path) -> int:
    if command in ("export", "overwrite"):
        extra = ["overwrite=true", "representations.rgb.output_size=[16,16]",
                 "representations.hsv.output_size=[16,16]"] if command == "overwrite" else []
        return main(["export", f"video={video}", f"output_dir={out}", "frames=0..8", *EXPORT, *extra])
    args = {"verify": ["verify", str(out), "--repair"], "verify-deep": ["verify", str(out), "--deep"],
            "read": ["read", str(out), "--json"]}[command]
    return main(args)


@pytest.mark.parametrize(("command", "rel", "prepare"), MATRIX, ids=[f"{c}:{p}" for c, p, _ in MATRIX])
def test_a_symbolic_link_below_a_local_zarr_export_is_never_followed(registry, export, tmp_path, sample_video,
                                                                      capsys, command, rel, prepare):
    outside = tmp_path / "outside"
    outside.mkdir()
    prepare(export)
    link = export / rel
    copy = outside / "copy"
    if rel == ".quarantine":
        copy.mkdir()
    elif link.is_dir():
        shutil.copytree(link, copy)
        shutil.rmtree(link)
    else:
        shutil.copy2(link, copy)
        link.unlink()
    link.symlink_to(copy)
    before = tree_hash(outside)
    capsys.readouterr()

    code = run(command, export, sample_video)

    err = capsys.readouterr().err
    name = "export" if command == "overwrite" else command.partition("-")[0]
    errors = [line for line in err.splitlines() if line.startswith(f"vre {name}: error: ")]
    assert code == 2 and "Traceback" not in err and len(errors) == 1, err
    assert f"'{link}' is a symbolic link" in errors[0], errors[0]
    assert tree_hash(outside) == before, "nothing outside was written or deleted"
    assert link.is_symlink() and Path(os.readlink(link)) == copy


@pytest.mark.parametrize("linked", ["a/b", "a/b/c/d"])
def test_each_object_operation_refuses_a_link_and_names_it(tmp_path, linked):
    from vrecore.store.safe_paths import SymlinkRefused
    from vrecore.store.zarr_store.objects import ObjectFiles

    root = tmp_path / "x.zarr"
    files = ObjectFiles(str(root))
    files.put("a/b/c/d", b"inside")
    outside = tmp_path / "outside"
    shutil.move(root / linked, outside)
    (root / linked).symlink_to(outside)
    before = tree_hash(tmp_path / "outside") if outside.is_dir() else outside.read_bytes()
    message = f"'{root / linked}' is a symbolic link"
    for operation in (lambda: files.get("a/b/c/d"), lambda: files.get("a/b/c/d", 1, 3), lambda: files.info("a/b/c/d"),
                      lambda: files.put("a/b/c/d", b"written"), lambda: files.delete("a/b/c/d"),
                      lambda: files.delete_many(["a/b/c/d"]), lambda: files.find("a"), lambda: list(files.walk("a"))):
        with pytest.raises(SymlinkRefused, match=message):
            operation()
    assert (tree_hash(tmp_path / "outside") if outside.is_dir() else outside.read_bytes()) == before
