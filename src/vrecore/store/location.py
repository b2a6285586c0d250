"""Output locations given by the user: a local folder, never a URL taken for one."""
from __future__ import annotations

import os
import re

from vrecore.errors import ConfigError

__all__ = ["check_local_path"]

# SCHEME://... (RFC 3986 scheme); no store of vre handles one, and pathlib would make `s3:/bucket` of it.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_local_path(value: str | os.PathLike[str], what: str) -> None:
    """Refuse, in one line, a URL (``s3://bucket/x``) given where a local folder is expected."""
    text = os.fspath(value)
    if isinstance(text, str) and _URL.match(text):
        raise ConfigError(f"{what} '{text}' is a URL, which no vre store handles; give a local folder (mount the "
                          f"bucket, or export locally and copy it)")
