"""Pictures of an export: per-frame collages, a preview video and an HTML run report (`vre collage`, `vre video`,
`vre report`), all made from the stored files and metadata."""
