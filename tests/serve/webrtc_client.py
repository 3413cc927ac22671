"""aiortc as a real WHEP viewer and WHIP publisher against Vigil's HTTP endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
from dataclasses import dataclass, field

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

SDP = "application/sdp"


async def local_offer(pc: RTCPeerConnection) -> str:
    """The client's complete offer (aiortc gathers every candidate before returning)."""
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


@dataclass
class Viewer:
    """A WHEP viewer: counts the frames it decodes and remembers their sizes."""

    pc: RTCPeerConnection = field(default_factory=RTCPeerConnection)
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    offer: str = ""
    response: httpx.Response | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def prepare(self) -> str:
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.on("track", self._on_track)
        self.offer = await local_offer(self.pc)
        return self.offer

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                assert isinstance(frame, VideoFrame)
                self.sizes.add((frame.width, frame.height))
                self.frames += 1

    async def start(self, client: httpx.AsyncClient, url: str, token: str | None) -> None:
        """POST the offer; on 201, apply the answer."""
        await self.prepare()
        self.response = await client.post(url, content=self.offer, headers=_headers(token))
        if self.response.status_code == 201:
            answer = RTCSessionDescription(self.response.text, "answer")
            await self.pc.setRemoteDescription(answer)

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Pattern(VideoStreamTrack):
    """A synthetic picture that changes every frame (aiortc encodes it to H.264)."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.width, self.height = width, height

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(self.width, self.height, "yuv420p")
        shade = (pts // 3000) % 200
        for index, plane in enumerate(frame.planes):
            plane.update(bytes([shade if index == 0 else 128]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = fractions.Fraction(time_base)
        return frame


@dataclass
class Publisher:
    """A WHIP publisher sending H.264 only (the offer lists no other codec)."""

    width: int = 320
    height: int = 240
    pc: RTCPeerConnection = field(default_factory=RTCPeerConnection)
    response: httpx.Response | None = None

    async def start(self, client: httpx.AsyncClient, url: str, token: str | None) -> None:
        transceiver = self.pc.addTransceiver(Pattern(self.width, self.height), "sendonly")
        from aiortc.rtcrtpsender import RTCRtpSender

        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType == "video/H264"])
        offer = await local_offer(self.pc)
        self.response = await client.post(url, content=offer, headers=_headers(token))
        if self.response.status_code == 201:
            await self.pc.setRemoteDescription(RTCSessionDescription(self.response.text, "answer"))

    async def close(self) -> None:
        await self.pc.close()


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": SDP}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def without_codec(offer: str, encoding: str) -> str:
    """The offer with every payload type of `encoding` (and its rtx) removed."""
    lines = offer.splitlines()
    drop = {
        line.split()[0].split(":")[1] for line in lines
        if line.startswith("a=rtpmap:") and line.split()[1].upper().startswith(encoding.upper())
    }  # fmt: skip
    drop |= {
        line.split()[0].split(":")[1] for line in lines
        if line.startswith("a=fmtp:") and any(f"apt={pt}" in line for pt in drop)
    }  # fmt: skip
    kept = []
    for line in lines:
        if line.startswith("m=video"):
            parts = line.split()
            line = " ".join(parts[:3] + [pt for pt in parts[3:] if pt not in drop])
        elif (
            line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"))
            and line.split()[0].split(":")[1] in drop
        ):
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
