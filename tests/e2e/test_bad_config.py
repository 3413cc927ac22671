"""A bad configuration stops `vigil` before it touches anything, and says what is wrong."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.media import environment_without_vigil

pytestmark = pytest.mark.e2e

CASES = {
    "unknown key": (
        "recording:\n  segment_secs: 10\nstreams: []\n",
        ["recording.segment_secs", ":2:"],
    ),
    "wrong type": (
        "recording:\n  segment_seconds: soon\nstreams: []\n",
        ["recording.segment_seconds", ":2:"],
    ),
    "duplicate stream": (
        "streams:\n"
        "  - name: gate\n    source: rtsp://u:pw@192.0.2.1/a\n"
        "  - name: gate\n    source: rtsp://u:pw@192.0.2.1/b\n",
        ["streams[1]", "gate", ":4:"],
    ),
}


def _vigil(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil", *args], cwd=cwd, capture_output=True, text=True,
        timeout=60, env=env or environment_without_vigil(),
    )  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_exits_2_naming_the_key_and_touches_nothing(tmp_path: Path, case: str) -> None:
    body, expected = CASES[case]
    data = tmp_path / "data"
    config = tmp_path / "vigil.yml"
    config.write_text(f"{body}data_dir: {data}\n")
    for command in (["config", "check", str(config)], ["run", "-c", str(config)]):
        result = _vigil(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        for fragment in expected:
            assert fragment in result.stderr, (fragment, result.stderr)
        assert "pw@" not in result.stderr
    assert not data.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vigil.yml"]


def test_valid_config_checks_clean(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yml"
    config.write_text(
        "recording:\n  root: ./data/recordings\n  segment_seconds: 60\n"
        "streams:\n  - name: gate\n    source: rtsp://user:secret@192.0.2.10:554/stream1\n"
        "    record: true\n"
    )
    result = _vigil("config", "check", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "valid (1 stream(s))" in result.stderr
    assert "secret" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = _vigil("run", "-c", str(tmp_path / "nope.yml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


@pytest.mark.parametrize("section", ["api", "rtsp"])
def test_a_taken_port_exits_1_naming_the_address(tmp_path: Path, section: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "vigil.yml"
        config.write_text(f"data_dir: {tmp_path / 'data'}\nstreams: []\n")
        env = environment_without_vigil()  # the other server on a free port, this one on ours
        env[f"VIGIL_{section.upper()}__LISTEN"] = f"127.0.0.1:{port}"
        result = _vigil("run", "-c", str(config), cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr
    assert "Vigil cannot start" in result.stderr and "Traceback" not in result.stderr
