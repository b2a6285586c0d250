"""`vre distill` on a tiny export (8 frames of 32x48, Canny edges as the teacher): it learns, resumes, streams, refuses."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from vrecore import build_graph, run_export
from vrecore.cli.dispatch import main

TINY = [32, 48]
FAST = ["--threads", "1", "--batch-size", "2", "--epochs", "2"]


def _export(video: Path, out: Path, *, teacher_size: list[int] | None = None) -> Path:
    canny: dict = {"type": "edges/canny", "dependencies": ["rgb"], "parameters": {"threshold1": 50, "threshold2": 120}}
    if teacher_size:
        canny["output_size"] = teacher_size
    graph = build_graph({"representations": {"rgb": {"type": "color/rgb"}, "canny": canny}, "output_size": TINY})
    run_export(graph, video, out, frames="0..8")
    return out


@pytest.fixture(scope="module")
def tiny(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(sample_video, tmp_path_factory.mktemp("distill") / "export")


@pytest.fixture(scope="module")
def trained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """An uninterrupted 2-epoch run: its folder and the JSON it printed last."""
    out = tmp_path_factory.mktemp("students") / "canny_student"
    result = _distill(tiny, out)
    return out, result


def _distill(export: Path, out: Path, *extra: str) -> dict:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["distill", str(export), "--teacher", "canny", "--student", "semantic/phg-mae-distil:150k",
                     "--out", str(out), *FAST, *extra])
    assert code == 0
    return json.loads(stdout.getvalue().strip().splitlines()[-1])


def _weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def test_two_epochs_lower_the_loss_and_beat_the_all_edge_baseline(trained: tuple[Path, dict]):
    out, result = trained
    assert list(result)[:6] == ["metric", "student_vs_teacher", "trivial_baseline", "student_ms_per_frame",
                                "teacher_ms_per_frame", "train_seconds"]
    assert result["metric"] == "f_score" and result["epochs"] == 2
    assert result["losses"][1] < result["losses"][0]
    assert result["student_vs_teacher"] > result["trivial_baseline"] > 0  # all-edge: 2p / (1 + p)
    assert result["held_out"] == "frames 6..8"  # the last frames, never random ones
    assert json.loads(out.with_suffix(".json").read_text()) == result
    preset = (out.parent / "pipeline" / "canny_student.yaml").read_text()
    assert preset.startswith("# @package _global_\n")


@pytest.fixture(scope="module")
def bright(sample_video: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny export whose teacher is a bool mask: the pixels brighter than mid-grey (mask/depth-range of a grey map)."""
    from vrecore.graph.registry import get_registry, reset_registry
    from vrecore.testing import register_test_types

    register_test_types(get_registry())
    try:
        graph = build_graph({"representations": {
            "rgb": {"type": "color/rgb"}, "grey": {"type": "test/grey"},
            "bright": {"type": "mask/depth-range", "dependencies": ["grey"], "parameters": {"min_depth": 0.5}}},
            "output_size": TINY})
        out = tmp_path_factory.mktemp("bright") / "export"
        run_export(graph, sample_video, out, frames="0..8")
        yield out
    finally:
        reset_registry()


def test_a_mask_student_beats_the_better_of_all_background_and_all_foreground(bright: Path, tmp_path: Path):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["distill", str(bright), "--teacher", "bright", "--student", "semantic/phg-mae-distil:150k",
                     "--out", str(tmp_path / "bright_student"), *FAST]) == 0
    result = json.loads(stdout.getvalue().strip().splitlines()[-1])
    assert result["metric"] == "iou" and result["losses"][1] < result["losses"][0]
    assert result["student_vs_teacher"] > result["trivial_baseline"] > 0


def test_a_killed_run_resumes_to_the_same_weights(tiny: Path, trained: tuple[Path, dict], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    from vre_semantic import _distill_train

    out = tmp_path / "canny_student"
    real = _distill_train.Trainer._step

    def killed_in_epoch_2(self, items, flips):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real(self, items, flips)

    monkeypatch.setattr(_distill_train.Trainer, "_step", killed_in_epoch_2)
    assert main(["distill", str(tiny), "--teacher", "canny", "--student", "semantic/phg-mae-distil:150k",
                 "--out", str(out), *FAST]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert not out.with_suffix(".safetensors").exists()
    monkeypatch.setattr(_distill_train.Trainer, "_step", real)
    result = _distill(tiny, out)
    assert result["losses"] == trained[1]["losses"]
    resumed, uninterrupted = _weights(out.with_suffix(".safetensors")), _weights(trained[0].with_suffix(".safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    assert all(np.array_equal(resumed[k], uninterrupted[k]) for k in resumed)
    # another run's checkpoint is refused, not mixed in
    assert main(["distill", str(tiny), "--teacher", "canny", "--student", "semantic/phg-mae-distil:150k",
                 "--out", str(out), *FAST, "--seed", "1"]) == 2
    assert "is the checkpoint of another run (seed changed)" in capsys.readouterr().err


def test_the_preset_streams_the_student(trained: tuple[Path, dict], sample_video: Path,
                                        capsys: pytest.CaptureFixture[str]):
    out, result = trained
    code = main(["stream", "--config-dir", str(out.parent), "pipeline=canny_student", f"source={sample_video}",
                 "realtime=false", "output=jsonl:-", "max_frames=2", "width=48", "height=32"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(lines) == 2
    edges = lines[0]["summary"]["canny_student"]  # one float channel: its mean, min and max
    assert 0 <= edges["min"] <= edges["mean"] <= edges["max"] <= 1


def test_the_report_shows_teacher_and_student_side_by_side(tiny: Path, trained: tuple[Path, dict], tmp_path: Path):
    import shutil

    from vrecore.visual.report import write_report

    both = tmp_path / "both"
    shutil.copytree(tiny, both)
    assert main(["export", "--config-dir", str(trained[0].parent), "pipeline=canny_student", f"video={_video(tiny)}",
                 f"output_dir={both}", "frames=0..8", "output_size=[32,48]"]) == 0
    page = write_report(both).read_text()
    assert 'id="distilled"' in page and "canny_student" in page
    assert f"{trained[1]['student_vs_teacher']:.3f}" in page


def _video(export: Path) -> str:
    run = json.loads(next((export / ".logs").glob("run_metadata_*.json")).read_text())
    return str(run["video"])


@pytest.fixture(scope="module")
def mismatched(sample_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(sample_video, tmp_path_factory.mktemp("mismatch") / "export", teacher_size=[16, 24])


@pytest.mark.parametrize("case, message", [
    ("bad name", "--teacher '../canny' is not a representation name"),
    ("not in export", "teacher 'depth' is not in export"),
    ("shape", "input 'rgb' is 32x48 but teacher 'canny' is 16x24"),
    ("empty", "holds no stored representation to learn from"),
])
def test_mistakes_are_one_line_and_exit_2(case: str, message: str, tiny: Path, mismatched: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]):
    export, teacher = {"bad name": (tiny, "../canny"), "not in export": (tiny, "depth"),
                       "shape": (mismatched, "canny"), "empty": (tmp_path, "canny")}[case]
    code = main(["distill", str(export), "--teacher", teacher, "--student", "semantic/phg-mae-distil:150k",
                 "--out", str(tmp_path / "s" / "x"), *FAST])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("vre distill: error: ") and message in err, err
    assert not (tmp_path / "s").exists()  # nothing written


def test_a_student_imported_into_the_cache_runs_without_weights_path(trained: tuple[Path, dict],
                                                                     capsys: pytest.CaptureFixture[str]):
    from vrecore.plugin import Batch

    out, _ = trained
    assert main(["weights", "import", "phg-mae-distil-150k", str(out.with_suffix(".safetensors"))]) == 0
    assert "imported phg-mae-distil-150k" in capsys.readouterr().out
    graph = build_graph({"representations": {"rgb": {"type": "color/rgb"}, "edges": {
        "type": "semantic/phg-mae-distil", "dependencies": {"inputs": ["rgb"]}, "parameters": {"variant": "150k"}}}})
    student = graph["edges"].representation
    assert student.output_spec().channels == 1 and student.output_spec().classes is None
    student.setup("cpu")
    frames = np.zeros((1, 32, 48, 3), np.uint8)
    edges = student.compute(Batch(indices=np.arange(1), frames=frames, deps={"inputs": (frames,)}))
    assert edges.shape == (1, 32, 48, 1) and 0 <= edges.min() <= edges.max() <= 1
    assert student.metadata()["distilled_from"]["teacher"] == "canny"
