"""`GET /metrics`: Prometheus' text exposition of the service, its streams and the process."""

from __future__ import annotations

from fastapi import APIRouter, Response

from vigil.api.auth import Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES
from vigil.observability.collector import CONTENT_TYPE, StreamCollector, exposition

router = APIRouter(tags=["system"], responses=ERROR_RESPONSES)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    summary="Prometheus metrics",
)
async def metrics(services: Services, _caller: Viewer) -> Response:
    """Every metric, read now: per-stream numbers come from the streams' status at this moment,
    counters and histograms from the process-wide registry. Needs a viewer token once tokens
    exist (Prometheus: `authorization: {credentials: <token>}` in the scrape config)."""
    collector = StreamCollector(
        services.streams.statuses,
        bus_subscribers=lambda: services.bus.subscriber_count,
        build={"version": services.version, "gstreamer": services.gstreamer_version},
        volumes=services.storage.pool.views if services.storage is not None else None,
        sessions=services.sessions,
    )
    return Response(exposition(collector), media_type=CONTENT_TYPE)
