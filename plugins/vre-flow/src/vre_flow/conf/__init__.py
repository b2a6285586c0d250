"""Hydra config package of vre-flow (pipeline presets under pipeline/)."""
