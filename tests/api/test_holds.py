"""Holds through the API: add, list, remove; bad input named."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_add_list_and_remove_a_hold(api: Api) -> None:
    body = {"stream": "yard", "start": "2026-11-01T10:00:00Z", "end": "2026-11-01T11:00:00Z",
            "reason": "break-in"}  # fmt: skip
    created = await api.client.post("/api/v1/recordings/holds", json=body)
    assert created.status_code == 201, created.text
    hold = created.json()
    assert created.headers["location"] == f"/api/v1/recordings/holds/{hold['id']}"
    assert (hold["stream"], hold["reason"], hold["until"]) == ("yard", "break-in", None)

    listed = (await api.client.get("/api/v1/recordings/holds")).json()
    assert [h["id"] for h in listed] == [hold["id"]]

    assert (await api.client.delete(f"/api/v1/recordings/holds/{hold['id']}")).status_code == 204
    assert (await api.client.get("/api/v1/recordings/holds")).json() == []
    gone = await api.client.delete(f"/api/v1/recordings/holds/{hold['id']}")
    assert gone.status_code == 404


async def test_a_hold_that_ends_before_it_starts_is_refused(api: Api) -> None:
    body = {"start": "2026-11-01T11:00:00Z", "end": "2026-11-01T10:00:00Z"}
    answer = await api.client.post("/api/v1/recordings/holds", json=body)
    assert answer.status_code == 422
    assert "end must be after start" in answer.text


async def test_storage_without_a_storage_service_says_so(api: Api) -> None:
    answer = await api.client.get("/api/v1/storage")
    assert answer.status_code == 503
