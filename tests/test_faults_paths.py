"""Nothing escapes the output folder and nothing hangs on it: a symbolic link anywhere below it is never
followed when vre writes, appends, moves, locks, deletes or verifies; a named pipe in place of a frame is
reported, never opened blocking; a read-only output folder gives one clean line (issue 19, items 2, 4, 10)."""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vrecore.cli.app import main as vre_main

HOST = "".join(c if c.isalnum() or c in "_-" else "_" for c in socket.gethostname())[:40] or "host"


def vre(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vrecore.cli.app", *args], capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(stderr: str, command: str) -> str:
    """The single `vre CMD: error:` line, checking there is no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith(f"vre {command}: error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def tree_hash(root: Path) -> str:
    """Names, kinds and bytes of everything below ``root`` (links not followed)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_symlink():
            h.update(b"L" + os.readlink(p).encode())
        elif p.is_file():
            h.update(b"F" + p.read_bytes())
        else:
            h.update(b"D")
    return h.hexdigest()


@pytest.fixture(scope="module")
def base(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small export (rgb, hsv; npz and jpg; frames 0, 1) with collages, preview video and report."""
    out = tmp_path_factory.mktemp("base") / "out"
    r = vre("export", f"video={sample_video}", f"output_dir={out}", "frames=0..2", "image_format=jpg")
    assert r.returncode == 0, r.stderr
    for command in ("collage", "video", "report"):
        assert vre_main([command, str(out)]) == 0
    return out


@pytest.fixture
def export(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(base, out, symlinks=True)
    return out


def truncate_frame(out: Path) -> None:
    """Make rgb frame 0 bad (a file of another size than recorded)."""
    (out / "rgb" / "npz" / "0.npz").write_bytes(b"x")


def touch_frame(out: Path) -> None:
    """Give rgb frame 1 another mtime (same bytes): it is re-read and recorded again."""
    path = out / "rgb" / "npz" / "1.npz"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def nothing(out: Path) -> None:
    pass


# (command, path below the output folder made a link, what the link points to, what else to prepare)
# "copy": a copy of the original outside (file or folder); "dangling": an outside name that does not exist yet.
MATRIX: list[tuple[str, str, str, Callable[[Path], None]]] = [
    ("export", "rgb/npz", "copy", nothing),
    ("export", "rgb/jpg", "copy", nothing),
    ("export", "rgb/.frames.jsonl", "copy", nothing),
    ("export", "rgb/.repr_metadata.json", "copy", nothing),
    ("export", "rgb/.lock", "dangling", nothing),
    ("export", ".logs", "copy", nothing),
    ("export", ".quarantine", "folder", truncate_frame),
    ("export", "rgb/npz/0.npz", "copy", nothing),
    ("export", f"rgb/npz/7.npz.tmp-{HOST}-999999999-deadbeef", "file", nothing),
    ("verify", "rgb/npz", "copy", truncate_frame),
    ("verify", "rgb/npz/0.npz", "copy", nothing),
    ("verify", ".quarantine", "folder", truncate_frame),
    ("verify", "rgb/.frames.jsonl", "copy", truncate_frame),
    ("verify", "rgb/.lock", "dangling", truncate_frame),
    ("verify", ".logs", "copy", truncate_frame),
    ("verify-deep", "rgb/npz/0.npz", "copy", nothing),
    ("metadata", "rgb/npz", "copy", touch_frame),
    ("metadata", "rgb/.frames.jsonl", "copy", touch_frame),
    ("metadata", "rgb/.repr_metadata.json", "copy", touch_frame),
    ("metadata", "rgb/.lock", "dangling", touch_frame),
    ("collage", ".collage", "copy", nothing),
    ("collage", ".collage/0.jpg", "copy", nothing),
    ("video", "preview.mp4", "copy", nothing),
    ("report", "report.html", "copy", nothing),
]


def run_command(command: str, out: Path, video: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run one command on ``out`` as the `vre` command does, in this process (a process each for the 30 cases would
    cost ~15 s of CPU in start-up alone): (exit code, the command's name in its messages, stderr)."""
    args = {"export": ["export", f"video={video}", f"output_dir={out}", "frames=0..4", "image_format=jpg"],
            "verify": ["verify", str(out), "--repair"], "verify-deep": ["verify", str(out), "--deep"],
            "metadata": ["metadata", str(out)], "collage": ["collage", str(out)], "video": ["video", str(out)],
            "report": ["report", str(out)]}[command]
    capsys.readouterr()
    code = vre_main(args)
    return code, args[0], capsys.readouterr().err


@pytest.mark.parametrize(("command", "rel", "target", "prepare"), MATRIX,
                         ids=[f"{c}:{p.replace(HOST, 'HOST')}" for c, p, _, _ in MATRIX])
def test_a_symbolic_link_below_the_output_folder_is_never_followed(export: Path, tmp_path: Path, sample_video: Path,
                                                                    command: str, rel: str, target: str,
                                                                    prepare: Callable[[Path], None],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "file").write_bytes(b"outside, not vre's\n")
    prepare(export)
    link = export / rel
    if target == "copy":
        copy = outside / "copy"
        shutil.copytree(link, copy) if link.is_dir() else shutil.copy2(link, copy)
        destination = copy
    else:
        destination = {"dangling": outside / "created", "folder": outside / "folder", "file": outside / "file"}[target]
    if link.is_dir():
        shutil.rmtree(link)
    else:
        link.unlink(missing_ok=True)
    link.symlink_to(destination)
    before = tree_hash(outside)

    code, name, stderr = run_command(command, export, sample_video, capsys)

    assert code == 2, stderr
    line = one_error_line(stderr, name)
    assert f"'{link}' is a symbolic link" in line, line
    assert tree_hash(outside) == before
    assert link.is_symlink() and Path(os.readlink(link)) == destination


# -- named pipes in place of frames (item 4) -------------------------------------------------------------------
def fifo_frame(out: Path) -> Path:
    path = out / "rgb" / "npz" / "0.npz"
    path.unlink()
    os.mkfifo(path)
    return path


def test_verify_reports_a_named_pipe_as_corrupt_and_repair_moves_it_aside(export: Path) -> None:
    pipe = fifo_frame(export)
    deep = vre("verify", str(export), "--deep", timeout=30)
    assert deep.returncode == 1, deep.stderr
    assert f"corrupt: {pipe}: not a regular file (a named pipe)" in deep.stdout.splitlines()
    repair = vre("verify", str(export), "--deep", "--repair", timeout=30)
    assert repair.returncode == 0, repair.stderr
    assert pipe.is_file() and not pipe.is_symlink()
    moved = list((export / ".quarantine").rglob("0.npz"))
    assert len(moved) == 1 and moved[0].is_fifo()
    assert vre("verify", str(export), "--deep", timeout=30).returncode == 0


def test_read_stats_names_a_named_pipe_in_one_line(export: Path) -> None:
    pipe = fifo_frame(export)
    r = vre("read", str(export), "--stats", timeout=30)
    assert r.returncode != 0
    line = one_error_line(r.stderr, "read")
    assert str(pipe) in line and "not a regular file (a named pipe)" in line, line


def test_collage_names_a_named_pipe_in_one_warning(export: Path) -> None:
    pipe = fifo_frame(export)
    r = vre("collage", str(export), timeout=30)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if str(pipe) in line]
    assert len(warnings) == 1 and "not a regular file (a named pipe)" in warnings[0], r.stderr
    assert "Traceback" not in r.stderr


# -- a read-only output folder (item 10) -------------------------------------------------------------------------
@pytest.fixture
def read_only_export(base: Path, tmp_path: Path) -> Callable[[Callable[[Path], None]], Path]:
    """A copy of the base export on a tmpfs mounted read-only (root cannot write there either)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs root: {r.stderr.decode().strip()}")

    def make(prepare: Callable[[Path], None]) -> Path:
        out = disk / "out"
        shutil.copytree(base, out, symlinks=True)
        prepare(out)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        return out

    yield make
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.parametrize(("args", "prepare"), [
    (["verify", "{out}", "--repair"], truncate_frame),
    (["video", "{out}"], nothing),
    (["report", "{out}"], nothing),
    (["metadata", "{out}"], touch_frame),
], ids=["verify-repair", "video", "report", "metadata"])
def test_a_read_only_output_folder_is_one_line(read_only_export, args: list[str],
                                               prepare: Callable[[Path], None]) -> None:
    out = read_only_export(prepare)
    before = tree_hash(out)
    r = vre(*[a.format(out=out) for a in args])
    assert r.returncode != 0
    line = one_error_line(r.stderr, args[0])
    assert str(out) in line and "is not writable (Read-only file system)" in line, line
    assert "choose a writable" in line or "fix its permissions" in line, line
    assert tree_hash(out) == before
