"""A stream's live numbers from cumulative counters sampled over time: frame rate, bitrate, age
of the last frame, and how long the stream has not been streaming.

The media side only keeps counts (frames and bytes, counted in C); everything derived from them
is computed here, at sampling time, so no Python runs per frame. Pure: time is passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Rates are averaged over this much history: long enough to smooth the burst of a keyframe,
# short enough that a camera going quiet shows within a few seconds.
RATE_WINDOW_S = 5.0


@dataclass(frozen=True, slots=True)
class _Sample:
    at: float
    frames: int
    bytes: int


class FlowMeter:
    """Turns samples of (frames, bytes) counters into rates and a last-frame age.

    Counters restart at zero when a stream's pipeline is rebuilt; a count lower than the one
    before is taken as such a restart, so the totals reported here only ever grow.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[_Sample] = deque()
        self._raw = (0, 0)  # the counters as last read
        self._base = (0, 0)  # what earlier pipelines counted
        self._last_frame_at: float | None = None

    @property
    def frames(self) -> int:
        """Frames received since the stream was first started."""
        return self._base[0] + self._raw[0]

    @property
    def bytes(self) -> int:
        """Bytes of video received since the stream was first started."""
        return self._base[1] + self._raw[1]

    def sample(self, frames: int, bytes_: int, now: float) -> None:
        """Record the counters' values read at `now` (any regular interval will do)."""
        if frames < self._raw[0] or bytes_ < self._raw[1]:  # a new pipeline counts from zero
            self._base = (self.frames, self.bytes)
            self._raw = (0, 0)
        if frames > self._raw[0]:
            # The newest frame arrived at most one sampling interval ago: close enough for an
            # age that matters in seconds (a stall), cheap enough to take every second.
            self._last_frame_at = now
        self._raw = (frames, bytes_)
        self._append(now)

    def idle(self, now: float) -> None:
        """Nothing to read (no pipeline): the counts stand still, so the rates decay to zero."""
        self._append(now)

    def _append(self, now: float) -> None:
        self._samples.append(_Sample(now, self.frames, self.bytes))
        # Keep one sample at or before the window's start, so the window is always covered.
        while len(self._samples) > 2 and self._samples[1].at <= now - self.window_s:
            self._samples.popleft()

    def fps(self) -> float:
        """Frames per second over the last window (0 until two samples exist)."""
        return self._rate(lambda sample: sample.frames)

    def bitrate_bps(self) -> float:
        """Video bits per second over the last window (0 until two samples exist)."""
        return 8 * self._rate(lambda sample: sample.bytes)

    def _rate(self, value: Callable[[_Sample], int]) -> float:
        if len(self._samples) < 2:
            return 0.0
        first, last = self._samples[0], self._samples[-1]
        elapsed = last.at - first.at
        return (value(last) - value(first)) / elapsed if elapsed > 0 else 0.0

    def last_frame_age(self, now: float) -> float | None:
        """Seconds since a frame was last seen (to within a sampling interval); None before
        the first frame."""
        if self._last_frame_at is None:
            return None
        return max(0.0, now - self._last_frame_at)


class Downtime:
    """Accumulates the seconds a stream spent down: supervised but not streaming."""

    def __init__(self) -> None:
        self._total = 0.0
        self._down_since: float | None = None

    def update(self, down: bool, now: float) -> None:
        """The stream is now down (or not), as of `now`."""
        if down and self._down_since is None:
            self._down_since = now
        elif not down and self._down_since is not None:
            self._total += now - self._down_since
            self._down_since = None

    def seconds(self, now: float) -> float:
        """Total seconds down up to `now`, the ongoing stretch included."""
        ongoing = now - self._down_since if self._down_since is not None else 0.0
        return self._total + max(0.0, ongoing)
