"""Per-stream Prometheus metrics, read from the streams' status at scrape time.

Nothing here runs between scrapes: the numbers come from `StreamStatus` (the supervisor's state
and its sampled counters), so no hot path updates a gauge, and the series of a stream that is
removed disappear with it. `exposition` renders these together with the process-wide metrics of
prometheus_client's default registry (`vigil.observability.metrics`, process and Python).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from vigil.recording.volumes import VolumeState, VolumeView
from vigil.streams.state import StreamState
from vigil.streams.status import StreamStatus

# The classic text format: what `promtool check metrics` and every Prometheus version read.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SessionCounts(Protocol):
    """Open and opened sessions by (kind, stream): `vigil.serve.sessions.SessionRegistry`."""

    def counts(self) -> dict[tuple[str, str], int]: ...

    def opened(self) -> dict[tuple[str, str], int]: ...


class StreamCollector(Collector):
    """Yields every stream's metrics, and the service's own, from callables read per scrape."""

    def __init__(
        self,
        statuses: Callable[[], Iterable[StreamStatus]],
        *,
        bus_subscribers: Callable[[], int] | None = None,
        build: dict[str, str] | None = None,
        volumes: Callable[[], Iterable[VolumeView]] | None = None,
        sessions: SessionCounts | None = None,
    ) -> None:
        self._statuses = statuses
        self._sessions = sessions
        self._volumes = volumes
        self._bus_subscribers = bus_subscribers
        self._build = build or {}

    def collect(self) -> Iterator[Metric]:
        """One family per metric, one sample per stream (per state for the state family)."""
        statuses = list(self._statuses())
        stream = ["stream"]
        up = GaugeMetricFamily(
            "vigil_stream_up", "1 while the stream delivers video (state streaming), else 0.",
            labels=stream,
        )  # fmt: skip
        state = GaugeMetricFamily(
            "vigil_stream_state",
            "The stream's state: 1 for the current one, 0 for the others.",
            labels=["stream", "state"],
        )
        fps = GaugeMetricFamily(
            "vigil_stream_frames_per_second",
            "Video frames received per second, averaged over the last 5 s.",
            labels=stream,
        )
        bitrate = GaugeMetricFamily(  # bytes, not bits: Prometheus' base unit (promtool)
            "vigil_stream_bitrate_bytes_per_second",
            "Video bitrate in bytes per second (x8 for bit/s; no RTP or container overhead), "
            "over the last 5 s.",
            labels=stream,
        )
        frames = CounterMetricFamily(
            "vigil_stream_received_frames",
            "Video frames received since Vigil started.",
            labels=stream,
        )
        received = CounterMetricFamily(
            "vigil_stream_received_bytes",
            "Bytes of video received since Vigil started (no RTP or container overhead).",
            labels=stream,
        )
        reconnects = CounterMetricFamily(
            "vigil_stream_reconnects",
            "Reconnection attempts scheduled after a failure or a stall.",
            labels=stream,
        )
        down = CounterMetricFamily(
            "vigil_stream_not_streaming_seconds",
            "Seconds the stream was supervised but not streaming (starting, stalled, "
            "reconnecting, failed); a stopped stream does not count.",
            labels=stream,
        )
        age = GaugeMetricFamily(
            "vigil_stream_last_frame_age_seconds",
            "Seconds since the stream's last video frame (to within 1 s); absent before the "
            "first frame.",
            labels=stream,
        )
        blocked = GaugeMetricFamily(
            "vigil_recording_blocked",
            "1 while the stream cannot record because no volume has room, else 0.",
            labels=stream,
        )
        for status in statuses:
            name = [status.name]
            blocked.add_metric(name, 0.0 if status.recording_blocked is None else 1.0)
            up.add_metric(name, 1.0 if status.state is StreamState.STREAMING else 0.0)
            for candidate in StreamState:
                value = 1.0 if candidate is status.state else 0.0
                state.add_metric([status.name, candidate.value], value)
            fps.add_metric(name, status.fps)
            bitrate.add_metric(name, status.bitrate_bps / 8)
            frames.add_metric(name, status.frames_received)
            received.add_metric(name, status.bytes_received)
            reconnects.add_metric(name, status.restarts)
            down.add_metric(name, status.not_streaming_s)
            if status.last_frame_age_s is not None:
                age.add_metric(name, status.last_frame_age_s)
        yield from (up, state, fps, bitrate, frames, received, reconnects, down, age, blocked)
        if self._volumes is not None:
            yield from _volume_metrics(list(self._volumes()))
        if self._sessions is not None:
            yield from _session_metrics(self._sessions)
        if self._bus_subscribers is not None:
            yield GaugeMetricFamily(
                "vigil_event_bus_subscribers",
                "Open subscriptions to the in-process event bus (WebSocket clients, the event "
                "log, ...).",
                value=self._bus_subscribers(),
            )
        if self._build:
            info = InfoMetricFamily("vigil_build", "Vigil's version and its GStreamer's.")
            info.add_metric([], self._build)
            yield info


def _session_metrics(sessions: SessionCounts) -> Iterator[Metric]:
    """Viewer and publisher sessions (RTSP, WHEP, WHIP) by kind and stream."""
    labels = ["kind", "stream"]
    open_ = GaugeMetricFamily(
        "vigil_serve_sessions",
        "Open viewer/publisher sessions (rtsp-play, rtsp-publish, whep, whip).",
        labels=labels,
    )
    opened = CounterMetricFamily(
        "vigil_serve_sessions_opened", "Sessions opened since Vigil started.", labels=labels
    )
    for (kind, stream), count in sorted(sessions.counts().items()):
        open_.add_metric([kind, stream], count)
    for (kind, stream), count in sorted(sessions.opened().items()):
        opened.add_metric([kind, stream], count)
    yield from (open_, opened)


def _volume_metrics(views: list[VolumeView]) -> Iterator[Metric]:
    """Per recording volume: space, state, write errors and what retention deleted."""
    labels = ["volume", "path"]
    free = GaugeMetricFamily("vigil_volume_free_bytes", "Bytes free on the volume.", labels=labels)
    used = GaugeMetricFamily("vigil_volume_used_bytes", "Bytes used on the volume.", labels=labels)
    size = GaugeMetricFamily("vigil_volume_size_bytes", "The volume's capacity.", labels=labels)
    state = GaugeMetricFamily(
        "vigil_volume_state", "The volume's state: 1 for the current one, 0 for the others.",
        labels=[*labels, "state"],
    )  # fmt: skip
    errors = CounterMetricFamily(
        "vigil_volume_write_errors", "Segment writes that failed on the volume.", labels=labels
    )
    deleted = CounterMetricFamily(
        "vigil_volume_retention_deleted_bytes",
        "Bytes of recordings retention deleted from the volume (by age or for space).",
        labels=labels,
    )
    segments = CounterMetricFamily(
        "vigil_volume_retention_deleted_segments",
        "Segments retention deleted from the volume.",
        labels=labels,
    )
    for view in views:
        key = [view.id or "", str(view.path)]
        if view.free_bytes is not None and view.used_bytes is not None:
            free.add_metric(key, view.free_bytes)
            used.add_metric(key, view.used_bytes)
            size.add_metric(key, view.total_bytes or 0)
        for candidate in VolumeState:
            state.add_metric([*key, candidate.value], 1.0 if candidate is view.state else 0.0)
        errors.add_metric(key, view.write_errors)
        deleted.add_metric(key, view.bytes_deleted)
        segments.add_metric(key, view.segments_deleted)
    yield from (free, used, size, state, errors, deleted, segments)


class _Combined(Collector):
    """Several collectors as one, for a single rendering."""

    def __init__(self, *sources: Collector) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source.collect()


def exposition(collector: Collector, registry: CollectorRegistry = REGISTRY) -> bytes:
    """The text exposition of `registry` (process-wide metrics) followed by `collector`'s.

    Rendered from a combination rather than by registering `collector` in the default
    registry: each API instance (tests run several per process) has its own streams.
    """
    return generate_latest(_Combined(registry, collector))
