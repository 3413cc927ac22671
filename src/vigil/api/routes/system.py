"""Liveness, readiness and the service's status."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from vigil.api.auth import Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES
from vigil.events import utc_now

probes = APIRouter(tags=["system"])
router = APIRouter(tags=["system"], responses=ERROR_RESPONSES)


class Probe(BaseModel):
    """Answer of the health probes."""

    status: str


@probes.get("/healthz", response_model=Probe, summary="Liveness: the process answers")
async def healthz() -> Probe:
    """Always 200 while the event loop runs; no token needed (for load balancers, systemd)."""
    return Probe(status="ok")


@probes.get(
    "/readyz",
    response_model=Probe,
    responses={503: {"model": Probe, "description": "starting or stopping"}},
    summary="Readiness: streams started, not stopping",
)
async def readyz(services: Services) -> Probe | JSONResponse:
    """200 once every service is up, 503 while starting or stopping; no token needed."""
    if services.ready():
        return Probe(status="ready")
    return JSONResponse({"status": "not ready"}, status_code=503)


class StreamCounts(BaseModel):
    """How many streams are in which state."""

    total: int
    by_state: dict[str, int]


class Plugins(BaseModel):
    """GStreamer elements as `vigil doctor` reports them."""

    ok: bool = Field(description="Every required element is present.")
    missing_packages: list[str] = Field(description="Debian packages to install.")
    missing_elements: list[str]
    missing_optional: list[str]
    hardware: list[str] = Field(description="Hardware decoders and encoders found.")


class Status(BaseModel):
    """The service at a glance."""

    version: str
    gstreamer: str
    started_at: datetime
    uptime_s: float
    streams: StreamCounts
    plugins: Plugins | None


@router.get(
    "/status", response_model=Status,
    summary="Version, uptime, stream counts and the GStreamer plugin report",
)  # fmt: skip
async def status(services: Services, _caller: Viewer) -> Status:
    statuses = services.streams.statuses()
    by_state: dict[str, int] = {}
    for item in statuses:
        by_state[item.state.value] = by_state.get(item.state.value, 0) + 1
    return Status(
        version=services.version,
        gstreamer=services.gstreamer_version,
        started_at=services.started_at,
        uptime_s=(utc_now() - services.started_at).total_seconds(),
        streams=StreamCounts(total=len(statuses), by_state=by_state),
        plugins=Plugins(**dataclasses.asdict(services.plugins)) if services.plugins else None,
    )
