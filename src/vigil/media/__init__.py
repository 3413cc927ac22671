"""GStreamer: the only package (with serve/) that imports gi. Pipelines, sources, branches."""

from vigil.media.introspection import require_versions

# Before any module of this package (or serve/) imports a namespace from gi.repository.
require_versions()
