"""The SDP Vigil reads from WHEP/WHIP clients, and the H.264 format it answers with. Pure.

webrtcbin answers an offer only if the RTP caps of its sending pad match one of the offer's
formats in payload type *and* profile (ARCHITECTURE.md, "Serving"). Cameras send Main or High
profile, browsers and aiortc offer mostly Constrained Baseline: so the answer is built from the
offer, never from the camera's caps. This module picks the offer's format; `rtp_caps` turns it
into the caps that both the payloader's output and the transceiver's codec preferences carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vigil.serve.webrtc.signalling import SignallingError

# profile_idc of each H.264 profile name h264parse puts in caps (ITU-T H.264 Annex A).
PROFILE_IDC = {
    "constrained-baseline": 0x42,
    "baseline": 0x42,
    "main": 0x4D,
    "extended": 0x58,
    "high": 0x64,
    "constrained-high": 0x64,
    "progressive-high": 0x64,
    "high-10": 0x6E,
    "high-4:2:2": 0x7A,
    "high-4:4:4": 0xF4,
}
# When the offer has no format of the camera's own profile: the most capable profile the client
# offers (a browser's decoder takes more than it advertises; a High stream in Constrained
# Baseline clothing still plays in Chromium, Firefox and aiortc).
_RANK = {0x64: 4, 0x4D: 3, 0x58: 1, 0x42: 2}


@dataclass(frozen=True)
class RtpFormat:
    """One payload type of a media section: ``a=rtpmap`` and its ``a=fmtp`` parameters."""

    payload_type: int
    encoding: str  # upper case: H264, VP8, ...
    clock_rate: int
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def packetization_mode(self) -> int:
        """RFC 6184 packetization-mode (absent means 0: single NAL units, no FU-A)."""
        try:
            return int(self.parameters.get("packetization-mode", "0"))
        except ValueError:
            return -1

    @property
    def profile_level_id(self) -> str:
        """Six hex digits; RFC 6184's default (Baseline, level 1.0) when absent."""
        value = self.parameters.get("profile-level-id", "42000a").lower()
        return value if len(value) == 6 and _is_hex(value) else "42000a"

    @property
    def profile_idc(self) -> int:
        return int(self.profile_level_id[:2], 16)

    @property
    def constrained(self) -> bool:
        """Constrained Baseline (constraint_set1): what every WebRTC H.264 decoder takes."""
        return bool(int(self.profile_level_id[2:4], 16) & 0x40)


@dataclass(frozen=True)
class MediaSection:
    """One ``m=`` section of an offer."""

    kind: str  # video, audio, application
    mid: str | None
    direction: str  # sendrecv, sendonly, recvonly, inactive
    formats: tuple[RtpFormat, ...]


@dataclass(frozen=True)
class Offer:
    """What Vigil needs from a client's offer."""

    ice_ufrag: str | None
    ice_pwd: str | None
    media: tuple[MediaSection, ...]

    def video(self) -> MediaSection:
        """The first video section; 400 if there is none."""
        for section in self.media:
            if section.kind == "video":
                return section
        raise SignallingError(400, "the offer has no video (m=video) section")


def parse_offer(text: str) -> Offer:
    """Read an SDP offer; `SignallingError` 400 when it is not one."""
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or not lines[0].startswith("v=0"):
        raise SignallingError(400, "the body is not an SDP offer (it must start with v=0)")
    session: dict[str, str] = {}
    sections: list[dict[str, object]] = []
    for line in lines:
        key, _, value = line.partition("=")
        if key == "m":
            kind, *rest = value.split()
            sections.append({"kind": kind, "pts": rest[2:] if len(rest) >= 2 else [],
                             "attrs": []})  # fmt: skip
        elif key == "a":
            if sections:
                attrs = sections[-1]["attrs"]
                assert isinstance(attrs, list)
                attrs.append(value)
            else:
                name, _, attr_value = value.partition(":")
                session.setdefault(name, attr_value)
    media = tuple(_section(s) for s in sections)
    if not media:
        raise SignallingError(400, "the SDP offer has no media section")
    ufrag = session.get("ice-ufrag") or _first_attr(sections, "ice-ufrag")
    pwd = session.get("ice-pwd") or _first_attr(sections, "ice-pwd")
    return Offer(ice_ufrag=ufrag, ice_pwd=pwd, media=media)


def _first_attr(sections: list[dict[str, object]], name: str) -> str | None:
    for section in sections:
        attrs = section["attrs"]
        assert isinstance(attrs, list)
        for attr in attrs:
            key, _, value = str(attr).partition(":")
            if key == name:
                return value
    return None


def _section(raw: dict[str, object]) -> MediaSection:
    attrs = raw["attrs"]
    pts = raw["pts"]
    assert isinstance(attrs, list) and isinstance(pts, list)
    rtpmap: dict[int, tuple[str, int]] = {}
    fmtp: dict[int, dict[str, str]] = {}
    mid: str | None = None
    direction = "sendrecv"
    for attr in attrs:
        name, _, value = str(attr).partition(":")
        if name == "rtpmap":
            pt, _, codec = value.partition(" ")
            encoding, _, rest = codec.partition("/")
            clock = rest.split("/")[0]
            if pt.isdigit() and clock.isdigit():
                rtpmap[int(pt)] = (encoding.upper(), int(clock))
        elif name == "fmtp":
            pt, _, params = value.partition(" ")
            if pt.isdigit():
                fmtp[int(pt)] = _parameters(params)
        elif name == "mid":
            mid = value
        elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
            direction = name
    formats = tuple(
        RtpFormat(int(pt), *rtpmap[int(pt)], parameters=fmtp.get(int(pt), {}))
        for pt in pts
        if str(pt).isdigit() and int(pt) in rtpmap
    )
    return MediaSection(kind=str(raw["kind"]), mid=mid, direction=direction, formats=formats)


def _parameters(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in text.split(";"):
        key, _, value = item.strip().partition("=")
        if key:
            params[key.lower()] = value.strip()
    return params


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def h264_formats(section: MediaSection) -> list[RtpFormat]:
    """The section's H.264 formats Vigil can use (packetization-mode 1: FU-A for big frames)."""
    return [
        f for f in section.formats
        if f.encoding == "H264" and f.clock_rate == 90000 and f.packetization_mode == 1
    ]  # fmt: skip


def choose_playback_format(section: MediaSection, camera_profile: str | None) -> RtpFormat:
    """The offer's H.264 format to send a stream of `camera_profile` (h264parse's name) in:
    one of that very profile if offered, else the most capable the client offers."""
    candidates = _h264_or_refuse(section, "Vigil sends the camera's H.264 as is")
    wanted = PROFILE_IDC.get(camera_profile or "")
    if wanted is not None:
        exact = [f for f in candidates if f.profile_idc == wanted]
        if exact:
            return exact[0]
    return max(candidates, key=lambda f: (_RANK.get(f.profile_idc, 0), f.constrained))


def choose_ingest_format(section: MediaSection) -> RtpFormat:
    """The publisher's H.264 format to receive: its own first choice among those Vigil takes."""
    return _h264_or_refuse(section, "Vigil records and serves H.264 as received")[0]


def _h264_or_refuse(section: MediaSection, why: str) -> list[RtpFormat]:
    """The section's usable H.264 formats; a 406 naming what was offered when there is none."""
    candidates = h264_formats(section)
    if not candidates:
        offered = ", ".join(sorted({f.encoding for f in section.formats})) or "none"
        raise SignallingError(
            406, f"the offer has no H.264 format with packetization-mode=1 (offered: {offered}); "
            f"{why} (transcoding is not implemented)",
        )  # fmt: skip
    return candidates


def rtp_caps(fmt: RtpFormat) -> str:
    """GStreamer caps for `fmt`: what the payloader's output is stamped with and the
    transceiver prefers, so webrtcbin finds the offer's format and answers with it."""
    return (
        "application/x-rtp,media=(string)video,clock-rate=(int)90000,"
        f"encoding-name=(string)H264,payload=(int){fmt.payload_type},"
        f"packetization-mode=(string)1,profile-level-id=(string){fmt.profile_level_id}"
    )


def answer_payload_types(answer: str) -> list[int]:
    """The payload types of the answer's video section (for checks and logs)."""
    for line in answer.replace("\r\n", "\n").split("\n"):
        if line.startswith("m=video"):
            return [int(pt) for pt in line.split()[3:] if pt.isdigit()]
    return []


@dataclass(frozen=True)
class Fragment:
    """A trickle-ICE SDP fragment (RFC 8840) as PATCHed by a client."""

    ice_ufrag: str | None
    ice_pwd: str | None
    candidates: tuple[tuple[str | None, str], ...]  # (mid, "candidate:...")
    end_of_candidates: bool


def parse_fragment(text: str) -> Fragment:
    """Read an application/trickle-ice-sdpfrag body; 400 if it has nothing ICE in it."""
    ufrag = pwd = mid = None
    candidates: list[tuple[str | None, str]] = []
    end = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            mid = None
        elif line.startswith("a=ice-ufrag:"):
            ufrag = line.removeprefix("a=ice-ufrag:")
        elif line.startswith("a=ice-pwd:"):
            pwd = line.removeprefix("a=ice-pwd:")
        elif line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:")
        elif line.startswith("a=candidate:"):
            candidates.append((mid, line.removeprefix("a=")))
        elif line == "a=end-of-candidates":
            end = True
    if ufrag is None and pwd is None and not candidates and not end:
        raise SignallingError(400, "the fragment has no ICE credentials or candidates")
    return Fragment(ufrag, pwd, tuple(candidates), end)


def is_ice_restart(offer: Offer, fragment: Fragment) -> bool:
    """True when the fragment carries ICE credentials other than the offer's (RFC 8840: a
    restart), rather than more candidates of the same ICE session."""
    return (fragment.ice_ufrag is not None and fragment.ice_ufrag != offer.ice_ufrag) or (
        fragment.ice_pwd is not None and fragment.ice_pwd != offer.ice_pwd
    )


def mid_index(offer: Offer, mid: str | None) -> int:
    """The m-line index of `mid` in the offer (0 when absent: everything is bundled)."""
    for index, section in enumerate(offer.media):
        if mid is not None and section.mid == mid:
            return index
    return 0


def describe(formats: Iterable[RtpFormat]) -> str:
    """Formats for a log line: 'H264/99 (42e01f)'."""
    return ", ".join(
        f"{f.encoding}/{f.payload_type}"
        + (f" ({f.profile_level_id})" if f.encoding == "H264" else "")
        for f in formats
    )
