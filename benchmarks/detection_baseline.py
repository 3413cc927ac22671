"""The Frigate-style detection baseline: one `ffmpeg` per camera decoding every frame and writing
raw BGR at the detect size and rate to a pipe, and one detector process running the model on
each frame, one inference at a time (as Frigate's detector process does).

Run by `benchmarks.detection` as `python -m benchmarks.detection_baseline URL... --size WxH
--fps F --threads T`: this process starts the ffmpeg children, prints `ready PID...` (theirs)
once every camera delivered a frame, then answers `stats` on stdin with one JSON line and ends
on `quit`. A reader thread per camera keeps only the newest frame (a detector that falls behind
drops frames, counted, instead of queueing them), like Frigate's capture when its detector is busy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.detection_infer import MIN_SCORE, load_detector, shared


def ffmpeg_command(url: str, width: int, height: int, fps: float) -> list[str]:
    """The per-camera decoder: every frame decoded, `fps` of them scaled and written raw."""
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
        "-vf", f"fps={fps:g},scale={width}:{height}", "-pix_fmt", "bgr24", "-f", "rawvideo",
        "pipe:",
    ]  # fmt: skip


@dataclass
class Camera:
    """One ffmpeg child and the newest frame it wrote."""

    url: str
    process: subprocess.Popen[bytes]
    frame: np.ndarray | None = None
    received: int = 0
    detected: int = 0
    dropped: int = 0  # replaced before the detector took them
    fresh: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def read_frames(camera: Camera, size: int, shape: tuple[int, int, int], ready: threading.Event,
                wake: threading.Event) -> None:  # fmt: skip
    assert camera.process.stdout is not None
    pipe = camera.process.stdout
    while True:
        buffer = bytearray(size)
        view, got = memoryview(buffer), 0
        while got < size:
            n = pipe.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                return
            got += n
        with camera.lock:
            if camera.fresh:
                camera.dropped += 1
            camera.frame = np.frombuffer(buffer, np.uint8).reshape(shape)
            camera.fresh = True
            camera.received += 1
        ready.set()
        wake.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    model, _ = shared()
    detector = load_detector(model, args.threads)
    wake = threading.Event()
    cameras, events = [], []
    for url in args.urls:
        process = subprocess.Popen(
            ffmpeg_command(url, width, height, args.fps),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        camera, ready = Camera(url, process), threading.Event()
        cameras.append(camera)
        events.append(ready)
        threading.Thread(
            target=read_frames, args=(camera, width * height * 3, (height, width, 3), ready, wake),
            daemon=True,
        ).start()  # fmt: skip
    for ready in events:
        ready.wait(60)
    print("ready", *(c.process.pid for c in cameras), flush=True)
    stop = threading.Event()
    threading.Thread(target=detect_loop, args=(detector, cameras, wake, stop), daemon=True).start()
    for line in sys.stdin:
        if line.strip() == "stats":
            stats: dict[str, Any] = {
                "received": sum(c.received for c in cameras),
                "detected": sum(c.detected for c in cameras),
                "dropped": sum(c.dropped for c in cameras),
                "running": sum(c.process.poll() is None for c in cameras),
            }
            print(json.dumps(stats), flush=True)
        elif line.strip() == "quit":
            break
    stop.set()
    for camera in cameras:
        camera.process.terminate()
    for camera in cameras:
        try:
            camera.process.wait(10)
        except subprocess.TimeoutExpired:
            camera.process.kill()
            camera.process.wait()


class Baseline:
    """The baseline's detector process (this module run as a program) and its ffmpeg children."""

    def __init__(self, urls: list[str], size: str, fps: float, threads: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.detection_baseline", *urls, "--size", size,
             "--fps", f"{fps:g}", "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        words = self.process.stdout.readline().split()
        if not words or words[0] != "ready":
            self.stop()
            raise RuntimeError("the baseline's detector process did not start")
        self.ffmpeg_pids = [int(word) for word in words[1:]]

    @property
    def pids(self) -> list[int]:
        return [self.process.pid, *self.ffmpeg_pids]

    def stats(self) -> dict[str, Any]:
        """{"received", "detected", "dropped": frames over all cameras, "running": ffmpegs}."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write("stats\n")
            self.process.stdin.flush()
            return dict(json.loads(self.process.stdout.readline()))
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
            self.process.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def detect_loop(detector: Any, cameras: list[Camera], wake: threading.Event,
                stop: threading.Event) -> None:  # fmt: skip
    """One inference at a time, taking the cameras' newest frames in turn."""
    while not stop.is_set():
        wake.clear()  # before looking: a frame arriving meanwhile sets it again
        ran = False
        for camera in cameras:
            with camera.lock:
                frame, camera.fresh = (camera.frame if camera.fresh else None), False
            if frame is None:
                continue
            detector.detect([frame], MIN_SCORE)
            camera.detected += 1
            ran = True
        if not ran:
            wake.wait(0.5)


if __name__ == "__main__":
    main()
