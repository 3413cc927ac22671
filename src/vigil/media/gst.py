"""Initialise GStreamer once per process and answer questions about what it can do."""

from __future__ import annotations

import logging
import threading

from gi.repository import Gst

from vigil.media import introspection

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_initialised = False
_native = False


def init() -> None:
    """Initialise GStreamer and load Vigil's native plugin if it was built. Idempotent."""
    global _initialised, _native
    with _lock:
        if _initialised:
            return
        Gst.init(None)
        from vigil.media import native

        _native = native.register()
        # Before any pipeline exists: streaming threads must never be the first to need a type.
        prepared = introspection.prepare()
        _initialised = True
        logger.debug("GStreamer %s initialised (native plugin: %s, %d wrappers prepared)",
                     version_string(), _native, prepared)  # fmt: skip


def version_string() -> str:
    """GStreamer's version as 'major.minor.micro'."""
    major, minor, micro, _nano = Gst.version()
    return f"{major}.{minor}.{micro}"


def has_element(name: str) -> bool:
    """True when an element factory of that name is registered."""
    init()
    return Gst.ElementFactory.find(name) is not None


def native_available() -> bool:
    """True when Vigil's native plugin (vigilrtpstamp, vigilinterleave) is loaded."""
    init()
    return _native


def make(factory: str, name: str | None = None, **props: object) -> Gst.Element:
    """Create an element and set properties; raise a clear error if the factory is missing."""
    element = Gst.ElementFactory.make(factory, name)
    if element is None:
        raise MissingElementError(factory)
    for key, value in props.items():
        element.set_property(key.replace("_", "-"), value)
    return element


class MissingElementError(RuntimeError):
    """A GStreamer element Vigil needs is not installed."""

    def __init__(self, factory: str) -> None:
        from vigil.media.doctor import package_for

        package = package_for(factory)
        hint = f" (Debian package {package})" if package else ""
        super().__init__(f"GStreamer element '{factory}' is not available{hint}")
        self.factory = factory
