"""Tracing: the span helper, the `tracing` config section, and spans exported over real
OTLP/HTTP to a collector stand-in on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import StatusCode

from tests.observability.conftest import Spans
from vigil.config import ConfigError, load_config_text
from vigil.config.tracing import TracingConfig
from vigil.observability import tracing


def test_a_span_records_its_attributes_under_vigil(spans: Spans) -> None:
    with tracing.span("config.apply", source="file", changed=2, note=None) as current:
        current.set_attribute("vigil.added", 1)
    (span,) = spans.named("config.apply")
    assert dict(span.attributes or {}) == {
        "vigil.source": "file", "vigil.changed": 2, "vigil.added": 1,
    }  # fmt: skip
    assert span.status.status_code is StatusCode.UNSET


def test_an_exception_leaving_the_span_marks_it_failed(spans: Spans) -> None:
    with pytest.raises(ValueError), tracing.span("config.apply"):
        raise ValueError("streams[2].source: not a URL")
    (span,) = spans.named("config.apply")
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_a_failure_without_exception_can_be_marked(spans: Spans) -> None:
    with tracing.span("stream.start", stream="gate") as current:
        tracing.mark_failed(current, "connection refused")
    (span,) = spans.named("stream.start")
    assert (span.status.status_code, span.status.description) == (
        StatusCode.ERROR, "connection refused",
    )  # fmt: skip


def test_without_a_provider_spans_cost_nothing_and_go_nowhere() -> None:
    assert tracing.current_provider() is None
    with tracing.span("stream.start", stream="gate") as current:
        assert not current.is_recording()


@pytest.mark.parametrize(
    ("query", "masked"),
    [
        ("token=vgl_abc&type=stream", "token=%2A%2A%2A&type=stream"),
        ("Access_Token=x", "Access_Token=%2A%2A%2A"),
        ("type=stream&stream=gate", "type=stream&stream=gate"),
    ],
)
def test_credentials_in_query_strings_are_masked(query: str, masked: str) -> None:
    assert tracing.mask_query(query) == masked


def test_tracing_is_off_by_default_and_checked() -> None:
    assert load_config_text("").tracing == TracingConfig()
    assert not TracingConfig().enabled
    config = load_config_text("tracing: {enabled: true, otlp_endpoint: 'http://otel:4318/'}")
    assert config.tracing.traces_url() == "http://otel:4318/v1/traces"
    exact = TracingConfig(otlp_endpoint="https://tempo.example/v1/traces")
    assert exact.traces_url() == "https://tempo.example/v1/traces"
    for bad in ("tracing: {endpoint: x}", "tracing: {otlp_endpoint: 'otel:4318'}",
                "tracing: {sample_ratio: 2}"):  # fmt: skip
        with pytest.raises(ConfigError):
            load_config_text(bad)


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """An OTLP/HTTP receiver on loopback that keeps what it is sent."""
    received: ClassVar[list[tuple[str, str, bytes]]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_spans_reach_an_otlp_collector(
    collector: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    endpoint, received = collector
    config = TracingConfig(enabled=True, otlp_endpoint=endpoint, service_name="vigil-test")
    provider = tracing.build_provider(config)
    tracing.install(provider)
    with tracing.span("stream.start", stream="gate"):
        pass
    tracing.shutdown(provider)  # flushes the batch
    assert tracing.current_provider() is None
    assert received, "nothing was exported"
    path, content_type, body = received[0]
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "vigil-test"
    names = [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert names == ["stream.start"]
