"""Hydra search-path plugin: adds the config packages that vre plugins register (pipeline presets)."""
from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class VreSearchPathPlugin(SearchPathPlugin):
    """Appends each installed vre plugin's ``pkg://<package>.conf`` to Hydra's search path."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not any(e.path.replace("/", ".").endswith("vrecore.cli.conf") for e in search_path.get_path() if e.path):
            return  # another Hydra app: leave it alone
        from vrecore.graph.registry import CORE_DISTRIBUTION, get_registry

        for provider, path in get_registry().config_paths:
            if provider != CORE_DISTRIBUTION:
                search_path.append(provider=provider, path=path)
