"""Graph building: topological order, settings, and every error's message."""
from __future__ import annotations

import pytest

from vrecore.errors import GraphError
from vrecore.graph.build import build_graph


def reps(**spec):
    return {"representations": spec}


def test_topological_order_and_settings(registry):
    g = build_graph({
        "batch_size": 4, "image_format": "jpg",
        "representations": {
            "scaled": {"type": "test/scaled", "dependencies": ["hsv"], "batch_size": 2, "binary_format": "npz-compressed"},
            "hsv": {"type": "color/hsv", "dependencies": {"rgb": "rgb"}, "output_dtype": "float16"},
            "rgb": {"type": "color/rgb", "export": False},
        }})
    assert g.names == ["rgb", "hsv", "scaled"]
    assert g["scaled"].settings.batch_size == 2 and g["hsv"].settings.batch_size == 4
    assert g["scaled"].settings.binary_format == "npz-compressed" and g["hsv"].settings.binary_format == "npz"
    assert g["hsv"].settings.output_dtype == "float16" and g["hsv"].settings.image_format == "jpg"
    assert not g["rgb"].settings.writes
    assert g["scaled"].representation.dependencies["source"] is g["hsv"].representation
    assert g.dependents("hsv") == ["scaled"]
    rebuilt = build_graph(g.to_config())
    assert rebuilt.names == g.names


def test_cycle_is_printed(registry):
    with pytest.raises(GraphError, match=r"cycle: (a -> b -> a|b -> a -> b); remove one"):
        build_graph(reps(a={"type": "test/scaled", "dependencies": ["b"]},
                         b={"type": "test/scaled", "dependencies": ["a"]}))


def test_self_dependency(registry):
    with pytest.raises(GraphError, match="'a' depends on itself"):
        build_graph(reps(a={"type": "test/scaled", "dependencies": ["a"]}))


def test_missing_dependency_names_who_asked(registry):
    with pytest.raises(GraphError, match=r"representation 'hsv' depends on 'rgb', which is not in the config; "
                                         r"add a representation named 'rgb'"):
        build_graph(reps(hsv={"type": "color/hsv", "dependencies": ["rgb"]}))


def test_required_role_missing(registry):
    with pytest.raises(GraphError, match=r"'hsv' \(color/hsv\) needs a 'rgb' dependency"):
        build_graph(reps(hsv={"type": "color/hsv"}))


def test_too_many_dependencies(registry):
    with pytest.raises(GraphError, match=r"got 2 dependencies \(rgb, rgb2\) but takes: rgb"):
        build_graph(reps(rgb={"type": "color/rgb"}, rgb2={"type": "color/rgb"},
                         hsv={"type": "color/hsv", "dependencies": ["rgb", "rgb2"]}))


def test_unknown_role(registry):
    with pytest.raises(GraphError, match=r"has no dependency role 'depth'; its roles are: rgb"):
        build_graph(reps(rgb={"type": "color/rgb"}, hsv={"type": "color/hsv", "dependencies": {"depth": "rgb"}}))


def test_unknown_type_suggests_the_plugin(registry):
    from vrecore.graph.registry import Registry

    core_only = Registry()
    core_only.load_builtin()
    with pytest.raises(GraphError, match=r"representation 'd' has unknown type 'depth/dpt'; 'depth/' types: "
                                         r"vre-depth provides them \(installed, not loaded in this registry\)"):
        build_graph(reps(d={"type": "depth/dpt"}), registry=core_only)
    with pytest.raises(GraphError, match=r"unknown type 'color/lab'; installed 'color/' types: color/hsv, color/rgb"):
        build_graph(reps(d={"type": "color/lab"}))


def test_unknown_parameter_lists_accepted(registry):
    with pytest.raises(GraphError, match=r"'s' \(test/scaled\) has unknown parameter\(s\) factr; accepted: factor"):
        build_graph(reps(rgb={"type": "color/rgb"}, s={"type": "test/scaled", "dependencies": ["rgb"],
                                                       "parameters": {"factr": 3}}))


def test_invalid_parameter_value(registry):
    with pytest.raises(GraphError, match=r"'s' \(test/scaled\): invalid parameter: .*factor"):
        build_graph(reps(rgb={"type": "color/rgb"}, s={"type": "test/scaled", "dependencies": ["rgb"],
                                                       "parameters": {"factor": -1}}))


def test_wrong_channel_count(registry):
    with pytest.raises(GraphError, match=r"needs a 3-channel 'rgb' dependency but 'g' outputs 1 channels"):
        build_graph(reps(g={"type": "test/grey"}, hsv={"type": "color/hsv", "dependencies": ["g"]}))


def test_duplicate_name_in_list_form(registry):
    with pytest.raises(GraphError, match=r"representation name 'rgb' is defined twice"):
        build_graph({"representations": [{"name": "rgb", "type": "color/rgb"}, {"name": "rgb", "type": "color/rgb"}]})


def test_list_form_builds(registry):
    g = build_graph({"representations": [{"name": "rgb", "type": "color/rgb"},
                                         {"name": "hsv", "type": "color/hsv", "dependencies": ["rgb"]}]})
    assert g.names == ["rgb", "hsv"]


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", ".logs", "a b", "../x", "x/../../y", "a\\b"])
def test_unsafe_names(registry, name):
    with pytest.raises(GraphError, match="not safe as a folder name"):
        build_graph(reps(**{name: {"type": "color/rgb"}}))


@pytest.mark.parametrize("key,value,message", [
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("binary_format", "zip", "binary_format 'zip' is not one of none, npz, npz-compressed"),
    ("image_format", "gif", "image_format 'gif' is not one of none, jpg, png"),
    ("output_dtype", "complex64", "output_dtype 'complex64' is not one of"),
    ("output_size", [10], r"output_size must be \[height, width\]"),
])
def test_invalid_settings(registry, key, value, message):
    with pytest.raises(GraphError, match=rf"representation 'rgb': {message}"):
        build_graph(reps(rgb={"type": "color/rgb", key: value}))


def test_unknown_spec_key_and_missing_type(registry):
    with pytest.raises(GraphError, match=r"'rgb' has unknown key\(s\) deps; allowed: type, dependencies"):
        build_graph(reps(rgb={"type": "color/rgb", "deps": []}))
    with pytest.raises(GraphError, match=r"'rgb' has no 'type'"):
        build_graph(reps(rgb={"parameters": {}}))


def test_empty_config(registry):
    with pytest.raises(GraphError, match="no representations"):
        build_graph({"representations": {}})
