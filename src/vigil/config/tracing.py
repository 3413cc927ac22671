"""The ``tracing`` section: OpenTelemetry spans for API requests and control operations."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from vigil.config.base import BaseConfig


class TracingConfig(BaseConfig):
    """Where spans go and how many are kept. Off by default: with no collector listening, an
    enabled exporter would only log failed exports."""

    enabled: bool = Field(
        default=False,
        description="Record spans and export them over OTLP/HTTP (protobuf).",
    )
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318",
        min_length=1,
        description=(
            "The OTLP/HTTP collector (an OpenTelemetry Collector, Jaeger, Tempo...). Spans are "
            "sent to <endpoint>/v1/traces, unless the URL already ends in /v1/traces."
        ),
    )
    service_name: str = Field(
        default="vigil",
        min_length=1,
        max_length=100,
        description="service.name of every span: tells several Vigil instances apart.",
    )
    sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of traces kept (1.0 = all). A request that arrives with a sampled "
            "traceparent header is kept whatever this says."
        ),
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:4318")
        return value

    def traces_url(self) -> str:
        """The URL spans are posted to."""
        base = self.otlp_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"
