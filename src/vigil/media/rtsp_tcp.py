"""RTSP over TCP the cheap way: the handshake in Python, the socket read by GStreamer.

`vigil.media.rtsp` does OPTIONS/DESCRIBE/SETUP/PLAY (with auth) and hands over the connected
socket; the pipeline reads it in 64 KB chunks (`fdsrc`), splits the interleaved frames
(`vigilinterleave`, one buffer list per chunk), stamps PTS from RTP timestamps
(`vigilrtpstamp`) and depayloads. Against rtspsrc this saves two `recv` calls and a poll per
RTP packet, and rtpbin's per-packet work (measured in docs/ARCHITECTURE.md). Keepalives are sent
from the GLib thread; their replies come back inside the byte stream, where vigilinterleave
reports them as `vigil-rtsp-message` (a refused keepalive is a stream failure).

A server that refuses TCP interleaving (461) gets rtspsrc over UDP instead.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import replace

from gi.repository import GLib, Gst

from vigil.config.sources import RtspSource, Transport
from vigil.media import gst
from vigil.media.callbacks import CallbackFaults
from vigil.media.rtsp import RtspAuthError, RtspError, RtspSession, RtspTransportError, open_session
from vigil.media.sources import (
    DEPAYLOADERS,
    FailCallback,
    OutputCallback,
    RtspPullSource,
    SourceFailure,
    add_chain,
)

logger = logging.getLogger(__name__)

RTSP_MESSAGE = "vigil-rtsp-message"
HANDSHAKE_TIMEOUT_S = 10.0
# The low-water mark follows the camera's bitrate, measured this often.
LOWAT_RETUNE_S = 2
LOWAT_MAX = 256 * 1024


def native_tcp_available() -> bool:
    """True when the native elements this path needs are registered."""
    return gst.has_element("vigilinterleave") and gst.has_element("vigilrtpstamp")


class RtspTcpSource:
    """One camera over RTSP/TCP with Vigil's own client and GStreamer reading the socket."""

    def __init__(
        self,
        stream: str,
        spec: RtspSource,
        on_output: OutputCallback,
        on_fail: FailCallback,
        *,
        read_batch_ms: int = 0,
        faults: CallbackFaults | None = None,
    ) -> None:
        self.stream = stream
        self._faults = faults
        self.spec = spec
        self.description = f"rtsp {spec.redacted_url} (tcp, native)"
        self._on_output = on_output
        self._on_fail = on_fail
        self._read_batch_ms = read_batch_ms
        self._session: RtspSession | None = None
        self._splitter: Gst.Element | None = None
        self._timers: list[int] = []
        self._last_count: tuple[float, int] | None = None
        self.low_water_mark = 1
        self._watched = False
        self._fallback: RtspPullSource | None = None

    def add_to(self, pipeline: Gst.Pipeline) -> None:
        """Connect to the camera (blocking, up to the handshake timeout) and build the chain."""
        try:
            session = open_session(self.spec.url, timeout=HANDSHAKE_TIMEOUT_S)
        except RtspTransportError:
            logger.info("%s: camera refuses RTSP over TCP; using UDP", self.stream)
            self._fallback = RtspPullSource(
                self.stream, replace(self.spec, transport=Transport.UDP),
                self._on_output, self._on_fail, self._faults,
            )  # fmt: skip
            self.description = self._fallback.description
            self._fallback.add_to(pipeline)
            return
        except RtspAuthError as error:
            raise SourceFailure(str(error), permanent=True) from None
        except (RtspError, OSError) as error:
            raise SourceFailure(str(error), permanent=_is_permanent_status(error)) from None
        self._session = session
        encoding = session.track.encoding.upper()
        if encoding not in DEPAYLOADERS:
            session.close()
            raise SourceFailure(
                f"camera sends {encoding or 'unknown'} video; Vigil records H264 and H265",
                permanent=True,
            )
        depay_name, parse_name = DEPAYLOADERS[encoding]
        reader = gst.make("fdsrc", "source", fd=session.fileno(), blocksize=65536)
        reader.set_property("do-timestamp", True)
        splitter = gst.make("vigilinterleave", "interleave", caps=session.caps)
        splitter.set_property("rtp-channel", session.rtp_channel)
        splitter.set_property("rtcp-channel", session.rtcp_channel)
        chain = [reader, splitter, gst.make("vigilrtpstamp", "stamp"),
                 gst.make(depay_name, "depay"), gst.make(parse_name, "parse")]  # fmt: skip
        add_chain(pipeline, chain)
        self._splitter = splitter
        interval = max(5, int(session.session_timeout * 0.5))
        keepalive, retune = self._keepalive, self._retune
        if self._faults is not None:  # an exception ends the timer and is the stream's fault
            keepalive = self._faults.guard("rtsp keepalive", keepalive, False, in_source=True)
            retune = self._faults.guard("socket retune", retune, False, in_source=True)
        self._timers.append(GLib.timeout_add_seconds(interval, keepalive))
        if self._read_batch_ms > 0:
            self._timers.append(GLib.timeout_add_seconds(LOWAT_RETUNE_S, retune))
        self._on_output(chain[-1].get_static_pad("src"))

    def set_watched(self, watched: bool) -> None:
        """While someone watches, read every packet as it comes (the low-water mark adds up to
        `read_batch_ms` to every viewer's latency); unwatched, batch again from the next retune."""
        self._watched = watched
        session = self._session
        if watched and session is not None and self.low_water_mark != 1:
            try:
                session.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                self.low_water_mark = 1
            except OSError:
                pass
        if self._fallback is not None:
            self._fallback.set_watched(watched)

    def _keepalive(self) -> bool:
        session = self._session
        if session is None:
            return False  # GLib.SOURCE_REMOVE
        try:
            session.keepalive()
        except (RtspError, OSError) as error:
            self._on_fail(f"keepalive failed: {error}")
        return True  # GLib.SOURCE_CONTINUE

    def _retune(self) -> bool:
        """Size the socket's low-water mark to `read_batch_ms` of the camera's current rate.

        Below the mark the kernel does not wake the reader, so each read takes a batch of
        packets instead of one: on this path that halved the recorder's CPU (docs/PERFORMANCE.md).
        Re-measured every few seconds so that a camera whose bitrate drops (a still scene) is
        not left waiting on a mark sized for a busy one.
        """
        session, splitter = self._session, self._splitter
        if session is None or splitter is None:
            return False  # GLib.SOURCE_REMOVE
        now, count = time.monotonic(), int(splitter.get_property("bytes"))
        previous, self._last_count = self._last_count, (now, count)
        if previous is None or now <= previous[0]:
            return True
        rate = (count - previous[1]) / (now - previous[0])  # bytes per second
        mark = max(1, min(LOWAT_MAX, int(rate * self._read_batch_ms / 1000)))
        if self._watched:
            mark = 1
        if abs(mark - self.low_water_mark) > self.low_water_mark // 10:
            try:
                session.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, mark)
                self.low_water_mark = mark
            except OSError:
                return False
        return True  # GLib.SOURCE_CONTINUE

    def handle_message(self, structure: Gst.Structure) -> str | None:
        """A failure reason if `structure` reports a refused keepalive, else None."""
        if structure.get_name() != RTSP_MESSAGE:
            return None
        ok, status = structure.get_int("status")
        if ok and status >= 400:
            return f"camera answered the keepalive with {structure.get_string('first-line')}"
        return None

    def close(self) -> None:
        """Stop keepalives and end the session (the pipeline's reader must be stopped first)."""
        for timer in self._timers:
            GLib.source_remove(timer)
        self._timers.clear()
        self._splitter = None
        session, self._session = self._session, None
        if session is not None:
            session.close()
        if self._fallback is not None:
            self._fallback.close()


def _is_permanent_status(error: Exception) -> bool:
    status = getattr(error, "status", None)
    return status in (401, 403, 404)
