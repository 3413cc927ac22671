"""Who may read or publish over RTSP, and what a request asks for: pure tables, no GStreamer."""

from __future__ import annotations

import base64

import pytest

from vigil.config.rtsp import RtspUserConfig
from vigil.serve.rtsp_auth import REALM, RtspAuthPolicy, digest_response
from vigil.serve.rtsp_requests import Access, access_of, announced_encoding, stream_of
from vigil.store.tokens import Role, hash_token

URI = "rtsp://127.0.0.1:8554/gate"
USERS = [
    RtspUserConfig(name="nvr", password="s3cret", read=["*"]),  # type: ignore[arg-type]
    RtspUserConfig(name="cam", password="pw", read=["lobby"], publish=["lobby"]),  # type: ignore[arg-type]
]
TOKENS = {
    hash_token("vgl_view"): ("wall", Role.VIEWER),
    hash_token("vgl_op"): ("ops", Role.OPERATOR),
}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def policy(**changes: object) -> RtspAuthPolicy:
    settings: dict[str, object] = {
        "users": USERS, "tokens": lambda: TOKENS, "anonymous_read": ["public"],
        "clock": lambda: 1000.0,
    }  # fmt: skip
    settings.update(changes)
    return RtspAuthPolicy(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("authorization", "stream", "access", "allowed", "user"),
    [
        (None, "gate", Access.READ, False, None),
        (None, "public", Access.READ, True, None),
        (None, "public", Access.PUBLISH, False, None),
        (basic("nvr", "s3cret"), "gate", Access.READ, True, "nvr"),
        (basic("nvr", "s3cret"), "gate", Access.PUBLISH, False, "nvr"),
        (basic("nvr", "wrong"), "public", Access.READ, False, None),  # wrong is wrong, even here
        (basic("cam", "pw"), "LOBBY", Access.PUBLISH, True, "cam"),  # names ignore case
        (basic("cam", "pw"), "gate", Access.READ, False, "cam"),
        (basic("anyone", "vgl_view"), "gate", Access.READ, True, "token:wall"),
        (basic("anyone", "vgl_view"), "gate", Access.PUBLISH, False, "token:wall"),
        (basic("anyone", "vgl_op"), "gate", Access.PUBLISH, True, "token:ops"),
        (basic("anyone", "vgl_revoked"), "gate", Access.READ, False, None),
        ("Bearer vgl_view", "gate", Access.READ, False, None),
        ("Basic !!!", "gate", Access.READ, False, None),
    ],
)
def test_decisions(
    authorization: str | None, stream: str, access: Access, allowed: bool, user: str | None
) -> None:
    verdict = policy().decide(authorization, method="DESCRIBE", uri=URI, stream=stream,
                              access=access)  # fmt: skip
    assert (verdict.allowed, verdict.user) == (allowed, user)
    # A known client that may not is refused (403), not challenged again (401).
    assert verdict.challenge == (user is None) or verdict.allowed


def _digest(policy_: RtspAuthPolicy, password: str, *, method: str = "DESCRIBE") -> str:
    nonce = policy_.challenges()[0].split('nonce="')[1].rstrip('"')
    response = digest_response(user="nvr", password=password, realm=REALM, method=method,
                               uri=URI, nonce=nonce)  # fmt: skip
    return (f'Digest username="nvr", realm="{REALM}", nonce="{nonce}", uri="{URI}", '
            f'response="{response}"')  # fmt: skip


def test_digest_right_wrong_and_stale() -> None:
    now = [1000.0]
    subject = policy(clock=lambda: now[0])
    right, wrong = _digest(subject, "s3cret"), _digest(subject, "nope")
    decide = lambda header: subject.decide(  # noqa: E731
        header, method="DESCRIBE", uri=URI, stream="gate", access=Access.READ
    )
    assert decide(right).allowed and decide(right).user == "nvr"
    assert not decide(wrong).allowed
    # The response covers the method: a replayed DESCRIBE answer does not admit an ANNOUNCE.
    assert not subject.decide(right, method="ANNOUNCE", uri=URI, stream="gate",
                              access=Access.READ).allowed  # fmt: skip
    now[0] += 3600
    stale = decide(right)
    assert not stale.allowed and stale.reason == "stale Digest nonce"
    other = policy()  # a nonce from another run (another secret) is no nonce at all
    assert not other.decide(right, method="DESCRIBE", uri=URI, stream="gate",
                            access=Access.READ).allowed  # fmt: skip


def test_challenges_offer_digest_only_when_users_exist() -> None:
    assert [c.split()[0] for c in policy().challenges()] == ["Digest", "Basic"]
    assert [c.split()[0] for c in policy(users=[]).challenges()] == ["Basic"]
    only_basic = policy(methods=["basic"])
    assert [c.split()[0] for c in only_basic.challenges()] == ["Basic"]
    assert not only_basic.decide(_digest(policy(), "s3cret"), method="DESCRIBE", uri=URI,
                                 stream="gate", access=Access.READ).allowed  # fmt: skip


def test_open_access_without_any_credential_and_closed_once_a_token_exists() -> None:
    tokens: dict[str, tuple[str, Role]] = {}
    now = [0.0]
    subject = policy(users=[], anonymous_read=[], tokens=lambda: tokens, monotonic=lambda: now[0])
    assert subject.open
    assert subject.decide(None, method="ANNOUNCE", uri=URI, stream="gate",
                          access=Access.PUBLISH).allowed  # fmt: skip
    tokens.update(TOKENS)  # `vigil tokens create` while Vigil runs: counts within a second
    assert subject.open
    now[0] += 1.0
    assert not subject.open
    assert not subject.decide(None, method="DESCRIBE", uri=URI, stream="gate",
                              access=Access.READ).allowed  # fmt: skip


@pytest.mark.parametrize(
    ("path", "stream"),
    [("/gate", "gate"), ("/gate/stream=0", "gate"), ("/", None), ("/a%20b", None),
     ("/cam-1/", "cam-1"), ("/../etc", None)],
)  # fmt: skip
def test_stream_of(path: str, stream: str | None) -> None:
    assert stream_of(path) == stream


@pytest.mark.parametrize(
    ("method", "transport", "access"),
    [
        ("DESCRIBE", None, Access.READ),
        ("SETUP", "RTP/AVP/TCP;unicast;interleaved=0-1", Access.READ),
        ("SETUP", "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record", Access.PUBLISH),
        ("SETUP", 'RTP/AVP;unicast;client_port=5000-5001;mode="RECORD"', Access.PUBLISH),
        ("ANNOUNCE", None, Access.PUBLISH),
        ("PLAY", None, None),
        ("OPTIONS", None, None),
    ],
)
def test_access_of(method: str, transport: str | None, access: Access | None) -> None:
    assert access_of(method, transport) == access


def test_announced_encoding() -> None:
    sdp = ("v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n"
           "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n")  # fmt: skip
    assert announced_encoding(sdp) == "H265"
    assert announced_encoding("v=0\r\nm=audio 0 RTP/AVP 0\r\n") is None
