"""SDP parsing and the RTP caps built from it, judged by GStreamer's own caps parser."""

from __future__ import annotations

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from vigil.media.rtsp import VideoTrack, parse_sdp, rtp_caps_string, video_track  # noqa: E402

H264_SETS = "sprop-parameter-sets=Z0LAFdkBQfsBagwMDUoAAAMAAgAAAwBlHixckA==,aMuMsg=="
GSTREAMER_SERVER = f"""v=0\r
o=- 1188340656180883 1 IN IP4 127.0.0.1\r
s=Session streamed with GStreamer\r
i=rtsp-server\r
t=0 0\r
a=tool:GStreamer\r
a=type:broadcast\r
a=range:npt=now-\r
a=control:rtsp://127.0.0.1:8554/test\r
m=video 0 RTP/AVP 96\r
c=IN IP4 0.0.0.0\r
a=rtpmap:96 H264/90000\r
a=framerate:25\r
a=fmtp:96 packetization-mode=1;{H264_SETS};profile-level-id=42c015\r
a=control:stream=0\r
a=ts-refclk:local\r
"""

# Hikvision-style: absolute controls with a query, spaces after ';', audio after video.
HIKVISION_SETS = "sprop-parameter-sets=Z00AKp2oHgCJ+WbgICAgQA==,aO48gA=="
HIKVISION = f"""v=0
o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64
s=Media Presentation
e=NONE
b=AS:5050
t=0 0
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast
m=video 0 RTP/AVP 96
c=IN IP4 0.0.0.0
b=AS:5000
a=recvonly
a=x-dimensions:1920,1080
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=420029; packetization-mode=1; {HIKVISION_SETS}
m=audio 0 RTP/AVP 8
c=IN IP4 0.0.0.0
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=2?transportmode=unicast
a=rtpmap:8 PCMA/8000
a=Media_header:MEDIAINFO=494D4B48010100000400010000000000000000000000000000000000;
"""

# Dahua-style H.265: aggregate control '*', audio first, fractional framerate, upper-case key.
H265_SETS = (
    "sprop-sps=QgEBAWAAAAMAsAAAAwAAAwBdoAKAgC0WNrkky/AIAAADAAgAAAMAyEA=;"
    "sprop-pps=RAHA8vA8kAA=;sprop-vps=QAEMAf//AWAAAAMAsAAAAwAAAwBdrAk="
)
DAHUA_H265 = f"""v=0
o=- 2251938190 2251938190 IN IP4 0.0.0.0
s=Media Server
c=IN IP4 0.0.0.0
t=0 0
a=control:*
a=range:npt=now-
m=audio 0 RTP/AVP 8
a=control:trackID=1
a=rtpmap:8 PCMA/8000
m=video 0 RTP/AVP 98 96
a=control:trackID=0
a=framerate:29.970000
a=rtpmap:98 H265/90000
a=rtpmap:96 H264/90000
a=fmtp:98 Profile-Id=1;{H265_SETS}
a=fmtp:96 packetization-mode=1
a=recvonly
"""

MJPEG_STATIC = """v=0
s=cam
m=video 0 RTP/AVP 26
a=control:track1
"""


@pytest.fixture(scope="module", autouse=True)
def gst() -> None:
    Gst.init(None)


def structure_of(caps_string: str) -> Gst.Structure:
    caps = Gst.Caps.from_string(caps_string)
    assert caps is not None, f"GStreamer cannot parse {caps_string!r}"
    assert caps.get_size() == 1
    return caps.get_structure(0)


def test_gstreamer_server_sdp() -> None:
    sdp = parse_sdp(GSTREAMER_SERVER)
    assert sdp.control == "rtsp://127.0.0.1:8554/test"
    assert sdp.name == "Session streamed with GStreamer"
    (media,) = sdp.media
    assert (media.kind, media.port, media.proto, media.payload_types) == (
        "video",
        0,
        "RTP/AVP",
        (96,),
    )
    assert media.control == "stream=0"
    assert media.rtpmaps[96].encoding == "H264"
    assert media.rtpmaps[96].clock_rate == 90000
    assert media.framerate == 25.0
    assert media.fmtp[96]["profile-level-id"] == "42c015"
    assert ("ts-refclk", "local") in media.attributes


def test_video_track_takes_the_first_video_media_and_its_first_payload_type() -> None:
    track = video_track(DAHUA_H265)
    assert track == VideoTrack(
        control="trackID=0",
        payload_type=98,
        encoding="H265",
        clock_rate=90000,
        fmtp={
            "profile-id": "1",
            "sprop-sps": "QgEBAWAAAAMAsAAAAwAAAwBdoAKAgC0WNrkky/AIAAADAAgAAAMAyEA=",
            "sprop-pps": "RAHA8vA8kAA=",
            "sprop-vps": "QAEMAf//AWAAAAMAsAAAAwAAAwBdrAk=",
        },
        framerate=29.97,
    )
    assert parse_sdp(DAHUA_H265).control == "*"


def test_fmtp_values_are_stripped_and_keep_their_equals_signs() -> None:
    track = video_track(parse_sdp(HIKVISION))
    assert track.control == (
        "rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast"
    )
    assert track.fmtp == {
        "profile-level-id": "420029",
        "packetization-mode": "1",
        "sprop-parameter-sets": "Z00AKp2oHgCJ+WbgICAgQA==,aO48gA==",
    }


def test_static_payload_type_without_rtpmap() -> None:
    track = video_track(MJPEG_STATIC)
    assert (track.payload_type, track.encoding, track.clock_rate) == (26, "JPEG", 90000)
    assert track.fmtp == {}


def test_no_video_is_a_readable_error() -> None:
    with pytest.raises(ValueError, match=r"no video media \(media: audio\)"):
        video_track("v=0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def test_malformed_lines_are_skipped() -> None:
    sdp = parse_sdp(
        "garbage\nv=0\nm=video\nm=video x RTP/AVP 96\nm=video 0 RTP/AVP 96\n"
        "a=rtpmap:96 H264\na=rtpmap:xx H264/90000\na=framerate:fast\na=fmtp:96 ;;bare;=x\n"
    )
    (media,) = sdp.media
    assert media.rtpmaps == {}
    assert media.framerate is None
    assert media.fmtp == {96: {"bare": "1"}}


def test_h264_caps_carry_every_fmtp_parameter_as_a_string() -> None:
    caps = rtp_caps_string(video_track(GSTREAMER_SERVER))
    structure = structure_of(caps)
    assert structure.get_name() == "application/x-rtp"
    assert structure.get_value("media") == "video"
    assert structure.get_value("encoding-name") == "H264"
    assert structure.get_value("clock-rate") == 90000
    assert structure.get_value("payload") == 96
    assert structure.get_value("packetization-mode") == "1"
    assert structure.get_value("profile-level-id") == "42c015"
    assert structure.get_value("sprop-parameter-sets") == (
        "Z0LAFdkBQfsBagwMDUoAAAMAAgAAAwBlHixckA==,aMuMsg=="
    )
    # The same caps rtspsrc would give rtph264depay: its sink template accepts them.
    template = (
        Gst.ElementFactory.make("rtph264depay").get_static_pad("sink").get_pad_template_caps()
    )
    assert Gst.Caps.from_string(caps).can_intersect(template)


def test_h265_caps_carry_the_parameter_sets() -> None:
    structure = structure_of(rtp_caps_string(video_track(DAHUA_H265)))
    assert structure.get_value("encoding-name") == "H265"
    assert structure.get_value("payload") == 98
    assert structure.get_value("profile-id") == "1"
    for key in ("sprop-vps", "sprop-sps", "sprop-pps"):
        assert structure.get_value(key) == video_track(DAHUA_H265).fmtp[key]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1",
        "a,b",
        "x=y;z",
        "with space",
        'quote"inside',
        "back\\slash",
        "\\123 not octal",
        "tab\tand newline\n",
        "unicode é ✓",
        "(string)looks-typed",
        "{braces} [brackets] <angles>",
    ],
)
def test_caps_values_survive_gstreamer_parsing(value: str) -> None:
    track = VideoTrack("x", 96, "H264", 90000, {"odd-value": value})
    assert structure_of(rtp_caps_string(track)).get_value("odd-value") == value


def test_fmtp_keys_that_would_break_caps_are_dropped() -> None:
    track = VideoTrack(
        None,
        97,
        "H264",
        90000,
        {"clock-rate": "8000", "payload": "1", "bad key": "x", "9lives": "x", "ok.key": "v"},
    )
    structure = structure_of(rtp_caps_string(track))
    assert structure.get_value("clock-rate") == 90000
    assert structure.get_value("payload") == 97
    assert structure.get_value("ok.key") == "v"
    assert not structure.has_field("bad key")
    assert not structure.has_field("9lives")
