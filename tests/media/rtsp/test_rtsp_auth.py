"""Basic and Digest authorization, checked against the RFCs' worked examples and GStreamer."""

from __future__ import annotations

import base64
import hashlib

import gi
import pytest

gi.require_version("GstRtsp", "1.0")
from gi.repository import GstRtsp  # noqa: E402

from vigil.media.rtsp.auth import (  # noqa: E402
    Authenticator,
    Challenge,
    Credentials,
    credentials_from_url,
    digest_response,
    parse_challenges,
)


def fields_of(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Digest"
    (challenge,) = parse_challenges([f"Digest {rest}"])
    return challenge.params


# RFC 2617 §3.5 (MD5, qop=auth).
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

# RFC 7616 §3.9.1: the same challenge offered with SHA-256 and with MD5.
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_CHALLENGES = [
    f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
    f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
    f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
]


def test_rfc2617_example() -> None:
    auth = Authenticator(Credentials("Mufasa", "Circle Of Life"), cnonce=lambda: "0a4f113b")
    assert auth.accept(parse_challenges([RFC2617_CHALLENGE])) is not None
    header = auth.authorization("GET", "/dir/index.html")
    assert header is not None
    fields = fields_of(header)
    assert fields["response"] == "6629fae49393a05397450978507c4ef1"
    assert fields["qop"] == "auth"
    assert fields["nc"] == "00000001"
    assert fields["cnonce"] == "0a4f113b"
    assert fields["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert fields["uri"] == "/dir/index.html"
    assert "algorithm" not in fields  # the server did not name one


def test_rfc7616_sha256_is_preferred_and_matches_the_example() -> None:
    auth = Authenticator(Credentials("Mufasa", "Circle of Life"), cnonce=lambda: RFC7616_CNONCE)
    chosen = auth.accept(parse_challenges(RFC7616_CHALLENGES))
    assert chosen is not None and chosen.params["algorithm"] == "SHA-256"
    header = auth.authorization("GET", "/dir/index.html")
    assert header is not None
    fields = fields_of(header)
    assert fields["response"] == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert fields["algorithm"] == "SHA-256"
    assert fields["opaque"] == RFC7616_OPAQUE


def test_rfc7616_md5_example() -> None:
    assert (
        digest_response(
            algorithm="MD5",
            username="Mufasa",
            password="Circle of Life",
            realm="http-auth@example.org",
            nonce=RFC7616_NONCE,
            method="GET",
            uri="/dir/index.html",
            qop="auth",
            nc="00000001",
            cnonce=RFC7616_CNONCE,
        )
        == "8ca523f5e9506fed4657c9700eebdbec"
    )


def test_rfc7616_sha512_256_userhash_example() -> None:
    try:
        hashlib.new("sha512_256")
    except ValueError:
        pytest.skip("this OpenSSL has no SHA-512/256")
    challenge = (
        'Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, '
        'nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", '
        'opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true'
    )
    auth = Authenticator(
        Credentials("J\u00e4s\u00f8n Doe", "Secret, or not?"),
        cnonce=lambda: "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
    )
    auth.accept(parse_challenges([challenge]))
    header = auth.authorization("GET", "/doe.json")
    assert header is not None
    fields = fields_of(header)
    # The values of erratum 4897: the RFC's own were computed with a draft SHA-512/256.
    assert fields["username"] == "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    assert fields["response"] == "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    assert fields["userhash"] == "true"


def test_digest_without_qop_matches_gstreamer() -> None:
    """RFC 2069 style, what GstRtspServer and many cameras use; GStreamer's own C is the judge."""
    auth = Authenticator(Credentials("admin", "12345"))
    auth.accept(parse_challenges(['Digest realm="IP Camera(C6712)", nonce="3f0a2b"']))
    header = auth.authorization("DESCRIBE", "rtsp://10.0.0.7:554/live")
    assert header is not None
    fields = fields_of(header)
    expected = GstRtsp.rtsp_generate_digest_auth_response(
        None, "DESCRIBE", "IP Camera(C6712)", "admin", "12345", "rtsp://10.0.0.7:554/live", "3f0a2b"
    )
    assert fields["response"] == expected
    assert not {"qop", "nc", "cnonce", "algorithm"} & fields.keys()


def test_nonce_count_increments_and_restarts_with_a_new_nonce() -> None:
    auth = Authenticator(Credentials("u", "p"), cnonce=lambda: "c")
    auth.accept(parse_challenges(['Digest realm="r", nonce="n1", qop="auth"']))
    counts = [fields_of(auth.authorization("OPTIONS", "*") or "")["nc"] for _ in range(3)]
    assert counts == ["00000001", "00000002", "00000003"]
    auth.accept(parse_challenges(['Digest realm="r", nonce="n2", qop="auth", stale=true']))
    assert fields_of(auth.authorization("OPTIONS", "*") or "")["nc"] == "00000001"


def test_stale_flag() -> None:
    (fresh, stale) = parse_challenges(
        ['Digest realm="r", nonce="a"', 'Digest realm="r", nonce="b", stale=TRUE']
    )
    assert not fresh.stale
    assert stale.stale


def test_basic() -> None:
    auth = Authenticator(Credentials("user", "pa:ss é"))
    assert auth.authorization("DESCRIBE", "rtsp://h/x") is None  # nothing before a challenge
    auth.accept(parse_challenges(['Basic realm="cam"']))
    header = auth.authorization("DESCRIBE", "rtsp://h/x")
    assert header == "Basic " + base64.b64encode("user:pa:ss é".encode()).decode()


def test_digest_is_preferred_over_basic_and_unknown_schemes_are_ignored() -> None:
    challenges = parse_challenges(['Basic realm="x"', 'Digest realm="x", nonce="n"', "NTLM"])
    assert [c.scheme for c in challenges] == ["basic", "digest", "ntlm"]
    chosen = Authenticator(Credentials("u", "p")).accept(challenges)
    assert chosen is not None and chosen.scheme == "digest"


def test_unsupported_digest_algorithm_is_not_chosen() -> None:
    challenges = parse_challenges(['Digest realm="x", nonce="n", algorithm=SHA-1024'])
    assert Authenticator(Credentials("u", "p")).accept(challenges) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Digest realm="a, b", nonce="x\\"y", qop="auth,auth-int"',
            [Challenge("digest", {"realm": "a, b", "nonce": 'x"y', "qop": "auth,auth-int"})],
        ),
        (  # several challenges in one header
            'Basic realm="r1", Digest realm="r2", nonce="n", algorithm=MD5',
            [
                Challenge("basic", {"realm": "r1"}),
                Challenge("digest", {"realm": "r2", "nonce": "n", "algorithm": "MD5"}),
            ],
        ),
        (  # cameras that forget the commas, or add spaces around '='
            'Digest realm = "r" nonce="n"  stale=FALSE',
            [Challenge("digest", {"realm": "r", "nonce": "n", "stale": "FALSE"})],
        ),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges([header]) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://cam/x", None),
        ("rtsp://admin@cam/x", Credentials("admin", "")),
        ("rtsp://admin:secret@cam:554/x", Credentials("admin", "secret")),
        ("rtsp://ad%40min:p%3As%2Fs%20w@[::1]:8554/x", Credentials("ad@min", "p:s/s w")),
        ("rtsp://admin:p@ss@cam/x", Credentials("admin", "p@ss")),  # '@' left unencoded
        ("rtsp://admin:%C3%A9t%C3%A9@cam/x", Credentials("admin", "été")),
    ],
)
def test_credentials_from_url(url: str, expected: Credentials | None) -> None:
    assert credentials_from_url(url) == expected


def test_password_never_shows_in_repr() -> None:
    assert "secret" not in repr(Credentials("admin", "secret"))
