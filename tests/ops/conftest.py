"""Fixtures for tests/ops: a NOTIFY_SOCKET owned by the test (a path, or abstract namespace)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.notify_listener import NotifyListener


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifyListener]:
    """A listening NOTIFY_SOCKET; its `address` is what systemd would put in the environment."""
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        assert len(address) < 100, "AF_UNIX paths are limited to 108 bytes"
    else:
        address = f"@vigil-test-{uuid.uuid4().hex}"
    with NotifyListener(address) as listener:
        yield listener
