"""Every route of the OpenAPI description has the role this table says: 401 without a token,
403 with a smaller role, neither with the role or a bigger one. A new route fails this test
until it is added here."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.conftest import Api
from vigil.store.tokens import Role

OPEN = None
ROLES: dict[tuple[str, str], Role | None] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): Role.VIEWER,
    ("GET", "/api/v1/status"): Role.VIEWER,
    ("GET", "/api/v1/streams"): Role.VIEWER,
    ("POST", "/api/v1/streams"): Role.ADMIN,
    ("GET", "/api/v1/streams/{name}"): Role.VIEWER,
    ("PATCH", "/api/v1/streams/{name}"): Role.ADMIN,
    ("DELETE", "/api/v1/streams/{name}"): Role.ADMIN,
    ("POST", "/api/v1/streams/{name}/reset"): Role.ADMIN,
    ("POST", "/api/v1/streams/{name}/start"): Role.OPERATOR,
    ("POST", "/api/v1/streams/{name}/stop"): Role.OPERATOR,
    ("POST", "/api/v1/streams/{name}/recording"): Role.OPERATOR,
    ("GET", "/api/v1/config"): Role.ADMIN,
    ("PUT", "/api/v1/config"): Role.ADMIN,
    ("POST", "/api/v1/config/validate"): Role.ADMIN,
    ("POST", "/api/v1/config/reload"): Role.ADMIN,
    ("GET", "/api/v1/events"): Role.VIEWER,
    ("GET", "/api/v1/events/{event_id}/snapshot.jpg"): Role.VIEWER,
    ("GET", "/api/v1/events/{event_id}/clip.mp4"): Role.VIEWER,
    ("GET", "/api/v1/streams/{name}/detections/latest"): Role.VIEWER,
    ("GET", "/api/v1/streams/{name}/segments"): Role.VIEWER,
    ("GET", "/api/v1/streams/{name}/gaps"): Role.VIEWER,
    ("GET", "/api/v1/segments/{segment_id}/file"): Role.VIEWER,
    ("GET", "/api/v1/streams/{name}/export.mp4"): Role.VIEWER,
    ("GET", "/api/v1/streams/{name}/snapshot.jpg"): Role.VIEWER,
    ("GET", "/api/v1/storage"): Role.VIEWER,
    ("GET", "/api/v1/storage/volumes/{volume_id}"): Role.VIEWER,
    ("POST", "/api/v1/storage/volumes/{volume_id}/eject"): Role.ADMIN,
    ("POST", "/api/v1/storage/volumes/{volume_id}/attach"): Role.ADMIN,
    ("GET", "/api/v1/recordings/holds"): Role.VIEWER,
    ("POST", "/api/v1/recordings/holds"): Role.OPERATOR,
    ("DELETE", "/api/v1/recordings/holds/{hold_id}"): Role.OPERATOR,
    ("GET", "/api/v1/sessions"): Role.OPERATOR,
    ("DELETE", "/api/v1/sessions/{session_id}"): Role.OPERATOR,
    ("OPTIONS", "/{stream}/whep"): OPEN,
    ("POST", "/{stream}/whep"): Role.VIEWER,
    ("OPTIONS", "/{stream}/whep/{session_id}"): OPEN,
    ("PATCH", "/{stream}/whep/{session_id}"): Role.VIEWER,
    ("DELETE", "/{stream}/whep/{session_id}"): Role.VIEWER,
    ("OPTIONS", "/{stream}/whip"): OPEN,
    ("POST", "/{stream}/whip"): Role.OPERATOR,
    ("OPTIONS", "/{stream}/whip/{session_id}"): OPEN,
    ("PATCH", "/{stream}/whip/{session_id}"): Role.OPERATOR,
    ("DELETE", "/{stream}/whip/{session_id}"): Role.OPERATOR,
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/streams"): {"name": "new", "source": "test://ball"},
    ("PATCH", "/api/v1/streams/{name}"): {"record": True},
    ("POST", "/api/v1/streams/{name}/recording"): {"enabled": True},
    ("PUT", "/api/v1/config"): {"streams": []},
    ("POST", "/api/v1/config/validate"): {"streams": []},
    ("POST", "/api/v1/recordings/holds"): {
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-01-02T00:00:00Z",
    },
}
RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


async def test_every_route_has_exactly_its_role(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    routes = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert routes == set(ROLES), f"routes without a declared role: {routes - set(ROLES)}"
    tokens = {role: api.tokens.create(role.value, role) for role in Role}
    await asyncio.sleep(1.1)  # tokens created while running are seen within a second
    for (method, path), needed in sorted(ROLES.items(), key=str):
        url = (
            path.replace("{name}", "yard").replace("{segment_id}", "1")
            .replace("{volume_id}", "0a").replace("{hold_id}", "1").replace("{event_id}", "1")
            .replace("{stream}", "yard").replace("{session_id}", "0a")
        )  # fmt: skip
        body = BODIES.get((method, path))
        anonymous = await api.client.request(method, url, json=body)
        if needed is None:
            assert anonymous.status_code in (200, 204), (method, path)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        for role, token in tokens.items():
            answer = await api.client.request(method, url, json=body, headers=api.as_(token))
            if RANK[role] < RANK[needed]:
                assert answer.status_code == 403, (method, path, role, answer.text)
                assert answer.json()["error"]["code"] == "forbidden"
            else:
                assert answer.status_code not in (401, 403), (method, path, role, answer.text)
