"""`vigil recordings list` and `vigil export` against a running Vigil recording a camera: the
file a user gets plays, spans the range asked for, and failures leave no file behind. One short
recording (three 4 s segments) serves every check."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support.cli import run_vigil
from tests.support.media import ffprobe
from tests.support.service import ClosedSegments, running_vigil, until
from vigil.commands.times import show_size

pytestmark = pytest.mark.integration

SEGMENT_S = 4
GOP_S = 1.0


def _config(tmp_path: Path) -> str:
    source = "test://ball?size=320x240&fps=25&gop=25&bitrate=300"
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        f"recording: {{segment_seconds: {SEGMENT_S}}}\n"
        f'streams:\n  - {{name: cam, source: "{source}"}}\n'
    )


async def test_list_and_export_a_range_spanning_three_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_vigil(_config(tmp_path), tmp_path) as vigil:
        assert vigil.api is not None
        url = vigil.api.url
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(["cam"], 3), 3 * SEGMENT_S + 60,
                    "three segments were not recorded")  # fmt: skip

        listed = await run_vigil("recordings", "list", "cam", url=url)
        assert listed.exit_code == 0, listed.output
        assert listed.stdout.count("complete") >= 3 and "h264 320x240" in listed.stdout

        # 1 s into the first segment to 1 s before the end of the third.
        as_json = await run_vigil("recordings", "list", "cam", "--json", url=url)
        segments = json.loads(as_json.stdout)
        start = datetime.fromisoformat(segments[0]["start"]) + timedelta(seconds=1)
        end = datetime.fromisoformat(segments[2]["end"]) - timedelta(seconds=1)
        clip = tmp_path / "clip.mp4"
        args = ("export", "cam", "--start", start.isoformat(), "--end", end.isoformat())
        exported = await run_vigil(*args, "-o", str(clip), url=url)
        assert exported.exit_code == 0, exported.output
        assert exported.stderr.startswith(f"wrote {clip} ({show_size(clip.stat().st_size)}): ")
        probe = ffprobe(clip)
        asked = (end - start).total_seconds()
        assert (probe.codec, probe.width, probe.height) == ("h264", 320, 240)
        # It starts at the keyframe at or before --start: at most one GOP more.
        assert asked - 0.1 <= probe.duration <= asked + GOP_S + 0.1, probe
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []

        again = await run_vigil(*args, "-o", str(clip), url=url)
        assert again.exit_code == 2 and "exists (--overwrite replaces it)" in again.stderr
        replaced = await run_vigil(*args, "-o", str(clip), "--overwrite", url=url)
        assert replaced.exit_code == 0, replaced.output

        # Without -o: the name Vigil gives it, in the current folder.
        here = tmp_path / "here"
        here.mkdir()
        monkeypatch.chdir(here)
        named = await run_vigil(*args, url=url)
        assert named.exit_code == 0, named.output
        [written] = list(here.iterdir())
        assert written.name.startswith("cam-") and written.suffix == ".mp4"
        assert ffprobe(written).frames > 0

        before = start - timedelta(hours=1)
        nothing = await run_vigil("export", "cam", "--start", before.isoformat(), "--end",
                                  (before + timedelta(minutes=1)).isoformat(),
                                  "-o", str(tmp_path / "none.mp4"), url=url)  # fmt: skip
        assert nothing.exit_code == 1
        assert "nearest video" in nothing.stderr and "(404)" in nothing.stderr
        assert not (tmp_path / "none.mp4").exists()
