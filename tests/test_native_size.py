"""``output_size: native``: a representation stored at its own size (the size its type computes at), beside others
at the frame's size; the store, verification, fingerprints, the reader and the pictures cope with it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vrecore.errors import GraphError
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph, disk_form, output_shape

FRAME = (180, 320)  # the sample clip's frame
POOLED = (90, 160)  # test/pooled computes at half the size of its input


def pipeline(pooled_size: object = "native", scaled_size: object = "native") -> dict:
    return {"representations": {
        "rgb": {"type": "color/rgb"},
        "pooled": {"type": "test/pooled", "output_size": pooled_size},
        "scaled": {"type": "test/scaled", "dependencies": {"source": "pooled"}, "output_size": scaled_size},
        "grey": {"type": "test/grey", "output_size": "native"},  # its own size is the frame's
        "sized": {"type": "test/pooled", "output_size": [30, 40]},
    }, "binary_format": "npz"}


def stored(out: Path, name: str, frame: int) -> np.ndarray:
    return np.load(out / name / "npz" / f"{frame}.npz", allow_pickle=False)["arr_0"]


@pytest.fixture
def native_export(registry, sample_video: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    run_export(build_graph(pipeline()), sample_video, out, frames=[0, 1, 2], progress=False)
    return out


def test_each_representation_is_stored_at_its_own_size(native_export: Path) -> None:
    assert stored(native_export, "rgb", 1).shape == (*FRAME, 3)
    assert stored(native_export, "pooled", 1).shape == POOLED
    assert stored(native_export, "scaled", 1).shape == POOLED  # its input's size: the pooled map it reads
    assert stored(native_export, "grey", 1).shape == FRAME
    assert stored(native_export, "sized", 1).shape == (30, 40)
    rgb = stored(native_export, "rgb", 1).astype(np.float32)
    grey = rgb.mean(axis=-1) / 255.0
    pooled = grey.reshape(90, 2, 160, 2).mean(axis=(1, 3))  # not resized: what the type computed
    assert np.allclose(stored(native_export, "pooled", 1), pooled, atol=1e-5)
    assert np.allclose(stored(native_export, "scaled", 1), 2 * pooled, atol=1e-5)


def test_disk_form_and_output_shape_follow_the_frame(registry) -> None:
    graph = build_graph(pipeline())
    assert output_shape(graph["pooled"], (100, 60)) == (50, 30)
    assert output_shape(graph["scaled"], (100, 60)) == (50, 30)
    assert output_shape(graph["grey"], (100, 60)) == (100, 60)
    assert output_shape(graph["sized"], (100, 60)) == (30, 40)
    assert disk_form(graph["pooled"], FRAME) == (POOLED, "float32")
    assert graph.to_config()["representations"]["pooled"]["output_size"] == "native"
    assert build_graph(graph.to_config())["pooled"].settings.output_size == "native"  # the run metadata rebuilds it


def test_a_rerun_verifies_the_native_frames_and_computes_nothing(native_export: Path, sample_video: Path) -> None:
    result = run_export(build_graph(pipeline()), sample_video, native_export, frames=[0, 1, 2], progress=False)
    assert {name: s.computed for name, s in result.stats.items()} == {n: 0 for n in result.stats}
    from vrecore.cli.verify import verify_export

    checks = verify_export(native_export, deep=True)
    assert {n: (sorted(c.complete), c.bad, c.metadata_problem) for n, c in checks.items()} == {
        n: ([0, 1, 2], 0, None) for n in ("rgb", "pooled", "scaled", "grey", "sized")}


def test_native_and_frame_size_have_other_fingerprints(native_export: Path, sample_video: Path) -> None:
    from vrecore.errors import VreError

    with pytest.raises(VreError, match="pooled"):
        run_export(build_graph(pipeline(pooled_size=None, scaled_size=None)), sample_video, native_export,
                   frames=[0, 1, 2], progress=False)
    result = run_export(build_graph(pipeline(pooled_size=None, scaled_size=None)), sample_video, native_export,
                        frames=[0, 1, 2], progress=False, overwrite=True)
    assert result.stats["pooled"].computed == 3
    assert stored(native_export, "pooled", 0).shape == FRAME


def test_the_reader_and_the_collage_take_native_sizes(native_export: Path) -> None:
    from vrecore.data.dataset import MultiTaskDataset
    from vrecore.visual.collage import CollageMaker
    from vrecore.visual.stored import ExportView

    ds = MultiTaskDataset(native_export, ["rgb", "pooled", "scaled"])
    assert ds.data_shape == {"rgb": (*FRAME, 3), "pooled": (*POOLED, 1), "scaled": (*POOLED, 1)}
    data, _ = ds[2]
    assert np.array_equal(data["pooled"].numpy()[..., 0], stored(native_export, "pooled", 2))
    maker = CollageMaker(ExportView(native_export))
    picture = maker.render(1)
    assert picture.dtype == np.uint8 and picture.shape == (maker.layout.height, maker.layout.width, 3)
    for tile in maker.layout.tiles():
        body = picture[tile.y + tile.label_height:tile.y + tile.label_height + tile.height, tile.x:tile.x + tile.width]
        assert body.std() > 5, tile.name  # every tile shows its picture, scaled to the tile whatever its size


def test_the_report_shows_every_native_representation(native_export: Path) -> None:
    from vrecore.visual.report import write_report

    html = write_report(native_export).read_text()
    assert html.count('src="data:image/jpeg;base64,') >= 1  # its sample collages, drawn from frames of every size
    for name in ("pooled", "scaled", "sized"):
        assert f'data-name="{name}"' in html


def test_output_size_native_on_the_command_line(registry, sample_video: Path, tmp_path: Path) -> None:
    from vrecore.cli.app import main

    (tmp_path / "conf" / "pipeline").mkdir(parents=True)
    (tmp_path / "conf" / "pipeline" / "mine.yaml").write_text(
        "# @package _global_\nrepresentations:\n  rgb: {type: color/rgb}\n  hsv: {type: color/hsv, dependencies: [rgb]}\n"
        "  half: {type: test/pooled}\n")
    code = main(["export", "--config-dir", str(tmp_path / "conf"), "pipeline=mine", f"video={sample_video}",
                 f"output_dir={tmp_path / 'out'}", "frames=0..2", "output_size=native"])
    assert code == 0
    assert stored(tmp_path / "out", "half", 1).shape == POOLED and stored(tmp_path / "out", "hsv", 1).shape == (*FRAME, 3)


@pytest.mark.parametrize("size", ["nativ", "frame", 3, [0, 4]])
def test_a_wrong_output_size_is_one_line(registry, size) -> None:
    with pytest.raises(GraphError, match=r"representation 'pooled': output_size must be \[height, width\] in "
                                         r"pixels or native"):
        build_graph(pipeline(pooled_size=size))


def test_a_stream_reports_native_shapes(registry) -> None:
    from vrecore.streaming.processor import GraphProcessor

    processor = GraphProcessor(build_graph(pipeline()))
    frame = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    result = processor.process(frame)
    assert result.shapes["pooled"] == (20, 30) and result.outputs["pooled"].shape == (20, 30, 1)
    assert result.shapes["scaled"] == (20, 30) and result.shapes["grey"] == (40, 60)
