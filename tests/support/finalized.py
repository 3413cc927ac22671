"""Which GStreamer objects were freed in C, whatever Python still holds of their wrappers.

A GObject weak reference fires when the object is finalized, so it catches what `gc` cannot:
an element kept alive by a cycle through C (a pad probe or signal handler whose closure holds
something that holds the element).
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GObject, Gst  # noqa: E402


class FinalizeWatch:
    """Elements being watched, and which of them are still alive."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._refs: list[GObject.Object] = []  # the weak refs (dropping one unregisters it)
        self._alive: dict[int, str] = {}

    def watch(self, element: Gst.Element) -> None:
        """Watch one element; labelled by its path in the pipeline at this moment."""
        key = next(self._ids)
        with self._lock:
            self._alive[key] = element.get_path_string()
        self._refs.append(element.weak_ref(self._finalized, key))

    def watch_tree(self, element: Gst.Element) -> None:
        """Watch `element` and, if it is a bin, everything inside it."""
        self.watch(element)
        if isinstance(element, Gst.Bin):
            for child in _elements(element.iterate_elements()):
                self.watch_tree(child)

    def _finalized(self, key: int) -> None:  # any thread: the one that dropped the last ref
        with self._lock:
            self._alive.pop(key, None)

    def alive(self) -> list[str]:
        """Paths of the watched elements not finalized yet."""
        with self._lock:
            return sorted(self._alive.values())

    def wait(self, done: Callable[[list[str]], bool], timeout: float = 10.0) -> list[str]:
        """Collect garbage until `done(alive)` holds or `timeout` passes; the alive paths."""
        deadline = time.monotonic() + timeout
        while True:
            gc.collect()
            alive = self.alive()
            if done(alive) or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)


def element_paths(bin_: Gst.Bin) -> set[str]:
    """Paths of every element inside `bin_` now."""
    return {child.get_path_string() for child in _elements(bin_.iterate_recurse())}


def _elements(iterator: Gst.Iterator) -> list[Gst.Element]:
    elements: list[Gst.Element] = []
    while True:
        result, element = iterator.next()
        if result == Gst.IteratorResult.OK:
            elements.append(element)
        elif result == Gst.IteratorResult.RESYNC:  # the bin changed meanwhile: start again
            iterator.resync()
            elements.clear()
        else:
            return elements
