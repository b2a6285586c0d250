"""Hydra config package of vre-depth, registered as ``pkg://vre_depth.conf``."""
