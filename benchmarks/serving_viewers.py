"""Many cheap viewers of one stream in one process, for the serving benchmark's fan-out cost.

  rtsp URL N   N RTSP/TCP sessions (Vigil's RTSP client for the handshake); after PLAY each
               socket is read and discarded in one thread: no RTP parsing, no decoding.
  whep URL N   N aiortc peers (WHEP offer/answer); their decoder is replaced by one that only
               counts frames: RTP, SRTP and depayloading still run, decoding does not.

Prints `ready OPEN` once every viewer was tried; then answers `stats` on stdin with a JSON line
(`open` and a per-viewer counter: bytes read for RTSP, RTP packets received for WHEP) and ends on
`quit`, end of input, or after `--max-seconds`, whichever comes first.
Run: `.venv/bin/python -m benchmarks.serving_viewers rtsp rtsp://127.0.0.1:8554/cam1 50`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import selectors
import socket
import sys
import time
from typing import Any

KEEPALIVE_S = 15.0
LOW_WATER_BYTES = 10_000  # ~40 ms of 2 Mbit/s: wake once per frame or so, not per packet


def run_rtsp(url: str, count: int, max_seconds: float) -> None:
    from vigil.media.rtsp import RtspError, open_session

    deadline = time.monotonic() + max_seconds
    sessions = []
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            session = open_session(url)
        except RtspError as error:
            print(f"session failed: {error}", file=sys.stderr, flush=True)
            continue
        session.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, LOW_WATER_BYTES)
        session.socket.setblocking(False)
        sessions.append(session)
    received = [0] * len(sessions)
    selector = selectors.DefaultSelector()
    for index, session in enumerate(sessions):
        selector.register(session.socket, selectors.EVENT_READ, index)
    selector.register(sys.stdin, selectors.EVENT_READ, -1)
    print(f"ready {len(sessions)}", flush=True)
    open_ = len(sessions)
    next_keepalive = time.monotonic() + KEEPALIVE_S
    try:
        while time.monotonic() < deadline:
            for key, _events in selector.select(timeout=1.0):
                index = key.data
                if index == -1:
                    line = sys.stdin.readline()
                    if not line or line.strip() == "quit":
                        return
                    print(json.dumps({"open": open_, "counts": received}), flush=True)
                    continue
                try:
                    data = sessions[index].socket.recv(262_144)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(key.fileobj)
                    open_ -= 1
                received[index] += len(data)
            if time.monotonic() >= next_keepalive:
                next_keepalive += KEEPALIVE_S
                for session in sessions:
                    with contextlib.suppress(RtspError):
                        session.keepalive()
    finally:
        for session in sessions:
            session.close()


class _CountingDecoder:
    """Stands in for aiortc's H.264 decoder: counts frames, decodes nothing."""

    frames = 0

    def decode(self, _encoded_frame: object) -> list[object]:
        _CountingDecoder.frames += 1
        return []


async def _whep_viewer(client: Any, url: str) -> tuple[Any, str | None]:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    peer = RTCPeerConnection()
    peer.addTransceiver("video", direction="recvonly")
    await peer.setLocalDescription(await peer.createOffer())
    answer = await client.post(
        url, content=peer.localDescription.sdp, headers={"Content-Type": "application/sdp"}
    )
    if answer.status_code != 201:
        await peer.close()
        raise RuntimeError(f"WHEP answered {answer.status_code}: {answer.text[:200]}")
    await peer.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
    return peer, answer.headers.get("location")


async def _packets(peer: Any) -> int:
    report = await peer.getStats()
    return sum(s.packetsReceived for s in report.values() if s.type == "inbound-rtp")


async def run_whep(url: str, count: int, max_seconds: float) -> None:
    import aiortc.rtcrtpreceiver
    import httpx

    aiortc.rtcrtpreceiver.get_decoder = lambda _codec: _CountingDecoder()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    viewers: list[tuple[Any, str | None]] = []
    async with httpx.AsyncClient(timeout=20) as client:
        try:
            async with asyncio.timeout(max_seconds):
                for start in range(0, count, 5):  # a few handshakes at a time
                    batch = [_whep_viewer(client, url) for _ in range(min(5, count - start))]
                    for outcome in await asyncio.gather(*batch, return_exceptions=True):
                        if isinstance(outcome, BaseException):
                            print(f"viewer failed: {outcome}", file=sys.stderr, flush=True)
                        else:
                            viewers.append(outcome)
                print(f"ready {len(viewers)}", flush=True)
                while line := await reader.readline():
                    if line.strip() == b"quit":
                        break
                    counts = [await _packets(peer) for peer, _ in viewers]
                    connected = sum(peer.connectionState == "connected" for peer, _ in viewers)
                    stats = {"open": connected, "counts": counts, "frames": _CountingDecoder.frames}
                    print(json.dumps(stats), flush=True)
        except TimeoutError:
            pass
        finally:
            for peer, location in viewers:
                if location:
                    with contextlib.suppress(httpx.HTTPError):
                        await client.delete(httpx.URL(url).join(location))
                await peer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("rtsp", "whep"))
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    count = max(0, min(args.count, 1000))
    if args.kind == "rtsp":
        run_rtsp(args.url, count, args.max_seconds)
    else:
        asyncio.run(run_whep(args.url, count, args.max_seconds))


if __name__ == "__main__":
    main()
