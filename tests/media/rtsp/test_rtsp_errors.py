"""Error paths and camera quirks, against a scripted fake where a real server cannot be made to
misbehave on cue (461, silence, closing, early data in the same TCP segment, stale nonces)."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from urllib.parse import quote

import pytest
from rtsp_harness import (
    CLOSE,
    PASSWORD,
    USER,
    GstServer,
    Request,
    ScriptedServer,
    StreamReader,
    reply,
    wait_for,
)

from vigil.media.rtsp import (
    RtspAuthError,
    RtspConnectionError,
    RtspError,
    RtspProtocolError,
    RtspTimeoutError,
    RtspTransportError,
    open_session,
)

SDP = (
    b"v=0\r\ns=fake\r\nt=0 0\r\na=control:*\r\n"
    b"m=video 0 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
    b"a=fmtp:97 packetization-mode=1\r\na=control:trackID=0\r\n"
)
FRAME_A = b"$\x04\x00\x0c" + bytes([0x80, 97]) + b"\x00\x01" + b"\x00" * 8
FRAME_B = b"$\x05\x00\x03abc"
EARLY = b"$\x00\x00\x05early"


def camera(**overrides: Callable[[Request], bytes | None]) -> Callable[[Request], bytes | None]:
    """A well-behaved fake camera; `overrides` replace its answer to a method."""

    def answer(request: Request) -> bytes | None:
        if request.method in overrides:
            return overrides[request.method](request)
        if request.method == "OPTIONS":
            return reply(request, "200 OK", {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY"})
        if request.method == "DESCRIBE":
            return reply(request, "200 OK", {"Content-Type": "application/sdp"}, SDP)
        if request.method == "SETUP":
            headers = {"Session": "abc", "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
            return reply(request, "200 OK", headers)
        return reply(request, "200 OK", {"Session": "abc"})

    return answer


def test_461_to_setup_is_a_transport_error() -> None:
    refuse = camera(SETUP=lambda r: reply(r, "461 Unsupported Transport"))
    with ScriptedServer(refuse) as fake, pytest.raises(RtspTransportError) as caught:
        open_session(fake.url())
    assert caught.value.status == 461
    assert caught.value.method == "SETUP"
    assert str(caught.value) == f"SETUP {fake.url()}: 461 Unsupported Transport"


def test_setup_answered_with_udp_is_a_transport_error() -> None:
    udp = {"Session": "abc", "Transport": "RTP/AVP;unicast;client_port=5000-5001"}
    with (
        ScriptedServer(camera(SETUP=lambda r: reply(r, "200 OK", udp))) as fake,
        pytest.raises(RtspTransportError, match="not interleaved TCP"),
    ):
        open_session(fake.url())


def test_server_closing_the_connection() -> None:
    with (
        ScriptedServer(camera(DESCRIBE=lambda r: CLOSE)) as fake,
        pytest.raises(RtspConnectionError) as caught,
    ):
        open_session(fake.url())
    assert caught.value.method == "DESCRIBE"
    assert str(caught.value) == f"DESCRIBE {fake.url()}: the server closed the connection"


@pytest.mark.parametrize("silent", ["OPTIONS", "PLAY"])
def test_server_that_never_answers(silent: str) -> None:
    overrides: dict[str, Callable[[Request], bytes | None]] = {silent: lambda r: None}
    with ScriptedServer(camera(**overrides)) as fake, pytest.raises(RtspTimeoutError) as caught:
        open_session(fake.url(userinfo="admin:hunter2"), timeout=0.3)
    assert caught.value.method == silent
    assert (
        str(caught.value)
        == f"{silent} rtsp://admin:***@127.0.0.1:{fake.port}/cam: no reply within 0.3 s"
    )


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RtspConnectionError) as caught:
        open_session(f"rtsp://admin:hunter2@127.0.0.1:{port}/x")
    assert caught.value.reason == f"connection refused by 127.0.0.1:{port}"
    assert caught.value.method == "connect"
    assert "hunter2" not in str(caught.value)


def test_unresolvable_host() -> None:
    with pytest.raises(RtspConnectionError, match=r"cannot resolve host 'no-such-camera\.invalid'"):
        open_session("rtsp://no-such-camera.invalid/x", timeout=5)


def test_garbage_reply_is_a_protocol_error() -> None:
    with (
        ScriptedServer(lambda r: b"\x00\xffHTTP garbage\r\n\r\n") as fake,
        pytest.raises(RtspProtocolError, match=r"OPTIONS .*: malformed reply: expected an RTSP"),
    ):
        open_session(fake.url())


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"SETUP": lambda r: reply(r, "200 OK", {"Transport": "RTP/AVP/TCP;interleaved=0-1"})},
         RtspProtocolError, "SETUP reply has no Session id"),
        ({"DESCRIBE": lambda r: reply(r, "200 OK", {}, b"v=0\r\nm=audio 0 RTP/AVP 0\r\n")},
         RtspProtocolError, r"no video media \(media: audio\)"),
        ({"PLAY": lambda r: reply(r, "454 Session Not Found")}, RtspError, "PLAY .*: 454 Session"),
        ({"DESCRIBE": lambda r: reply(r, "302 Found")},
         RtspProtocolError, "Found without a Location"),
        ({"DESCRIBE": lambda r: reply(r, "302 Found", {"Location": "rtsps://cam/x"})},
         RtspProtocolError, "rtsps:// is not supported"),
        ({"DESCRIBE": lambda r: reply(r, "301 Moved", {"Location": "/again"})},
         RtspProtocolError, "more than 3 redirects"),
    ],
)  # fmt: skip
def test_unusable_replies(
    overrides: dict[str, Callable[[Request], bytes | None]], error: type[RtspError], match: str
) -> None:
    with ScriptedServer(camera(**overrides)) as fake, pytest.raises(error, match=match):
        open_session(fake.url(), timeout=2)


def test_quirky_camera_loses_no_byte_after_play() -> None:
    """Early frames before replies, a request from the server, a reply to an old CSeq, odd
    channels, LF-only line ends, relative Content-Location — and frames in the PLAY reply's
    own TCP segment, which must all reach the data reader."""

    def describe(request: Request) -> bytes:
        body = reply(request, "200 OK", {"Content-Location": "live/"}, SDP)
        return EARLY + body

    def setup(request: Request) -> bytes:
        server_request = (
            b"SET_PARAMETER rtsp://c/ RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 4\r\n\r\nab\r\n"
        )
        old_reply = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"
        headers = {"Session": " 12AB;timeout=30", "Transport": "RTP/AVP/TCP;interleaved=4-5"}
        ok = reply(request, "200 OK", headers).replace(b"\r\n", b"\n")
        return EARLY + server_request + EARLY + old_reply + ok

    def play(request: Request) -> bytes:
        return (
            reply(request, "200 OK", {"Session": "12AB", "RTP-Info": "url=x"}) + FRAME_A + FRAME_B
        )

    with ScriptedServer(camera(DESCRIBE=describe, SETUP=setup, PLAY=play)) as fake:
        with open_session(fake.url("/cam/")) as session:
            received = b""
            session.socket.settimeout(2)
            while len(received) < len(FRAME_A + FRAME_B):
                received += session.socket.recv(4096)
            assert received == FRAME_A + FRAME_B
            assert (session.rtp_channel, session.rtcp_channel) == (4, 5)
            assert session.session_id == "12AB"
            assert session.session_timeout == 30
            assert session.base_url == fake.url("/cam/live/")
            assert session.track_url == fake.url("/cam/live/trackID=0")
            assert session.keepalive_method == "OPTIONS"  # Public did not list GET_PARAMETER
            session.keepalive()
        assert wait_for(lambda: len(fake.requests) == 6)  # TEARDOWN is written, not awaited
        methods = [(r.method, r.uri, r.headers.get("session")) for r in fake.requests]
    assert methods == [
        ("OPTIONS", fake.url("/cam/"), None),
        ("DESCRIBE", fake.url("/cam/"), None),
        ("SETUP", fake.url("/cam/live/trackID=0"), None),
        ("PLAY", fake.url("/cam/live/"), "12AB"),
        ("OPTIONS", fake.url("/cam/live/"), "12AB"),
        ("TEARDOWN", fake.url("/cam/live/"), "12AB"),
    ]


def digest_camera(stale_once: bool) -> tuple[Callable[[Request], bytes | None], list[str]]:
    """Digest with qop=auth; answers the first authorised DESCRIBE with stale=true."""
    nonces = ["n1", "n2"]
    seen: list[str] = []

    def describe(request: Request) -> bytes:
        authorization = request.headers.get("authorization")
        if authorization:
            seen.append(authorization)
        if authorization and (not stale_once or f'nonce="{nonces[1]}"' in authorization):
            return reply(request, "200 OK", {}, SDP)
        nonce = nonces[1] if authorization else nonces[0]
        stale = ", stale=true" if authorization else ""
        challenge = f'Digest realm="cam", nonce="{nonce}", qop="auth"{stale}'
        return reply(request, "401 Unauthorized", {"WWW-Authenticate": challenge})

    return camera(DESCRIBE=describe), seen


def test_stale_nonce_is_retried_once_with_the_new_nonce() -> None:
    handler, seen = digest_camera(stale_once=True)
    with ScriptedServer(handler) as fake, open_session(fake.url(userinfo="u:p")):
        pass
    assert ['nonce="n1"' in s for s in seen] == [True, False]
    assert ['nonce="n2"' in s and "nc=00000001" in s for s in seen] == [False, True]


def test_rejected_credentials_after_a_retry_are_an_auth_error() -> None:
    def describe(request: Request) -> bytes:
        challenge = 'Digest realm="cam", nonce="n", qop="auth"'
        return reply(request, "401 Unauthorized", {"WWW-Authenticate": challenge})

    with ScriptedServer(camera(DESCRIBE=describe)) as fake:
        with pytest.raises(RtspAuthError, match="rejected the credentials of user 'u'"):
            open_session(fake.url(userinfo="u:s3cr3t"))
        assert len(fake.requests) == 3  # OPTIONS, DESCRIBE, DESCRIBE with credentials


def test_unsupported_scheme_is_an_auth_error() -> None:
    unauthorized = {"WWW-Authenticate": "NTLM"}
    with (
        ScriptedServer(
            camera(DESCRIBE=lambda r: reply(r, "401 Unauthorized", unauthorized))
        ) as fake,
        pytest.raises(RtspAuthError, match="no supported authentication scheme; offered: ntlm"),
    ):
        open_session(fake.url(userinfo="u:p"))


def test_redirect_to_the_same_host_keeps_the_credentials() -> None:
    basic = "Basic " + base64.b64encode(b"u:p@ss").decode()

    def describe(request: Request) -> bytes:
        if request.uri.endswith("/old"):
            return reply(request, "302 Found", {"Location": "/new"})
        if request.headers.get("authorization") != basic:
            return reply(request, "401 Unauthorized", {"WWW-Authenticate": 'Basic realm="c"'})
        return reply(request, "200 OK", {}, SDP)

    with (
        ScriptedServer(camera(DESCRIBE=describe)) as fake,
        open_session(fake.url("/old", userinfo="u:p%40ss")) as session,
    ):
        assert session.base_url == fake.url("/new")


def test_redirect_to_a_real_server(h264_server: GstServer) -> None:
    target = h264_server.url("/test")
    with (
        ScriptedServer(
            camera(DESCRIBE=lambda r: reply(r, "302 Found", {"Location": target}))
        ) as fake,
        open_session(fake.url()) as session,
    ):
        assert session.base_url == h264_server.url("/test/")
        capture = StreamReader(session.socket).read_for(1.0)
        assert capture.frames[session.rtp_channel]


def test_credentials_do_not_follow_a_redirect_to_another_host(basic_server: GstServer) -> None:
    target = basic_server.url("/test")
    with (
        ScriptedServer(
            camera(DESCRIBE=lambda r: reply(r, "302 Found", {"Location": target}))
        ) as fake,
        pytest.raises(RtspAuthError, match="the URL has none"),
    ):
        open_session(fake.url(userinfo=f"{USER}:{quote(PASSWORD, safe='')}"))
