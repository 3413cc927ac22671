"""Log set-up: one format for the whole process, and filters that keep secrets out of it and
add context: the stream a line is about and the trace it belongs to.

The stream comes from a context variable that each stream's supervisor sets in its own tasks
(`stream_context`), so lines logged by shared code (the RTSP client, the segment index) on a
stream's behalf carry it too. The trace id is that of the span active where the line is logged.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

from opentelemetry import trace

from vigil.observability.redact import redact_text

_stream: contextvars.ContextVar[str | None] = contextvars.ContextVar("vigil_stream", default=None)


def stream_context(name: str) -> contextvars.Context:
    """A copy of the current context in which log lines are about stream `name`; run a
    stream's tasks in it (``loop.create_task(coro, context=stream_context(name))``)."""
    context = contextvars.copy_context()
    context.run(_stream.set, name)
    return context


class ContextFilter(logging.Filter):
    """Adds `stream`, `trace_id` and `span_id` to every record (None when not known), and the
    `context` prefix the text format shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        stream = getattr(record, "stream", None) or _stream.get()
        span = trace.get_current_span().get_span_context()
        trace_id = trace.format_trace_id(span.trace_id) if span.is_valid else None
        record.stream = stream
        record.trace_id = trace_id
        record.span_id = trace.format_span_id(span.span_id) if span.is_valid else None
        prefix = f"[trace {trace_id}] " if trace_id else ""
        if stream and not record.getMessage().startswith(f"{stream}:"):
            prefix += f"{stream}: "  # most stream lines already start with it
        record.context = prefix
        return True


class RedactingFilter(logging.Filter):
    """Last line of defence: strip URL passwords from every record, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("stream", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value:
                data[key] = value
        if record.exc_info:
            data["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(data)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger once (idempotent: replaces handlers it installed before)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_vigil", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._vigil = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(name)s: %(context)s%(message)s", "%H:%M:%S"
            )
        )
    handler.addFilter(RedactingFilter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
