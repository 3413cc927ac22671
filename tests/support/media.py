"""Real-tool helpers for tests: the simulator as a child process, ffprobe as the judge."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import OperationalError

from vigil.store.db import Database
from vigil.store.recordings import SegmentRow, SegmentStore

READY_LINE = "vigil-sim ready"


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def simulator(
    *,
    cameras: int = 3,
    codec: str = "h264",
    size: str = "640x360",
    fps: int = 25,
    bitrate: int = 800,
    gop: int | None = None,
    port: int | None = None,
) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Run `vigil sim` as a child process; yields (port, process) once it serves."""
    port = port or free_port()
    command = [
        sys.executable, "-m", "vigil", "sim", "--cameras", str(cameras), "--port", str(port),
        "--codec", codec, "--size", size, "--fps", str(fps), "--bitrate", str(bitrate),
    ]  # fmt: skip
    if gop:
        command += ["--gop", str(gop)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"simulator exited with {process.wait()}")
            if line.strip() == READY_LINE:
                break
        else:
            raise RuntimeError("simulator not ready within 30 s")
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@dataclass(frozen=True)
class Probe:
    """What ffprobe reads from a file (decoding every frame)."""

    codec: str
    width: int
    height: int
    frames: int
    duration: float
    first_pts: float


def ffprobe(path: Path) -> Probe:
    """Decode `path` with ffprobe; raises if ffprobe cannot read it."""
    result = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
            "-show_entries", "stream=codec_name,width,height,nb_read_frames,start_time,duration",
            "-show_entries", "format=duration", "-of", "json", str(path),
        ],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    data = json.loads(result.stdout)
    stream = data["streams"][0]
    duration = stream.get("duration") or data["format"]["duration"]
    return Probe(
        codec=stream["codec_name"],
        width=int(stream["width"]),
        height=int(stream["height"]),
        frames=int(stream["nb_read_frames"]),
        duration=float(duration),
        first_pts=float(stream.get("start_time") or 0.0),
    )


def segment_files(root: Path) -> list[Path]:
    """Every recorded segment under `root` (quarantine excluded), sorted."""
    return sorted(
        p for p in root.rglob("*.mp4") if not any(part.startswith(".") for part in p.parts)
    )


def wait_for(predicate, timeout: float, interval: float = 0.2, message: str = "") -> None:  # type: ignore[no-untyped-def]
    """Poll `predicate` until true; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout} s")


def environment_without_vigil() -> dict[str, str]:
    """os.environ minus VIGIL_* variables (the config loader rejects unknown ones), with the
    API and the RTSP server on free ports, so Vigils started by tests never fight over 8080 or
    8554."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_API__LISTEN"] = "127.0.0.1:0"
    env["VIGIL_RTSP__LISTEN"] = "127.0.0.1:0"
    return env


def segment_rows(db_path: Path, limit: int = 100_000) -> list[SegmentRow]:
    """A running Vigil's segment rows, read from outside; none while it has created the
    database file but not yet its tables."""
    with Database(db_path) as db:
        try:
            return SegmentStore(db).list_segments(limit=limit)
        except OperationalError:
            return []
