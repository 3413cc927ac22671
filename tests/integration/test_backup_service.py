"""Scheduled backups inside a running Vigil: an archive appears while it records, and it
verifies (manifest, checksums, a DB copy that passes integrity_check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.service import ClosedSegments, running_vigil, until
from vigil.ops.backup import inspect_archives

pytestmark = pytest.mark.integration


async def test_the_service_makes_scheduled_backups_that_verify(tmp_path: Path) -> None:
    config = (
        f"data_dir: {tmp_path / 'data'}\n"
        "recording: {segment_seconds: 2}\n"
        "backup: {interval_hours: 0.001, keep: 2}\n"  # every 3.6 s
        'streams:\n  - {name: cam, source: "test://ball?size=160x120"}\n'
    )
    async with running_vigil(config, tmp_path) as vigil:
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(["cam"], 1), 60)
        backups = tmp_path / "data" / "backups"

        def names() -> set[str]:
            return {p.name for p in backups.glob("vigil-backup-*.tar")}

        await until(lambda: len(names()) >= 2, 60, "no scheduled backups")
        first = names()
        await until(lambda: names() - first != set(), 60, "no third backup")
    archives = inspect_archives(backups)
    assert len(archives) == 2  # keep: 2
    assert all(a.problem is None for a in archives), archives
