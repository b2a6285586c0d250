"""Pipeline presets of vre-edges: edges (all five types) and edges_demo (used by `vre demo`)."""
