"""A viewer that stops reading (its TCP window full, megabytes waiting in the server's socket)
must cost only itself: the other viewer of the same shared media keeps receiving frames and the
recording has no gap."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.serve.rtsp_client import Reader
from tests.support.service import running_vigil, until

pytestmark = pytest.mark.integration

# Noise at 4 Mbit/s: the stuck viewer's socket buffers (a few MB on loopback) fill in seconds.
SOURCE = "test://snow?size=320x240&fps=25&gop=25&bitrate=4000"
STUCK_BYTES = 2_000_000  # queued towards the stuck viewer before we judge the others


class StuckViewer:
    """A raw RTSP/TCP client that asks for the stream (interleaved), then never reads."""

    def __init__(self, url: str) -> None:
        host, port = re.match(r"rtsp://([^:/]+):(\d+)/", url).groups()  # type: ignore[union-attr]
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        self.sock.settimeout(10)
        self.local_port = self.sock.getsockname()[1]
        self.server_port = int(port)
        self._cseq = 0
        try:
            self._play(url)
        except BaseException:
            self.sock.close()
            raise

    def _play(self, url: str) -> None:
        describe = self._ask(f"DESCRIBE {url} RTSP/1.0", "Accept: application/sdp")
        media = describe.split("\r\n\r\n", 1)[1].split("m=video", 1)[-1]
        control = re.search(r"a=control:(\S+)", media)
        track = control.group(1) if control else "stream=0"
        track_url = track if track.startswith("rtsp://") else f"{url.rstrip('/')}/{track}"
        setup = self._ask(
            f"SETUP {track_url} RTSP/1.0", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"
        )
        session = re.search(r"Session:\s*([^;\r\n]+)", setup)
        assert session, setup
        self._ask(f"PLAY {url} RTSP/1.0", f"Session: {session.group(1)}", "Range: npt=0-")
        # From here on nothing is read: RTP piles up in the kernel, then in the server.

    def _ask(self, line: str, *headers: str) -> str:
        self._cseq += 1
        text = "\r\n".join([line, f"CSeq: {self._cseq}", *headers]) + "\r\n\r\n"
        self.sock.sendall(text.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(4096)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = re.search(rb"Content-Length:\s*(\d+)", head, re.IGNORECASE)
        body = rest
        while length and len(body) < int(length.group(1)):
            body += self.sock.recv(4096)
        answer = (head + b"\r\n\r\n" + body).decode(errors="replace")
        assert answer.startswith("RTSP/1.0 200"), (line, answer)
        return answer

    def queued_at_server(self) -> int:
        """Bytes the server's socket holds for us (its Send-Q), from `ss`."""
        out = subprocess.run(
            ["ss", "-tnH", "state", "established", f"( sport = :{self.server_port} and "
             f"dport = :{self.local_port} )"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.split()  # fmt: skip
        return int(out[1]) if len(out) >= 2 else 0

    def close(self) -> None:
        self.sock.close()


async def test_a_stuck_viewer_slows_neither_the_others_nor_the_recording(tmp_path: Path) -> None:
    config = (
        f"data_dir: {tmp_path / 'data'}\nrecording: {{segment_seconds: 2}}\n"
        f'streams:\n  - {{name: noise, source: "{SOURCE}"}}\n'
    )
    async with running_vigil(config, tmp_path) as vigil:
        assert vigil.rtsp is not None and vigil.api is not None
        url = vigil.rtsp.url_pattern.replace("<stream>", "noise")
        await until(lambda: vigil.relays.video("noise").caps is not None, 30, "stream not up")
        stuck = await asyncio.to_thread(StuckViewer, url)
        good = Reader(url)
        good.start()
        try:
            await until(lambda: stuck.queued_at_server() >= STUCK_BYTES, 60,
                        "the stuck viewer's data never piled up")  # fmt: skip
            before = good.frames
            # Four seconds of video (100 frames) later, the other viewer has them all but a few.
            await asyncio.sleep(4)
            good.poll()
            assert good.ended is None, good.ended
            assert good.frames - before >= 50, (before, good.frames)
            async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as api:
                gaps = (await api.get("/api/v1/streams/noise/gaps")).json()["gaps"]
            assert gaps == [], gaps
        finally:
            good.stop()
            stuck.close()
