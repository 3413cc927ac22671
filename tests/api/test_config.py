"""The configuration through the API: masked view with origins, validation, PUT of streams."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api


async def _config(api: Api) -> dict[str, Any]:
    response = await api.client.get("/api/v1/config")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_the_running_configuration_is_shown_masked_with_origins(api: Api) -> None:
    await api.client.post("/api/v1/streams", json={"name": "porch", "source": "test://ball"})
    body = await _config(api)
    assert "secret" not in str(body)
    assert [s["name"] for s in body["config"]["streams"]] == ["gate", "yard", "porch"]
    assert body["config"]["streams"][0]["source"] == "rtsp://admin:***@192.0.2.10:554/stream1"
    assert body["origins"] == {"gate": "file", "yard": "file", "porch": "api"}
    assert body["file"] is None and body["deleted"] == []


async def test_validate_names_each_problem_and_changes_nothing(api: Api) -> None:
    ok = await api.client.post("/api/v1/config/validate", json={"streams": []})
    assert ok.json() == {"valid": True, "problems": []}
    bad = await api.client.post(
        "/api/v1/config/validate",
        json={"recording": {"segment_seconds": -1}, "streams": [{"name": "x", "sorce": "y"}]},
    )
    body = bad.json()
    assert body["valid"] is False
    locations = {p["location"] for p in body["problems"]}
    assert "recording.segment_seconds" in locations
    assert any(loc.startswith("streams[0]") for loc in locations), locations
    assert len((await _config(api))["config"]["streams"]) == 2


async def test_put_replaces_the_streams_keeping_masked_passwords(api: Api) -> None:
    current = (await _config(api))["config"]
    current["streams"] = [current["streams"][0] | {"record": False},
                          {"name": "porch", "source": "test://ball"}]  # fmt: skip
    applied = await api.client.put("/api/v1/config", json=current)
    assert applied.status_code == 200, applied.text
    assert applied.json()["added"] == ["porch"] and applied.json()["removed"] == ["yard"]
    assert applied.json()["changed"] == ["gate"]
    assert api.services.desired is not None
    gate = api.services.desired.stream("gate")
    assert gate is not None and gate.config.source.startswith("rtsp://admin:secret@")
    body = await _config(api)
    assert body["origins"] == {"gate": "file+api", "porch": "api"}
    assert body["deleted"] == ["yard"]


async def test_put_refuses_other_sections_and_invalid_documents(api: Api) -> None:
    current = (await _config(api))["config"]
    other = await api.client.put("/api/v1/config", json=current | {"data_dir": "/elsewhere"})
    assert other.status_code == 409
    assert "data_dir" in other.json()["error"]["message"]
    invalid = await api.client.put("/api/v1/config", json=current | {"streams": [{"name": "x"}]})
    assert invalid.status_code == 422
    assert len((await _config(api))["config"]["streams"]) == 2


async def test_reload_without_a_file_says_so(api: Api) -> None:
    response = await api.client.post("/api/v1/config/reload")
    assert response.status_code == 409
    assert "no file" in response.json()["error"]["message"]
