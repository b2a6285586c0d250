"""Pipeline presets of vre-geometry."""
