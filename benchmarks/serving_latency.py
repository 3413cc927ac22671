"""Glass-to-glass latency clients for the serving benchmark: decode every frame on arrival and
read the time `vigil sim --stamp-time` drew into it (`vigil.media.framestamp`).

RTSP: `rtspsrc latency=0 ! rtph264depay ! h264parse ! avdec_h264 max-threads=1 ! appsink`
(one decoding thread: frame threading would hold frames back by design). WHEP: aiortc, which
decodes with PyAV; a frame's arrival is when `track.recv()` hands it over. aiortc's jitter
buffer only releases a frame when the first packet of the next one arrives (one frame interval
later, which a browser does not wait for), so WHEP frames also get a second figure: the time
their last RTP packet (marker bit) arrived, noted by a patch on aiortc's receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import gi

from vigil.media import gst
from vigil.media.framestamp import StampLayout, latency_ms, read_stamp

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstVideo  # noqa: E402


@dataclass
class Latencies:
    """What one client saw: (seconds since its first frame, latency ms) per readable frame."""

    samples: list[tuple[float, int]] = field(default_factory=list)
    # WHEP only: latency to the arrival of each frame's last RTP packet.
    complete: list[tuple[float, int]] = field(default_factory=list)
    frames: int = 0
    unreadable_at: list[float] = field(default_factory=list)  # damaged or without a stamp
    error: str | None = None

    def add(
        self,
        plane: bytes | memoryview,
        stride: int,
        layout: StampLayout,
        complete_ms: int | None = None,
    ) -> None:
        arrival_ms = time.time_ns() // 1_000_000
        if not self.frames:
            self._first = time.monotonic()
        self.frames += 1
        at = time.monotonic() - self._first  # since the first decoded frame
        stamp = read_stamp(plane, stride, layout)
        # A damaged frame can still pass the 8-bit CRC (1 in 256): a plausible latency too.
        if stamp is None or not -1000 < latency_ms(arrival_ms, stamp) < 60_000:
            self.unreadable_at.append(at)
            return
        self.samples.append((at, latency_ms(arrival_ms, stamp)))
        if complete_ms is not None:
            self.complete.append((at, latency_ms(complete_ms, stamp)))

    @property
    def unreadable(self) -> int:
        return len(self.unreadable_at)

    def values(self, skip_s: float = 0.0, *, complete: bool = False) -> list[int]:
        """Latencies after the first `skip_s` seconds (start-up excluded)."""
        return [
            value for at, value in (self.complete if complete else self.samples) if at >= skip_s
        ]


_marker_ms: dict[int, int] = {}  # RTP timestamp -> wall-clock ms its marker packet arrived
_original: dict[int, int] = {}  # aiortc's mapped timestamp (the frame's pts) -> RTP timestamp


def _note_rtp_arrivals() -> None:
    """Patch aiortc (once per process) to note when each frame's last packet arrived."""
    import aiortc.rtcrtpreceiver as receiver

    if getattr(receiver, "_vigil_noted", False):
        return
    receiver._vigil_noted = True  # type: ignore[attr-defined]
    handle, mapper = receiver.RTCRtpReceiver._handle_rtp_packet, receiver.TimestampMapper.map

    async def handle_noting(self: object, packet: Any, arrival_time_ms: int) -> None:
        if packet.marker and packet.timestamp not in _marker_ms:
            _marker_ms[packet.timestamp] = time.time_ns() // 1_000_000
            if len(_marker_ms) > 1000:
                del _marker_ms[next(iter(_marker_ms))]
        await handle(self, packet, arrival_time_ms)  # type: ignore[arg-type]

    def map_noting(self: object, timestamp: int) -> int:
        mapped = mapper(self, timestamp)  # type: ignore[arg-type]
        _original[mapped] = timestamp
        if len(_original) > 1000:
            del _original[next(iter(_original))]
        return mapped

    receiver.RTCRtpReceiver._handle_rtp_packet = handle_noting  # type: ignore[method-assign]
    receiver.TimestampMapper.map = map_noting  # type: ignore[method-assign]


def _complete_ms(pts: int | None) -> int | None:
    original = _original.get(pts) if pts is not None else None
    return _marker_ms.get(original) if original is not None else None


def percentile(values: list[int] | list[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))])


def rtsp_latencies(url: str, seconds: float, *, protocols: str = "tcp") -> Latencies:
    """Read `url` for `seconds` (after its first frame, bounded by twice that overall)."""
    gst.init()
    result = Latencies()
    pipeline = Gst.parse_launch(
        f"rtspsrc location={url} latency=0 protocols={protocols} ! rtph264depay ! h264parse ! "
        "avdec_h264 max-threads=1 ! video/x-raw,format=I420 ! "
        "appsink name=sink emit-signals=true sync=false max-buffers=4 drop=false"
    )
    places: list[tuple[StampLayout, GstVideo.VideoInfo]] = []
    lock = threading.Lock()

    def on_sample(sink: Gst.Element) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.OK
        if not places:
            info = GstVideo.VideoInfo.new_from_caps(sample.get_caps())
            places.append((StampLayout.for_frame(info.width, info.height), info))
        layout, info = places[0]
        buffer = sample.get_buffer()
        ok, mapped = buffer.map(Gst.MapFlags.READ)
        if ok:
            with lock:
                result.add(mapped.data, info.stride[0], layout)
            buffer.unmap(mapped)
        return Gst.FlowReturn.OK

    pipeline.get_by_name("sink").connect("new-sample", on_sample)
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    deadline = time.monotonic() + 2 * seconds + 10
    try:
        while time.monotonic() < deadline:
            message = bus.timed_pop_filtered(200 * Gst.MSECOND, Gst.MessageType.ERROR)
            if message is not None:
                result.error = message.parse_error()[0].message
                break
            with lock:
                if result.samples and result.samples[-1][0] >= seconds:
                    break
    finally:
        pipeline.set_state(Gst.State.NULL)
    return result


async def whep_latencies(url: str, seconds: float) -> Latencies:
    """Play `url` (a WHEP endpoint) with aiortc for `seconds` after its first frame."""
    import httpx
    from aiortc import RTCPeerConnection, RTCSessionDescription

    _note_rtp_arrivals()
    result = Latencies()
    peer = RTCPeerConnection()
    tracks: asyncio.Queue[object] = asyncio.Queue()
    peer.on("track", tracks.put_nowait)
    peer.addTransceiver("video", direction="recvonly")
    location: str | None = None
    async with httpx.AsyncClient(timeout=20) as client:
        try:
            await peer.setLocalDescription(await peer.createOffer())
            answer = await client.post(
                url,
                content=peer.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            )
            if answer.status_code != 201:
                result.error = f"WHEP answered {answer.status_code}: {answer.text[:200]}"
                return result
            location = answer.headers.get("location")
            await peer.setRemoteDescription(RTCSessionDescription(answer.text, "answer"))
            track = await asyncio.wait_for(tracks.get(), 20)
            async with asyncio.timeout(2 * seconds + 20):
                while not result.samples or result.samples[-1][0] < seconds:
                    frame = await track.recv()  # type: ignore[attr-defined]
                    plane = frame.planes[0]
                    layout = StampLayout.for_frame(frame.width, frame.height)
                    complete = _complete_ms(frame.pts)
                    result.add(memoryview(plane), plane.line_size, layout, complete)
        except (TimeoutError, httpx.HTTPError) as error:
            result.error = f"{type(error).__name__}: {error}"
        finally:
            if location:
                with contextlib.suppress(httpx.HTTPError):
                    await client.delete(httpx.URL(url).join(location))
            await peer.close()
    return result
