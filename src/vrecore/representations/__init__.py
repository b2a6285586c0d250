"""Representation types built into core (registered through the same hook as plugins)."""
