"""The API client commands load no database, media or web-server code: run as a user runs them
(a new process, `-X importtime` naming every module it imported) against a served API."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.conftest import Api
from tests.support.imports import heavy, imported_modules


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (("streams", "list"), 0, "gate"),
        (("recordings", "list", "gate"), 0, "no recordings of 'gate'"),
        (("recordings", "holds", "--json"), 0, "[]"),
        # This API has no storage manager: the answer is a refusal, read and printed.
        (("storage", "status"), 1, "storage is not available"),
    ],
)
async def test_client_commands_load_no_database_media_or_server(
    api: Api, args: tuple[str, ...], code: int, expected: str
) -> None:
    ran, modules = await asyncio.to_thread(imported_modules, *args, "--url", api.server.url)
    assert ran.returncode == code, ran.stderr[-2000:]
    assert expected in ran.stdout + ran.stderr
    assert heavy(modules) == []
    assert "httpx" not in modules  # the standard library carries the requests
    assert "http.client" in modules  # it did talk to the API
