"""Test helpers: record real segments with gst-launch-1.0, cut them, and ask ffprobe."""

from __future__ import annotations

import itertools
import json
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

FPS = 25
CAPS = f"video/x-raw,width=320,height=240,framerate={FPS}/1"
# As the recorder configures splitmuxsink; without async-finalize=true, GStreamer 1.22 ignores
# muxer-properties and writes a plain (non-fragmented) MP4.
FRAGMENTED = [
    "async-finalize=true",
    "muxer-factory=mp4mux",
    "muxer-properties=properties,fragment-duration=1000",
]
PLAIN = ["muxer-factory=mp4mux"]
RECORD_ATTEMPTS = 4
RECORD_TIMEOUT_S = 45  # a few seconds of work, on a machine that may be busy
H264 = ["x264enc", "key-int-max=25", "!", "h264parse"]
H265 = ["x265enc", "key-int-max=25", "!", "h265parse"]


def tools_missing() -> str | None:
    """Why the media tests cannot run here, or None."""
    for tool in ("gst-launch-1.0", "gst-inspect-1.0", "ffprobe"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def has_element(name: str) -> bool:
    return (
        subprocess.run(["gst-inspect-1.0", name], capture_output=True, check=False).returncode == 0
    )


def pipeline(
    directory: Path, encoder: list[str], mux: list[str], *, buffers: int | None, live: bool = False
) -> list[str]:
    source = ["videotestsrc", "is-live=true"] if live else ["videotestsrc"]
    if buffers is not None:
        source.append(f"num-buffers={buffers}")
    return [
        "gst-launch-1.0",
        "-e",
        *source,
        "!",
        CAPS,
        "!",
        *encoder,
        "!",
        "splitmuxsink",
        *mux,
        "max-size-time=5000000000",
        f"location={directory / 'seg%05d.mp4'}",
    ]


def record(directory: Path, encoder: list[str], mux: list[str], *, buffers: int) -> list[Path]:
    """Record `buffers` frames into 5 s segments in `directory`; return the files in order.

    Seen here with GStreamer 1.22: gst-launch-1.0 with splitmuxsink sometimes never finishes
    after EOS (about 1 run in 15, leaving the last fragment unwritten; mp4mux with filesink
    did not, 0 in 30). Such a run is killed and recorded again.
    """
    for _attempt in range(RECORD_ATTEMPTS):
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        try:
            subprocess.run(
                pipeline(directory, encoder, mux, buffers=buffers),
                check=True,
                capture_output=True,
                timeout=RECORD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            continue
        return sorted(directory.glob("seg*.mp4"))
    raise RuntimeError(f"gst-launch-1.0 did not finish in {RECORD_ATTEMPTS} attempts")


@dataclass(frozen=True)
class Box:
    kind: str
    start: int
    end: int


def top_level_boxes(path: Path) -> list[Box]:
    """The top-level boxes of a complete MP4 (independent of the code under test)."""
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
        boxes.append(Box(kind.decode("ascii"), offset, offset + size))
        offset += size
    return boxes


def fragments(boxes: list[Box]) -> list[tuple[Box, Box]]:
    """The (moof, mdat) pairs among `boxes`."""
    return [
        (moof, mdat)
        for moof, mdat in itertools.pairwise(boxes)
        if (moof.kind, mdat.kind) == ("moof", "mdat")
    ]


def cut_copy(source: Path, target: Path, length: int) -> Path:
    """Copy the first `length` bytes of `source` to `target`, as a crash would leave them."""
    with source.open("rb") as reader:
        target.write_bytes(reader.read(length))
    return target


def ffprobe_packet_durations(path: Path) -> list[float] | None:
    """Durations of the video packets ffprobe reads, or None if it cannot open the file."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=duration_time",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        return None
    packets = json.loads(result.stdout).get("packets", [])
    return [float(packet["duration_time"]) for packet in packets]


def ffprobe_format_duration(path: Path) -> float:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(result.stdout.strip())


def ffprobe_decoded_frames(path: Path) -> int:
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(result.stdout.strip())
