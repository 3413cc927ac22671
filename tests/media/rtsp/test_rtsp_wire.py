"""RTSP wire format and URL rules (pure), and the byte-exact reader on a real socket pair."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from vigil.media.rtsp.connection import ConnectionClosed, RtspConnection
from vigil.media.rtsp.message import (
    Interleave,
    build_request,
    find_head_end,
    parse_head,
    parse_interleave,
    parse_public,
    parse_session,
)
from vigil.media.rtsp.urls import parse_rtsp_url, resolve_control, same_origin, strip_userinfo


@pytest.mark.parametrize(
    ("base", "control", "expected"),
    [
        ("rtsp://cam/live/", "trackID=1", "rtsp://cam/live/trackID=1"),
        ("rtsp://cam/live", "trackID=1", "rtsp://cam/live/trackID=1"),  # not RFC 3986, on purpose
        ("rtsp://cam/live", "/abs/track", "rtsp://cam/live/abs/track"),
        ("rtsp://cam/live/", "*", "rtsp://cam/live/"),
        ("rtsp://cam/live/", None, "rtsp://cam/live/"),
        ("rtsp://cam/a?channel=1&subtype=0/", "trackID=0", "rtsp://cam/a?channel=1&subtype=0/trackID=0"),
        ("rtsp://cam/x/", "RTSP://other:8554/t?q=1", "rtsp://other:8554/t?q=1"),
        ("rtsp://u:p@cam/x/", "trackID=0", "rtsp://cam/x/trackID=0"),
        ("rtsp://cam/x/", "rtsp://u:p@cam/y", "rtsp://cam/y"),
    ],
)  # fmt: skip
def test_resolve_control(base: str, control: str | None, expected: str) -> None:
    assert resolve_control(base, control) == expected


def test_parse_rtsp_url() -> None:
    target = parse_rtsp_url("rtsp://user:p%40ss@[fe80::1]:8554/live?x=1#frag")
    assert (target.host, target.port) == ("fe80::1", 8554)
    assert target.request_url == "rtsp://[fe80::1]:8554/live?x=1"
    assert target.address == "[fe80::1]:8554"
    assert parse_rtsp_url("RTSP://Cam/x").port == 554


def test_strip_userinfo_and_origin() -> None:
    assert strip_userinfo("rtsp://a:b@c@host:1/x") == "rtsp://host:1/x"
    assert same_origin("rtsp://u:p@cam/x", "rtsp://cam:554/y")
    assert not same_origin("rtsp://cam/x", "rtsp://cam:8554/x")
    assert not same_origin("rtsp://cam/x", "rtsp://other/x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12345678", ("12345678", 60.0)),
        ("12345678;timeout=30", ("12345678", 30.0)),
        (" A1b2 ; timeout = 15 ", ("A1b2", 15.0)),
        ("x;timeout=0", ("x", 60.0)),
        ("x;timeout=soon", ("x", 60.0)),
    ],
)
def test_parse_session(value: str, expected: tuple[str, float]) -> None:
    assert parse_session(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("RTP/AVP/TCP;unicast;interleaved=0-1", Interleave(0, 1)),
        ("RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=1A2B;mode=\"PLAY\"", Interleave(2, 3)),
        ("rtp/avp/tcp;INTERLEAVED=6", Interleave(6, 7)),
        ("RTP/AVP;unicast;client_port=5000-5001", None),
        ("RTP/AVP/TCP;unicast", None),
        ("RTP/AVP/TCP;interleaved=300-301", None),
    ],
)  # fmt: skip
def test_parse_interleave(value: str, expected: Interleave | None) -> None:
    assert parse_interleave(value) == expected


def test_heads() -> None:
    head = parse_head(
        b'RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\nWWW-Authenticate: Basic realm="a"\r\n'
        b'www-authenticate: Digest realm="a",\r\n  nonce="n"\r\n\r\n'
    )
    assert head.is_response
    assert head.headers.get("cseq") == "3"
    assert head.headers.get_all("WWW-Authenticate") == [
        'Basic realm="a"',
        'Digest realm="a", nonce="n"',
    ]
    response = head.response(b"")
    assert (response.status, response.reason, response.cseq) == (401, "Unauthorized", 3)
    assert not parse_head(b"ANNOUNCE rtsp://x RTSP/1.0\n\n").is_response
    assert find_head_end(b"RTSP/1.0 200 OK\r\n\r\n$\x00") == 19
    assert find_head_end(b"RTSP/1.0 200 OK\n\n$") == 17
    assert find_head_end(b"RTSP/1.0 200 OK\r\n\r") == -1
    assert parse_public("OPTIONS, describe,GET_PARAMETER ") == {
        "OPTIONS",
        "DESCRIBE",
        "GET_PARAMETER",
    }


def test_requests_refuse_header_injection() -> None:
    assert (
        build_request("OPTIONS", "*", [("CSeq", "1")]) == b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"
    )
    with pytest.raises(ValueError, match="CR or LF"):
        build_request("OPTIONS", "*", [("User-Agent", "x\r\nEvil: 1")])


@pytest.fixture
def pair() -> Iterator[tuple[RtspConnection, socket.socket]]:
    ours, theirs = socket.socketpair()
    connection = RtspConnection(ours)
    try:
        yield connection, theirs
    finally:
        connection.close()
        theirs.close()


def test_reader_takes_exactly_the_reply_even_when_split_anywhere(
    pair: tuple[RtspConnection, socket.socket],
) -> None:
    connection, server = pair
    reply = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nhello"
    after = b"$\x00\x00\x02hi$\x01\x00\x00"
    # Dribble the bytes so the end of the head straddles reads at every position.
    for split in range(1, len(reply)):
        writer = threading.Thread(
            target=_dribble, args=(server, [reply[:split], reply[split:] + after])
        )
        writer.start()
        response = connection.read_response(time.monotonic() + 5)
        writer.join()
        assert (response.status, response.body) == (200, b"hello")
        assert connection.socket.recv(len(after), socket.MSG_WAITALL) == after


def test_reader_skips_frames_and_times_out_and_sees_eof(
    pair: tuple[RtspConnection, socket.socket],
) -> None:
    connection, server = pair
    server.sendall(b"$\x00\x00\x03abc\r\n$\x01\x00\x01z" + b"RTSP/1.0 200 OK\r\n\r\n")
    assert connection.read_response(time.monotonic() + 1).status == 200
    assert connection.skipped_frames == 2
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        connection.read_response(time.monotonic() + 0.2)
    assert 0.15 < time.monotonic() - started < 2
    server.sendall(b"RTSP/1.0 200")
    server.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionClosed):
        connection.read_response(time.monotonic() + 1)


def test_reader_refuses_garbage(pair: tuple[RtspConnection, socket.socket]) -> None:
    connection, server = pair
    server.sendall(b"\x16\x03\x01")  # a TLS hello: someone pointed rtsp:// at an rtsps port
    with pytest.raises(ValueError, match="expected an RTSP message, got byte 0x16"):
        connection.read_response(time.monotonic() + 1)


def _dribble(sock: socket.socket, pieces: list[bytes]) -> None:
    for piece in pieces:
        sock.sendall(piece)
        time.sleep(0.002)
