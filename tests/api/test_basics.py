"""Probes, status, the error shape and OpenAPI, over real HTTP."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_probes_need_no_token(secured_api: Api) -> None:
    assert (await secured_api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await secured_api.client.get("/readyz")).json() == {"status": "ready"}


async def test_status_counts_streams_by_state(api: Api) -> None:
    body = (await api.client.get("/api/v1/status")).json()
    assert body["version"] == "0.test"
    assert body["gstreamer"] == "1.22.0"
    assert body["streams"] == {"total": 2, "by_state": {"streaming": 1, "stalled": 1}}
    assert body["uptime_s"] >= 0


async def test_streams_are_listed_with_their_state(api: Api) -> None:
    body = (await api.client.get("/api/v1/streams")).json()
    assert [(s["name"], s["state"], s["reconnects"]) for s in body] == [
        ("gate", "streaming", 2), ("yard", "stalled", 2),
    ]  # fmt: skip
    one = (await api.client.get("/api/v1/streams/yard")).json()
    assert one["state"] == "stalled"


async def test_errors_have_one_shape_with_a_code(api: Api) -> None:
    missing = await api.client.get("/api/v1/streams/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "no stream named 'nope'"}}
    bad = await api.client.get("/api/v1/streams/..%2F..%2Fetc")
    assert bad.status_code in (404, 422)
    assert bad.json()["error"]["code"] in ("not_found", "invalid_request")
    unknown = await api.client.get("/api/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


async def test_openapi_documents_the_routes_and_the_error_shape(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert "/api/v1/streams/{name}" in schema["paths"]
    assert "ErrorResponse" in schema["components"]["schemas"]
    assert (await api.client.get("/docs")).status_code == 200
