"""Hydra config package of vre-semantic: pipeline presets (pipeline=dronescapes2, dronescapes2_fast)."""
