"""Vigil's tracer provider, as `tracing.enabled` builds it, exporting to memory for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from vigil.config.tracing import TracingConfig
from vigil.observability import tracing


class Spans:
    """The spans finished so far."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self._exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.all() if span.name == name]


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = tracing.build_provider(TracingConfig(enabled=True), exporter, batch=False)
    tracing.install(provider)
    try:
        yield Spans(exporter)
    finally:
        tracing.install(None)
        provider.shutdown()
