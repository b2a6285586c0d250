"""mask/safe-landing and mask/depth-range: the rules on hand-made inputs, semantic classes, previews, errors."""
from __future__ import annotations

import json

import attrs
import numpy as np
import pytest

from vre_geometry.masks import DepthRange, SafeLanding
from vrecore.errors import GraphError
from vrecore.graph.build import build_graph
from vrecore.graph.representation import Batch, OutputSpec, Representation


@attrs.define(kw_only=True, eq=False)
class IndexMap(Representation):
    """A stand-in semantic dependency object: a one-channel class-index map with (or without) class names."""

    type_name = "test/index-map"
    names: tuple[str, ...] | None = ("grass", "roof", "water", "road")

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=1, disk_dtype="uint8", classes=self.names)


@attrs.define(kw_only=True, eq=False)
class Scores(Representation):
    """A stand-in semantic dependency object: scores over four named classes."""

    type_name = "test/scores"

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=4, disk_dtype="float16", classes=("grass", "roof", "water", "road"))


def batch(**deps: np.ndarray) -> Batch:
    n = len(next(iter(deps.values())))
    return Batch(indices=np.arange(n), frames=None, deps=deps)


# one pixel per case: (v1, v2, v3, depth, safe by the default rule)
CASES = [
    ((0.5, 0.9, 0.6, 0.5), True),     # up-facing, near
    ((0.5, 0.79, 0.6, 0.5), False),   # v2 too small
    ((0.5, 0.95, 0.72, 0.5), False),  # v1 + v3 = 1.22
    ((0.3, 0.95, 0.85, 0.5), True),   # v1 + v3 = 1.15
    ((0.5, 0.9, 0.6, 0.9), True),     # depth == 0.9 is kept
    ((0.5, 0.9, 0.6, 0.91), False),   # too far
    ((np.nan, 0.9, 0.6, 0.5), False),  # invalid normal
    ((0.5, 0.9, 0.6, np.nan), False),  # invalid depth
    ((0.5, 0.5, 1.0, 0.2), False),    # fronto-parallel (e.g. a wall seen head-on)
]


def case_arrays(cases=CASES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = np.array([c[0] for c in cases], np.float32)
    normals = values[None, None, :, :3]                 # (1, 1, N, 3)
    depth = values[None, None, :, 3:]                   # (1, 1, N, 1)
    return normals, depth, np.array([c[1] for c in cases])


def test_default_rule_on_hand_made_normals_and_depth() -> None:
    normals, depth, expected = case_arrays()
    out = SafeLanding(name="s").compute(batch(normals=normals, depth=depth))
    assert out.dtype == np.bool_ and out.shape == (1, 1, len(CASES), 1)
    np.testing.assert_array_equal(out[0, 0, :, 0], expected)


def test_float16_normals_as_read_from_disk() -> None:
    normals, depth, expected = case_arrays()
    out = SafeLanding(name="s").compute(batch(normals=normals.astype(np.float16), depth=depth.astype(np.float16)))
    np.testing.assert_array_equal(out[0, 0, :, 0], expected)


def test_every_threshold_is_a_parameter() -> None:
    normals, depth, _ = case_arrays()
    out = SafeLanding(name="s", v2_min=0.6, v1_plus_v3_max=1.3, max_depth=1.0).compute(batch(normals=normals, depth=depth))
    np.testing.assert_array_equal(out[0, 0, :, 0], [True, True, True, True, True, True, False, False, False])


def test_flip_x_reproduces_the_seed_rule_on_the_seeds_mirrored_normals() -> None:
    rng = np.random.default_rng(0)
    ours = rng.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    depth = rng.uniform(0, 1, (2, 16, 16, 1)).astype(np.float32)
    seed = ours.copy()
    seed[..., 0] = 1.0 - seed[..., 0]                  # the seed's normals: ours mirrored in x
    v1, v2, v3 = seed[..., 0], seed[..., 1], seed[..., 2]
    seed_rule = (v2 > 0.8) & (v1 + v3 < 1.2) & (depth[..., 0] <= 0.9)
    out = SafeLanding(name="s", flip_x=True).compute(batch(normals=ours, depth=depth))[..., 0]
    np.testing.assert_array_equal(out, seed_rule)
    assert seed_rule.any() and not np.array_equal(SafeLanding(name="s").compute(batch(normals=ours, depth=depth))[..., 0],
                                                  seed_rule)


@pytest.mark.parametrize("semantic, classes", [
    (Scores(name="sem"), ["grass", "road"]),
    (Scores(name="sem"), [0, 3]),
    (IndexMap(name="sem"), ["grass", "road"]),
    (IndexMap(name="sem", names=None), [0, 3]),
])
def test_semantic_classes(semantic: Representation, classes: list) -> None:
    normals, depth, _ = case_arrays([CASES[0]] * 6)    # all six pixels are geometrically safe
    labels = np.array([0, 1, 2, 3, 0, 3])
    if semantic.output_spec().channels > 1:
        sem = np.eye(4, dtype=np.float32)[labels] * 0.7 + 0.1   # scores: argmax = label
    else:
        sem = labels.astype(np.float32)[..., None]
        sem[4] = np.nan                                           # no class: unsafe
    rep = SafeLanding(name="s", dependencies={"semantic": semantic}, safe_classes=classes)
    out = rep.compute(batch(normals=normals, depth=depth, semantic=sem[None, None]))[0, 0, :, 0]
    expected = [True, False, False, True, True, True]
    if semantic.output_spec().channels == 1:
        expected[4] = False
    np.testing.assert_array_equal(out, expected)
    assert rep.metadata()["safe_class_indices"] == [0, 3]


def test_a_vote_mask_as_the_semantic_map() -> None:
    """A bool mask (e.g. vre-semantic's mask/classes vote) is the two-class map 0/1: safe_classes [1] keeps its pixels."""
    normals, depth, _ = case_arrays([CASES[0], CASES[0], CASES[1]])
    rep = SafeLanding(name="s", dependencies={"semantic": IndexMap(name="vote", names=None)}, safe_classes=[1])
    vote = np.array([True, False, True])[None, None, :, None]
    np.testing.assert_array_equal(rep.compute(batch(normals=normals, depth=depth, semantic=vote))[0, 0, :, 0],
                                  [True, False, False])


def test_index_map_beyond_the_known_classes_is_unsafe() -> None:
    normals, depth, _ = case_arrays([CASES[0]] * 3)
    rep = SafeLanding(name="s", dependencies={"semantic": IndexMap(name="sem", names=None)}, safe_classes=[1])
    sem = np.array([1, 7, -2], np.int32)[None, None, :, None]
    np.testing.assert_array_equal(rep.compute(batch(normals=normals, depth=depth, semantic=sem))[0, 0, :, 0],
                                  [True, False, False])


def test_safe_landing_preview_and_metadata() -> None:
    rep = SafeLanding(name="s", colors=[[10, 20, 30], [0, 255, 0]])
    mask = np.array([[[[True], [False]]]])
    np.testing.assert_array_equal(rep.make_images(mask), [[[[0, 255, 0], [10, 20, 30]]]])
    json.dumps(rep.metadata())
    json.dumps(rep.parameters())


def test_depth_range() -> None:
    depth = np.array([0.0, 0.1, 0.3, 0.31, 0.9, np.nan, -1.0], np.float32)[None, None, :, None]
    inside = DepthRange(name="d", max_depth=0.3).compute(batch(depth=depth))[0, 0, :, 0]
    np.testing.assert_array_equal(inside, [True, True, True, False, False, False, True])
    between = DepthRange(name="d", min_depth=0.1, max_depth=0.9).compute(batch(depth=depth))[0, 0, :, 0]
    np.testing.assert_array_equal(between, [False, True, True, True, True, False, False])
    beyond = DepthRange(name="d", min_depth=0.31).compute(batch(depth=depth))[0, 0, :, 0]
    np.testing.assert_array_equal(beyond, [False, False, False, True, True, False, False])


@pytest.mark.parametrize("mask", [np.array([True, True, False, True, True, False, True]),
                                  np.array([1.0, 0.9, 0.2, 1.0, 1.0, np.nan, 1.0], np.float32)])
def test_depth_range_within_a_mask(mask: np.ndarray) -> None:
    """The seed's "buildings nearby": a buildings mask AND depth <= 0.3."""
    depth = np.array([0.0, 0.1, 0.3, 0.31, 0.9, 0.2, -1.0], np.float32)[None, None, :, None]
    rep = DepthRange(name="d", max_depth=0.3, colors=[[0, 0, 0], [255, 0, 0]])
    out = rep.compute(batch(depth=depth, mask=mask[None, None, :, None]))
    np.testing.assert_array_equal(out[0, 0, :, 0], [True, True, False, False, False, False, True])
    assert rep.to_disk(out).dtype == np.bool_ and rep.to_disk(out).shape == (1, 1, 7)
    assert (rep.make_images(out)[0, 0, 0] == [255, 0, 0]).all()


# --------------------------------------------------------------------------------------------------------------
# bad parameters and dependencies fail when the graph is built, with a clear message
# --------------------------------------------------------------------------------------------------------------
def graph(safe: dict, *, semantic: bool = True, normals_type: str = "normals/depth-svd") -> None:
    reps = {"depth": {"type": "test/scene-depth"},
            "normals": {"type": normals_type, "dependencies": ["depth"]},
            "safe": {"type": "mask/safe-landing", **safe}}
    if semantic:
        reps["sem"] = {"type": "test/scene-semantic"}
    build_graph({"representations": reps})


def test_safe_classes_resolve_at_graph_build(scene_registry) -> None:
    graph({"dependencies": {"normals": "normals", "depth": "depth", "semantic": "sem"},
           "parameters": {"safe_classes": ["ground"]}})
    graph({"dependencies": ["normals", "depth", "sem"], "parameters": {"safe_classes": [0, 1]}})
    graph({"dependencies": ["normals", "depth"]}, semantic=False)


@pytest.mark.parametrize("safe, message", [
    ({"dependencies": ["normals", "depth", "sem"], "parameters": {"safe_classes": ["ground", "lawn"]}},
     "invalid parameter: unknown safe class 'lawn': 'sem' has no such class; its classes are: ground, building, sky"),
    ({"dependencies": ["normals", "depth", "sem"], "parameters": {"safe_classes": [3]}},
     "invalid parameter: safe class index 3 is out of range: 'sem' has 3 classes (0..2)"),
    ({"dependencies": ["normals", "depth", "sem"]},
     "invalid parameter: with a 'semantic' dependency ('sem'), safe_classes must list the classes"),
    ({"dependencies": ["normals", "depth"], "parameters": {"safe_classes": ["ground"]}},
     "invalid parameter: safe_classes needs a 'semantic' dependency"),
    ({"dependencies": ["normals", "depth", "sem"], "parameters": {"safe_classes": "ground"}},
     "invalid parameter: safe_classes must be a non-empty list of class names or class indices (>= 0), got 'ground'"),
    ({"dependencies": ["normals", "depth", "sem"], "parameters": {"safe_classes": [-1]}},
     "invalid parameter: safe_classes must be a non-empty list of class names or class indices (>= 0)"),
    ({"dependencies": ["normals", "depth"], "parameters": {"v2_min": "high"}},
     "invalid parameter: v2_min must be a number, got 'high'"),
    ({"dependencies": ["normals", "depth"], "parameters": {"flip_x": "yes"}},
     "invalid parameter: flip_x must be true or false, got 'yes'"),
    ({"dependencies": ["normals", "depth"], "parameters": {"colors": [[0, 0, 0]]}},
     "invalid parameter: colors must be two RGB colours [[r, g, b], [r, g, b]] (off, on) with values 0..255"),
    ({"dependencies": ["depth", "normals"]},
     "representation 'safe' (mask/safe-landing) needs a 3-channel 'normals' dependency but 'depth' outputs 1 "
     "channels; give it a 3-channel representation"),
    ({"dependencies": {"normals": "normals", "depth": "sem"}},
     "representation 'safe' (mask/safe-landing) needs a 1-channel 'depth' dependency but 'sem' outputs 3 channels"),
])
def test_safe_landing_errors_at_graph_build(scene_registry, safe: dict, message: str) -> None:
    with pytest.raises(GraphError) as e:
        graph(safe)
    assert message in str(e.value)
    assert str(e.value).startswith("representation 'safe' (mask/safe-landing)")


def test_safe_class_names_need_a_named_semantic(scene_registry) -> None:
    """A class-index map without names: indices work, names fail with a clear message."""
    reps = {"depth": {"type": "test/scene-depth"}, "normals": {"type": "normals/depth-svd", "dependencies": ["depth"]},
            "labels": {"type": "test/grey"}}  # one channel, no class names
    build_graph({"representations": {**reps, "safe": {"type": "mask/safe-landing", "dependencies": ["normals", "depth",
                                                      "labels"], "parameters": {"safe_classes": [0, 5]}}}})
    with pytest.raises(GraphError, match="safe class 'ground' is a name but 'labels' \\(test/grey\\) declares no class "
                                         "names; give class indices instead"):
        build_graph({"representations": {**reps, "safe": {"type": "mask/safe-landing", "dependencies": [
            "normals", "depth", "labels"], "parameters": {"safe_classes": ["ground"]}}}})


@pytest.mark.parametrize("params, deps, message", [
    ({}, ["depth"], "give min_depth and/or max_depth: a depth range without bounds keeps every pixel"),
    ({"min_depth": 0.5, "max_depth": 0.2}, ["depth"], "min_depth (0.5) must be <= max_depth (0.2)"),
    ({"max_depth": "near"}, ["depth"], "max_depth must be a number, got 'near'"),
    ({"max_depth": 0.3}, ["depth", "sem"], "needs a 1-channel 'mask' dependency but 'sem' outputs 3 channels"),
    ({"max_depth": 0.3}, ["sem"], "needs a 1-channel 'depth' dependency but 'sem' outputs 3 channels"),
])
def test_depth_range_errors_at_graph_build(scene_registry, params: dict, deps: list, message: str) -> None:
    with pytest.raises(GraphError) as e:
        build_graph({"representations": {"depth": {"type": "test/scene-depth"}, "sem": {"type": "test/scene-semantic"},
                                         "near": {"type": "mask/depth-range", "dependencies": deps, "parameters": params}}})
    assert message in str(e.value) and str(e.value).startswith("representation 'near' (mask/depth-range)")
