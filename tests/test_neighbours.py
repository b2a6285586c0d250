"""Types that read other frames than t (`frame_offsets`): neighbours in exports and in streams."""
from __future__ import annotations

import numpy as np

from vrecore.export.run import run_export
from vrecore.frames.video import open_video
from vrecore.graph.build import build_graph
from vrecore.store.npz import load_npz


def _grey(frames: np.ndarray) -> np.ndarray:
    return frames.mean(axis=-1, dtype=np.float32) / 255.0


def test_export_hands_each_frame_its_neighbour_decoding_each_frame_once(registry, sample_video, tmp_path):
    from tests.test_export import counting

    source = counting(sample_video)
    n = source.num_frames
    graph = build_graph({"representations": {"d": {"type": "test/neighbour-delta", "parameters": {"delta": 1}},
                                             "b": {"type": "test/neighbour-delta", "parameters": {"delta": -2}}},
                         "batch_size": 5})
    result = run_export(graph, source, tmp_path / "out")
    assert result.ok
    assert sorted(source.decoded) == list(range(n)), "every frame decoded exactly once"
    frames = open_video(sample_video).get_batch(range(n))
    for name, delta in (("d", 1), ("b", -2)):
        for i in range(n):
            got = load_npz(tmp_path / "out" / name / "npz" / f"{i}.npz")
            j = min(max(i + delta, 0), n - 1)
            assert got[0, 0, 1] == j, (name, i)
            np.testing.assert_allclose(got[..., 0], _grey(frames[j : j + 1])[0] - _grey(frames[i : i + 1])[0],
                                       atol=1e-6)


def test_stream_pairs_the_newest_frame_with_an_earlier_one(registry, sample_video):
    from vrecore.streaming.graph import stream

    graph = build_graph({"representations": {"d": {"type": "test/neighbour-delta", "parameters": {"delta": 2}}}})
    frames = open_video(sample_video).get_batch(range(6))
    seen = []
    for result in stream(str(sample_video), graph, realtime=False, drop_frames=False, max_frames=6):
        out = result.outputs["d"]
        seen.append(out[0, 0, 1])
        earlier = max(result.seq - 2, 0)
        np.testing.assert_allclose(out[..., 0], _grey(frames[result.seq][None])[0] - _grey(frames[earlier][None])[0],
                                   atol=1e-6)
    assert seen == [0, 1, 2, 3, 4, 5], "offset 2 is the newest frame; the batch frame is 2 back"


def test_alias_resolves_to_the_registered_type(registry, caplog):
    graph = build_graph({"representations": {"g": {"type": "test/grey-alias"}}})
    assert graph["g"].type_name == "test/grey"
    assert "type 'test/grey-alias' is another name of 'test/grey'" in caplog.text
