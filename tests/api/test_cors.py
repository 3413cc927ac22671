"""CORS: off unless origins are configured; then a browser on a listed origin may call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Api, serve

PREFLIGHT = {
    "Origin": "https://dashboard.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture
async def cors_api(tmp_path: Path) -> AsyncIterator[Api]:
    async for served in serve(tmp_path, {}, cors_origins=["https://dashboard.example"]):
        yield served


async def test_without_origins_configured_no_cors_headers(api: Api) -> None:
    answer = await api.client.get("/api/v1/streams", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers


async def test_a_listed_origin_may_call_and_reads_the_export_headers(cors_api: Api) -> None:
    preflight = await cors_api.client.options("/api/v1/streams", headers=PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://dashboard.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    answer = await cors_api.client.get(
        "/api/v1/streams", headers={"Origin": "https://dashboard.example"}
    )
    assert answer.headers["access-control-allow-origin"] == "https://dashboard.example"
    other: httpx.Response = await cors_api.client.options(
        "/api/v1/streams", headers={**PREFLIGHT, "Origin": "https://evil.example"}
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"
