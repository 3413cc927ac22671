"""OpenTelemetry tracing: spans for API requests and control operations, exported over OTLP.

Control operations open a span with `span("stream.start", stream=name)`; API requests get theirs
from the ASGI middleware (`vigil.api.app`). Off by default: until a provider is installed every
span is OpenTelemetry's no-op, which costs a function call.

Vigil keeps its provider here instead of installing OpenTelemetry's global one: the global can
be set only once per process, while a test (or a second Vigil in the same process) needs its
own. Log lines still find the active span, because the current span lives in the context, not
in the provider.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from vigil import __version__
from vigil.config.tracing import TracingConfig

logger = logging.getLogger(__name__)

AttributeValue = str | bool | int | float

# Query parameters that may carry a credential (the event WebSocket accepts `?token=`; a client
# may try it anywhere). Request spans record the query string, so these are masked first.
SECRET_PARAMETERS = frozenset({"token", "access_token"})

_provider: TracerProvider | None = None
_noop = trace.NoOpTracer()


def build_provider(
    config: TracingConfig, exporter: SpanExporter | None = None, *, batch: bool = True
) -> TracerProvider:
    """A provider for `config`: its service name and sampling, credentials masked, spans
    batched (or, with `batch=False`, handed over one by one) to `exporter` (default: OTLP/HTTP
    to the configured endpoint)."""
    if exporter is None:
        # Imported only when tracing is on: it pulls in protobuf and an HTTP client.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=config.traces_url(), timeout=5)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: config.service_name, SERVICE_VERSION: __version__}),
        # Parent-based: a caller that sampled its trace (traceparent header) gets the whole of it.
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
    )
    provider.add_span_processor(_MaskSecrets())  # first: processors run in order
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    return provider


class _MaskSecrets(SpanProcessor):
    """Masks credentials in a span's query string as the span starts, before any exporter."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        query = (span.attributes or {}).get("url.query")
        if isinstance(query, str) and query:
            span.set_attribute("url.query", mask_query(query))


def mask_query(query: str) -> str:
    """`query` with the values of `SECRET_PARAMETERS` replaced by ``***``."""
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(key.lower() in SECRET_PARAMETERS for key, _value in pairs):
        return query
    return urlencode([(k, "***" if k.lower() in SECRET_PARAMETERS else v) for k, v in pairs])


def install(provider: TracerProvider | None) -> None:
    """Make `provider` the one Vigil's spans go to (None: spans are no-ops again)."""
    global _provider
    _provider = provider


def current_provider() -> TracerProvider | None:
    """The installed provider, if tracing is on."""
    return _provider


def tracer() -> trace.Tracer:
    """Vigil's tracer: the installed provider's, or a no-op one."""
    provider = _provider
    return provider.get_tracer("vigil", __version__) if provider is not None else _noop


@contextmanager
def span(name: str, **attributes: AttributeValue | None) -> Iterator[trace.Span]:
    """A span named `name` around a control operation, current for its duration (so log lines
    inside carry its trace id). Attributes are recorded as ``vigil.<key>``; None ones are left
    out. An exception leaving the block is recorded on the span, which is marked as an error.

    For example, applying a configuration::

        with span("config.apply", source="file") as current:
            ...
            current.set_attribute("vigil.changed", len(plan.changed))
    """
    recorded = {f"vigil.{key}": value for key, value in attributes.items() if value is not None}
    with tracer().start_as_current_span(name, attributes=recorded) as current:
        yield current


def shutdown(provider: TracerProvider, timeout_s: float = 5.0) -> None:
    """Export what `provider` still holds and close it, uninstalling it if installed. Blocks
    up to `timeout_s` (an export in flight): call it from a worker thread."""
    global _provider
    if _provider is provider:
        _provider = None
    if not provider.force_flush(int(timeout_s * 1000)):
        logger.warning("tracing: spans not exported within %.0f s were dropped", timeout_s)
    provider.shutdown()


def mark_failed(current: trace.Span, reason: str) -> None:
    """Mark `current` as failed with `reason`, for failures handled without an exception."""
    current.set_status(trace.StatusCode.ERROR, reason)
