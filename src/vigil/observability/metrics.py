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

CALLBACK_ERRORS = Counter(
    "vigil_callback_errors",
    "Exceptions raised in Python callbacks on GStreamer threads, by stream and callback.",
    ["stream", "callback"],
)

STREAM_HEALS = Counter(
    "vigil_stream_heals",
    "Steps of the healing ladder taken, by stream and step: rebuild_source, rebuild_pipeline, "
    "failed.",
    ["stream", "step"],
)

RECORDING_STALLS = Counter(
    "vigil_recording_stalls",
    "Times a streaming stream's recording wrote nothing while video kept arriving.",
    ["stream"],
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

# -- detection --------------------------------------------------------------------------------

DETECTIONS = Counter(
    "vigil_detections",
    "Objects the detector reported in a frame, after the stream's label/score/area/zone "
    "filters (one per object per frame looked at).",
    ["stream", "label"],
)

OBJECTS = Counter(
    "vigil_objects",
    "Tracked objects that entered (one per object, however many frames showed it).",
    ["stream", "label"],
)

OBJECTS_IN_VIEW = Gauge(
    "vigil_objects_in_view",
    'Tracked objects in view now, by label and zone (zone "": anywhere in the picture); '
    "a stream's series go when its detection stops.",
    ["stream", "label", "zone"],
)

DETECTION_FRAMES = Counter(
    "vigil_detection_frames",
    "Frames the detector looked at.",
    ["stream"],
)

DETECTION_SKIPPED = Counter(
    "vigil_detection_skipped_frames",
    "Frames due for detection that were not looked at: `busy` (the detector had not finished "
    "the stream's previous frame; a newer one replaced it) or `motion` (still scene).",
    ["stream", "reason"],
)

INFERENCE_SECONDS = Histogram(
    "vigil_inference_seconds",
    "Time of one inference run (a batch of frames), by model.",
    ["model"],
    buckets=(0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5),
)

INFERENCE_BATCH_SIZE = Histogram(
    "vigil_inference_batch_size",
    "Frames per inference run, by model.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)

DETECTION_LATENCY = Histogram(
    "vigil_detection_latency_seconds",
    "From a frame leaving the decoder to its detections being known (waiting included).",
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
