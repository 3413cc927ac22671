"""Streams through the API: configuration with origins, create/change/delete, start/stop,
recording on/off, persistence, validation and rights. (The streams themselves are not run
here: tests/integration/test_control.py does that.)"""

from __future__ import annotations

import asyncio

from tests.api.conftest import Api, _write
from vigil.config.loader import load_config_text
from vigil.events import EventBus
from vigil.store.db import Database
from vigil.store.overlay import OverlayStore
from vigil.store.tokens import Role
from vigil.streams.desired import DesiredState

NEW = {"name": "Porch", "source": "rtsp://cam:hunter2@192.0.2.20/live", "transport": "tcp"}


async def test_streams_show_configuration_origin_and_no_password(api: Api) -> None:
    response = await api.client.get("/api/v1/streams")
    assert "secret" not in response.text
    gate = response.json()[0]
    assert gate["origin"] == "file"
    detect = gate["config"].pop("detect")
    assert gate["config"] == {"source": "rtsp://admin:***@192.0.2.10:554/stream1",
                              "transport": "tcp", "record": True, "enabled": True,
                              "segment_seconds": None}  # fmt: skip
    assert detect["enabled"] is False and detect["labels"] == ["person"]
    assert gate["state"] == "streaming"


async def test_create_change_and_delete_a_stream(api: Api) -> None:
    created = await api.client.post("/api/v1/streams", json=NEW)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/v1/streams/Porch"
    assert created.json()["origin"] == "api"
    assert "hunter2" not in created.text
    assert created.json()["state"] == "stopped"  # the fake manager runs nothing

    again = await api.client.post("/api/v1/streams", json={**NEW, "name": "porch"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"

    changed = await api.client.patch("/api/v1/streams/gate", json={"record": False})
    assert changed.status_code == 200
    assert (changed.json()["origin"], changed.json()["config"]["record"]) == ("file+api", False)
    assert changed.json()["config"]["source"].endswith("@192.0.2.10:554/stream1")

    assert (await api.client.delete("/api/v1/streams/gate")).status_code == 204
    assert (await api.client.get("/api/v1/streams/gate")).status_code == 404
    assert (await api.client.delete("/api/v1/streams/gate")).status_code == 404
    names = [s["name"] for s in (await api.client.get("/api/v1/streams")).json()]
    assert names == ["yard", "Porch"]

    back = await api.client.post("/api/v1/streams/gate/reset")
    assert back.status_code == 200
    assert (back.json()["origin"], back.json()["config"]["record"]) == ("file", True)


async def test_invalid_changes_are_refused_and_nothing_is_stored(api: Api) -> None:
    bad_source = await api.client.post("/api/v1/streams", json={**NEW, "source": "ftp://x/y"})
    assert bad_source.status_code == 422
    body = bad_source.json()["error"]
    assert body["code"] == "invalid_request" and "source" in body["message"]
    unknown_key = await api.client.post("/api/v1/streams", json={**NEW, "colour": "red"})
    assert unknown_key.status_code == 422
    bad_name = await api.client.post("/api/v1/streams", json={**NEW, "name": "../etc"})
    assert bad_name.status_code == 422
    bad_patch = await api.client.patch("/api/v1/streams/gate", json={"transport": "carrier"})
    assert bad_patch.status_code == 422
    udp_file = await api.client.patch("/api/v1/streams/yard", json={"transport": "udp"})
    assert udp_file.status_code == 422, udp_file.text
    streams = (await api.client.get("/api/v1/streams")).json()
    assert [(s["name"], s["origin"]) for s in streams] == [("gate", "file"), ("yard", "file")]
    assert api.services.desired is not None
    assert await _write(OverlayStore(api.services.db).load) == {}


async def test_start_stop_and_recording_switch(api: Api) -> None:
    stopped = await api.client.post("/api/v1/streams/yard/stop")
    assert stopped.json()["config"]["enabled"] is False
    started = await api.client.post("/api/v1/streams/yard/start")
    assert started.json()["config"]["enabled"] is True
    off = await api.client.post("/api/v1/streams/yard/recording", json={"enabled": False})
    assert off.json()["config"]["record"] is False
    assert (await api.client.post("/api/v1/streams/nope/stop")).status_code == 404


async def test_each_role_gets_exactly_its_rights(api: Api) -> None:
    viewer = api.tokens.create("v", Role.VIEWER)
    operator = api.tokens.create("o", Role.OPERATOR)
    admin = api.tokens.create("a", Role.ADMIN)
    await asyncio.sleep(1.1)
    calls = [
        ("GET", "/api/v1/streams", None, "viewer"),
        ("POST", "/api/v1/streams/yard/stop", None, "operator"),
        ("POST", "/api/v1/streams/yard/recording", {"enabled": True}, "operator"),
        ("PATCH", "/api/v1/streams/yard", {"record": True}, "admin"),
        ("POST", "/api/v1/streams", NEW, "admin"),
    ]
    rank = {"viewer": 0, "operator": 1, "admin": 2}
    for method, url, body, needed in calls:
        assert (await api.client.request(method, url, json=body)).status_code == 401
        for role, token in (("viewer", viewer), ("operator", operator), ("admin", admin)):
            response = await api.client.request(method, url, json=body, headers=api.as_(token))
            expected_ok = rank[role] >= rank[needed]
            assert (response.status_code < 400) == expected_ok, (method, url, role, response.text)
            if not expected_ok:
                assert response.status_code == 403


async def test_api_changes_survive_a_restart(api: Api) -> None:
    assert (await api.client.post("/api/v1/streams", json=NEW)).status_code == 201
    assert (await api.client.delete("/api/v1/streams/gate")).status_code == 204
    db: Database = api.services.db
    from tests.api.conftest import FILE

    again = DesiredState(
        file_config=load_config_text(FILE, env={}), config_path=None, base_dir=db.path.parent,
        env={}, store=OverlayStore(db), write=_write, bus=EventBus(),
    )  # fmt: skip
    resolved = await again.load()
    assert [p.name for p in resolved.streams] == ["yard", "Porch"]
    assert again.deleted == ("gate",)
