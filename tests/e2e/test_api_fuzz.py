"""schemathesis against a running Vigil (recording its simulator's RTSP cameras) through its
/openapi.json, authenticated as admin, over real HTTP: no 5xx, and every response (status,
content type, headers, body) matches the schema."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.media import environment_without_vigil, free_port, wait_for

pytestmark = pytest.mark.e2e

CHECKS = ",".join((
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
))  # fmt: skip
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_the_api_answers_every_generated_request_as_documented(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yml"
    port = free_port()
    config.write_text(
        "data_dir: ./data\nrecording: {segment_seconds: 3}\n"
        f"simulator: {{cameras: 2, port: {port}, width: 320, height: 240, fps: 10, "
        "bitrate_kbit: 300}\nstreams:\n"
        f'  - {{name: cam1, source: "rtsp://127.0.0.1:{port}/cam1", transport: tcp}}\n'
        f'  - {{name: cam2, source: "rtsp://127.0.0.1:{port}/cam2", transport: tcp}}\n'
    )
    env = environment_without_vigil()
    token = subprocess.run(
        [sys.executable, "-m", "vigil", "tokens", "create", "fuzz", "--role", "admin", "-c",
         str(config)], capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    log = tmp_path / "vigil.log"
    with log.open("wb") as out:
        vigil = subprocess.Popen(
            [sys.executable, "-m", "vigil", "run", "-c", str(config)],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_for(lambda: "API:" in log.read_text(), timeout=60, message=log.read_text())
        found = re.search(r"API:\s+(http://127\.0\.0\.1:\d+)", log.read_text())
        assert found, log.read_text()
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{found.group(1)}/openapi.json",
             "-H", f"Authorization: Bearer {token}", "--checks", CHECKS, "--max-examples", "8",
             "--workers", "1", "--seed", "20261124"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )  # fmt: skip
    finally:
        vigil.send_signal(signal.SIGTERM)
        code = vigil.wait(30)
    assert run.returncode == 0, run.stdout[-6000:]
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()
