"""Prometheus metrics, defined once for the whole process.

They live in prometheus_client's default registry, which `GET /metrics` (the control plane) will
serve as it is. Labels are bounded: stream names and state names, never reasons or URLs.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
