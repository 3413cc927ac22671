"""Parsing of stream source URLs into source specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import (
    Codec,
    FileSource,
    PublishSource,
    RtspSource,
    SourceSpec,
    TestSource,
    Transport,
    V4l2Source,
    parse_source,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "rtsp://user:secret@192.0.2.10:554/stream1",
            RtspSource("rtsp://user:secret@192.0.2.10:554/stream1"),
        ),
        (
            "rtsps://cam.example:322/live?channel=1",
            RtspSource("rtsps://cam.example:322/live?channel=1"),
        ),
        ("RTSP://[2001:db8::1]/x", RtspSource("RTSP://[2001:db8::1]/x")),
        ("file:///srv/videos/gate.mp4", FileSource(Path("/srv/videos/gate.mp4"))),
        ("file://localhost/srv/a%20b.mp4?loop=false", FileSource(Path("/srv/a b.mp4"), loop=False)),
        ("file:clips/gate.mp4", FileSource(Path("clips/gate.mp4"))),
        ("file:/abs.mp4?loop=TRUE", FileSource(Path("/abs.mp4"), loop=True)),
        ("test://", TestSource()),
        ("test:///", TestSource()),
        ("test://Zone-Plate", TestSource(pattern="zone-plate")),
        (
            "test://ball?codec=h265&size=640x480&fps=15&bitrate=500&gop=30",
            TestSource("ball", Codec.H265, 640, 480, 15, 500, 30),
        ),
        ("v4l2:///dev/video0", V4l2Source(Path("/dev/video0"))),
        (
            "v4l2:///dev/video2?size=1920x1080&fps=30",
            V4l2Source(Path("/dev/video2"), width=1920, height=1080, fps=30),
        ),
        ("publish", PublishSource()),
        ("Publish", PublishSource()),
        ("publish:?takeover=true", PublishSource(takeover=True)),
    ],
)
def test_parse_source(url: str, expected: SourceSpec) -> None:
    assert parse_source(url) == expected


def test_test_source_defaults() -> None:
    spec = parse_source("test://")
    assert isinstance(spec, TestSource)
    assert (spec.pattern, spec.codec, spec.width, spec.height) == ("smpte", Codec.H264, 1280, 720)
    assert (spec.fps, spec.bitrate_kbit, spec.keyframe_interval_frames) == (25, 2000, 25)
    assert TestSource(fps=10).keyframe_interval_frames == 10
    assert TestSource(fps=10, gop_frames=40).keyframe_interval_frames == 40


@pytest.mark.parametrize("transport", list(Transport))
def test_rtsp_keeps_transport(transport: Transport) -> None:
    spec = parse_source("rtsp://cam/x", transport)
    assert spec == RtspSource("rtsp://cam/x", transport)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://cam/x", "unsupported source scheme 'http'; allowed: rtsp://, rtsps://, file://"),
        ("publish://gate", "a publish source has no host or path"),
        ("publish:?takeover=maybe", "takeover"),
        ("publish:?owner=x", "unknown query parameter 'owner'"),
        ("gate", "source must be a URL"),
        ("", "source must be a URL"),
        ("192.0.2.1:554/x", "source must be a URL"),
        ("rtsp:///stream", "an RTSP source needs a host"),
        ("rtsp://cam:0/x", "invalid port 0"),
        ("rtsp://cam:99999/x", "must be a number 1..65535"),
        ("rtsp://[::1/x", "not a valid URL"),
        ("file://clips/gate.mp4", "file URL with host 'clips'"),
        ("file://", "file source needs a path"),
        ("file:///a.mp4?loop=maybe", "query parameter 'loop' must be true or false"),
        ("file:///a.mp4?speed=2", "unknown query parameter 'speed' for file:// sources"),
        ("file:///a#b.mp4", "write '#' as %23"),
        ("test://plaid", "unknown test pattern 'plaid'; allowed: smpte, snow"),
        ("test://ball/extra", "a test source has no path"),
        (
            "test://ball?colour=red",
            "unknown query parameter 'colour' for test:// sources; allowed:",
        ),
        ("test://ball?fps=0", "query parameter 'fps' must be an integer 1..120, got '0'"),
        ("test://ball?fps=12.5", "query parameter 'fps' must be an integer 1..120"),
        ("test://ball?bitrate=10", "query parameter 'bitrate' must be an integer 50..100000"),
        ("test://ball?gop=0", "query parameter 'gop' must be an integer 1..3600"),
        ("test://ball?codec=vp8", "query parameter 'codec' must be one of h264, h265"),
        ("test://ball?size=640", "size must look like WIDTHxHEIGHT"),
        ("test://ball?size=641x480", "width must be even"),
        ("test://ball?size=8x8", "width must be 16..7680"),
        ("test://ball?size=640x9000", "height must be 16..4320"),
        ("test://ball?fps=", "query parameter 'fps' needs a value"),
        ("test://ball?fps=5&fps=6", "query parameter 'fps' is given more than once"),
        ("v4l2://dev/video0", "needs an absolute device path"),
        ("v4l2:///dev/video0?format=yuy2", "unknown query parameter 'format' for v4l2:// sources"),
    ],
)
def test_parse_source_errors(url: str, fragment: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_source(url)
    assert fragment in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://admin:secret@cam:notaport/x",
        "rtsp://admin:secret@:554/x",
        "rtsp://admin:sec/ret@cam/x",  # an unencoded '/' splits the password off the host
        "rtsp://admin:sec#ret@cam/x",
        "rtsp://admin:secret@cam:0/x",
        "rtsp://admin:secret@[::1/x",
        "http://admin:secret@cam/x",
    ],
)
def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_source(url)
    assert "secret" not in str(raised.value)


def test_rtsp_repr_and_redacted_url_hide_the_password() -> None:
    spec = parse_source("rtsp://admin:secret@192.0.2.10:554/stream1", Transport.TCP)
    assert isinstance(spec, RtspSource)
    assert spec.url == "rtsp://admin:secret@192.0.2.10:554/stream1"
    assert spec.redacted_url == "rtsp://admin:***@192.0.2.10:554/stream1"
    assert "secret" not in repr(spec)
    assert "secret" not in str(spec)
    assert "rtsp://admin:***@192.0.2.10:554/stream1" in repr(spec)


def test_password_with_unencoded_at_sign_is_parsed_and_redacted() -> None:
    spec = parse_source("rtsp://admin:p@ssword@cam/x")
    assert isinstance(spec, RtspSource)
    assert spec.redacted_url == "rtsp://admin:***@cam/x"
