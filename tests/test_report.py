"""vre report: one self-contained HTML page with the metadata's numbers, the graph and the time charts, rendered by
headless Chromium; `vre export report=true` writes it at the end of a run."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from vrecore.cli.app import main as vre_main
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph
from vrecore.visual.report import write_report

CHROMIUM = Path("/usr/bin/chromium")

REPS = {
    "rgb": {"type": "color/rgb"},
    "hsv": {"type": "color/hsv", "dependencies": ["rgb"]},
    "grey": {"type": "test/slow", "parameters": {"seconds": 0.02}},
    "learned": {"type": "test/learned"},
    "fail": {"type": "test/fail", "parameters": {"frames": [3]}, "batch_size": 1},
    "half": {"type": "test/scaled", "dependencies": ["grey"], "parameters": {"factor": 0.5}, "export": False},
    "double": {"type": "test/scaled", "dependencies": ["half"]},
}


class _Tables(HTMLParser):
    """The text of every cell of the tables with an id: {id: [[cell, ...], ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _rows(html: str, table: str) -> dict[str, list[str]]:
    parser = _Tables()
    parser.feed(html)
    header, *rows = parser.tables[table]
    return {row[0]: row for row in rows}


@pytest.fixture
def export(registry, sample_video: Path, tmp_path: Path) -> Path:
    """Frames 0..7: 'fail' fails on frame 3, 'hsv' lost frame 6, 'half' is computed only for 'double'."""
    out = tmp_path / "out"
    graph = build_graph({"representations": REPS, "batch_size": 4})
    result = run_export(graph, sample_video, out, frames="0..8", exception_mode="skip", raise_on_error=False,
                        config={"representations": REPS, "batch_size": 4, "writers": 2})
    assert result.ok and result.stats["fail"].failed_frames == [3]
    (out / "hsv" / "npz" / "6.npz").unlink()
    return out


def _mean_ms(out: Path, name: str) -> float:
    records = [json.loads(line) for line in (out / name / ".frames.jsonl").read_text().splitlines()]
    return 1000 * float(np.mean([r["seconds"] for r in records]))


def test_report_holds_the_numbers_of_the_metadata(export: Path) -> None:
    path = write_report(export)
    assert path == export / "report.html"
    html = path.read_text()
    reps = _rows(html, "representations")
    assert list(reps) == ["rgb", "hsv", "grey", "learned", "fail", "double"]  # stored ones, in the config's order
    columns = ["name", "type", "kind", "stored", "missing", "failed", "files", "mean", "p50", "p95", "records"]
    row = {name: dict(zip(columns, cells, strict=True)) for name, cells in reps.items()}
    assert (row["hsv"]["stored"], row["hsv"]["missing"], row["hsv"]["failed"]) == ("7", "1", "0")
    assert (row["fail"]["stored"], row["fail"]["missing"], row["fail"]["failed"]) == ("7", "0", "1")
    assert (row["grey"]["stored"], row["grey"]["missing"], row["grey"]["failed"]) == ("8", "0", "0")
    assert row["learned"]["kind"] == "learned" and row["grey"]["kind"] == "procedural"
    mean = _mean_ms(export, "grey")
    assert mean >= 5  # 20 ms of sleep per batch of 4
    assert row["grey"]["mean"] == f"{mean:.1f}" and row["grey"]["records"] == "8"
    assert "hsv: missing frames 6" in html and "fail: failed frames 3" in html
    assert "8 frames stored (0..8) of a " in html  # the CLI's notation: frames=0..8 selects these 8 frames

    run = json.loads(next((export / ".logs").glob("run_metadata_*.json")).read_text())
    runs = _rows(html, "runs")
    assert list(runs) == [run["run_id"]]
    cells = runs[run["run_id"]]
    assert cells[1:6] == ["ok", run["started"], run["ended"], f"{run['seconds']:.1f}", "0..8"]  # end-exclusive
    assert cells[6:8] == ["cpu", "2"] and "fail 7/0/1" in cells[-1] and "grey 8/0/0" in cells[-1]

    svg = re.search(r'<svg[^>]* id="graph".*?</svg>', html, re.S)
    assert svg is not None
    nodes = dict(re.findall(r'<g class="node" data-name="([^"]+)" data-type="[^"]+" data-kind="([^"]+)"', svg.group()))
    assert nodes == {"rgb": "procedural", "hsv": "procedural", "grey": "procedural", "learned": "learned",
                     "fail": "procedural", "half": "procedural", "double": "procedural"}
    edges = set(re.findall(r'class="edge" data-from="([^"]+)" data-to="([^"]+)"', svg.group()))
    assert edges == {("rgb", "hsv"), ("grey", "half"), ("half", "double"), ("video frames", "rgb"),
                     ("video frames", "grey"), ("video frames", "learned"), ("video frames", "fail")}
    half = re.search(r'data-name="half".*?</g>', svg.group(), re.S)
    assert half is not None and "stroke-dasharray" in half.group()  # computed, not stored

    bars = dict(re.findall(r'<g class="bar" data-name="([^"]+)" data-value="([^"]+)"', html))
    assert set(bars) == set(reps) and float(bars["grey"]) == pytest.approx(mean, rel=1e-5)
    assert set(re.findall(r'<g class="series" data-name="([^"]+)"', html)) == set(reps)
    assert re.findall(r'<img class="sample" data-frame="(\d+)"', html) == ["0", "4", "7"]
    assert html.count('src="data:image/jpeg;base64,') == 3
    # Self-contained: nothing is fetched from anywhere (url(#arrow) is the SVG's own arrowhead).
    assert not re.search(r'(src|href)="(https?:)?//|url\((?!#)|@import|<script|<link', html)


def test_run_records_written_before_the_end_exclusive_notation_read_inclusive(export: Path) -> None:
    path = next((export / ".logs").glob("run_metadata_*.json"))
    run = json.loads(path.read_text())
    run.pop("frames_end_exclusive")
    run["frames"] = "0..7"  # what vre wrote for frames 0-7 before it wrote ranges end-exclusive
    path.write_text(json.dumps(run))
    html = write_report(export).read_text()
    row = _rows(html, "representations")["hsv"]
    assert (row[3], row[4]) == ("7", "1")  # frame 7 is still expected, frame 6 still missing
    assert _rows(html, "runs")[run["run_id"]][5] == "0..8"  # shown in today's notation


@pytest.mark.timeout(180)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(export: Path, tmp_path: Path) -> None:
    from PIL import Image

    path = write_report(export)
    common = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
              "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400",
              "--force-device-scale-factor=1"]
    shot = tmp_path / "report.png"
    proc = subprocess.run([*common, f"--screenshot={shot}", path.as_uri()], capture_output=True, timeout=90)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape == (2400, 1280, 3)
    drawn = (img.sum(axis=2) < 600).mean()
    assert 0.03 < drawn < 0.9, drawn  # text, charts and pictures on a white page
    # The sample collages are decoded pictures: the rgb tile of frame 0 has the sample clip's sky blue.
    sky = (img[..., 2] > 200) & (img[..., 0] > 100) & (img[..., 0] < 210) & (img[..., 1] > 150)
    assert sky.sum() > 500
    dom = subprocess.run([*common, "--dump-dom", path.as_uri()], capture_output=True, timeout=90)
    text = dom.stdout.decode(errors="replace")
    for element in ('id="graph"', 'id="time-per-representation"', 'id="time-per-frame"', 'id="representations"',
                    'id="runs"', 'id="samples"'):
        assert element in text, element
    assert text.count('class="node"') == 7 and text.count('class="bar"') == 6


def test_export_with_report_true_writes_it(sample_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "vrecore.cli.app", "export", f"video={sample_video}", f"output_dir={out}",
                        "pipeline=rgb_hsv", "frames=0..3", "report=true"], capture_output=True, text=True,
                       env={**os.environ, "VRE_DISABLE_PLUGIN_AUTOLOAD": "1"}, timeout=180)
    assert r.returncode == 0, r.stderr
    assert f"vre export: report {out / 'report.html'}" in r.stderr
    assert list(_rows((out / "report.html").read_text(), "representations")) == ["rgb", "hsv"]


def test_command_line(export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "elsewhere.html"
    assert vre_main(["report", str(export), "--output", str(target)]) == 0
    assert capsys.readouterr().err.strip() == f"vre report: {target}"
    assert 'id="graph"' in target.read_text()
    assert vre_main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vre report: error: ") and "is not a folder" in err[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert vre_main(["report", str(empty)]) == 2
    assert "holds no representation folders" in capsys.readouterr().err


def test_long_time_lines_keep_their_slowest_frames() -> None:
    from vrecore.visual.report import _thin

    times = {i: 1.0 + (i % 3) for i in range(20_000)}
    times[12_345] = 500.0
    xs, ys = _thin(times, 1000)
    assert len(xs) == len(ys) == 1000 and xs[0] == 0 and xs[-1] < 20_000
    assert max(ys) == 500.0 and min(ys) == 3.0  # each point is the slowest of its 20 frames
    assert _thin({1: 2.0, 3: 4.0}) == ((1.0, 3.0), (2.0, 4.0))
