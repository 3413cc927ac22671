"""Exceptions raised in GStreamer callbacks reach the pipeline's owner as a fault, once per cause.

PyGObject prints an exception raised in a callback to stderr and hands C a default return value.
For a pad probe that default is 0, `GST_PAD_PROBE_DROP`: every buffer and sticky event is
dropped, the branch downstream fails with "Internal data stream error" or "Got data flow before
stream-start event", and nothing says why — the stream looked healthy one moment and flapped
the next (issue 14). So every callback a stream's pipeline hands GStreamer goes through
`CallbackFaults.guard`: the exception is logged with its traceback the first time it is seen
(not once per buffer), counted in `vigil_callback_errors_total`, reported to the owner as a
`CallbackFailed` message (which the supervisor turns into a fault and heals), and the callback
returns a value that lets data flow.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from vigil.media.messages import CallbackFailed
from vigil.observability.metrics import CALLBACK_ERRORS

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Causes remembered per owner: beyond this, new ones are still reported, old ones forgotten.
MAX_CAUSES = 64


class CallbackFaults:
    """Guards an owner's callbacks and reports each cause of failure once (until `reset`)."""

    def __init__(self, owner: str, report: Callable[[CallbackFailed], None]) -> None:
        self.owner = owner
        self._report = report
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], int] = {}

    def guard(
        self, where: str, callback: Callable[P, R], fallback: R, *, in_source: bool = False
    ) -> Callable[P, R]:
        """`callback`, except that an exception in it is reported (`where` names the callback
        for the log and the metric) and `fallback` is returned to GStreamer instead."""

        @functools.wraps(callback)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return callback(*args, **kwargs)
            except Exception as error:
                self.failed(where, error, in_source=in_source)
                return fallback

        return guarded

    def failed(self, where: str, error: Exception, *, in_source: bool = False) -> None:
        """Account an exception raised in the callback `where` (any thread)."""
        CALLBACK_ERRORS.labels(self.owner, where).inc()
        text = f"{type(error).__name__}: {error}"
        key = (where, type(error).__name__, str(error)[:200])
        with self._lock:
            count = self._seen.get(key, 0)
            self._seen[key] = count + 1
            while len(self._seen) > MAX_CAUSES:
                del self._seen[next(iter(self._seen))]
        if count:
            return
        logger.error("%s: exception in %s: %s", self.owner, where, text, exc_info=error)
        self._report(CallbackFailed(where, text, in_source))

    def reset(self) -> None:
        """Forget the causes seen: after a rebuild, the same failure is a new fault to report."""
        with self._lock:
            self._seen.clear()
