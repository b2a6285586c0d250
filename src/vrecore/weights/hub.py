"""The Hugging Face Hub side of weights: find files in its cache, tell fast whether the Hub can be reached, download.

huggingface_hub's own settings apply unchanged (``HF_HUB_OFFLINE``, ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_ENDPOINT``). Without a network its downloads retry for ~25 s before failing; vre asks whether the
endpoint answers at all (one TCP connection, 2 s at most) before it downloads anything.
"""
from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from vrecore.errors import WeightsError

__all__ = ["cache_folder", "cached_file", "diagnose", "download", "offline", "unreachable_reason"]

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_PROBE_TIMEOUT_S = 2.0
_PROBE_TTL_S = 60.0
_probes: dict[str, tuple[float, str | None]] = {}


def offline() -> bool:
    """Whether HF_HUB_OFFLINE forbids any download."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def cache_folder() -> Path:
    """huggingface_hub's cache folder (HF_HUB_CACHE)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_file(repo_id: str, filename: str, revision: str) -> Path | None:
    """The cached ``filename`` of ``repo_id`` at ``revision`` (a commit or a cached branch/tag), or None; no network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache_folder()), revision=revision)
    return Path(found) if isinstance(found, str) else None


def commit_of(path: Path) -> str | None:
    """The commit of a file inside a cache snapshot (``.../snapshots/<commit>/<file>``)."""
    for parent in path.parents:
        if parent.parent.name == "snapshots" and _COMMIT_RE.match(parent.name):
            return parent.name
    return None


def _endpoint_address() -> tuple[str, int]:
    """Host and port a download connects to first: the proxy when one is set for the endpoint, else the endpoint."""
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    no_proxy = [h.strip().lstrip(".") for h in (os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or "").split(",")]
    proxy = os.environ.get(f"{url.scheme}_proxy") or os.environ.get(f"{url.scheme.upper()}_PROXY")
    proxy = proxy or os.environ.get("all_proxy") or os.environ.get("ALL_PROXY")
    if proxy and not any(h and (host == h or host.endswith("." + h)) for h in no_proxy):
        purl = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        return purl.hostname or host, purl.port or 8080
    return host, url.port or (443 if url.scheme == "https" else 80)


def unreachable_reason() -> str | None:
    """None when the Hub endpoint accepts a connection within 2 s, else why not (remembered for a minute)."""
    from huggingface_hub import constants

    endpoint = str(constants.ENDPOINT)
    known = _probes.get(endpoint)
    if known is not None and time.monotonic() - known[0] < _PROBE_TTL_S:
        return known[1]
    host, port = _endpoint_address()
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err.strerror or type(err).__name__)

    # Name resolution ignores socket timeouts: the probe runs in a thread that is given up after the timeout.
    probe = threading.Thread(target=connect, daemon=True, name="vre-hub-probe")
    probe.start()
    probe.join(_PROBE_TIMEOUT_S + 0.2)
    reason = outcome[0] if outcome else f"no answer within {_PROBE_TIMEOUT_S:.0f} s"
    reason = None if reason is None else f"{endpoint} cannot be reached ({host}:{port}: {reason})"
    _probes[endpoint] = (time.monotonic(), reason)
    return reason


def diagnose(repo_id: str, revision: str) -> str:
    """Which revisions of ``repo_id`` the cache holds, for a message about a missing file."""
    storage = cache_folder() / ("models--" + repo_id.replace("/", "--"))
    refs = sorted(p.name for p in (storage / "refs").glob("*") if p.is_file())
    commits = sorted(p.name[:12] for p in (storage / "snapshots").glob("*") if p.is_dir())
    if not refs and not commits:
        return f"{repo_id} is not in the cache"
    return f"revision {revision[:12]!r} is not in the cache (cached: {', '.join(refs + commits)})"


def download(repo_id: str, filename: str, revision: str, what: str) -> Path:
    """Download one file into the cache (huggingface_hub's progress bar shows); errors become one-line WeightsErrors."""
    import huggingface_hub
    from huggingface_hub import errors

    fix = "check the name and revision, or set weights_path= to local files"
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=revision))
    except errors.GatedRepoError:
        raise WeightsError(f"{what}: {repo_id} is gated; accept its licence on huggingface.co and log in "
                           "(hf auth login, or HF_TOKEN), or set weights_path= to local files") from None
    except errors.RepositoryNotFoundError:
        raise WeightsError(f"{what}: the Hub has no repository {repo_id} (or it is private); {fix}") from None
    except errors.RevisionNotFoundError:
        raise WeightsError(f"{what}: {repo_id} has no revision {revision!r}; {fix}") from None
    except errors.RemoteEntryNotFoundError:
        raise WeightsError(f"{what}: {repo_id}@{revision} has no file {filename!r}; {fix}") from None
    except (errors.LocalEntryNotFoundError, errors.HfHubHTTPError, OSError, ValueError) as err:
        msg = " ".join(str(err).split())[:200]
        raise WeightsError(f"{what}: downloading {filename!r} from {repo_id}@{revision} failed ({msg}); "
                           "try again, or set weights_path= to local files") from err
