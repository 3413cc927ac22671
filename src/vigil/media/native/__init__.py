"""Vigil's native GStreamer plugin (``vigilrtpstamp``, ``vigilinterleave``): building it from C
and loading it.

The plugin is compiled at set-up time (``python -m vigil.media.native``, called by
``scripts/bootstrap.sh``) from every ``*.c`` file of this directory into the environment's
prefix, and loaded into the GStreamer registry at start-up by :func:`register`. When it is
missing, callers fall back to ``rtpjitterbuffer`` (and to ``rtspsrc``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).parent
ELEMENT = "vigilrtpstamp"
ELEMENTS = (ELEMENT, "vigilinterleave")
PKG_CONFIG_MODULES = ("gstreamer-1.0", "gstreamer-base-1.0", "gstreamer-rtp-1.0")
CFLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared")
DEBIAN_PACKAGES = ("libgstreamer1.0-dev", "libgstreamer-plugins-base1.0-dev", "gcc", "pkg-config")


class NativeBuildError(RuntimeError):
    """Compiling the native plugin failed; the message says why and what to install."""


def plugin_file() -> Path:
    """Where the built plugin lives: inside the running environment's prefix (the venv)."""
    return Path(sys.prefix) / "lib" / "vigil-gstreamer" / "libgstvigil.so"


def _stamp_file(plugin: Path) -> Path:
    return plugin.with_name(plugin.name + ".sha256")


def sources() -> list[Path]:
    """The C files compiled into the plugin: every ``*.c`` here, in a stable order."""
    return sorted(SOURCE_DIR.glob("*.c"))


def _source_digest() -> str:
    """sha256 over the flags and every source's name and bytes: any change rebuilds."""
    digest = hashlib.sha256()
    digest.update(" ".join(CFLAGS).encode() + b"\0")
    for source in sources():
        data = source.read_bytes()
        digest.update(f"{source.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def is_current() -> bool:
    """True when the plugin is built from the C sources as they are now."""
    plugin = plugin_file()
    stamp = _stamp_file(plugin)
    if not plugin.is_file() or not stamp.is_file():
        return False
    return stamp.read_text().strip() == _source_digest()


def _install_hint() -> str:
    return "install them with: apt-get install -y " + " ".join(DEBIAN_PACKAGES)


def _pkg_config_flags() -> list[str]:
    pkg_config = shutil.which("pkg-config")
    if pkg_config is None:
        raise NativeBuildError(f"pkg-config is not installed; {_install_hint()}")
    result = subprocess.run(
        [pkg_config, "--cflags", "--libs", *PKG_CONFIG_MODULES],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise NativeBuildError(
            "pkg-config cannot find the GStreamer development files "
            f"({', '.join(PKG_CONFIG_MODULES)}): {result.stderr.strip()}\n{_install_hint()}"
        )
    return result.stdout.split()


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build(*, force: bool = False, quiet: bool = False) -> Path:
    """Compile the plugin into :func:`plugin_file` and return its path.

    Skipped when the plugin exists and was built from the current sources (sha256 stamp), unless
    ``force``. The library is written to a temporary file and renamed into place, so a process
    loading it never sees a half-written file. Raises :class:`NativeBuildError` with the
    compiler's output, or with the Debian packages to install when a tool or header is missing.
    """
    plugin = plugin_file()
    if not force and is_current():
        if not quiet:
            logger.info("native plugin up to date: %s", plugin)
        return plugin

    compiler = shutil.which("gcc")
    if compiler is None:
        raise NativeBuildError(f"gcc is not installed; {_install_hint()}")
    flags = _pkg_config_flags()
    files = sources()
    digest = _source_digest()
    plugin.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=plugin.parent, prefix=".libgstvigil.", suffix=".so")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        command = [compiler, *CFLAGS, "-o", str(tmp), *map(str, files), *flags]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip()
            hint = f"\n{_install_hint()}" if "No such file or directory" in output else ""
            raise NativeBuildError(
                f"compiling {', '.join(f.name for f in files)} failed:\n"
                f"{' '.join(command)}\n{output}{hint}"
            )
        tmp.chmod(0o755)
        os.replace(tmp, plugin)
    finally:
        tmp.unlink(missing_ok=True)
    _write_atomically(_stamp_file(plugin), digest + "\n")
    if not quiet:
        logger.info("built native plugin %s", plugin)
    return plugin


def _missing_elements(gst: Any) -> list[str]:
    return [name for name in ELEMENTS if gst.ElementFactory.find(name) is None]


def register() -> bool:
    """Load the built plugin into GStreamer's registry; call after ``Gst.init``.

    Returns True when every factory of :data:`ELEMENTS` is available afterwards, False (never
    an exception) when the plugin is not built, cannot be loaded or is an older build without
    one of them, so callers fall back to ``rtpjitterbuffer`` (and ``rtspsrc``).
    """
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import GLib, Gst

    if not Gst.is_initialized():
        Gst.init(None)
    if not _missing_elements(Gst):
        return True
    plugin = plugin_file()
    if not plugin.is_file():
        logger.warning(
            "native plugin not built (%s); using rtpjitterbuffer. Build it with: "
            "python -m vigil.media.native",
            plugin,
        )
        return False
    if not is_current():
        logger.warning("native plugin %s is older than its source; rebuild it", plugin)
    try:
        loaded = Gst.Plugin.load_file(str(plugin))
    except GLib.Error as error:
        logger.warning("cannot load native plugin %s: %s", plugin, error.message)
        return False
    Gst.Registry.get().add_plugin(loaded)
    missing = _missing_elements(Gst)
    if missing:
        logger.warning(
            "native plugin %s loaded but has no %s element; rebuild it with: "
            "python -m vigil.media.native",
            plugin,
            ", ".join(missing),
        )
        return False
    logger.info("native plugin loaded: %s", plugin)
    return True
