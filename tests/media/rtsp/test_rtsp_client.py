"""The RTSP client against a real GstRtspServer: sessions, data on the socket, auth, keep-alive,
TEARDOWN, and the caps driving a real depayloader with the packets that arrived."""

from __future__ import annotations

import threading
from urllib.parse import quote

import gi
import pytest
from rtsp_harness import (
    H264_LAUNCH,
    PASSWORD,
    USER,
    GstServer,
    StreamCapture,
    StreamReader,
    gst_server,
    wait_for,
)

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from vigil.media.rtsp import (  # noqa: E402
    DEFAULT_USER_AGENT,
    RtspAuthError,
    RtspError,
    RtspSession,
    open_session,
)

pytestmark = pytest.mark.integration


def rtp_packets(capture: StreamCapture, channel: int) -> list[bytes]:
    packets = capture.frames.get(channel, [])
    assert packets, f"no interleaved frames on channel {channel}: {sorted(capture.frames)}"
    return packets


def depayload(caps: str, packets: list[bytes], depayloader: str, parser: str) -> Gst.Caps:
    """Push the packets through appsrc(caps) ! depay ! parse; return the parser's output caps."""
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time ! {depayloader} ! {parser} ! fakesink name=sink"
    )
    source = pipeline.get_by_name("src")
    source.set_property("caps", Gst.Caps.from_string(caps))
    pipeline.set_state(Gst.State.PLAYING)
    try:
        for packet in packets:
            source.emit("push-buffer", Gst.Buffer.new_wrapped(packet))
        source.emit("end-of-stream")
        message = pipeline.get_bus().timed_pop_filtered(
            10 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
        )
        assert message is not None and message.type == Gst.MessageType.EOS, message
        output = pipeline.get_by_name("sink").get_static_pad("sink").get_current_caps()
        assert output is not None
        return output
    finally:
        pipeline.set_state(Gst.State.NULL)


def check_stream(
    session: RtspSession, seconds: float = 2.0, reader: StreamReader | None = None
) -> StreamCapture:
    """Read the session's socket for a while; check it carries the SDP's RTP from byte one."""
    capture = (reader or StreamReader(session.socket)).read_for(seconds)
    # Nothing was read past the PLAY reply: the stream starts on a frame boundary.
    assert capture.first_byte in (b"$", b"R")
    packets = rtp_packets(capture, session.rtp_channel)
    assert len(packets) > 25  # 25 fps for ~2 s, one or more packets per frame
    assert {packet[0] >> 6 for packet in packets} == {2}  # RTP version 2
    assert {packet[1] & 0x7F for packet in packets} == {session.track.payload_type}
    return capture


def test_h264_session_streams_interleaved_rtp(h264_server: GstServer) -> None:
    with open_session(h264_server.url("/test")) as session:
        assert session.track.encoding == "H264"
        assert session.track.payload_type == 96
        assert (session.rtp_channel, session.rtcp_channel) == (0, 1)
        assert session.session_timeout == 60
        assert session.base_url == h264_server.url("/test/")
        assert session.track_url == h264_server.url("/test/stream=0")
        assert session.keepalive_method == "GET_PARAMETER"
        assert session.fileno() == session.socket.fileno() >= 0
        caps = Gst.Caps.from_string(session.caps)
        assert caps is not None
        structure = caps.get_structure(0)
        assert structure.get_value("payload") == session.track.payload_type
        assert structure.has_field("sprop-parameter-sets")
        capture = check_stream(session)
    output = depayload(session.caps, rtp_packets(capture, 0), "rtph264depay", "h264parse")
    structure = output.get_structure(0)
    assert structure.get_name() == "video/x-h264"
    assert (structure.get_value("width"), structure.get_value("height")) == (320, 240)


def test_h265_caps_carry_vps_sps_pps(h265_server: GstServer) -> None:
    with open_session(h265_server.url("/test")) as session:
        assert session.track.encoding == "H265"
        structure = Gst.Caps.from_string(session.caps).get_structure(0)
        for key in ("sprop-vps", "sprop-sps", "sprop-pps"):
            assert structure.get_value(key), key
        capture = check_stream(session)
    output = depayload(session.caps, rtp_packets(capture, 0), "rtph265depay", "h265parse")
    assert output.get_structure(0).get_value("width") == 320


def test_ipv6_literal_host() -> None:
    with (
        gst_server({"/v6": H264_LAUNCH}, address="::1") as server,
        open_session(server.url("/v6")) as session,
    ):
        assert server.url("/v6").startswith("rtsp://[::1]:")
        assert session.base_url.startswith("rtsp://[::1]:")
        check_stream(session, seconds=1.0)


def test_keepalive_reply_arrives_between_frames_while_another_thread_reads(
    h264_server: GstServer,
) -> None:
    with open_session(h264_server.url("/test")) as session:
        reader = StreamReader(session.socket)
        result: list[StreamCapture] = []
        thread = threading.Thread(
            target=lambda: result.append(reader.read_for(5.0, until=lambda c: bool(c.messages)))
        )
        thread.start()
        assert wait_for(lambda: len(reader.capture.frames.get(0, [])) > 5)
        session.keepalive()
        thread.join(10)
        (capture,) = result
    assert capture.messages, "no reply to the keep-alive in the byte stream"
    assert capture.messages[0].startswith("RTSP/1.0 200")
    assert len(capture.frames[0]) > 5
    assert wait_for(lambda: "GET_PARAMETER" in h264_server.log.requests)  # signalled after reply


def test_teardown_ends_the_session_on_the_server_and_the_stream_here() -> None:
    with gst_server({"/solo": H264_LAUNCH}) as server:
        session = open_session(server.url("/solo"))
        try:
            reader = StreamReader(session.socket)
            reader.read_for(0.5)
            session.teardown()
            session.teardown()  # idempotent
            session.keepalive()  # a late keep-alive timer is harmless
            assert wait_for(lambda: server.log.teardowns == ["/solo"])
            assert wait_for(lambda: server.log.unprepared == 1)
            # What the data reader sees: frames in flight, the TEARDOWN reply, end of stream.
            capture = reader.read_for(5.0)
            assert capture.eof
            assert [m.split("\r\n")[0] for m in capture.messages] == ["RTSP/1.0 200 OK"]
        finally:
            session.close()
        assert session.fileno() == -1


def test_user_agent_and_unknown_path(h264_server: GstServer) -> None:
    assert DEFAULT_USER_AGENT.startswith("Vigil/")
    with pytest.raises(RtspError) as caught:
        open_session(h264_server.url("/nothing-here"), user_agent="Vigil-test/1")
    assert caught.value.status == 404
    assert caught.value.method == "DESCRIBE"
    assert str(caught.value) == f"DESCRIBE {h264_server.url('/nothing-here')}: 404 Not Found"


@pytest.mark.parametrize("server_fixture", ["basic_server", "digest_server"])
def test_auth_with_the_right_credentials(
    server_fixture: str, userinfo: str, request: pytest.FixtureRequest
) -> None:
    server: GstServer = request.getfixturevalue(server_fixture)
    with open_session(server.url("/test", userinfo)) as session:
        reader = StreamReader(session.socket)
        check_stream(session, seconds=1.0, reader=reader)
        session.keepalive()  # authorised too (Digest: next nonce count)
        capture = reader.read_for(3.0, until=lambda c: bool(c.messages))
        assert capture.messages and capture.messages[0].startswith("RTSP/1.0 200")


@pytest.mark.parametrize("server_fixture", ["basic_server", "digest_server"])
def test_auth_with_wrong_or_missing_credentials(
    server_fixture: str, request: pytest.FixtureRequest
) -> None:
    server: GstServer = request.getfixturevalue(server_fixture)
    wrong = "Wr0ng-S3cret!"
    with pytest.raises(RtspAuthError) as caught:
        open_session(server.url("/test", f"{USER}:{quote(wrong, safe='')}"))
    message = str(caught.value)
    assert wrong not in message and quote(wrong, safe="") not in message
    assert caught.value.status == 401
    assert f"rejected the credentials of user '{USER}'" in message
    assert f"{USER}:***@" in message

    with pytest.raises(RtspAuthError, match="asks for credentials and the URL has none"):
        open_session(server.url("/test"))


def test_right_password_never_in_errors_either(basic_server: GstServer, userinfo: str) -> None:
    with pytest.raises(RtspError) as caught:
        open_session(basic_server.url("/nothing-here", userinfo))
    assert PASSWORD not in str(caught.value) and quote(PASSWORD, safe="") not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("rtsps://cam/x", "rtsps:// is not supported"),
        ("http://cam/x", "not an rtsp:// URL"),
        ("rtsp:///x", "no host"),
        ("rtsp://cam:99999/x", "out of range"),
        ("rtsp://cam/x y", "spaces or control characters"),
    ],
)
def test_urls_refused_before_connecting(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        open_session(url)
