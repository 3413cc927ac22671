"""SDP (RFC 8866) as cameras send it in DESCRIBE replies, and the RTP caps GStreamer needs.

Only what an RTSP client uses is parsed: controls, media lines, rtpmap, fmtp and framerate;
every other attribute is kept as text. The caps follow what rtspsrc builds from the same SDP
(`gst_sdp_media_get_caps_from_media`), so the depayloaders see the fields they expect.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# RFC 3551 static payload types a camera may use for video without an rtpmap line.
_STATIC_VIDEO = {26: "JPEG", 31: "H261", 32: "MPV", 33: "MP2T", 34: "H263"}
_DEFAULT_VIDEO_CLOCK = 90000

# Fields rtp_caps_string sets itself: an fmtp parameter of the same name would replace a typed
# field by a string one and make the caps unusable (rtspsrc skips them for the same reason).
_RESERVED_FIELDS = frozenset({"media", "payload", "clock-rate", "encoding-name", "encoding-params"})
# What GStreamer's caps parser accepts as a field name.
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_+\-./:]*")
# Characters GStreamer writes unquoted in a caps string (GST_ASCII_IS_STRING).
_PLAIN = re.compile(r"[A-Za-z0-9_+\-./:]+")


@dataclass(frozen=True)
class RtpMap:
    """One ``a=rtpmap:<pt> <encoding>/<clock rate>[/<parameters>]`` line."""

    payload_type: int
    encoding: str  # upper case, as GStreamer's encoding-name
    clock_rate: int
    parameters: str | None = None  # audio channels


@dataclass(frozen=True)
class MediaDescription:
    """One ``m=`` section: its media line and the attributes Vigil uses."""

    kind: str  # "video", "audio", "application", ...
    port: int
    proto: str  # "RTP/AVP", ...
    payload_types: tuple[int, ...]
    control: str | None = None
    rtpmaps: dict[int, RtpMap] = field(default_factory=dict, hash=False)
    fmtp: dict[int, dict[str, str]] = field(default_factory=dict, hash=False)
    framerate: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SessionDescription:
    """A parsed SDP: session-level control and attributes, and the media sections in order."""

    control: str | None
    media: tuple[MediaDescription, ...]
    name: str = ""
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VideoTrack:
    """The video stream Vigil records: what SETUP needs and what the depayloader needs."""

    control: str | None  # as written in the SDP; resolve it against the base URL
    payload_type: int
    encoding: str  # "H264", "H265" or whatever else the camera announced
    clock_rate: int
    fmtp: dict[str, str] = field(default_factory=dict, hash=False)
    framerate: float | None = None


def parse_sdp(text: str) -> SessionDescription:
    """Parse an SDP body. Lenient: unknown or malformed lines are skipped, never fatal."""
    session_attributes: list[tuple[str, str]] = []
    name = ""
    sections: list[tuple[list[str], list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "m":
            sections.append((value.split(), []))
        elif kind == "a":
            key, _, attr_value = value.partition(":")
            target = sections[-1][1] if sections else session_attributes
            target.append((key.strip().lower(), attr_value.strip()))
        elif kind == "s" and not sections:
            name = value
    media = tuple(
        section
        for section in (_media(words, attributes) for words, attributes in sections)
        if section is not None
    )
    return SessionDescription(
        control=_first(session_attributes, "control"),
        media=media,
        name=name,
        attributes=tuple(session_attributes),
    )


def video_track(sdp: SessionDescription | str) -> VideoTrack:
    """The first video media of `sdp`, with its first payload type. ValueError if none."""
    description = parse_sdp(sdp) if isinstance(sdp, str) else sdp
    for media in description.media:
        if media.kind != "video" or not media.payload_types:
            continue
        payload_type = media.payload_types[0]
        rtpmap = media.rtpmaps.get(payload_type)
        if rtpmap is not None:
            encoding, clock_rate = rtpmap.encoding, rtpmap.clock_rate
        else:
            encoding = _STATIC_VIDEO.get(payload_type, "")
            clock_rate = _DEFAULT_VIDEO_CLOCK
        return VideoTrack(
            control=media.control,
            payload_type=payload_type,
            encoding=encoding,
            clock_rate=clock_rate,
            fmtp=dict(media.fmtp.get(payload_type, {})),
            framerate=media.framerate,
        )
    kinds = ", ".join(media.kind for media in description.media) or "none"
    raise ValueError(f"the SDP has no video media (media: {kinds})")


def rtp_caps_string(track: VideoTrack) -> str:
    """GStreamer caps for the depayloader of `track`, every fmtp parameter as a string field."""
    fields = [
        "application/x-rtp",
        "media=(string)video",
        f"encoding-name=(string){_caps_string_value(track.encoding)}",
        f"clock-rate=(int){track.clock_rate}",
        f"payload=(int){track.payload_type}",
    ]
    for key, value in track.fmtp.items():
        if key in _RESERVED_FIELDS:
            continue
        if not _FIELD_NAME.fullmatch(key):
            logger.debug("fmtp parameter %r is not a valid caps field name: skipped", key)
            continue
        fields.append(f"{key}=(string){_caps_string_value(value)}")
    return ",".join(fields)


def _caps_string_value(value: str) -> str:
    """`value` as GStreamer writes a string in caps: bare when plain, else quoted and escaped.

    Mirrors gst_string_wrap: quote and backslash get a backslash, bytes outside printable
    ASCII become three-digit octal escapes (which gst_string_unwrap turns back into bytes).
    """
    if _PLAIN.fullmatch(value):
        return value
    out = ['"']
    for byte in value.encode("utf-8"):
        if byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:03o}")
        elif byte in (0x22, 0x5C):  # '"' and '\'
            out.append("\\" + chr(byte))
        else:
            out.append(chr(byte))
    out.append('"')
    return "".join(out)


def _media(words: list[str], attributes: list[tuple[str, str]]) -> MediaDescription | None:
    """One media section from its ``m=`` words and attributes; None if the m= line is broken."""
    if len(words) < 3:
        return None
    kind, port_text, proto = words[0].lower(), words[1], words[2]
    try:
        port = int(port_text.split("/")[0])
    except ValueError:
        return None
    payload_types = tuple(int(word) for word in words[3:] if word.isdigit())
    rtpmaps: dict[int, RtpMap] = {}
    fmtp: dict[int, dict[str, str]] = {}
    framerate: float | None = None
    for key, value in attributes:
        if key == "rtpmap":
            rtpmap = _rtpmap(value)
            if rtpmap is not None:
                rtpmaps.setdefault(rtpmap.payload_type, rtpmap)
        elif key == "fmtp":
            pt_text, _, params = value.partition(" ")
            if pt_text.isdigit():
                fmtp.setdefault(int(pt_text), _fmtp_params(params))
        elif key == "framerate" and framerate is None:
            with contextlib.suppress(ValueError):
                framerate = float(value)
    return MediaDescription(
        kind=kind,
        port=port,
        proto=proto,
        payload_types=payload_types,
        control=_first(attributes, "control"),
        rtpmaps=rtpmaps,
        fmtp=fmtp,
        framerate=framerate,
        attributes=tuple(attributes),
    )


def _rtpmap(value: str) -> RtpMap | None:
    """``96 H264/90000`` → RtpMap; None when malformed."""
    pt_text, _, encoding_text = value.partition(" ")
    parts = encoding_text.strip().split("/")
    if not pt_text.isdigit() or len(parts) < 2 or not parts[1].strip().isdigit():
        return None
    parameters = parts[2].strip() if len(parts) > 2 else None
    return RtpMap(int(pt_text), parts[0].strip().upper(), int(parts[1]), parameters)


def _fmtp_params(text: str) -> dict[str, str]:
    """``a=1;b=x=y; flag`` → {"a": "1", "b": "x=y", "flag": "1"}, keys lower-cased.

    Values are everything after the first '=' (base64 parameter sets end in '='), stripped
    of the spaces some cameras put around them; a bare key means "1" — as rtspsrc does.
    """
    params: dict[str, str] = {}
    for pair in text.split(";"):
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if key:
            params[key] = value.strip() if sep else "1"
    return params


def _first(attributes: list[tuple[str, str]], key: str) -> str | None:
    return next((value for name, value in attributes if name == key), None)
