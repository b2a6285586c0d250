"""The example pipelines in conf/ compose through Hydra and build valid graphs."""
from __future__ import annotations

from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "pipeline").glob("*.yaml")))
def test_example_pipeline_builds(name):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from vrecore.cli.config import register_schemas
    from vrecore.graph.build import build_graph
    from vrecore.graph.registry import get_registry

    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="vrecore.cli.conf", version_base="1.3"):
        cfg = compose(config_name="export", overrides=[f"hydra.searchpath=[file://{CONF}]", f"pipeline={name}"])
    graph = build_graph(OmegaConf.to_container(cfg, resolve=True), registry=get_registry())
    assert len(graph) >= 2
