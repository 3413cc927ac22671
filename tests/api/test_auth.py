"""Bearer tokens and roles: 401 without a valid token, 403 for a role too small."""

from __future__ import annotations

import asyncio

from tests.api.conftest import CONFIG_TOKEN, Api
from vigil.api.auth import CACHE_SECONDS
from vigil.store.tokens import Role


async def test_without_any_token_access_is_open(api: Api) -> None:
    assert (await api.client.get("/api/v1/streams")).status_code == 200


async def test_once_a_token_exists_every_call_needs_one(api: Api) -> None:
    token = api.tokens.create("ha", Role.VIEWER)
    await asyncio.sleep(CACHE_SECONDS + 0.1)  # a running Vigil picks up new tokens this fast
    denied = await api.client.get("/api/v1/streams")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == "unauthorized"
    assert denied.headers["www-authenticate"].startswith("Bearer")
    allowed = await api.client.get("/api/v1/streams", headers=api.as_(token))
    assert allowed.status_code == 200


async def test_a_wrong_or_revoked_token_is_refused(secured_api: Api) -> None:
    api = secured_api
    assert (await api.client.get("/api/v1/status", headers=api.as_("vgl_wrong"))).status_code == 401
    token = api.tokens.create("temp", Role.ADMIN)
    await asyncio.sleep(CACHE_SECONDS + 0.1)
    assert (await api.client.get("/api/v1/status", headers=api.as_(token))).status_code == 200
    api.tokens.revoke("temp")
    await asyncio.sleep(CACHE_SECONDS + 0.1)
    assert (await api.client.get("/api/v1/status", headers=api.as_(token))).status_code == 401


async def test_a_token_from_the_config_file_works(secured_api: Api) -> None:
    response = await secured_api.client.get("/api/v1/status", headers=secured_api.as_(CONFIG_TOKEN))
    assert response.status_code == 200


def test_roles_include_the_ones_below() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR) and not Role.OPERATOR.allows(Role.ADMIN)
