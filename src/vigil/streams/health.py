"""Stream health, pure where it can be: is video still flowing, is a vanished camera back?"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from vigil.config.sources import RtspSource, SourceSpec

# Failure reasons that mean "the camera is not there" (as opposed to "it refused us").
UNREACHABLE_MARKERS = (
    "connection refused",
    "failed to connect",
    "could not open resource",
    "closed the connection",
    "source ended",
    "no route",
    "unreachable",
    "timed out",
    "no reply within",
    "no video",
)


class FlowWatch:
    """Decides when a stream is stalled from a progress token sampled over time.

    The token is anything that changes while video flows (a depayloader's last RTP sequence
    number and timestamp, a buffer count). Time is passed in, so this is testable without a
    clock.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._token: object = None
        self._since: float | None = None

    def reset(self, token: object) -> None:
        """Forget history (a new source, or the stream is not streaming)."""
        self._token = token
        self._since = None

    def stalled(self, token: object, now: float) -> bool:
        """Feed one sample; True once the token has not changed for the timeout."""
        if self._since is None or token != self._token:
            self._token, self._since = token, now
            return False
        return now - self._since >= self.timeout_s


class RecordingWatch:
    """Decides when a streaming stream's recording has stalled: nothing written for
    `timeout_s` while video keeps coming — at least `keyframes` keyframes reached the tee since
    the last write, so a branch waiting for its next keyframe (after a split, a failed file or
    a caps change) is not mistaken for a stalled one. Time is passed in."""

    def __init__(self, timeout_s: float, keyframes: int = 2) -> None:
        self.timeout_s = timeout_s
        self.keyframes = keyframes
        self._written: object = None
        self._since: float | None = None
        self._keyframes_then = 0

    def reset(self) -> None:
        """Forget history (not streaming, not recording, or just rebuilt)."""
        self._since = None

    def stalled(self, written: object, keyframes: int, now: float) -> bool:
        """Feed one sample (a token that changes with every write, and the keyframes seen so
        far); True once the recording is stalled."""
        if self._since is None or written != self._written:
            self._written, self._since, self._keyframes_then = written, now, keyframes
            return False
        return (
            now - self._since >= self.timeout_s
            and keyframes - self._keyframes_then >= self.keyframes
        )


def camera_address(spec: SourceSpec) -> tuple[str, int] | None:
    """(host, port) of a network camera, for a cheap "is it back?" check."""
    if not isinstance(spec, RtspSource):
        return None
    parts = urlsplit(spec.url)
    if parts.hostname is None:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname, port or (322 if parts.scheme == "rtsps" else 554)


def looks_unreachable(reason: str) -> bool:
    """True when a failure reason says the camera was not there (worth polling for)."""
    lowered = reason.lower()
    return any(marker in lowered for marker in UNREACHABLE_MARKERS)


async def reachable(host: str, port: int, *, timeout: float) -> bool:
    """True if a TCP connection to host:port opens within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
