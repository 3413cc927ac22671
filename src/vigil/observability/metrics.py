"""Prometheus metrics, defined once for the whole process.

They live in prometheus_client's default registry, which `GET /metrics` serves together with
the per-stream numbers read at scrape time (`vigil.observability.collector`). Labels are
bounded: stream names, state names, route templates, never reasons or URLs.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# No `<counter>_created` series: in the text format Prometheus stores them as extra series and
# does nothing with them.
disable_created_metrics()  # type: ignore[no-untyped-call]

STREAM_TRANSITIONS = Counter(
    "vigil_stream_transitions",
    "Stream state changes, by stream, previous state and new state.",
    ["stream", "from_state", "to_state"],
)

RECORDING_GAPS = Counter(
    "vigil_recording_gaps",
    "Interruptions of a recorded stream (each is a row in the gaps table).",
    ["stream"],
)

WEBSOCKET_CLIENTS = Gauge(
    "vigil_websocket_clients",
    "WebSocket clients connected to the live event stream (/api/v1/events).",
)

WEBSOCKET_SLOW_DISCONNECTS = Counter(
    "vigil_websocket_slow_disconnects",
    "WebSocket clients disconnected because they let too many events pile up unread.",
)

EVENTS_NOT_STORED = Counter(
    "vigil_events_not_stored",
    "Bus events missing from the stored history: the writer fell behind or a write failed.",
)

# Counted when a segment's row is completed from the file, so a file still being written is not
# in them yet; repaired files (a pipeline that died mid-file) count too.
RECORDED_SEGMENTS = Counter(
    "vigil_recorded_segments",
    "Segment files finished and indexed, by stream.",
    ["stream"],
)

RECORDED_BYTES = Counter(
    "vigil_recorded_bytes",
    "Bytes of the segment files finished and indexed, by stream.",
    ["stream"],
)

HTTP_REQUEST_DURATION = Histogram(
    "vigil_http_request_duration_seconds",
    "API requests: time to the end of the response, by route template, method and status.",
    ["route", "method", "status"],
)
