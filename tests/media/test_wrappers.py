"""PyGObject's wrappers are made on one thread before any pipeline plays: many streams started
at once, many times, never meet two classes of one type ("Expected Gst.PadProbeInfo, but got
gi.repository.Gst.PadProbeInfo"), and every namespace Vigil imports is prepared."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vigil.media import introspection

pytestmark = pytest.mark.integration

SOURCE = Path(__file__).parents[2] / "src" / "vigil"
ROUNDS = 6  # without preparing, one round in three or four shows the race (measured by hand)
CALLBACK_ERRORS = ("Expected Gst", "Must be Gst", "Traceback")


def _namespaces_imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "gi.repository":
            names.update(alias.name for alias in node.names)
    return names


def test_every_namespace_vigil_imports_is_prepared() -> None:
    prepared = set(introspection.NAMESPACES) | set(introspection.DEPENDENCIES)
    for path in SOURCE.rglob("*.py"):
        missing = _namespaces_imported(path) - prepared
        assert not missing, f"{path.relative_to(SOURCE)} imports {missing}: add to introspection"


def _round(video: Path, out: Path) -> tuple[dict[str, object], str]:
    out.mkdir()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parents[1] / "support" / "start_race.py"),
         str(video), str(out), "--streams", "8", "--probers", "64"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_many_pipelines_started_at_once_many_times_meet_one_class_per_type(
    tmp_path: Path,
) -> None:
    video = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "2",
         "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", str(video)],
        check=True,
    )  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        rounds = list(pool.map(lambda n: _round(video, tmp_path / f"round{n}"), range(ROUNDS)))
    for report, stderr in rounds:
        assert report["errors"] == [], report
        assert report["recorded"] == report["streams"], report
        for marker in CALLBACK_ERRORS:
            assert marker not in stderr, stderr
