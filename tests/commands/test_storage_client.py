"""`vigil storage status|eject|attach` against a running Vigil recording onto its one volume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_vigil
from tests.support.service import ClosedSegments, running_vigil, until

pytestmark = pytest.mark.integration


async def test_status_eject_and_attach_from_the_command_line(tmp_path: Path) -> None:
    config = (
        f"data_dir: {tmp_path / 'data'}\n"
        "recording: {segment_seconds: 2}\n"
        'streams:\n  - {name: cam, source: "test://ball?size=160x120"}\n'
    )
    async with running_vigil(config, tmp_path) as vigil:
        assert vigil.api is not None
        url = vigil.api.url
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(["cam"], 1), 60)

        status = await run_vigil("storage", "status", "--json", url=url)
        assert status.exit_code == 0, status.output
        (volume,) = json.loads(status.stdout)["volumes"]
        assert volume["state"] == "online"
        assert volume["path"] == str(tmp_path / "data" / "recordings")
        table = await run_vigil("storage", "status", url=url)
        assert volume["id"][:8] in table.stdout and "policy fill" in table.stdout

        ejected = await run_vigil("storage", "eject", volume["id"][:8], url=url)
        assert ejected.exit_code == 0, ejected.output
        assert "is offline: it may be unmounted" in ejected.stderr
        # The one volume is away: the stream cannot record, and says so.
        await until(lambda: vigil.streams.status("cam").recording_blocked is not None, 30)  # type: ignore[union-attr]

        bad = await run_vigil("storage", "attach", volume["id"], "--path", str(tmp_path), url=url)
        assert bad.exit_code == 1 and "holds no Vigil volume" in bad.stderr
        attached = await run_vigil("storage", "attach", volume["id"], url=url)
        assert attached.exit_code == 0, attached.output
        assert "is online" in attached.stderr
        await until(lambda: vigil.streams.status("cam").recording_blocked is None, 30)  # type: ignore[union-attr]

        unknown = await run_vigil("storage", "eject", "ffff", url=url)
        assert unknown.exit_code == 1 and "no volume has id" in unknown.stderr
        not_an_id = await run_vigil("storage", "eject", "disk1", url=url)
        assert not_an_id.exit_code == 2 and "is not a volume id" in not_an_id.stderr
