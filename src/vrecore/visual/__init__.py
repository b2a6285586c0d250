"""Pictures of an export: per-frame collages, a preview video and an HTML run report, all made from the stored
files and metadata (the `vre collage`, `vre video` and `vre report` commands are in `vrecore.cli`)."""
