"""Preflight: missing weights are reported for every learned representation before any frame is decoded."""
from __future__ import annotations

import pytest

from vrecore.errors import WeightsError
from vrecore.export.run import run_export
from vrecore.graph.build import build_graph

GRAPH = {"representations": {"rgb": {"type": "color/rgb"},
                             "a": {"type": "test/missing-weights", "parameters": {"variant": "small"}},
                             "b": {"type": "test/missing-weights", "parameters": {"variant": "large"}}}}


def test_export_reports_every_missing_weight_before_decoding(registry, sample_video, tmp_path):
    from tests.test_export import counting

    source = counting(sample_video)
    with pytest.raises(WeightsError) as info:
        run_export(build_graph(GRAPH), source, tmp_path / "out")
    lines = str(info.value).splitlines()
    assert lines == ["representation 'a' (test/missing-weights): weights 'small' are not in the cache (12 MB); "
                     "run `vre weights fetch`",
                     "representation 'b' (test/missing-weights): weights 'large' are not in the cache (12 MB); "
                     "run `vre weights fetch`"]
    assert source.decoded == []
    assert not (tmp_path / "out" / "rgb").exists()


def test_stream_reports_missing_weights_before_reading(registry, sample_video):
    from vrecore.streaming.graph import stream

    with pytest.raises(WeightsError, match="weights 'small' are not in the cache"):
        next(iter(stream(str(sample_video), build_graph(GRAPH), realtime=False)))
