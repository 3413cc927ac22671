"""vigilrtpstamp, the native RTP timestamper that replaces rtpbin's jitterbuffer over TCP.

Real GStreamer throughout: an encoder and payloader, hand-made RTP packets through appsrc, and
an RTSP server in this process with an rtspsrc client in a subprocess (so its stderr and threads
are its own). Run as a script, this file is that client: ``python test_rtpstamp.py URL MODE N``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from vigil.media import native  # noqa: E402

pytestmark = pytest.mark.integration

FRAME_NS = 40_000_000  # 25 fps
TICKS_PER_FRAME = 3600  # 40 ms at 90 kHz
RTP_CAPS = "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"
JITTERBUFFER_THREAD = "rtpjitterbuffer"  # GStreamer names a task thread after its pad's element


@pytest.fixture(scope="module", autouse=True)
def plugin() -> Path:
    path = native.build(quiet=True)
    Gst.init(None)
    assert native.register()
    return path


def test_register_finds_the_factory() -> None:
    assert native.register() is True
    assert Gst.ElementFactory.find("vigilrtpstamp") is not None
    assert native.plugin_file().is_file()
    assert native.is_current()


def test_build_is_idempotent(plugin: Path) -> None:
    before = plugin.stat().st_mtime_ns
    assert native.build(quiet=True) == plugin
    assert plugin.stat().st_mtime_ns == before


# --- timestamps recovered from RTP time ---------------------------------------------------


def _clear_timestamps_after_first(pad: Gst.Pad, info: Gst.PadProbeInfo, seen: list[int]) -> Any:
    """Mimic rtspsrc over TCP: only the first packet carries a timestamp."""
    if info.type & Gst.PadProbeType.BUFFER_LIST:
        packets = info.get_buffer_list()
        buffers = [packets.get(i) for i in range(packets.length())]
    else:
        buffers = [info.get_buffer()]
    for buffer in buffers:
        if seen:
            buffer.pts = Gst.CLOCK_TIME_NONE
            buffer.dts = Gst.CLOCK_TIME_NONE
        seen.append(1)
    return Gst.PadProbeReturn.OK


def _steps(pts: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(pts)]


def _drain(appsink: Gst.Element) -> list[Gst.Buffer]:
    buffers = []
    while (sample := appsink.emit("try-pull-sample", 0)) is not None:
        buffers.append(sample.get_buffer())
    return buffers


@dataclass
class Played:
    buffers: list[Gst.Buffer]
    messages: list[Gst.Message]


def _play_to_eos(pipeline: Gst.Pipeline, timeout_s: float = 30) -> Played:
    """Play until EOS; return what the appsink named "sink" got and the element messages."""
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    elements: list[Gst.Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no EOS before the deadline"
            message = bus.timed_pop_filtered(
                int(left * Gst.SECOND),
                Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT,
            )
            assert message is not None, "no EOS before the deadline"
            if message.type == Gst.MessageType.ERROR:
                error, debug = message.parse_error()
                pytest.fail(f"{error.message} ({debug})")
            if message.type == Gst.MessageType.EOS:
                sink = pipeline.get_by_name("sink")
                return Played(_drain(sink) if sink is not None else [], elements)
            elements.append(message)
    finally:
        pipeline.set_state(Gst.State.NULL)


def test_timestamps_recovered_from_rtp_time() -> None:
    pipeline = Gst.parse_launch(
        "videotestsrc num-buffers=50 ! video/x-raw,framerate=25/1,width=320,height=240 "
        "! x264enc ! rtph264pay name=pay ! vigilrtpstamp name=stamp ! rtph264depay "
        "! video/x-h264,alignment=au ! appsink name=sink sync=false wait-on-eos=false"
    )
    seen: list[int] = []
    pipeline.get_by_name("pay").get_static_pad("src").add_probe(
        Gst.PadProbeType.BUFFER | Gst.PadProbeType.BUFFER_LIST, _clear_timestamps_after_first, seen
    )

    frames = _play_to_eos(pipeline).buffers
    assert len(frames) == 50
    pts = [frame.pts for frame in frames]
    assert all(p != Gst.CLOCK_TIME_NONE for p in pts)
    assert _steps(pts) == [FRAME_NS] * 49
    stamp = pipeline.get_by_name("stamp")
    assert stamp.get_property("packets") == len(seen)
    assert stamp.get_property("resyncs") == 0
    assert stamp.get_property("clock-rate") == 90000
    assert stamp.get_property("last-pts") == pts[-1]


# --- resyncs on RTP clock jumps -------------------------------------------------------------


def _rtp_packet(seq: int, rtptime: int, marker: bool = True) -> Gst.Buffer:
    header = struct.pack(
        "!BBHII", 0x80, (0x80 if marker else 0) | 96, seq & 0xFFFF, rtptime & 0xFFFFFFFF, 0x1234
    )
    return Gst.Buffer.new_wrapped(header + b"\x00" * 32)


@dataclass
class StampRun:
    pts: list[int]
    discont: list[bool]
    resyncs: int
    messages: list[Gst.Structure]


def _stamp_rtptimes(rtptimes: list[int]) -> StampRun:
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps={RTP_CAPS} ! vigilrtpstamp name=stamp "
        "! appsink name=sink sync=false wait-on-eos=false"
    )
    src = pipeline.get_by_name("src")
    for seq, rtptime in enumerate(rtptimes):
        assert src.emit("push-buffer", _rtp_packet(seq, rtptime)) == Gst.FlowReturn.OK
    src.emit("end-of-stream")

    played = _play_to_eos(pipeline)
    buffers, messages = played.buffers, played.messages
    assert len(buffers) == len(rtptimes)
    return StampRun(
        pts=[b.pts for b in buffers],
        discont=[b.has_flags(Gst.BufferFlags.DISCONT) for b in buffers],
        resyncs=pipeline.get_by_name("stamp").get_property("resyncs"),
        messages=[
            m.get_structure() for m in messages if m.get_structure().has_name("vigil-rtp-resync")
        ],
    )


def test_small_backward_step_is_not_a_resync() -> None:
    start = 4_294_000_000  # wraps past 2**32 a few frames in
    rtptimes = [start + i * TICKS_PER_FRAME for i in range(10)]
    rtptimes.insert(5, rtptimes[4] - TICKS_PER_FRAME)  # a B-frame shown before the last one

    run = _stamp_rtptimes(rtptimes)

    assert run.resyncs == 0
    assert run.messages == []
    assert not any(run.discont[1:])
    steps = _steps(run.pts)
    assert steps == [FRAME_NS] * 4 + [-FRAME_NS, 2 * FRAME_NS] + [FRAME_NS] * 4


@pytest.mark.parametrize("jump_s", [-5, 20])
def test_clock_jump_resyncs_once(jump_s: int) -> None:
    before = [2_000_000_000 + i * TICKS_PER_FRAME for i in range(20)]
    restart = before[-1] + jump_s * 90000
    after = [restart + i * TICKS_PER_FRAME for i in range(10)]

    run = _stamp_rtptimes(before + after)

    assert run.resyncs == 1
    assert all(step > 0 for step in _steps(run.pts)), run.pts
    assert run.discont[20] is True
    assert not any(run.discont[1:20]) and not any(run.discont[21:])
    assert _steps(run.pts[20:]) == [FRAME_NS] * 9
    assert len(run.messages) == 1
    message = run.messages[0]
    assert message.get_value("old-rtptime") == before[-1]
    assert message.get_value("new-rtptime") == restart


def test_missing_clock_rate_is_an_error() -> None:
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=application/x-rtp,media=video,payload=96 "
        "! vigilrtpstamp ! fakesink"
    )
    src = pipeline.get_by_name("src")
    src.emit("push-buffer", _rtp_packet(0, 0))
    pipeline.set_state(Gst.State.PLAYING)
    try:
        message = pipeline.get_bus().timed_pop_filtered(
            10 * Gst.SECOND, Gst.MessageType.ERROR | Gst.MessageType.EOS
        )
        assert message is not None and message.type == Gst.MessageType.ERROR
        error, _debug = message.parse_error()
        assert "clock-rate" in error.message
    finally:
        pipeline.set_state(Gst.State.NULL)


def test_clock_rate_from_request_pt_map() -> None:
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=application/x-rtp,media=video,payload=96 "
        "! vigilrtpstamp name=stamp ! appsink name=sink sync=false wait-on-eos=false"
    )
    asked: list[int] = []

    def pt_map(_element: Gst.Element, pt: int) -> Gst.Caps:
        asked.append(pt)
        return Gst.Caps.from_string("application/x-rtp,clock-rate=(int)90000")

    stamp = pipeline.get_by_name("stamp")
    stamp.connect("request-pt-map", pt_map)
    src = pipeline.get_by_name("src")
    for seq in range(3):
        src.emit("push-buffer", _rtp_packet(seq, seq * TICKS_PER_FRAME))
    src.emit("end-of-stream")

    pts = [b.pts for b in _play_to_eos(pipeline).buffers]
    assert asked == [96]
    assert _steps(pts) == [FRAME_NS, FRAME_NS]


# --- through a real RTSP session ----------------------------------------------------------


@pytest.fixture(scope="module")
def rtsp_url() -> Iterator[str]:
    launch = (
        "( videotestsrc is-live=true ! video/x-raw,framerate=25/1,width=320,height=240 "
        "! x264enc tune=zerolatency key-int-max=25 ! rtph264pay name=pay0 pt=96 )"
    )
    # Imported here: this file also runs as a script (the client), where `tests` is not a package.
    from tests.support.rtsp_server import gst_server

    with gst_server({"/test": launch}) as server:
        yield server.url("/test")


@dataclass
class ClientRun:
    pts: list[int]
    jitterbuffer_threads: int
    stderr: str


def _run_client(url: str, mode: str, frames: int) -> ClientRun:
    env = dict(os.environ, GST_DEBUG="2", GST_DEBUG_NO_COLOR="1")
    result = subprocess.run(
        [sys.executable, __file__, url, mode, str(frames)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return ClientRun(report["pts"], report["jitterbuffer_threads"], result.stderr)


# GLib's g_warning/g_critical, as GLib prints them ("GStreamer-CRITICAL **") or as PyGObject
# turns GObject's into Python warnings ("sys:1: Warning: g_object_set_is_valid_property: ..."),
# and GStreamer debug lines at WARNING/ERROR level from the elements around the jitterbuffer.
_GLIB_WARNING = re.compile(r"-(WARNING|CRITICAL) \*\*|\bWarning: ")
_GST_WARNING = re.compile(r"\b(WARN|ERROR)\s+(rtpbin|rtspsrc|rtpsession|rtpssrcdemux|vigil\w*)\b")


TEARDOWN = "vigil-test: client stopping"


def _jitterbuffer_warnings(stderr: str) -> list[str]:
    """Warnings printed while the client streamed (before it began to shut down)."""
    streaming = stderr.split(TEARDOWN, 1)[0]
    return [
        line
        for line in streaming.splitlines()
        if _GLIB_WARNING.search(line) or _GST_WARNING.search(line)
    ]


def test_rtsp_over_tcp_without_jitterbuffer(rtsp_url: str) -> None:
    run = _run_client(rtsp_url, "stamp", 60)

    assert len(run.pts) >= 50
    steps = _steps(run.pts)
    assert all(step > 0 for step in steps)
    assert all(abs(step - FRAME_NS) <= 1_000_000 for step in steps), steps
    assert run.jitterbuffer_threads == 0
    assert _jitterbuffer_warnings(run.stderr) == []


def test_checks_see_a_jitterbuffer_and_its_warnings(rtsp_url: str) -> None:
    """The two checks above can fail: the real jitterbuffer shows up, an unfit stand-in warns."""
    default = _run_client(rtsp_url, "default", 10)
    assert default.jitterbuffer_threads > 0

    # identity has no "latency" property, which rtpbin sets without checking
    identity = _run_client(rtsp_url, "identity", 1)
    assert any("latency" in line for line in _jitterbuffer_warnings(identity.stderr))


# --- the client, in its own process --------------------------------------------------------


def _jitterbuffer_threads() -> int:
    count = 0
    for comm in Path("/proc/self/task").glob("*/comm"):
        try:
            if JITTERBUFFER_THREAD in comm.read_text():
                count += 1
        except OSError:
            continue  # the thread ended while we looked
    return count


def client(url: str, mode: str, frames: int) -> dict[str, Any]:
    """Pull ``frames`` frames from ``url`` over TCP, with rtpbin's jitterbuffer replaced by
    ``mode``: "stamp" (vigilrtpstamp), "identity", or "default" (keep rtpjitterbuffer)."""
    Gst.init(None)
    assert native.register()
    pipeline = Gst.parse_launch(
        f"rtspsrc name=src location={url} protocols=tcp buffer-mode=none latency=0 "
        "! rtph264depay ! h264parse ! appsink name=sink sync=false emit-signals=true"
    )

    def request_jitterbuffer(_rtpbin: Gst.Element, _session: int) -> Gst.Element:
        factory = "vigilrtpstamp" if mode == "stamp" else "identity"
        return Gst.ElementFactory.make(factory, None)

    def new_manager(_src: Gst.Element, manager: Gst.Element) -> None:
        if mode != "default":
            manager.connect("request-jitterbuffer", request_jitterbuffer)

    pipeline.get_by_name("src").connect("new-manager", new_manager)
    pts: list[int] = []
    threads = 0
    done = threading.Event()

    def new_sample(sink: Gst.Element) -> Gst.FlowReturn:
        nonlocal threads
        pts.append(sink.emit("pull-sample").get_buffer().pts)
        if len(pts) == min(frames, 10):
            threads = _jitterbuffer_threads()
        if len(pts) >= frames:
            done.set()
        return Gst.FlowReturn.OK

    pipeline.get_by_name("sink").connect("new-sample", new_sample)
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    deadline = time.monotonic() + 30
    while not done.is_set() and time.monotonic() < deadline:
        message = bus.timed_pop_filtered(100 * Gst.MSECOND, Gst.MessageType.ERROR)
        if message is not None:
            error, debug = message.parse_error()
            raise SystemExit(f"client error: {error.message} ({debug})")
    # rtspsrc warns about its interrupted requests while it shuts down: not what we check
    print(TEARDOWN, file=sys.stderr, flush=True)
    # Source first: with no jitterbuffer thread, rtspsrc's TCP task is the streaming thread
    # down to the sink, and a whole-pipeline stop can leave it in a PAUSED sink's preroll wait
    # while rtspsrc waits for it (see vigilrtpstamp.c, "Using it").
    pipeline.get_by_name("src").set_state(Gst.State.NULL)
    pipeline.set_state(Gst.State.NULL)
    return {"pts": pts, "jitterbuffer_threads": threads}


if __name__ == "__main__":
    print(json.dumps(client(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
