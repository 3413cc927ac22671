"""The FastAPI application: routers, error shape, auth, CORS, metrics, tracing, OpenAPI."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig
from opentelemetry.sdk.trace import TracerProvider

from vigil.api import errors
from vigil.api.auth import Authenticator
from vigil.api.middleware import RequestMetrics
from vigil.api.routes import (
    config,
    detections,
    events,
    metrics,
    recordings,
    sessions,
    snapshots,
    storage,
    streams,
    system,
    web,
    webrtc,
)
from vigil.api.services import ApiServices
from vigil.store.tokens import Role

API_PREFIX = "/api/v1"
# Probes and scrapes come every few seconds and say nothing: traced, they would drown the
# requests worth reading.
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def create_api(
    services: ApiServices,
    *,
    configured_tokens: dict[str, tuple[str, Role]] | None = None,
    cors_origins: list[str] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The HTTP API over `services`; tokens from the file are given as hash → (name, role).
    With `tracer_provider`, every request is a span (W3C traceparent headers are honoured)."""
    app = FastAPI(
        title="Vigil",
        version=services.version,
        summary="Record, re-serve and watch many cameras.",
        description="REST API of Vigil. Every route under /api/v1 takes a bearer token "
        "(`vigil tokens create`) unless no token exists at all, in which case Vigil listens "
        "on loopback only.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        telemetry=_telemetry(tracer_provider),
    )
    app.state.services = services
    app.state.auth = Authenticator(configured_tokens or {}, services.tokens, services.run)
    errors.install(app)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "If-Match"],
            expose_headers=[
                "Location",
                "Link",
                "ETag",
                "Accept-Patch",
                "Content-Range",
                "X-Vigil-Start",
                "X-Vigil-End",
                "X-Vigil-Skipped-Seconds",
                "X-Vigil-Ended-Early",
            ],
        )
    app.add_middleware(RequestMetrics)
    app.include_router(system.probes)
    app.include_router(metrics.router)
    app.include_router(system.router, prefix=API_PREFIX)
    app.include_router(streams.router, prefix=API_PREFIX)
    app.include_router(config.router, prefix=API_PREFIX)
    app.include_router(events.router, prefix=API_PREFIX)
    app.include_router(storage.router, prefix=API_PREFIX)  # before /recordings/{stream}
    app.include_router(recordings.router, prefix=API_PREFIX)
    app.include_router(snapshots.router, prefix=API_PREFIX)
    app.include_router(detections.router, prefix=API_PREFIX)
    app.include_router(sessions.router, prefix=API_PREFIX)
    # WHEP/WHIP at /{stream}/whep|whip (two segments, the second fixed): no /api/v1 path has
    # that shape, and being included before any catch-all keeps them reachable.
    app.include_router(webrtc.router)
    web.mount_ui(app)  # last: its /ui mount would catch the paths of any route after it
    return app


def _telemetry(tracer_provider: TracerProvider | None) -> TelemetryConfig:
    """FastAPI's own OpenTelemetry instrumentation: request spans named after the route
    template, into Vigil's provider; off entirely without one (it would otherwise report to
    whatever global provider a library installed)."""
    if tracer_provider is None:
        return {"tracing": False, "metrics": False, "logs": False}
    # Metrics are Prometheus' job here and logs go through `logging`; spans only, and one per
    # request rather than one per dependency and serialisation step.
    return {
        "tracer_provider": tracer_provider, "metrics": False, "logs": False,
        "operation_spans": False, "auto_configure": False, "exclude": _untraced,
    }  # fmt: skip


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS
