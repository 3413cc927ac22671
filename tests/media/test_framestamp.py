"""The time stamp drawn into frames for latency benchmarks: read back from raw planes, after a
real H.264 encode and decode, and from `vigil sim --stamp-time` through ffmpeg."""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest

from vigil.media.framestamp import (
    MODULUS,
    StampLayout,
    latency_ms,
    luma_band,
    read_stamp,
)

NOW_MS = 1_795_000_000_123  # a wall-clock millisecond past 2**32, so the modulus is exercised


def _plane(width: int, height: int, stamp_ms: int | None, seed: int = 1) -> bytearray:
    """A noisy luma plane (stride = width), with the stamp drawn when `stamp_ms` is given."""
    plane = bytearray(random.Random(seed).randbytes(width * height))
    if stamp_ms is not None:
        layout = StampLayout.for_frame(width, height)
        band = luma_band(stamp_ms, layout, width)
        plane[layout.top * width : layout.top * width + len(band)] = band
    return plane


@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 360), (1280, 720), (1920, 1080)])
def test_stamp_is_read_back_from_a_raw_plane(width: int, height: int) -> None:
    layout = StampLayout.for_frame(width, height)
    assert layout.top + layout.block <= height and layout.block % 8 == 0
    for offset in (0, 1, 999, 123_456):
        plane = _plane(width, height, NOW_MS + offset)
        assert read_stamp(plane, width, layout) == (NOW_MS + offset) % MODULUS


def test_a_frame_without_a_stamp_or_with_a_damaged_one_reads_as_none() -> None:
    layout = StampLayout.for_frame(640, 360)
    assert read_stamp(_plane(640, 360, None), 640, layout) is None
    for level in (0, 16, 128, 235, 255):  # uniform frames: black, grey (missing refs), white
        assert read_stamp(bytes([level]) * 640 * 360, 640, layout) is None
    plane = _plane(640, 360, NOW_MS)
    for y in range(layout.top, layout.top + layout.block):  # invert the first block
        for x in range(layout.block):
            plane[y * 640 + x] = 255 - plane[y * 640 + x]
    assert read_stamp(plane, 640, layout) is None


@pytest.mark.parametrize(
    ("arrival", "stamp", "expected"),
    [(1000, 990, 10), (5, MODULUS - 5, 10), (990, 1000, -10), (NOW_MS, NOW_MS % MODULUS, 0)],
)
def test_latency_across_the_modulus(arrival: int, stamp: int, expected: int) -> None:
    assert latency_ms(arrival, stamp) == expected


def test_too_narrow_a_picture_is_refused() -> None:
    with pytest.raises(ValueError):
        StampLayout.for_frame(300, 240)


@pytest.mark.parametrize("bitrate", [300, 600, 1000])
def test_stamp_survives_h264_at_a_low_bitrate(bitrate: int) -> None:
    """A picture of noise (the hardest to compress) at a low bitrate for 640x360: the encoder
    quantises hard, the blocks stay readable in every frame."""
    import gi

    from vigil.media import gst

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    gst.init()
    width, height, frames = 640, 360, 12
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=I420,width={width},"
        f"height={height},framerate=25/1 ! x264enc tune=zerolatency speed-preset=ultrafast "
        f"bitrate={bitrate} pass=cbr key-int-max=25 ! avdec_h264 ! video/x-raw,format=I420 ! "
        "appsink name=sink sync=false"
    )
    source, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    sent = [NOW_MS + 40 * i + i * i for i in range(frames)]
    chroma = b"\x80" * (width * height // 2)
    for index, stamp in enumerate(sent):
        buffer = Gst.Buffer.new_wrapped(bytes(_plane(width, height, stamp)) + chroma)
        buffer.pts = index * Gst.SECOND // 25
        buffer.duration = Gst.SECOND // 25
        source.emit("push-buffer", buffer)
    source.emit("end-of-stream")
    layout = StampLayout.for_frame(width, height)
    read = []
    try:
        for _ in range(frames):
            sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
            assert sample is not None, "the decoder produced too few frames"
            ok, mapped = sample.get_buffer().map(Gst.MapFlags.READ)
            assert ok
            read.append(read_stamp(mapped.data, width, layout))
            sample.get_buffer().unmap(mapped)
    finally:
        pipeline.set_state(Gst.State.NULL)
    assert read == [stamp % MODULUS for stamp in sent]


def test_simulator_stamps_the_time_it_sends() -> None:
    """`vigil sim --stamp-time`, read by ffmpeg: every frame carries a time just before now."""
    from tests.support.media import READY_LINE, free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "vigil", "sim", "--cameras", "1", "--port", str(port),
         "--size", "640x360", "--bitrate", "500", "--stamp-time"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == READY_LINE
        started_ms = time.time_ns() // 1_000_000
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i",
             f"rtsp://127.0.0.1:{port}/cam1", "-frames:v", "10", "-f", "rawvideo",
             "-pix_fmt", "gray", "-"],
            capture_output=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        ended_ms = time.time_ns() // 1_000_000
    finally:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()
    layout = StampLayout.for_frame(640, 360)
    size = 640 * 360
    stamps = [read_stamp(raw[i : i + size], 640, layout) for i in range(0, len(raw), size)]
    assert len(stamps) == 10 and None not in stamps
    for stamp in stamps:
        assert stamp is not None
        assert latency_ms(ended_ms, stamp) >= 0
        assert latency_ms(started_ms, stamp) < 5000
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
