"""What every benchmark needs: process sampling from /proc, simulated cameras, ffprobe, the
machine's description and writing a section of docs/PERFORMANCE.md."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
READY_LINE = "vigil-sim ready"


@dataclass(frozen=True)
class Sample:
    """CPU seconds and PSS of a set of processes at one moment."""

    cpu_s: float
    pss_mb: float


def sample(pids: list[int]) -> Sample:
    """Sum CPU time and PSS over `pids` (and nothing else: threads are included in the PID)."""
    cpu = pss = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICKS
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
        except (FileNotFoundError, ProcessLookupError):
            continue
    return Sample(cpu, pss)


def measure(pids: list[int], seconds: float) -> tuple[float, float]:
    """(CPU %, PSS MB at the end) of `pids` over `seconds`."""
    first, started = sample(pids), time.monotonic()
    time.sleep(seconds)
    last, elapsed = sample(pids), time.monotonic() - started
    return 100 * (last.cpu_s - first.cpu_s) / elapsed, last.pss_mb


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Simulator:
    """`vigil sim` serving `cameras` cameras on one port; can be stopped and started again."""

    cameras: int
    size: str = "1280x720"
    fps: int = 25
    bitrate_kbit: int = 2000
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    served: bool = False

    def url(self, index: int) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam{index}"

    def start(self, deadline_s: float = 60) -> float:
        """Start serving; returns the wall-clock time (epoch s) from which it serves.

        Before it first served, a port found taken (free_port's pick can be grabbed by any
        other process meanwhile) is replaced by another; afterwards the port is kept (clients
        know it) and retried: the process just stopped may still hold it for a moment."""
        deadline = time.monotonic() + deadline_s
        while True:
            command = [
                sys.executable, "-m", "vigil", "sim", "--cameras", str(self.cameras),
                "--port", str(self.port), "--size", self.size, "--fps", str(self.fps),
                "--bitrate", str(self.bitrate_kbit), "--gop", str(self.fps),
            ]  # fmt: skip
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            assert self.process.stdout is not None
            if self.process.stdout.readline().strip() == READY_LINE:
                self.served = True
                return time.time()
            self.stop()
            if not self.served:
                self.port = free_port()
            if time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start within {deadline_s:g} s")
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop serving: the process ends, so every connection to it closes."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def probe_packets(path: Path) -> tuple[int, float, float]:
    """(packets, first pts, last pts) of a file's video, read without decoding."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
         "-of", "json", str(path)], capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    times = [
        float(p["pts_time"])
        for p in json.loads(out or "{}").get("packets", [])
        if p.get("pts_time") not in (None, "N/A")
    ]
    if not times:
        return 0, 0.0, 0.0
    return len(times), min(times), max(times)


def machine() -> str:
    """One line: cores, CPU model, kernel, GStreamer, ffmpeg and Python versions."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())  # fmt: skip
    gst = subprocess.run(["gst-launch-1.0", "--version"], capture_output=True, text=True)
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True)
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"{gst.stdout.splitlines()[1] if gst.stdout else 'GStreamer ?'}, "
        f"{ffmpeg.stdout.split(' Copyright')[0] if ffmpeg.stdout else 'ffmpeg ?'}, "
        f"Python {platform.python_version()}"
    )


def write_section(path: Path, name: str, report: str) -> None:
    """Replace the `name` section of `path` (between its markers), keeping the rest; a section
    not there yet is appended."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = f"{start}\n{report.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Performance\n"
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
