"""Pipeline presets of vre-depth: ``pipeline=depth``."""
