"""vigilinterleave, the native parser that turns an RTSP-over-TCP socket into RTP packets.

Real GStreamer throughout: hand-made interleaved byte streams through appsrc in many chunkings,
and a real RTSP session (GstRtspServer in this process, the handshake done by Vigil's client,
then ``fdsrc`` on that socket). The CPU comparison with rtspsrc is benchmarks/rtsp_read.py.
"""

from __future__ import annotations

import bisect
import itertools
import random
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from tests.support.rtsp_server import gst_server  # noqa: E402
from vigil.media import native  # noqa: E402
from vigil.media.rtsp import open_session  # noqa: E402

pytestmark = pytest.mark.integration

SSRC = 0x1234ABCD
PT = 96
FRAME_NS = 40_000_000  # 25 fps
CAPS = "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=96"
CHUNK_NS = 1000  # PTS step between the chunks fed through appsrc
MESSAGE = "vigil-rtsp-message"
SERVER_LAUNCH = (
    "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 "
    "! x264enc tune=zerolatency key-int-max=25 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)


@pytest.fixture(scope="module", autouse=True)
def plugin() -> Path:
    path = native.build(quiet=True)
    Gst.init(None)
    assert native.register()
    return path


def test_a_change_to_any_source_file_makes_the_build_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for source in native.sources():
        (tmp_path / source.name).write_bytes(source.read_bytes())
    assert {p.name for p in native.sources()} >= {"plugin.c", "vigilinterleave.c"}
    monkeypatch.setattr(native, "SOURCE_DIR", tmp_path)
    assert native.is_current()

    with (tmp_path / "plugin.c").open("a") as plugin_c:
        plugin_c.write("\n")
    assert not native.is_current()


# --- a synthetic interleaved stream ---------------------------------------------------------


def _frame(channel: int, payload: bytes) -> bytes:
    return struct.pack("!cBH", b"$", channel, len(payload)) + payload


def _rtp(seq: int, payload_size: int) -> bytes:
    header = struct.pack("!BBHII", 0x80, PT, seq & 0xFFFF, (seq * 3600) & 0xFFFFFFFF, SSRC)
    return header + bytes((seq + i) & 0xFF for i in range(payload_size))


def _rtcp_sender_report() -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, SSRC, 1, 2, 3, 4, 5)


REPLY = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Length: 10\r\n\r\n$\x00\x00\x04abcdef"
REQUEST = b"GET_PARAMETER rtsp://127.0.0.1:8554/cam RTSP/1.0\r\nCSeq: 7\r\nSession: 42\r\n\r\n"
# Not a unit, but with traps: a '$' on an unknown channel, a '$' on the RTP channel whose
# "packet" is not RTP version 2, text that is not an RTSP method.
GARBAGE = (
    b"\x00\xff junk \x13$\x07\x00\x10 more junk $\x00\x00\x20" + b"\x00" * 16 + b" lower case "
) * 12


@dataclass
class Stream:
    data: bytes = b""
    rtp: list[bytes] = field(default_factory=list)
    rtp_ends: list[int] = field(default_factory=list)  # offset after each RTP frame
    first_after_garbage: int = -1  # index in rtp

    def add(self, unit: bytes) -> None:
        self.data += unit

    def add_rtp(self, packet: bytes) -> None:
        self.data += _frame(0, packet)
        self.rtp.append(packet)
        self.rtp_ends.append(len(self.data))


def _stream() -> Stream:
    """RTP of 1 to 65535 bytes of frame payload, RTCP, another channel, an RTSP reply whose body
    holds a '$', a request from the server, and a run of garbage."""
    rng = random.Random(5)
    stream = Stream()
    seq = itertools.count(1000)
    for size in (1, 1388, 2, 700):
        stream.add_rtp(_rtp(next(seq), size))
    stream.add(_frame(1, _rtcp_sender_report()))
    stream.add_rtp(_rtp(next(seq), 65535 - 12))  # the largest frame there is
    stream.add(REPLY)
    for _ in range(10):
        stream.add_rtp(_rtp(next(seq), rng.randint(1, 1400)))
    stream.add(_frame(2, b"audio we did not ask for"))
    stream.add(REQUEST)
    stream.add_rtp(_rtp(next(seq), 1))
    stream.add(GARBAGE)
    stream.first_after_garbage = len(stream.rtp)
    for _ in range(20):
        stream.add_rtp(_rtp(next(seq), rng.randint(1, 1400)))
    stream.add(_frame(1, _rtcp_sender_report()))
    stream.add_rtp(_rtp(next(seq), 1))
    return stream


STREAM = _stream()


def _split(data: bytes, chunking: str) -> list[bytes]:
    if chunking == "one":
        return [data]
    if chunking == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(int(chunking.removeprefix("random")))
    chunks, offset = [], 0
    while offset < len(data):
        size = rng.choice((1, 2, 3, 4, 5, 17, 700, 1500, 4096, 70_000))
        chunks.append(data[offset : offset + size])
        offset += size
    return chunks


@dataclass
class Run:
    buffers: list[Gst.Buffer]
    samples: list[Gst.Sample]
    messages: list[Gst.Message]
    counters: dict[str, int]

    def of_type(self, kind: Gst.MessageType) -> list[Gst.Message]:
        return [m for m in self.messages if m.type == kind]

    def rtsp_messages(self) -> list[Gst.Structure]:
        return [
            m.get_structure()
            for m in self.of_type(Gst.MessageType.ELEMENT)
            if m.get_structure().has_name(MESSAGE)
        ]


COUNTERS = (
    "bytes",
    "packets",
    "rtcp-packets",
    "other-packets",
    "rtsp-messages",
    "garbage-bytes",
    "lists",
)


def _feed(chunks: list[bytes], sink: str = "appsink", **props: Any) -> Run:
    """Push ``chunks`` (PTS = DTS = index * CHUNK_NS) through vigilinterleave until EOS or an
    error; return what came out, the bus messages and the counters."""
    pipeline = Gst.parse_launch(
        "appsrc name=src max-bytes=0 ! vigilinterleave name=parse "
        f"! {sink} name=sink sync=false" + (" wait-on-eos=false" if sink == "appsink" else "")
    )
    parse = pipeline.get_by_name("parse")
    for name, value in {"caps": CAPS, **props}.items():
        parse.set_property(name.replace("_", "-"), value)
    src = pipeline.get_by_name("src")
    for index, chunk in enumerate(chunks):
        buffer = Gst.Buffer.new_wrapped(chunk)
        buffer.pts = buffer.dts = index * CHUNK_NS
        assert src.emit("push-buffer", buffer) == Gst.FlowReturn.OK
    src.emit("end-of-stream")

    bus = pipeline.get_bus()
    messages: list[Gst.Message] = []
    pipeline.set_state(Gst.State.PLAYING)
    try:
        deadline = time.monotonic() + 60
        while not any(m.type in (Gst.MessageType.EOS, Gst.MessageType.ERROR) for m in messages):
            left = deadline - time.monotonic()
            assert left > 0, "no EOS or error before the deadline"
            message = bus.timed_pop_filtered(
                int(left * Gst.SECOND),
                Gst.MessageType.EOS
                | Gst.MessageType.ERROR
                | Gst.MessageType.WARNING
                | Gst.MessageType.ELEMENT,
            )
            if message is not None:
                messages.append(message)
        samples = []
        if sink == "appsink":
            appsink = pipeline.get_by_name("sink")
            while (sample := appsink.emit("try-pull-sample", 0)) is not None:
                samples.append(sample)
        counters = {name: parse.get_property(name) for name in COUNTERS}
    finally:
        pipeline.set_state(Gst.State.NULL)
    return Run([s.get_buffer() for s in samples], samples, messages, counters)


def _errors(run: Run) -> list[str]:
    return [m.parse_error()[0].message for m in run.of_type(Gst.MessageType.ERROR)]


@pytest.mark.parametrize("chunking", ["one", "bytes", "random1", "random2", "random3"])
def test_packets_come_out_whole_in_any_chunking(chunking: str) -> None:
    chunks = _split(STREAM.data, chunking)
    run = _feed(chunks)

    assert _errors(run) == []
    assert [b.extract_dup(0, b.get_size()) for b in run.buffers] == STREAM.rtp
    chunk_ends = list(itertools.accumulate(len(c) for c in chunks))
    # each packet carries the timestamps of the chunk that completed it; after garbage, a frame
    # is complete once the byte after it (the next frame's '$') confirms it
    ends = list(STREAM.rtp_ends)
    ends[STREAM.first_after_garbage] += 1
    completing = [bisect.bisect_left(chunk_ends, end) for end in ends]
    assert [b.pts for b in run.buffers] == [i * CHUNK_NS for i in completing]
    assert [b.dts for b in run.buffers] == [i * CHUNK_NS for i in completing]
    discont = [i for i, b in enumerate(run.buffers) if b.has_flags(Gst.BufferFlags.DISCONT)]
    assert discont == [0, STREAM.first_after_garbage]

    assert run.counters == {
        "bytes": len(STREAM.data),
        "packets": len(STREAM.rtp),
        "rtcp-packets": 2,
        "other-packets": 1,
        "rtsp-messages": 2,
        "garbage-bytes": len(GARBAGE),
        # one list per chunk that completed a packet
        "lists": len(set(completing)),
    }
    if chunking == "one":
        assert run.counters["lists"] == 1 < run.counters["packets"]

    messages = [
        (s.get_value("first-line"), s.get_value("status"), s.get_value("cseq"))
        for s in run.rtsp_messages()
    ]
    assert messages == [
        ("RTSP/1.0 200 OK", 200, 3),
        ("GET_PARAMETER rtsp://127.0.0.1:8554/cam RTSP/1.0", 0, 7),
    ]
    warnings = [m.parse_warning()[0].message for m in run.of_type(Gst.MessageType.WARNING)]
    assert len(warnings) == 1 and "not RTSP interleaved" in warnings[0]


def test_output_is_rtp_with_the_caps_property_in_time() -> None:
    run = _feed([STREAM.data])

    sample = run.samples[0]
    assert sample.get_caps().is_equal(Gst.Caps.from_string(CAPS))
    assert sample.get_segment().format == Gst.Format.TIME
    assert sample.get_segment().start == 0


def test_channels_are_configurable() -> None:
    packets = [_rtp(seq, 10) for seq in range(4)]
    data = b"".join(_frame(channel, p) for channel, p in zip((0, 1, 2, 3), packets, strict=True))

    run = _feed([data], rtp_channel=2, rtcp_channel=3)

    assert [b.extract_dup(0, b.get_size()) for b in run.buffers] == [packets[2]]
    assert (run.counters["rtcp-packets"], run.counters["other-packets"]) == (1, 2)


def test_a_frame_cut_by_eos_is_dropped_not_sent_in_part() -> None:
    whole, cut = _rtp(1, 100), _rtp(2, 100)
    run = _feed([_frame(0, whole), _frame(0, cut)[:60]])

    assert _errors(run) == []
    assert [b.extract_dup(0, b.get_size()) for b in run.buffers] == [whole]
    assert run.counters["packets"] == 1


class Wired:
    """vigilinterleave between two pads of the test's own, driven synchronously: what is pushed
    into it has been parsed, and its output collected, when ``push`` returns."""

    def __init__(self) -> None:
        self.element = Gst.ElementFactory.make("vigilinterleave", None)
        self.element.set_property("caps", CAPS)
        self.feeder = Gst.Pad.new("feeder", Gst.PadDirection.SRC)
        self.catcher = Gst.Pad.new("catcher", Gst.PadDirection.SINK)
        self.packets: list[bytes] = []
        self.events: list[Gst.Event] = []
        self.catcher.set_chain_function_full(self._chain)
        self.catcher.set_event_function_full(self._event)
        self.feeder.link(self.element.get_static_pad("sink"))
        self.element.get_static_pad("src").link(self.catcher)
        self.feeder.set_active(True)
        self.catcher.set_active(True)
        self.element.set_state(Gst.State.PLAYING)

    def _chain(self, _pad: Gst.Pad, _parent: Gst.Object | None, buffer: Gst.Buffer) -> Any:
        self.packets.append(buffer.extract_dup(0, buffer.get_size()))
        return Gst.FlowReturn.OK

    def _event(self, _pad: Gst.Pad, _parent: Gst.Object | None, event: Gst.Event) -> bool:
        self.events.append(event)
        return True

    def start(self, stream_id: str) -> None:
        segment = Gst.Segment()
        segment.init(Gst.Format.BYTES)
        assert self.feeder.push_event(Gst.Event.new_stream_start(stream_id))
        assert self.feeder.push_event(Gst.Event.new_segment(segment))

    def push(self, data: bytes) -> None:
        assert self.feeder.push(Gst.Buffer.new_wrapped(data)) == Gst.FlowReturn.OK

    def stop(self) -> None:
        self.element.set_state(Gst.State.NULL)


@pytest.mark.parametrize("reset", ["flush", "stream-start"])
def test_flush_and_new_stream_forget_a_frame_in_progress(reset: str) -> None:
    before, after = _rtp(1, 50), _rtp(2, 50)
    wired = Wired()
    try:
        wired.start("first")
        wired.push(_frame(0, before) + _frame(0, after)[:30])
        if reset == "flush":
            assert wired.feeder.push_event(Gst.Event.new_flush_start())
            assert wired.feeder.push_event(Gst.Event.new_flush_stop(True))
            segment = Gst.Segment()
            segment.init(Gst.Format.BYTES)
            assert wired.feeder.push_event(Gst.Event.new_segment(segment))
        else:
            wired.start("second")
        wired.push(_frame(0, after))
    finally:
        wired.stop()

    assert wired.packets == [before, after]
    assert wired.element.get_property("packets") == 2
    segments = [e.parse_segment() for e in wired.events if e.type == Gst.EventType.SEGMENT]
    assert [s.format for s in segments] == [Gst.Format.TIME, Gst.Format.TIME]


def test_garbage_only_is_an_error() -> None:
    data = b"\x00" + random.Random(7).randbytes(2 * 1024 * 1024)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]

    run = _feed(chunks, sink="fakesink")

    errors = _errors(run)
    assert len(errors) == 1 and "not an RTSP interleaved stream" in errors[0]
    assert run.counters["packets"] == 0
    assert 1024 * 1024 < run.counters["garbage-bytes"] <= len(data)
    assert len(run.of_type(Gst.MessageType.WARNING)) == 1


# --- a real RTSP session (Vigil's client) over a socket handed to fdsrc -------------------


@pytest.fixture(scope="module")
def rtsp_url() -> Iterator[str]:
    with gst_server({"/test": SERVER_LAUNCH}) as server:
        yield server.url("/test")


def _pipeline(fd: int, caps: str, sink: str) -> Gst.Pipeline:
    pipeline = Gst.parse_launch(
        f"fdsrc name=src fd={fd} blocksize=65536 do-timestamp=true ! vigilinterleave name=parse "
        f"! vigilrtpstamp name=stamp ! rtph264depay ! h264parse ! {sink}"
    )
    pipeline.get_by_name("parse").set_property("caps", caps)
    return pipeline


def _stop(pipeline: Gst.Pipeline) -> None:
    # Source first: the chain is synchronous from fdsrc's thread to the sink, and a
    # whole-pipeline stop can leave that thread in a pausing sink's preroll wait while the
    # source waits for it (see vigilrtpstamp.c, "Using it").
    pipeline.get_by_name("src").set_state(Gst.State.NULL)
    pipeline.set_state(Gst.State.NULL)


def test_rtsp_session_over_fdsrc(rtsp_url: str) -> None:
    session = open_session(rtsp_url)  # Vigil's own client does the handshake
    caps = session.caps
    assert "sprop-parameter-sets" in caps
    pipeline = _pipeline(
        session.fileno(),
        caps,
        "video/x-h264,alignment=au ! appsink name=sink sync=false",
    )
    appsink, bus = pipeline.get_by_name("sink"), pipeline.get_bus()
    pts: list[int] = []
    replies: list[Gst.Structure] = []

    def pull_until(done: Any, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"timed out with {len(pts)} frames"
            if (sample := appsink.emit("try-pull-sample", 20 * Gst.MSECOND)) is not None:
                pts.append(sample.get_buffer().pts)
            while (message := bus.pop()) is not None:
                if message.type == Gst.MessageType.ERROR:
                    error, debug = message.parse_error()
                    pytest.fail(f"{error.message} ({debug})")
                if message.type == Gst.MessageType.WARNING:
                    pytest.fail(f"warning: {message.parse_warning()[0].message}")
                structure = message.get_structure()
                if structure is not None and structure.has_name(MESSAGE):
                    replies.append(structure)

    pipeline.set_state(Gst.State.PLAYING)
    try:
        pull_until(lambda: len(pts) >= 50)
        session.keepalive()  # its reply arrives in the byte stream fdsrc reads
        pull_until(lambda: bool(replies))
        after = len(pts)
        pull_until(lambda: len(pts) >= after + 25)
    finally:
        _stop(pipeline)
        session.close()

    assert [b - a for a, b in itertools.pairwise(pts)] == [FRAME_NS] * (len(pts) - 1)
    reply = replies[0]
    assert reply.get_value("status") == 200
    assert reply.get_value("cseq") > 0
    assert reply.get_value("first-line") == "RTSP/1.0 200 OK"
    parse = pipeline.get_by_name("parse")
    assert parse.get_property("garbage-bytes") == 0
    assert parse.get_property("rtsp-messages") == 1
    assert 0 < parse.get_property("lists") <= parse.get_property("packets")
    assert pipeline.get_by_name("stamp").get_property("packets") == parse.get_property("packets")
