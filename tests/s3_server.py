"""Helpers of the tests against a real S3 API (the ``s3_server`` and ``bucket`` fixtures are in conftest.py)."""
from __future__ import annotations

import os


def s3() -> object:
    """An s3fs file system on the server (fresh: sees every object written since)."""
    import s3fs

    assert os.environ.get("AWS_ENDPOINT_URL")
    return s3fs.S3FileSystem(skip_instance_cache=True)
