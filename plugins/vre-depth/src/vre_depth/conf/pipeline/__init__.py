"""Pipeline presets of vre-depth: ``pipeline=depth_demo``."""
