"""Stream endpoints by URL scheme through the registry: core's built-ins and a throwaway plugin's fake://."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

import vrecore
from vrecore.errors import ConfigError
from vrecore.graph.hookspecs import hookimpl
from vrecore.graph.registry import get_registry
from vrecore.streaming import (
    CaptureDeviceSource,
    JsonLinesTarget,
    RawPipeSource,
    RawStdoutTarget,
    StreamSource,
    StreamTarget,
    TcpSource,
    open_stream_source,
    open_stream_target,
    run_graph_stream,
)

pytestmark = pytest.mark.timeout(60)

W, H = 16, 8
GRAPH = {"representations": {"rgb": {"type": "color/rgb"}, "hsv": {"type": "color/hsv", "dependencies": ["rgb"]}}}


class FakeSource(StreamSource):
    """``fake://N``: N frames whose pixels all hold their index."""

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        self.spec, self.options = spec, options
        self.n = int(spec.removeprefix("fake://"))
        self.i = 0
        self.closed = False

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        if self.i >= self.n:
            return None
        self.i += 1
        return np.full((H, W, 3), self.i - 1, np.uint8)

    def close(self) -> None:
        self.closed = True


class FakeTarget(StreamTarget):
    """``fake://NAME``: keeps what it is sent."""

    wants_summary = True

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        self.spec, self.options = spec, options
        self.frames: list[tuple[int, list[str]]] = []
        self.summaries: list[Mapping[str, Any]] = []
        self.closed = False

    def send(self, seq: int, input_frame: np.ndarray, outputs: Mapping[str, np.ndarray]) -> None:
        assert int(input_frame[0, 0, 0]) == seq
        self.frames.append((seq, sorted(outputs)))

    def send_summary(self, seq: int, summary: Mapping[str, Any]) -> None:
        self.summaries.append(summary)

    def close(self) -> None:
        self.closed = True


class FakePlugin:
    """A third-party plugin adding a fake:// source and a fake:// target; keeps what it made."""

    def __init__(self) -> None:
        self.sources: list[FakeSource] = []
        self.targets: list[FakeTarget] = []

    def open_source(self, spec: str, **options: Any) -> FakeSource:
        self.sources.append(FakeSource(spec, options))
        return self.sources[-1]

    def open_target(self, spec: str, **options: Any) -> FakeTarget:
        self.targets.append(FakeTarget(spec, options))
        return self.targets[-1]

    @hookimpl
    def register_sources(self, register: Any) -> None:
        register("fake", self.open_source, description="frames made up by the test")

    @hookimpl
    def register_targets(self, register: Any) -> None:
        register("fake", self.open_target, description="a target that keeps what it gets")


@pytest.fixture
def fake(registry) -> Iterator[FakePlugin]:
    plugin = FakePlugin()
    registry.register_plugin(plugin, "test-dist")
    try:
        yield plugin
    finally:
        registry.unregister_plugin("test-dist")


def test_core_registers_its_endpoints_through_the_hooks() -> None:
    registry = get_registry()
    assert {n: e.provider for n, e in registry.extensions("source").items() if e.provider == "vrecore"} == {
        "pipe": "vrecore", "tcp": "vrecore", "device": "vrecore", "file": "vrecore"}
    assert {n for n, e in registry.extensions("target").items() if e.provider == "vrecore"} == {
        "pipe", "tcp", "web", "jsonl"}
    assert isinstance(open_stream_source("-", width=W, height=H), RawPipeSource)
    assert isinstance(open_stream_source("tcp://127.0.0.1:0", width=W, height=H), TcpSource)
    assert isinstance(open_stream_source("/dev/video0"), CaptureDeviceSource)
    assert isinstance(open_stream_target("-"), RawStdoutTarget)
    assert isinstance(open_stream_target("jsonl:-"), JsonLinesTarget)


def test_unknown_scheme_is_one_line_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        open_stream_source("rtsp://camera.local/stream")
    message = str(info.value)
    assert "\n" not in message and "'rtsp'" in message and "tcp://" in message and "'-' (pipe)" in message
    assert "a plugin may add more" in message
    with pytest.raises(ConfigError) as info:
        open_stream_target("mqtt://broker:1883")
    message = str(info.value)
    assert "\n" not in message and "'mqtt'" in message and "web://" in message and "jsonl:- (jsonl)" in message
    with pytest.raises(ConfigError, match="is not understood"):
        open_stream_target("bogus")


def test_a_plugin_adds_a_source_and_a_target_by_scheme(fake: FakePlugin) -> None:
    source = open_stream_source("fake://5", width=W, height=H)
    assert source is fake.sources[-1] and fake.sources[-1].options["width"] == W
    results = list(vrecore.stream("fake://5", GRAPH, drop_frames=False))
    assert [r.seq for r in results] == list(range(5))
    assert [int(r.outputs["rgb"][0, 0, 0]) for r in results] == list(range(5))
    assert fake.sources[-1].closed

    target = open_stream_target("fake://a", representation="hsv")
    assert target is fake.targets[-1] and fake.targets[-1].options["representation"] == "hsv"
    summary = run_graph_stream("fake://7", GRAPH, [target, open_stream_target("fake://b")], drop_frames=False)
    assert summary.processed == 7 and summary.stop_reason == "end"
    for made in fake.targets:
        assert made.frames == [(i, ["hsv", "rgb"]) for i in range(7)] and made.closed
        assert [s["seq"] for s in made.summaries] == list(range(7))
        assert set(made.summaries[0]["summary"]) == {"rgb", "hsv"}


def test_the_plugin_is_gone_after_unregistering(registry) -> None:
    with pytest.raises(ConfigError, match="unsupported scheme 'fake'"):
        open_stream_source("fake://3")
