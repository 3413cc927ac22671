"""Choosing the H.264 format to answer with, from real clients' offers (aiortc, Chromium)."""

from __future__ import annotations

import pytest

from vigil.serve.webrtc.sdp import (
    answer_payload_types,
    choose_ingest_format,
    choose_playback_format,
    is_ice_restart,
    mid_index,
    parse_fragment,
    parse_offer,
    rtp_caps,
)
from vigil.serve.webrtc.signalling import SignallingError

AIORTC = """v=0
o=- 1 1 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0
m=video 9 UDP/TLS/RTP/SAVPF 97 98 99 100 101 102
c=IN IP4 0.0.0.0
a=recvonly
a=mid:0
a=rtpmap:97 VP8/90000
a=rtpmap:98 rtx/90000
a=fmtp:98 apt=97
a=rtpmap:99 H264/90000
a=fmtp:99 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:100 rtx/90000
a=fmtp:100 apt=99
a=rtpmap:101 H264/90000
a=fmtp:101 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=ice-ufrag:of4H
a=ice-pwd:whRpEN2yVeH4RkPQM1qHmE
"""
# Chromium's H.264 entries (packetization-mode 0 and 1, Baseline to High), abridged.
CHROMIUM = """v=0
o=- 2 2 IN IP4 127.0.0.1
s=-
t=0 0
a=ice-ufrag:Ab12
a=ice-pwd:0123456789abcdefghijkl
m=audio 9 UDP/TLS/RTP/SAVPF 111
a=mid:0
a=recvonly
a=rtpmap:111 opus/48000/2
m=video 9 UDP/TLS/RTP/SAVPF 96 102 103 104 106 108 112 127
a=mid:1
a=recvonly
a=rtpmap:96 VP8/90000
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 H264/90000
a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f
a=rtpmap:104 H264/90000
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f
a=rtpmap:106 H264/90000
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:108 H264/90000
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f
a=rtpmap:112 H264/90000
a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f
a=rtpmap:127 H264/90000
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=64001f
"""


@pytest.mark.parametrize(
    ("offer", "camera", "payload_type"),
    [
        (CHROMIUM, "high", 112),  # the camera's own profile, packetization-mode 1
        (CHROMIUM, "main", 108),
        (CHROMIUM, "constrained-baseline", 102),  # first of that profile_idc
        (CHROMIUM, None, 112),  # unknown: the most capable offered
        (AIORTC, "high", 101),  # no High offered: Constrained Baseline over Baseline
        (AIORTC, "main", 101),
    ],
)
def test_playback_format_follows_the_offer(offer: str, camera: str | None, payload_type: int
                                           ) -> None:  # fmt: skip
    chosen = choose_playback_format(parse_offer(offer).video(), camera)
    assert chosen.payload_type == payload_type
    assert f"payload=(int){payload_type}," in rtp_caps(chosen)
    assert chosen.profile_level_id in rtp_caps(chosen)


def test_ingest_takes_the_publishers_first_h264() -> None:
    assert choose_ingest_format(parse_offer(AIORTC).video()).payload_type == 99


@pytest.mark.parametrize("chooser", [lambda s: choose_playback_format(s, "high"),
                                     choose_ingest_format])  # fmt: skip
def test_an_offer_without_usable_h264_is_refused_by_name(chooser: object) -> None:
    vp8 = "\n".join(line for line in AIORTC.splitlines()
                    if "H264" not in line and "packetization-mode" not in line)  # fmt: skip
    with pytest.raises(SignallingError) as refused:
        chooser(parse_offer(vp8).video())  # type: ignore[operator]
    assert refused.value.status == 406
    assert "H.264" in refused.value.message and "VP8" in refused.value.message
    assert "transcoding is not implemented" in refused.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "not an SDP offer"), ("hello", "not an SDP offer"), ("v=0\r\ns=-\r\n", "no media"),
     ("v=0\r\nm=audio 9 RTP/AVP 0\r\n", None)],
)  # fmt: skip
def test_bad_offers_are_400(text: str, message: str | None) -> None:
    with pytest.raises(SignallingError) as refused:
        parse_offer(text).video()
    assert refused.value.status == 400
    assert message is None or message in refused.value.message


def test_offer_sections_and_credentials() -> None:
    offer = parse_offer(CHROMIUM)
    assert (offer.ice_ufrag, offer.ice_pwd) == ("Ab12", "0123456789abcdefghijkl")
    assert [s.kind for s in offer.media] == ["audio", "video"]
    assert offer.video().mid == "1" and offer.video().direction == "recvonly"
    assert mid_index(offer, "1") == 1 and mid_index(offer, None) == 0
    assert parse_offer(AIORTC).ice_ufrag == "of4H"  # media-level credentials


def test_trickle_fragment_and_restart() -> None:
    offer = parse_offer(AIORTC)
    fragment = parse_fragment(
        "a=ice-ufrag:of4H\r\na=ice-pwd:whRpEN2yVeH4RkPQM1qHmE\r\nm=video 9 RTP/AVP 0\r\n"
        "a=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host\r\n"
        "a=end-of-candidates\r\n"
    )
    assert fragment.candidates == (("0", "candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host"),)
    assert fragment.end_of_candidates and not is_ice_restart(offer, fragment)
    restart = parse_fragment("a=ice-ufrag:new1\r\na=ice-pwd:newpasswordnewpassword\r\n")
    assert is_ice_restart(offer, restart)
    with pytest.raises(SignallingError):
        parse_fragment("nothing here")


def test_answer_payload_types() -> None:
    assert answer_payload_types("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 101\r\n") == [101]
