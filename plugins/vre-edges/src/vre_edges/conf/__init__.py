"""Hydra config package of vre-edges (pipeline presets under pipeline/)."""
