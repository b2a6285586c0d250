"""The exceptions vre raises for user mistakes; the CLI prints them as one line."""
from __future__ import annotations


class VreError(Exception):
    """A problem the user can fix: the message names the thing and the fix."""

    exit_code: int = 2


class ConfigError(VreError):
    """A configuration value is missing, unknown or invalid."""


class GraphError(ConfigError):
    """The representation graph cannot be built (cycle, missing dependency, unknown type...)."""


class PluginError(VreError):
    """A plugin could not be loaded or conflicts with another one."""


class SourceError(VreError):
    """A frame source (video file, image folder, stream) cannot be read."""


class WeightsError(VreError):
    """Model weights are missing, corrupt or do not match the model."""


class ExportError(VreError):
    """An export stopped because a representation failed (exception_mode=stop)."""


class StorageError(VreError):
    """The output cannot be written or read (read-only folder, disk full, a damaged stored file)."""

    exit_code = 1
