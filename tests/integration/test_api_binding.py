"""Where the API listens: loopback only while no token exists (and Vigil says so), the
configured address once one does."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from vigil.app import Vigil
from vigil.config.loader import load_config_text
from vigil.config.resolve import resolve
from vigil.store.tokens import hash_token

pytestmark = pytest.mark.integration

BASE = (
    'data_dir: {data}\nrtsp: {{listen: "127.0.0.1:0"}}\n'
    'streams:\n  - {{name: cam, source: "test://ball?size=160x120&fps=5"}}\n'
)


async def _bound_host(tmp_path: Path, api: str) -> tuple[str, int]:
    text = BASE.format(data=tmp_path / "data") + api
    vigil = Vigil(resolve(load_config_text(text, env={}), base_dir=tmp_path))
    await vigil.start()
    try:
        assert vigil.api is not None
        async with httpx.AsyncClient(timeout=10) as client:
            health = await client.get(f"http://127.0.0.1:{vigil.api.port}/healthz")
        assert health.status_code == 200
        return vigil.api.host, vigil.api.port
    finally:
        await vigil.stop()


async def test_without_tokens_the_api_stays_on_loopback_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="vigil.app"):
        host, _port = await _bound_host(tmp_path, 'api: {listen: "0.0.0.0:0"}\n')
    assert host == "127.0.0.1"
    assert "no API token exists: the API listens on 127.0.0.1 only" in caplog.text


async def test_with_a_token_the_configured_address_is_used(tmp_path: Path) -> None:
    token = f'{{name: ops, role: admin, sha256: "{hash_token("vgl_x")}"}}'
    host, _port = await _bound_host(tmp_path, f'api: {{listen: "0.0.0.0:0", tokens: [{token}]}}\n')
    assert host == "0.0.0.0"
