"""The depth expert of the Dronescapes2 presets (dronescapes2_depth=marigold|depth_anything_v2)."""
