"""A real S3 API for the tests: moto's server on 127.0.0.1 (a random free port), started once per test session
(per xdist worker) in a thread, with the usual environment variables pointing boto/s3fs at it."""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL; AWS_ENDPOINT_URL and test credentials are set for this process and its children."""
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


def s3() -> object:
    """An s3fs file system on the server (fresh: sees every object written since)."""
    import s3fs

    assert os.environ.get("AWS_ENDPOINT_URL")
    return s3fs.S3FileSystem(skip_instance_cache=True)
