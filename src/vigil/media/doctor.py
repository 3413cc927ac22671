"""`vigil doctor`: which GStreamer pieces Vigil needs are here, which are missing, and why."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.media import gst  # first: it pins the GStreamer version for gi

from gi.repository import Gst  # isort: skip

# element -> (Debian package, what Vigil uses it for)
REQUIRED: dict[str, tuple[str, str]] = {
    "tee": ("libgstreamer1.0-0", "fan a stream out to its branches"),
    "queue": ("libgstreamer1.0-0", "decouple branches"),
    "filesrc": ("libgstreamer1.0-0", "file sources"),
    "clocksync": ("libgstreamer1.0-0", "play files in real time"),
    "appsrc": ("gstreamer1.0-plugins-base", "simulator fan-out"),
    "appsink": ("gstreamer1.0-plugins-base", "simulator fan-out, frames for inference"),
    "videotestsrc": ("gstreamer1.0-plugins-base", "test:// sources and the simulator"),
    "videoconvert": ("gstreamer1.0-plugins-base", "raw video conversion"),
    "videoscale": ("gstreamer1.0-plugins-base", "raw video scaling"),
    "videorate": ("gstreamer1.0-plugins-base", "raw video rate"),
    "parsebin": ("gstreamer1.0-plugins-base", "file and V4L2 sources"),
    "decodebin": ("gstreamer1.0-plugins-base", "decoding non-H.264 sources"),
    "rtspsrc": ("gstreamer1.0-plugins-good", "RTSP cameras"),
    "rtpbin": ("gstreamer1.0-plugins-good", "RTSP cameras"),
    "rtph264depay": ("gstreamer1.0-plugins-good", "H.264 cameras"),
    "rtph265depay": ("gstreamer1.0-plugins-good", "H.265 cameras"),
    "rtph264pay": ("gstreamer1.0-plugins-good", "the simulator, re-serving"),
    "rtph265pay": ("gstreamer1.0-plugins-good", "the simulator, re-serving"),
    "filesink": ("libgstreamer1.0-0", "writing segments"),
    "mp4mux": ("gstreamer1.0-plugins-good", "fragmented MP4 segments"),
    "qtdemux": ("gstreamer1.0-plugins-good", "reading MP4 files"),
    "v4l2src": ("gstreamer1.0-plugins-good", "v4l2:// sources"),
    "h264parse": ("gstreamer1.0-plugins-bad", "H.264 parsing"),
    "h265parse": ("gstreamer1.0-plugins-bad", "H.265 parsing"),
    "errorignore": ("gstreamer1.0-plugins-bad", "a failed disk write not stopping the camera"),
    "intervideosrc": ("gstreamer1.0-plugins-bad", "the simulator's --file"),
    "x265enc": ("gstreamer1.0-plugins-bad", "H.265 test sources and simulator"),
    "x264enc": ("gstreamer1.0-plugins-ugly", "H.264 test sources, simulator, raw sources"),
    "avdec_h264": ("gstreamer1.0-libav", "decoding H.264 (snapshots, inference)"),
    "avdec_h265": ("gstreamer1.0-libav", "decoding H.265 (snapshots, inference)"),
    "clockoverlay": ("gstreamer1.0-x", "burnt-in clock of test sources"),
}

OPTIONAL: dict[str, tuple[str, str]] = {
    "vigilrtpstamp": ("(built by scripts/bootstrap.sh)", "RTP timestamps without a jitterbuffer"),
    "vigilinterleave": ("(built by scripts/bootstrap.sh)", "RTSP over TCP read in batches"),
    "webrtcbin": ("gstreamer1.0-plugins-bad", "WebRTC (later)"),
    "nicesrc": ("gstreamer1.0-nice", "WebRTC ICE (later)"),
}

HARDWARE = [
    "nvh264dec", "nvh265dec", "nvh264enc", "nvh265enc", "nvjpegdec",
    "vah264dec", "vah265dec", "vaapih264dec", "vaapih265dec",
    "v4l2h264dec", "v4l2h265dec", "v4l2h264enc",
    "qsvh264dec", "qsvh265dec", "msdkh264dec", "msdkh265dec",
]  # fmt: skip


def package_for(element: str) -> str | None:
    """The Debian package that provides `element`, when Vigil knows it."""
    entry = REQUIRED.get(element) or OPTIONAL.get(element)
    return entry[0] if entry else None


@dataclass(frozen=True)
class ElementCheck:
    """One element's presence."""

    element: str
    present: bool
    package: str
    purpose: str


@dataclass(frozen=True)
class DoctorReport:
    """Everything `vigil doctor` prints."""

    gstreamer_version: str
    required: list[ElementCheck]
    optional: list[ElementCheck]
    hardware: list[str]
    rtsp_server: bool

    @property
    def ok(self) -> bool:
        """True when nothing required is missing."""
        return self.rtsp_server and all(check.present for check in self.required)

    @property
    def missing_packages(self) -> list[str]:
        """Debian packages to install for what is missing."""
        packages = {c.package for c in self.required if not c.present}
        if not self.rtsp_server:
            packages.add("gir1.2-gst-rtsp-server-1.0")
        return sorted(packages)


def examine() -> DoctorReport:
    """Inspect this machine's GStreamer."""
    gst.init()

    def check(table: dict[str, tuple[str, str]]) -> list[ElementCheck]:
        return [
            ElementCheck(name, Gst.ElementFactory.find(name) is not None, package, purpose)
            for name, (package, purpose) in table.items()
        ]

    try:
        import gi

        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import GstRtspServer  # noqa: F401

        rtsp_server = True
    except (ValueError, ImportError):
        rtsp_server = False
    hardware = [name for name in HARDWARE if Gst.ElementFactory.find(name) is not None]
    return DoctorReport(
        gst.version_string(), check(REQUIRED), check(OPTIONAL), hardware, rtsp_server
    )
