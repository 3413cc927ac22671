"""The Vigil side of the detection benchmark: one `vigil run` with N streams from a simulator,
detection on or off, and what it reports (`…/detections/latest`, `/metrics`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import READY_LINE, free_port


@dataclass(frozen=True)
class DetectSettings:
    """What every stream's `detect:` section says (None in place of this: detection off)."""

    fps: float
    decode: str  # auto, keyframes or all
    threads: int  # detection.threads (ONNX Runtime intra-op; 0: one per core)
    workers: int = 1  # detection.workers


@dataclass(frozen=True)
class Counters:
    """Detection counters of the whole process at one moment, from /metrics."""

    at: float  # time.monotonic()
    frames: float  # vigil_detection_frames_total, all streams
    skipped: dict[str, float]  # vigil_detection_skipped_frames_total by reason
    runs: float  # vigil_inference_seconds_count
    run_seconds: float  # vigil_inference_seconds_sum
    batched_frames: float  # vigil_inference_batch_size_sum


def parse_counters(text: str, at: float) -> Counters:
    frames = runs = run_seconds = batched = 0.0
    skipped: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "vigil_detection_frames_total":
                frames += s.value
            elif s.name == "vigil_detection_skipped_frames_total":
                reason = s.labels.get("reason", "?")
                skipped[reason] = skipped.get(reason, 0.0) + s.value
            elif s.name == "vigil_inference_seconds_count":
                runs += s.value
            elif s.name == "vigil_inference_seconds_sum":
                run_seconds += s.value
            elif s.name == "vigil_inference_batch_size_sum":
                batched += s.value
    return Counters(at, frames, skipped, runs, run_seconds, batched)


class DetectingVigil:
    """`vigil run` recording `urls` as cam1..camN, each with `detect` (None: detection off);
    API and RTSP server on free loopback ports; its log in `work/vigil.log`."""

    def __init__(
        self, urls: list[str], work: Path, detect: DetectSettings | None, models_dir: Path
    ) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.names = [f"cam{i + 1}" for i in range(len(urls))]
        self.detect = detect
        self.api_port = free_port()
        streams: list[dict[str, Any]] = []
        for name, url in zip(self.names, urls, strict=True):
            stream: dict[str, Any] = {"name": name, "source": url, "transport": "tcp"}
            if detect is not None:
                # No motion gate: every due frame goes to the detector, as in the baseline
                # (which has none); labels are a filter after the model, so they cost nothing.
                stream["detect"] = {
                    "enabled": True, "fps": detect.fps, "decode": detect.decode,
                    "motion": {"enabled": False},
                }  # fmt: skip
            streams.append(stream)
        config: dict[str, Any] = {
            "data_dir": str(work / "data"),
            "log": {"level": "warning"},
            "detection": {
                "models_dir": str(models_dir),
                "threads": detect.threads if detect else 0,
                "workers": detect.workers if detect else 1,
            },
            "streams": streams,
        }
        path = work / "vigil.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_API__LISTEN"] = f"127.0.0.1:{self.api_port}"
        env["VIGIL_RTSP__LISTEN"] = f"127.0.0.1:{free_port()}"
        self.log = (work / "vigil.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vigil", "run", "-c", str(path)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10)

    def _get(self, path: str) -> httpx.Response | None:
        try:
            return self.client.get(path)
        except httpx.HTTPError:
            return None

    def latest(self, name: str) -> dict[str, Any]:
        answer = self._get(f"/api/v1/streams/{name}/detections/latest")
        return dict(answer.json()) if answer is not None and answer.status_code == 200 else {}

    def counters(self) -> Counters:
        answer = self._get("/metrics")
        return parse_counters(answer.text if answer is not None else "", time.monotonic())

    def wait_ready(self, deadline_s: float = 90) -> None:
        """Until every stream is streaming and, with detection on, has had a frame detected."""
        deadline = time.monotonic() + deadline_s
        waiting = list(self.names)
        while waiting and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vigil exited with {self.process.returncode}")
            still = []
            for name in waiting:
                answer = self._get(f"/api/v1/streams/{name}")
                ok = answer is not None and answer.status_code == 200
                if ok and answer is not None and answer.json().get("state") != "streaming":
                    ok = False
                if ok and self.detect is not None:
                    latest = self.latest(name)
                    if latest.get("state") == "failed":
                        raise RuntimeError(f"{name}: detection failed: {latest.get('reason')}")
                    ok = latest.get("state") == "running" and bool(latest.get("frames"))
                if not ok:
                    still.append(name)
            waiting = still
            if waiting:
                time.sleep(0.5)
        if waiting:
            raise RuntimeError(
                f"not streaming/detecting within {deadline_s:g} s: {', '.join(waiting)}"
            )

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class FileSimulator:
    """`vigil sim` looping `video` as cam1..camN (scaled to `size`, `fps`, a keyframe every
    `gop` frames: default one a second) on a free loopback port."""

    def __init__(
        self, video: Path, cameras: int, size: str, fps: int, bitrate_kbit: int, gop: int = 0
    ) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vigil", "sim", "--cameras", str(cameras), "--port",
             str(self.port), "--size", size, "--fps", str(fps), "--bitrate", str(bitrate_kbit),
             "--gop", str(gop or fps), "--file", str(video)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != READY_LINE:
            self.stop()
            raise RuntimeError("the simulator did not start")

    def url(self, index: int) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam{index}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
