"""Documentation that runs: every code block of README.md, docs/*.md and the plugins' and examples' READMEs,
taken from the files themselves, runs as written on the shipped clip, offline, or says in the block what it needs.

The convention the documents follow (README.md, "Command line", says it to the reader):

- every fenced block names its language: ``bash``, ``python``, ``yaml`` or ``toml`` are run or checked, ``text``
  (output, formulas, folder trees) is not;
- a block whose first line is a comment naming a file (``# my_conf/pipeline/mine.yaml``) is that file: it is
  written into the reader's folder before the document's commands run;
- a comment ``# needs: WHAT`` (weights, a GPU, the network, a camera, Ray...) or ``# not run: WHY`` among a block's
  first comment lines leaves the whole block out; at the end of a bash line it leaves out that line;
- the reader's folder holds the repository's ``plugins``, ``examples``, ``bench``, ``tests`` and shipped footage,
  plus ``clip.mp4`` (the shipped clip, as the README's first command copies it) and ``out`` (an rgb_hsv export of
  its frames 0..8, as the README's second command makes it).
"""
from __future__ import annotations

import os
import py_compile
import re
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # hatchling's dependency before Python 3.11

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("plugins/*/README.md"),
                    *ROOT.glob("examples/*/README.md")])
RUN_LANGUAGES = {"bash", "python", "yaml", "toml"}
LANGUAGES = RUN_LANGUAGES | {"text"}
SHARED_WITH_READER = ("plugins", "examples", "bench", "tests", "src/vrecore/frames/footage")
MARKER = re.compile(r"#\s*(needs|not run):\s*\S")
FILE_LINE = re.compile(r"#\s+([\w.-]+(?:/[\w.-]+)*\.(?:py|toml|yaml|yml))(?:\s|$)")
BLOCK_TIMEOUT_S = 120  # a hang guard only


@attrs.frozen
class Block:
    """One fenced code block of a document."""

    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def leading_comments(self) -> list[str]:
        lines = self.text.splitlines()
        return lines[:next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))]

    @property
    def marker(self) -> str | None:
        """The block's ``# needs: ...`` / ``# not run: ...`` comment, if it has one."""
        return next((line for line in self.leading_comments if MARKER.match(line)), None)

    @property
    def file_line(self) -> str | None:
        """The leading comment that names the file the block is (a pipeline file's comes after its package line)."""
        return next((line for line in self.leading_comments[:2] if FILE_LINE.fullmatch(line.split("  ")[0])), None)

    @property
    def file(self) -> str | None:
        """The path the block is the content of, when one of its first two lines names one."""
        found = FILE_LINE.fullmatch(self.file_line.split("  ")[0]) if self.file_line else None
        return found.group(1) if found else None


def blocks(document: Path) -> list[Block]:
    """The fenced blocks of a document, in order."""
    found, language, start, body = [], None, 0, []
    for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
        if language is None and line.startswith("```"):
            language, start, body = line[3:].strip(), number, []
        elif language is not None and line.strip() == "```":
            found.append(Block(document, start, language, "\n".join(body) + "\n"))
            language = None
        elif language is not None:
            body.append(line)
    assert language is None, f"{document.relative_to(ROOT)}:{start}: a fenced block is never closed"
    return found


def bash_script(block: Block) -> str:
    """The block's commands, without the lines marked as needing what is not here."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    return "\n".join(line for line in joined.splitlines() if not MARKER.search(line)) + "\n"


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)


def _reader_env(folder: Path) -> dict[str, str]:
    """The venv's bin first on PATH (``vre``, ``python``), a private vre cache, and no network for weights."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VRE_", "PYTEST_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", VRE_CACHE=str(folder / ".cache"),
               HF_HUB_OFFLINE="1")
    return env


@pytest.fixture(scope="session")
def shared_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``clip.mp4`` (the shipped clip) and ``out`` (its frames 0..8 through rgb_hsv), made once, as the README's
    "Command line" block makes them."""
    from vrecore.frames.sample import demo_clip

    folder = tmp_path_factory.mktemp("reader")
    shutil.copy(demo_clip(), folder / "clip.mp4")
    r = _run([str(Path(sys.executable).parent / "vre"), "export", "video=clip.mp4", "output_dir=out",
              "pipeline=rgb_hsv", "frames=0..8"], folder, _reader_env(folder))
    assert r.returncode == 0, r.stderr
    return folder


def _reader_folder(shared: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in SHARED_WITH_READER:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(ROOT / name)
    shutil.copy(shared / "clip.mp4", folder / "clip.mp4")
    shutil.copytree(shared / "out", folder / "out")
    return folder


def check_file_block(block: Block, folder: Path) -> None:
    """Write a file block into the reader's folder and check it parses."""
    assert block.file is not None
    path = folder / block.file
    assert path.resolve().is_relative_to(folder.resolve()) and not path.exists(), f"{block.where}: {block.file}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.text.replace(f"{block.file_line}\n", "", 1), encoding="utf-8")
    if block.language == "python":
        py_compile.compile(str(path), doraise=True)


def check_data_block(block: Block) -> str | None:
    """A yaml or toml block parses; a pipeline builds into a graph (types, parameters, dependencies)."""
    if block.language == "toml":
        tomllib.loads(block.text)
        return None
    data = yaml.safe_load(block.text)
    if isinstance(data, dict) and "representations" in data:
        import vrecore

        try:
            vrecore.build_graph(data)
        except vrecore.errors.VreError as e:
            return f"the pipeline does not build: {e}"
    return None


def run_document(document: Path, folder: Path) -> list[str]:
    """Run every block of a document in order in the reader's folder; the failures, one line each."""
    env, failures = _reader_env(folder), []
    every = blocks(document)
    for block in every:
        if block.file:
            check_file_block(block, folder)
    for block in every:
        if block.language not in RUN_LANGUAGES or block.marker:
            continue
        if block.language in ("yaml", "toml"):
            problem = check_data_block(block)
            if problem:
                failures.append(f"{block.where} ({block.language}): {problem}")
            continue
        if block.file:
            continue
        script = folder / f".block_{block.line}.{'sh' if block.language == 'bash' else 'py'}"
        if block.language == "bash":
            script.write_text(bash_script(block), encoding="utf-8")
            r = _run(["bash", "-eo", "pipefail", script.name], folder, env)
        else:
            script.write_text(block.text, encoding="utf-8")
            r = _run([sys.executable, script.name], folder, env)
        if r.returncode != 0:
            last = (r.stderr.strip() or r.stdout.strip() or "(no output)").splitlines()[-1]
            failures.append(f"{block.where} ({block.language}): exit {r.returncode}: {last}")
    return failures


def test_the_runner_reports_a_failing_block_and_leaves_out_only_what_is_marked(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    doc = tmp_path / "doc.md"
    doc.write_text("```bash\n# needs: a camera\nfalse\n```\n\n```bash\ntrue\nfalse   # not run: needs a drone\n"
                   "if [ -f made.txt ]; then touch ran.txt; fi\n```\n\n```text\nfalse\n```\n\n"
                   "```yaml\n# @package _global_\n# conf/pipeline/p.yaml\nrepresentations:\n  x: {type: nope/nope}\n```\n\n"
                   "```python\nopen('made.txt', 'w').close()\nraise SystemExit(3)\n```\n\n```bash\nfalse\n```\n")
    (tmp_path / "reader").mkdir()
    failures = run_document(doc, tmp_path / "reader")
    assert [f.split(": ")[0] for f in failures] == ["doc.md:16 (yaml)", "doc.md:23 (python)", "doc.md:28 (bash)"]
    assert "exit 3" in failures[1] and "nope/nope" in failures[0]
    assert (tmp_path / "reader" / "conf" / "pipeline" / "p.yaml").read_text().startswith("# @package _global_\nrep")
    assert not (tmp_path / "reader" / "ran.txt").exists(), "blocks run in the document's order"


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_block_names_its_language(document):
    for block in blocks(document):
        assert block.language in LANGUAGES, (
            f"{block.where}: a block in ```{block.language}: say ```bash for commands, ```text for output")
        if block.language == "text":
            assert not re.match(r"\s*(vre|pip|python)\s", block.text), f"{block.where}: commands in a ```text block"


DOCUMENT_SECONDS = {"README.md": 25, "docs/reading.md": 12, "plugins/vre-edges/README.md": 5}
"""What the longest documents' blocks take on an idle 2-core machine (the others ~3 s): see conftest's ``slow``."""


@pytest.mark.parametrize("document", [
    pytest.param(d, marks=pytest.mark.slow(seconds=DOCUMENT_SECONDS.get(str(d.relative_to(ROOT)), 3)))
    if d.name == "README.md" or d.parent.name == "docs" else d for d in DOCUMENTS],
    ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_block_runs_as_written_or_says_what_it_needs(document, shared_export, tmp_path):
    """Each document in its own reader's folder, its blocks in order (one test per document, so that the test
    runner spreads the documents over its workers)."""
    failures = run_document(document, _reader_folder(shared_export, tmp_path / "reader"))
    assert not failures, "\n".join(failures)


def test_the_readme_plugin_builds_installs_and_runs_from_its_own_text(shared_export, tmp_path):
    """README's "Writing a plugin" files, written as shown, build into a wheel, install, register and export."""
    readme = ROOT / "README.md"
    plugin = [b for b in blocks(readme) if b.file and b.file.startswith("vre-motion/")]
    assert {b.file for b in plugin} >= {"vre-motion/pyproject.toml", "vre-motion/vre_motion/__init__.py",
                                        "vre-motion/vre_motion/difference.py"}
    for block in plugin:
        check_file_block(block, tmp_path)
    env = _reader_env(tmp_path)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", "dist", "./vre-motion"], tmp_path, env)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("vre_motion-0.1.0-*.whl"))
    installed = _run([*pip, "install", "--no-deps", "--target", "site", str(wheel)], tmp_path, env)
    assert installed.returncode == 0, installed.stderr
    # The README's distribution comes first on the path: it stands in for an installed vre-motion of the same name.
    env["PYTHONPATH"] = str(tmp_path / "site")
    listed = _run(["vre", "list"], tmp_path, env)
    assert "absolute grey-level change to the next frame" in listed.stdout, listed.stdout + listed.stderr
    shutil.copy(shared_export / "clip.mp4", tmp_path / "clip.mp4")
    exported = _run(["vre", "export", "pipeline=motion", "video=clip.mp4", "output_dir=motion_out", "frames=0..4"],
                    tmp_path, env)
    assert exported.returncode == 0, exported.stderr
    import numpy as np

    with np.load(tmp_path / "motion_out" / "motion" / "npz" / "3.npz", allow_pickle=False) as stored:
        arr = stored["arr_0"]
    assert arr.shape == (360, 640) and arr.dtype == np.float16 and 0 < float(arr.max()) <= 1
