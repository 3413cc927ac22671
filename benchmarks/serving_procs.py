"""The processes of the serving benchmark: a time-stamping simulator, one Vigil serving its
camera over RTSP and WHEP, viewer processes (`benchmarks.serving_viewers`), and what /proc says
about each (CPU seconds, RSS, PSS)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import READY_LINE, TICKS, free_port


@dataclass(frozen=True)
class Usage:
    """CPU seconds (utime + stime), RSS and PSS in MB of one process at one moment."""

    cpu_s: float
    rss_mb: float
    pss_mb: float


def usage(pid: int) -> Usage:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    memory = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        memory[key] = int(rest.split()[0]) / 1024
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    return Usage(cpu, memory.get("Rss", 0.0), memory.get("Pss", 0.0))


def _stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, wait_s: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class StampingSimulator:
    """`vigil sim --stamp-time` serving one camera on a free loopback port."""

    def __init__(self, size: str, fps: int, bitrate_kbit: int) -> None:
        self.port = free_port()
        command = [
            sys.executable, "-m", "vigil", "sim", "--cameras", "1", "--port", str(self.port),
            "--size", size, "--fps", str(fps), "--bitrate", str(bitrate_kbit),
            "--gop", str(fps), "--stamp-time",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != READY_LINE:
            self.stop()
            raise RuntimeError("the simulator did not start")

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam1"

    def stop(self) -> None:
        _stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Vigil:
    """`vigil run` with one stream `cam1` from `camera_url`; API and RTSP on loopback ports."""

    def __init__(self, camera_url: str, work: Path, read_batch_ms: int | None = None) -> None:
        self.api_port, self.rtsp_port = free_port(), free_port()
        config = work / "vigil.yml"
        config.write_text(
            f"data_dir: {work / 'data'}\nlog: {{level: warning}}\n"
            f'streams:\n  - {{name: cam1, source: "{camera_url}", transport: tcp}}\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_API__LISTEN"] = f"127.0.0.1:{self.api_port}"
        env["VIGIL_RTSP__LISTEN"] = f"127.0.0.1:{self.rtsp_port}"
        if read_batch_ms is not None:  # otherwise Vigil's default low-water mark
            env["VIGIL_INGEST__RTSP_READ_BATCH_MS"] = str(read_batch_ms)
        self.log = (work / "vigil.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vigil", "run", "-c", str(config)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    @property
    def rtsp_url(self) -> str:
        return f"rtsp://127.0.0.1:{self.rtsp_port}/cam1"

    @property
    def whep_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/cam1/whep"

    def wait_streaming(self, deadline_s: float = 60) -> None:
        """Until the API says cam1 is streaming."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vigil exited with {self.process.returncode}")
            try:
                url = f"http://127.0.0.1:{self.api_port}/api/v1/streams/cam1"
                if httpx.get(url, timeout=2).json().get("state") == "streaming":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"cam1 not streaming within {deadline_s:g} s")

    def serves_rtsp(self, deadline_s: float = 20) -> str | None:
        """None once an RTSP session to cam1 plays, else why not."""
        from vigil.media.rtsp import RtspError, open_session

        deadline, why = time.monotonic() + deadline_s, "not tried"
        while time.monotonic() < deadline:
            try:
                open_session(self.rtsp_url).close()
                return None
            except RtspError as error:
                why = str(error)
            time.sleep(0.5)
        return why

    def whep_missing(self) -> str | None:
        """None when POST /cam1/whep is routed (a bad offer is refused, not 404/405)."""
        try:
            answer = httpx.post(
                self.whep_url, content="v=0\r\n", headers={"Content-Type": "application/sdp"}
            )
        except httpx.HTTPError as error:
            return f"WHEP endpoint unreachable ({error})"
        if answer.status_code in (404, 405):
            return f"Vigil has no WHEP endpoint yet (POST /cam1/whep: {answer.status_code})"
        return None

    def usage(self) -> Usage:
        return usage(self.process.pid)

    def stop(self) -> None:
        _stop(self.process, signal.SIGINT, 60)
        self.log.close()


class Viewers:
    """A `benchmarks.serving_viewers` process holding `count` viewers of `url`."""

    def __init__(self, kind: str, url: str, count: int, max_seconds: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.serving_viewers", kind, url, str(count),
             "--max-seconds", str(max_seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        self.opened = int(line[1]) if len(line) == 2 and line[0] == "ready" else 0

    def stats(self) -> dict[str, Any]:
        """{"open": viewers still connected, "counts": per-viewer bytes or packets}."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write("stats\n")
            self.process.stdin.flush()
            return dict(json.loads(self.process.stdout.readline()))
        except (OSError, ValueError):
            return {"open": 0, "counts": []}

    def stop(self) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(60)
        except (OSError, subprocess.TimeoutExpired):
            _stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
