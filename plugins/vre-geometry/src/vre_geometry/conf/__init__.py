"""Hydra config package of vre-geometry (pipeline presets)."""
