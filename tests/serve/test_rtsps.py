"""RTSP over TLS: with a certificate configured the server speaks rtsps:// only, and a client
(ffprobe, which does not verify certificates by default) reads the stream through it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from tests.support.service import running_vigil, until

pytestmark = pytest.mark.integration


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_rtsps_serves_the_stream_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    config = (
        f"data_dir: {tmp_path / 'data'}\nrtsp: {{tls_certificate: {cert}, tls_key: {key}}}\n"
        'streams:\n  - {name: ball, source: "test://ball?size=160x120&fps=10", record: false}\n'
    )
    async with running_vigil(config, tmp_path) as vigil:
        assert vigil.rtsp is not None
        url = vigil.rtsp.url_pattern.replace("<stream>", "ball")
        assert url.startswith("rtsps://")
        await until(lambda: vigil.relays.video("ball").caps is not None, 30, "stream not up")
        probe = await asyncio.to_thread(
            subprocess.run,
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
             "stream=codec_name,width,height", "-of", "json", url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        stream = json.loads(probe.stdout)["streams"][0]
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 160, 120)
        # The same port does not answer plain RTSP.
        plain = await asyncio.to_thread(
            subprocess.run,
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "5000000",
             url.replace("rtsps://", "rtsp://")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert plain.returncode != 0
