"""Pipeline presets of vre-semantic."""
