"""A small RTSP 1.0 client that sets up TCP-interleaved playback and hands the socket over.

Vigil does the RTSP control in Python and lets a GStreamer pipeline read the connected socket
(``fdsrc fd=… ! vigilinterleave ! …``): cheaper than rtspsrc's per-packet reads. Pure standard
library, blocking calls with deadlines, for a worker thread; no ``gi`` import.
"""

from vigil.media.rtsp.auth import Credentials, credentials_from_url
from vigil.media.rtsp.client import DEFAULT_USER_AGENT, RtspSession, open_session
from vigil.media.rtsp.errors import (
    RtspAuthError,
    RtspConnectionError,
    RtspError,
    RtspProtocolError,
    RtspTimeoutError,
    RtspTransportError,
)
from vigil.media.rtsp.sdp import (
    MediaDescription,
    RtpMap,
    SessionDescription,
    VideoTrack,
    parse_sdp,
    rtp_caps_string,
    video_track,
)

__all__ = [
    "DEFAULT_USER_AGENT",
    "Credentials",
    "MediaDescription",
    "RtpMap",
    "RtspAuthError",
    "RtspConnectionError",
    "RtspError",
    "RtspProtocolError",
    "RtspSession",
    "RtspTimeoutError",
    "RtspTransportError",
    "SessionDescription",
    "VideoTrack",
    "credentials_from_url",
    "open_session",
    "parse_sdp",
    "rtp_caps_string",
    "video_track",
]
