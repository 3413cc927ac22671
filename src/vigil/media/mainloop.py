"""The GLib main-loop thread, and the bridge between it and asyncio.

GStreamer bus watches, the RTSP server and webrtcbin signalling run on one GLib thread. Code on
the asyncio side calls into it with `call` (returns a concurrent future); code on the GLib side
reaches asyncio with `loop.call_soon_threadsafe`. The heartbeat lets a watchdog notice a hung loop.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from gi.repository import GLib

logger = logging.getLogger(__name__)

T = TypeVar("T")


class GLibLoopThread:
    """Runs the default GLib main context in a dedicated thread."""

    def __init__(self, name: str = "glib-main") -> None:
        self._name = name
        self._loop: GLib.MainLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.last_beat = time.monotonic()

    @property
    def running(self) -> bool:
        """True while the loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (idempotent); returns once the loop is running."""
        if self.running:
            return
        self._ready.clear()
        self._loop = GLib.MainLoop()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("GLib main loop did not start within 10 s")

    def _run(self) -> None:
        assert self._loop is not None
        GLib.idle_add(self._mark_ready)
        GLib.timeout_add(500, self._beat)
        self._loop.run()

    def _mark_ready(self) -> bool:
        self._ready.set()
        return False  # GLib.SOURCE_REMOVE

    def _beat(self) -> bool:
        self.last_beat = time.monotonic()
        return True  # GLib.SOURCE_CONTINUE

    def call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `fn` on the GLib thread; the returned future carries its result or exception."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def _invoke() -> bool:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # handed to the caller through the future
                    future.set_exception(exc)
            return False  # GLib.SOURCE_REMOVE

        GLib.idle_add(_invoke)
        return future

    def stop(self, timeout: float = 5.0) -> None:
        """Quit the loop and join the thread (idempotent)."""
        if self._loop is not None:
            self._loop.quit()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("GLib main loop thread did not stop within %.1f s", timeout)
        self._thread = None
        self._loop = None
