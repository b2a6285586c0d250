"""semantic/map, semantic/vote and mask/classes: hand-made label maps, ties, modes, errors, conformance."""
from __future__ import annotations

import numpy as np
import pytest

from vre_semantic.base import one_hot
from vre_semantic.derived import ClassMask, SemanticMap, SemanticVote
from vre_semantic.labels import (
    COCO_PANOPTIC_CLASSES,
    DRONESCAPES_CLASSES,
    DRONESCAPES_COLORS,
    MAPILLARY_VISTAS_CLASSES,
    TABLES,
    load_table,
)
from vre_semantic.mask2former import Mask2FormerSemantic
from vrecore.errors import GraphError
from vrecore.graph.build import build_graph
from vrecore.graph.representation import Batch, OutputSpec, Representation
from vrecore.testing import RepresentationTestSuite


class FakeSemantic(Representation):
    """A stand-in dependency: a semantic map with the given class names."""

    type_name = "test/semantic"

    def __init__(self, name: str, classes: tuple[str, ...]) -> None:
        super().__init__(name=name)
        self._classes = classes

    def output_spec(self) -> OutputSpec:
        return OutputSpec(channels=len(self._classes), disk_dtype="uint8", classes=self._classes)


ABC = ("a", "b", "c")


def maps(*label_rows: list[list[int]], n_classes: int = 3) -> np.ndarray:
    """Memory-form (1, H, W, C) one-hot maps from label grids, one per argument, stacked on the batch axis."""
    return np.stack([one_hot(np.asarray(rows), n_classes) for rows in label_rows])


def batch(**deps: object) -> Batch:
    first = next(iter(deps.values()))
    n = len(first[0] if isinstance(first, tuple) else first)  # type: ignore[arg-type]
    return Batch(indices=np.arange(n), frames=None, deps=deps)


def labels(memory: np.ndarray) -> np.ndarray:
    return memory.argmax(-1)


# -- semantic/map --------------------------------------------------------------------------------------------
def test_map_with_an_inline_table_and_default():
    src = FakeSemantic("src", ("sky", "tree", "car", "road"))
    rep = SemanticMap(name="m", dependencies={"semantic": src}, table={"sky": "up", "tree": "down", "road": "down"},
                      target_classes=["up", "down", "other"], default_target="other")
    spec = rep.output_spec()
    assert spec.classes == ("up", "down", "other") and spec.channels == 3 and spec.disk_dtype == "uint8"
    assert len(spec.colors) == 3 and len(set(spec.colors)) == 3
    x = maps([[0, 1], [2, 3]], n_classes=4)
    out = rep.compute(batch(semantic=x))
    assert out.dtype == np.float32 and out.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(labels(out)[0], [[0, 1], [2, 1]])
    np.testing.assert_array_equal(out.sum(-1), 1)


def test_map_uses_the_argmax_of_probabilities():
    src = FakeSemantic("src", ABC)
    rep = SemanticMap(name="m", dependencies={"semantic": src}, table={"a": "x", "b": "y", "c": "y"},
                      target_classes=["x", "y"])
    probs = np.array([[[[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.1, 0.2, 0.7]]]], np.float32)
    # argmax then map (the seed): a, a, c -> x, x, y, even though b + c outweighs a in the second pixel
    np.testing.assert_array_equal(labels(rep.compute(batch(semantic=probs)))[0], [[0, 0, 1]])


@pytest.mark.parametrize("table, source", [("mapillary_vistas_to_dronescapes", MAPILLARY_VISTAS_CLASSES),
                                           ("coco_panoptic_to_dronescapes", COCO_PANOPTIC_CLASSES)])
def test_shipped_tables_cover_their_label_sets(table: str, source: tuple[str, ...]):
    t = load_table(table)
    assert list(t["mapping"]) == list(source)  # every class once, in channel order
    assert tuple(t["target_classes"]) == DRONESCAPES_CLASSES
    assert [tuple(c) for c in t["target_colors"]] == list(DRONESCAPES_COLORS)
    assert "video-representations-extractor" in t["origin"]
    rep = SemanticMap(name="m", dependencies={"semantic": FakeSemantic("src", source)}, table=table)
    assert rep.output_spec().classes == DRONESCAPES_CLASSES and rep.output_spec().colors == DRONESCAPES_COLORS
    n = len(source)
    out = rep.compute(batch(semantic=one_hot(np.arange(n).reshape(1, 1, n), n)))
    got = [DRONESCAPES_CLASSES[i] for i in labels(out)[0, 0]]
    assert got == [t["mapping"][c] for c in source]


def test_shipped_tables_spot_checks():
    m, c = load_table(TABLES[0])["mapping"], load_table(TABLES[1])["mapping"]
    assert (m["Vegetation"], m["Sky"], m["Water"], m["Mountain"], m["Car"], m["Building"], m["Terrain"]) == (
        "forest", "sky", "water", "hill", "little-objects", "residential", "land")
    assert (c["tree-merged"], c["sky-other-merged"], c["sea"], c["mountain-merged"], c["roof"], c["road"]) == (
        "forest", "sky", "water", "hill", "residential", "road")


@pytest.mark.parametrize("params, message", [
    ({"table": {"a": "x"}, "target_classes": ["x"]}, r"2 class\(es\) of 'src' are not in the table: 'b', 'c'"),
    ({"table": {"a": "x", "b": "x", "c": "x", "zz": "x"}, "target_classes": ["x"]},
     r"names 1 class\(es\) that 'src' does not have: 'zz'"),
    ({"table": {"a": "x", "b": "x", "c": "w"}, "target_classes": ["x"]}, r"maps to 'w', not in target_classes"),
    ({"table": {"a": "x"}}, r"target_classes must list the target classes"),
    ({"table": "no_such_table"}, r"unknown mapping table 'no_such_table'; shipped tables: mapillary_vistas"),
    ({"table": {"a": "x"}, "target_classes": ["x", "y"], "default_target": "z"}, r"default_target 'z' is not one"),
    ({"table": {"a": "x", "b": "x", "c": "x"}, "target_classes": ["x", "x"]}, r"target_classes has duplicates: 'x'"),
    ({"table": {"a": "x", "b": "x", "c": "x"}, "target_classes": ["x"], "target_colors": [[1, 2]]},
     r"not an RGB colour"),
])
def test_map_errors(params: dict, message: str):
    with pytest.raises(ValueError, match=message):
        SemanticMap(name="m", dependencies={"semantic": FakeSemantic("src", ABC)}, **params)


def test_map_needs_a_semantic_dependency_with_classes():
    class NoClasses(FakeSemantic):
        def output_spec(self) -> OutputSpec:
            return OutputSpec(channels=1, disk_dtype="float32")

    with pytest.raises(ValueError, match=r"dependency 'd' \(test/semantic\) declares no class names"):
        SemanticMap(name="m", dependencies={"semantic": NoClasses("d", ABC)}, table={"a": "x"}, target_classes=["x"])


# -- semantic/vote -------------------------------------------------------------------------------------------
def test_vote_majority_and_first_class_ties():
    deps = tuple(FakeSemantic(f"s{i}", ABC) for i in range(3))
    rep = SemanticVote(name="v", dependencies={"semantic": deps})
    a = maps([[0, 0, 2, 2, 1]])
    b = maps([[0, 1, 1, 0, 2]])
    c = maps([[1, 1, 2, 1, 0]])
    # pixel: (0,0,1) -> 0; (0,1,1) -> 1; (2,1,2) -> 2; (2,0,1) tie -> lowest class 0; (1,2,0) tie -> 0
    np.testing.assert_array_equal(labels(rep.compute(batch(semantic=(a, b, c))))[0], [[0, 1, 2, 0, 0]])
    assert rep.output_spec().classes == ABC


def test_vote_first_dependency_tie_break():
    deps = tuple(FakeSemantic(f"s{i}", ABC) for i in range(4))
    rep = SemanticVote(name="v", dependencies={"semantic": deps}, tie_break="first-dependency")
    a = maps([[2, 1, 0, 2]])
    b = maps([[0, 2, 1, 2]])
    c = maps([[1, 0, 2, 0]])
    d = maps([[1, 0, 2, 1]])
    # (2,0,1,1) -> 1 (2 votes); (1,2,0,0) -> 0; (0,1,2,2) -> 2; (2,2,0,1) -> 2. Plus two-way ties below.
    np.testing.assert_array_equal(labels(rep.compute(batch(semantic=(a, b, c, d))))[0], [[1, 0, 2, 2]])
    e, f = maps([[2, 1, 0]]), maps([[0, 2, 1]])
    two = SemanticVote(name="v", dependencies={"semantic": deps[:2]}, tie_break="first-dependency")
    np.testing.assert_array_equal(labels(two.compute(batch(semantic=(e, f))))[0], [[2, 1, 0]])
    seed_like = SemanticVote(name="v", dependencies={"semantic": deps[:2]})
    np.testing.assert_array_equal(labels(seed_like.compute(batch(semantic=(e, f))))[0], [[0, 1, 0]])


def test_vote_errors():
    with pytest.raises(ValueError, match=r"'t' has another label set than 's' \(2 vs 3 classes, first difference at "
                                         r"index 1\); map them to one label set first"):
        SemanticVote(name="v", dependencies={"semantic": (FakeSemantic("s", ABC), FakeSemantic("t", ("a", "z")))})
    with pytest.raises(ValueError, match="tie_break must be one of first-class, first-dependency"):
        SemanticVote(name="v", dependencies={"semantic": (FakeSemantic("s", ABC),)}, tie_break="random")


# -- mask/classes --------------------------------------------------------------------------------------------
MASK_VOTES = (maps([[0, 0, 0, 1]]), maps([[0, 0, 1, 1]]), maps([[0, 1, 1, 1]]))  # class 0 chosen by 3, 2, 1, 0 maps


@pytest.mark.parametrize("mode, expected", [("majority", [1, 1, 0, 0]), ("all", [1, 0, 0, 0]), ("any", [1, 1, 1, 0])])
def test_class_mask_modes(mode: str, expected: list[int]):
    deps = tuple(FakeSemantic(f"s{i}", ABC) for i in range(3))
    rep = ClassMask(name="k", dependencies={"semantic": deps}, classes=["a"], mode=mode)
    out = rep.compute(batch(semantic=MASK_VOTES))
    assert out.dtype == np.bool_ and out.shape == (1, 1, 4, 1)
    np.testing.assert_array_equal(out[0, 0, :, 0], np.array(expected, bool))


def test_class_mask_majority_of_two_needs_both():
    deps = tuple(FakeSemantic(f"s{i}", ABC) for i in range(2))
    rep = ClassMask(name="k", dependencies={"semantic": deps}, classes=["a"])
    out = rep.compute(batch(semantic=MASK_VOTES[:2]))
    np.testing.assert_array_equal(out[0, 0, :, 0], [True, True, False, False])


def test_class_mask_over_different_label_sets_and_gate():
    m = FakeSemantic("m", ("Sky", "Road", "Car"))
    c = FakeSemantic("c", ("sky-other-merged", "road", "car", "tree-merged"))
    gate = FakeSemantic("gate", ("x",))
    rep = ClassMask(name="k", dependencies={"semantic": (m, c), "mask": gate}, classes=["Road", "road", "Car"],
                    mode="any")
    assert rep.metadata()["selected_classes"] == {"m": ["Road", "Car"], "c": ["road"]}
    mx = maps([[0, 1, 2, 0]], n_classes=3)
    cx = maps([[1, 3, 0, 0]], n_classes=4)
    g = np.array([True, True, True, False]).reshape(1, 1, 4, 1)
    out = rep.compute(batch(semantic=(mx, cx), mask=g))
    np.testing.assert_array_equal(out[0, 0, :, 0], [True, True, True, False])
    float_gate = rep.compute(batch(semantic=(mx, cx), mask=g.astype(np.float32) * 0.9))
    np.testing.assert_array_equal(out, float_gate)
    by_name = ClassMask(name="k", dependencies={"semantic": (m, c)}, classes={"m": ["Sky"], "c": ["tree-merged"]},
                        mode="all")
    np.testing.assert_array_equal(by_name.compute(batch(semantic=(mx, cx)))[0, 0, :, 0], [False, False, False, False])
    np.testing.assert_array_equal(by_name.compute(batch(semantic=(mx, maps([[3, 3, 3, 3]], n_classes=4))))[0, 0, :, 0],
                                  [True, False, False, True])


def test_class_mask_disk_form_and_preview():
    deps = tuple(FakeSemantic(f"s{i}", ABC) for i in range(3))
    rep = ClassMask(name="k", dependencies={"semantic": deps}, classes=["a"], colors=[[255, 0, 0], [0, 255, 0]])
    out = rep.compute(batch(semantic=MASK_VOTES))
    disk = rep.to_disk(out)
    assert disk.dtype == np.bool_ and disk.shape == (1, 1, 4)
    np.testing.assert_array_equal(rep.from_disk(disk), out)
    np.testing.assert_array_equal(rep.make_images(out)[0, 0], [[0, 255, 0], [0, 255, 0], [255, 0, 0], [255, 0, 0]])
    assert rep.metadata()["classes"] == ["others", "k"] and rep.metadata()["mode"] == "majority"


@pytest.mark.parametrize("params, message", [
    ({"classes": ["nope"]}, r"class\(es\) 'nope' are in none of the semantic maps \(m, c\)"),
    ({"classes": ["Sky"]}, r"semantic map 'c' has none of the classes 'Sky'"),
    ({"classes": []}, r"classes must be a non-empty list"),
    ({"classes": {"m": ["Sky"]}}, r"must have exactly the keys \['m', 'c'\] \(missing: \['c'\], unknown: none\)"),
    ({"classes": {"m": ["Sky"], "c": ["Sky"]}}, r"'c' has no class\(es\) 'Sky'"),
    ({"classes": ["Sky", "car"], "mode": "most"}, r"mode must be one of majority, all, any"),
    ({"classes": ["Sky", "car"], "colors": [[0, 0, 0]]}, r"colors \(off, on\) must list 2 RGB colours"),
])
def test_class_mask_errors(params: dict, message: str):
    deps = (FakeSemantic("m", ("Sky", "Road")), FakeSemantic("c", ("sky-other-merged", "car")))
    with pytest.raises(ValueError, match=message):
        ClassMask(name="k", dependencies={"semantic": deps}, **params)


def test_graph_errors_name_the_representation():
    config = {"representations": {
        "m2f": {"type": "semantic/mask2former", "parameters": {"variant": "49189528_0"}},
        "mapped": {"type": "semantic/map", "dependencies": ["m2f"],
                   "parameters": {"table": "coco_panoptic_to_dronescapes"}},
    }}
    with pytest.raises(GraphError, match=r"representation 'mapped' \(semantic/map\): invalid parameter: the table "
                                         r"names 133 class\(es\) that 'm2f' does not have"):
        build_graph(config)
    config["representations"]["mapped"]["parameters"]["table"] = "mapillary_vistas_to_dronescapes"
    graph = build_graph(config)
    assert graph["mapped"].representation.output_spec().classes == DRONESCAPES_CLASSES


# -- conformance ---------------------------------------------------------------------------------------------
def _random_probs(n: int, shape: tuple[int, int], classes: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.random((n, *shape, classes), dtype=np.float32)
    return x / x.sum(-1, keepdims=True)


class TestSemanticMap(RepresentationTestSuite):
    type_name = "semantic/map"
    parameters = {"table": "mapillary_vistas_to_dronescapes"}

    def dependency_representations(self) -> dict:
        return {"semantic": Mask2FormerSemantic(name="m2f", variant="swin-large-mapillary-vistas-semantic")}

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict:
        return {"semantic": _random_probs(n, self.frame_shape, len(MAPILLARY_VISTAS_CLASSES), rng)}


class TestSemanticMapProbabilitiesOnDisk(TestSemanticMap):
    parameters = {"table": "mapillary_vistas_to_dronescapes", "disk_form": "probabilities"}


class TestSemanticVote(RepresentationTestSuite):
    type_name = "semantic/vote"
    parameters = {"tie_break": "first-dependency"}

    def dependency_representations(self) -> dict:
        return {"semantic": tuple(FakeSemantic(f"s{i}", DRONESCAPES_CLASSES) for i in range(3))}

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict:
        return {"semantic": tuple(_random_probs(n, self.frame_shape, 8, rng) for _ in range(3))}


class TestClassMask(RepresentationTestSuite):
    type_name = "mask/classes"
    parameters = {"classes": ["land", "forest", "Sky"], "mode": "majority"}

    def dependency_representations(self) -> dict:
        return {"semantic": (FakeSemantic("d1", DRONESCAPES_CLASSES), FakeSemantic("d2", DRONESCAPES_CLASSES),
                             FakeSemantic("m", ("Sky", "Road"))),
                "mask": FakeSemantic("gate", ("x",))}

    def dependency_arrays(self, n: int, rng: np.random.Generator) -> dict:
        return {"semantic": (_random_probs(n, self.frame_shape, 8, rng), _random_probs(n, self.frame_shape, 8, rng),
                             _random_probs(n, self.frame_shape, 2, rng)),
                "mask": rng.random((n, *self.frame_shape, 1)) > 0.2}


def test_probabilities_are_cast_once_to_the_runs_output_dtype():
    """disk_form=probabilities stores float16 by default; a float32 run stores the computed values unrounded."""
    from vrecore.graph.executor import to_stored

    src = FakeSemantic("src", ABC)
    reps = {"m": SemanticMap(name="m", dependencies={"semantic": src}, table={"a": "x", "b": "y", "c": "y"},
                             target_classes=["x", "y"], disk_form="probabilities")}
    probs = np.full((1, 2, 2, 2), 1 / 3, np.float32)

    class Settings:
        def __init__(self, output_dtype):
            self.output_dtype = output_dtype

    class Node:
        def __init__(self, output_dtype):
            self.representation, self.settings = reps["m"], Settings(output_dtype)

    assert to_stored(Node(None), probs).dtype == np.float16
    stored = to_stored(Node("float32"), probs)
    assert stored.dtype == np.float32 and np.array_equal(stored, probs)  # float16 first would give 0.33325195
