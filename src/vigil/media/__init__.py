"""GStreamer: the only package (with serve/) that imports gi. Pipelines, sources, branches."""
