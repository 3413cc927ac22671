"""Every GObject-introspection namespace Vigil uses, loaded and wrapped once, on one thread.

PyGObject builds the Python class of an introspected type the first time anything asks for it.
For a plain C struct with no GType (`Gst.PadProbeInfo`, `Gst.MapInfo`, …) nothing makes that
first time unique: two threads that ask at once each build a class and the second one replaces
the first in the module. Whatever cached the first class (a probe callback's argument
conversion, a method's `self` check) then refuses instances of the second for the rest of the
process — "argument self: Expected Gst.PadProbeInfo, but got gi.repository.Gst.PadProbeInfo" on
every buffer, and a stream whose probe raises on every buffer records nothing. Streams are
built in a pool of media threads and their probes run on GStreamer's streaming threads, so the
first use of such a type is a race whenever several streams start together (one start in five
with three cameras). Types with a GType are safe: PyGObject registers their class on the GType
under a lock and hands the same one back.

`prepare()` therefore builds every GType-less struct and union of the namespaces below on the
calling thread, before any pipeline exists (about 20 ms for ~190 types). Methods need nothing:
a method's argument cache is built from these module attributes, which can no longer change.
A module that imports a namespace not listed here is caught by a test.
"""

from __future__ import annotations

import contextlib
import importlib

import gi
from gi import _gi
from gi.module import get_introspection_module

# Namespace → version: the only place Vigil chooses GObject-introspection versions.
NAMESPACES: dict[str, str] = {
    "Gst": "1.0",
    "GstApp": "1.0",
    "GstPbutils": "1.0",
    "GstRtsp": "1.0",
    "GstRtspServer": "1.0",
    "GstSdp": "1.0",
    "GstVideo": "1.0",
    "GstWebRTC": "1.0",
}
# Namespaces Vigil's code reaches that GStreamer's depend on (loaded by them, wrapped here).
DEPENDENCIES = ("GLib", "GObject", "Gio", "GstBase")


def require_versions() -> None:
    """Tell PyGObject which version of each namespace to load (before any is imported). A
    namespace that is not installed is left out: the module that needs it fails to import with
    PyGObject's own message, and `vigil doctor` names the package."""
    for namespace, version in NAMESPACES.items():
        with contextlib.suppress(ValueError):
            gi.require_version(namespace, version)


def prepare() -> int:
    """Import every namespace and build the wrapper of each GType-less struct and union in
    them now, on this thread. Returns how many were built (for the debug log)."""
    require_versions()
    loaded = []
    for namespace in NAMESPACES:
        try:
            importlib.import_module(f"gi.repository.{namespace}")
        except ImportError:  # not installed: nothing of it can run either
            continue
        loaded.append(namespace)
    repository = _gi.Repository.get_default()
    built = 0
    for namespace in (*loaded, *DEPENDENCIES):
        module = get_introspection_module(namespace)
        for info in repository.get_infos(namespace):
            if _needs_preparing(info):
                getattr(module, info.get_name())
                built += 1
    return built


def _needs_preparing(info: object) -> bool:
    """A struct or union without a GType that code can receive: class and private structs are
    never handed to Python."""
    if not isinstance(info, (_gi.StructInfo, _gi.UnionInfo)):
        return False
    if info.get_g_type().name != "void":
        return False
    if isinstance(info, _gi.StructInfo) and info.is_gtype_struct():
        return False
    return not info.get_name().endswith("Private")
