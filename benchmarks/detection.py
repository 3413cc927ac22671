"""Detection benchmark (issue 7): per-frame inference time, detection throughput across streams,
and CPU per detected stream against a Frigate-style baseline measured in the same run.

1. Inference: the default model (NanoDet, 416 px) on the CPU through `Detector.detect`, real
   frames of vtest.avi decoded once by ffmpeg at Vigil's working size, batches of 1, 4, 8, with
   1 and 2 intra-op threads: p50/p95 ms per frame.
2. Throughput: `vigil run` with 1, 4, 16 streams of a `vigil sim` looping vtest.avi (768x576),
   each with `detect: {fps: 5}` and no motion gate: frames/s detected, skipped/s, mean batch.
3. CPU: simulated 1080p25 cameras (1 s GOP), detect at 1 fps: Vigil's CPU with detection
   (`decode: keyframes`, then `all`) minus the same Vigil without it, per stream, against one
   `ffmpeg` per camera decoding every frame to raw BGR plus one detector process running the
   same model on each frame (`benchmarks.detection_baseline`), per stream.
The simulator is a separate process; its CPU is never counted.
Run: `./dev bench detection [--seconds 30] [--streams 1,4,16] [--quick]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.common import machine, write_section
from benchmarks.detection_baseline import Baseline
from benchmarks.detection_infer import (
    Arithmetic,
    Timing,
    arithmetic,
    decode_frames,
    shared,
    time_inference,
    time_session_alone,
)
from benchmarks.detection_report import render
from benchmarks.detection_vigil import Counters, DetectingVigil, DetectSettings, FileSimulator
from benchmarks.serving_procs import usage

VTEST_SIZE, VTEST_FPS = "768x576", 10
FRAME_WIDTH = 640  # Vigil's detection.frame_width default: frames reach the model this wide


@dataclass(frozen=True)
class Throughput:
    """One Vigil with `streams` detected streams over the measurement window."""

    streams: int
    seconds: float
    detected_fps: float  # frames looked at per second, all streams (/metrics)
    skipped_fps: dict[str, float]  # by reason (/metrics)
    mean_batch: float
    mean_run_ms: float  # one inference run (a batch)
    api_processed_fps: float  # sum of the streams' processed_fps (…/detections/latest)
    api_skipped_fps: float
    modes: list[str]
    vigil_cpu: float  # % of one core


@dataclass(frozen=True)
class CpuRun:
    """CPU of one side over the window, with `streams` cameras."""

    side: str  # off, keyframes, all, baseline
    streams: int
    cpu: float  # % of one core, whole side
    detected_fps: float  # all streams
    modes: list[str] = field(default_factory=list)
    note: str = ""
    detector_cpu: float = float("nan")  # baseline: its detector process alone


def others_busy() -> list[str]:
    """Test runs and Vigils on the box that are not ours (they skew every figure)."""
    found, own = [], os.getpid()
    mine, pid = {own}, os.getppid()
    while pid > 1 and pid not in mine:  # our ancestors (`./dev`, `make`, a `timeout`)
        mine.add(pid)
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        line = " ".join(w.decode(errors="replace") for w in words if w)
        if parent == own:
            continue
        if "pytest" in line or "vigil sim" in line or "vigil run" in line or "benchmarks." in line:
            found.append(f"{entry.name}: {line[:110]}")
    return found


def wait_quiet(limit_s: float) -> list[str]:
    """Wait (up to `limit_s`) until no one else's tests or Vigils run; what still runs."""
    deadline = time.monotonic() + limit_s
    busy = others_busy()
    while busy and time.monotonic() < deadline:
        print(f"waiting for other work to end: {busy[0]} (+{len(busy) - 1})", flush=True)
        time.sleep(15)
        busy = others_busy()
    for line in busy:
        print(f"warning: not ours, skews the figures: {line}", flush=True)
    return busy


def cpu_each(pids: list[int], seconds: float) -> list[float]:
    """CPU % (one core = 100) of each of `pids` over `seconds`."""
    first, started = [usage(pid).cpu_s for pid in pids], time.monotonic()
    time.sleep(seconds)
    last, elapsed = [usage(pid).cpu_s for pid in pids], time.monotonic() - started
    return [100 * (b - a) / elapsed for a, b in zip(first, last, strict=True)]


def cpu_over(pids: list[int], seconds: float) -> float:
    """CPU % of `pids` together over `seconds`."""
    return sum(cpu_each(pids, seconds))


def inference_phase(args: argparse.Namespace) -> tuple[list[Timing], Arithmetic]:
    model, video = shared()
    work = arithmetic(model)
    print(f"inference: {work.gflop:.2f} GFLOP per frame in {work.convs} convolutions; this "
          f"core's sgemm {work.core_gflops:.0f} GFLOP/s (floor {work.floor_ms:.1f} ms)",
          flush=True)  # fmt: skip
    width, height = (int(v) for v in args.frame_size.split("x"))
    frames = decode_frames(video, width, height, count=48, every=15)
    print(f"inference: {len(frames)} frames of {video.name} at {width}x{height}", flush=True)
    timings = []
    for threads in args.threads_list:
        for batch in args.batches:
            timing = time_inference(model, frames, threads, batch, args.infer_frames)
            print(f"  threads={threads} batch={batch}: p50 {timing.p(0.5):.1f} ms, "
                  f"p95 {timing.p(0.95):.1f} ms per frame ({timing.runs} runs, "
                  f"{timing.detections:.1f} objects/frame)", flush=True)  # fmt: skip
            timings.append(timing)
        alone = time_session_alone(model, frames, threads, args.infer_frames)
        print(f"  threads={threads}, onnxruntime's run alone: p50 {alone.p(0.5):.1f} ms, "
              f"p95 {alone.p(0.95):.1f} ms", flush=True)  # fmt: skip
        timings.append(replace(alone, batch=0))  # batch 0: the session alone, in the report
    return timings, work


def window_of(vigil: DetectingVigil, seconds: float) -> tuple[Counters, Counters, float]:
    first = vigil.counters()
    cpu = cpu_over([vigil.process.pid], seconds)
    return first, vigil.counters(), cpu


def throughput_phase(args: argparse.Namespace, work: Path) -> list[Throughput]:
    models_dir = shared()[0].parent
    sim = FileSimulator(shared()[1], max(args.streams), VTEST_SIZE, VTEST_FPS, 1500)
    results = []
    try:
        for count in args.streams:
            print(f"throughput: {count} streams at {args.detect_fps:g} fps", flush=True)
            settings = DetectSettings(args.detect_fps, "auto", args.vigil_threads)
            urls = [sim.url(i + 1) for i in range(count)]
            vigil = DetectingVigil(urls, work / f"throughput-{count}", settings, models_dir)
            try:
                vigil.wait_ready()
                time.sleep(args.warmup)
                first, last, cpu = window_of(vigil, args.seconds)
                latest = [vigil.latest(name) for name in vigil.names]
            finally:
                vigil.stop()
            elapsed = last.at - first.at
            runs = last.runs - first.runs
            result = Throughput(
                streams=count, seconds=elapsed,
                detected_fps=(last.frames - first.frames) / elapsed,
                skipped_fps={r: (v - first.skipped.get(r, 0.0)) / elapsed
                             for r, v in last.skipped.items()},
                mean_batch=(last.batched_frames - first.batched_frames) / runs if runs else 0.0,
                mean_run_ms=1000 * (last.run_seconds - first.run_seconds) / runs if runs else 0.0,
                api_processed_fps=sum(float(x.get("processed_fps") or 0) for x in latest),
                api_skipped_fps=sum(float(x.get("skipped_fps") or 0) for x in latest),
                modes=sorted({str(x.get("mode")) for x in latest}), vigil_cpu=cpu,
            )  # fmt: skip
            print(f"  {result}", flush=True)
            results.append(result)
    finally:
        sim.stop()
    return results


def cpu_phase(args: argparse.Namespace, work: Path) -> tuple[list[CpuRun], float]:
    """Vigil off / keyframes / all / off, then the baseline, on the same cameras; also the
    simulator's CPU over the phase (not counted anywhere else)."""
    model, video = shared()
    count, fps = args.cpu_streams, args.cpu_detect_fps
    width, height = (int(v) for v in args.cpu_size.split("x"))
    frame_w = min(FRAME_WIDTH, width) // 2 * 2
    frame_h = max(2, round(frame_w * height / width / 2) * 2)  # as vigil.media.detect does
    sim = FileSimulator(video, count, args.cpu_size, args.cpu_fps, args.cpu_bitrate)
    sim_start, sim_cpu0 = time.monotonic(), usage(sim.process.pid).cpu_s
    urls = [sim.url(i + 1) for i in range(count)]
    runs: list[CpuRun] = []
    try:
        for side in ("off", "keyframes", "all", "off"):
            print(f"cpu: Vigil, {count} streams, detection {side}", flush=True)
            settings = None if side == "off" else DetectSettings(fps, side, args.cpu_threads)
            vigil = DetectingVigil(urls, work / f"cpu-{side}-{len(runs)}", settings,
                                   model.parent)  # fmt: skip
            try:
                vigil.wait_ready()
                time.sleep(args.warmup)
                first, last, cpu = window_of(vigil, args.seconds)
                latest = [vigil.latest(name) for name in vigil.names] if settings else []
            finally:
                vigil.stop()
            run = CpuRun(side, count, cpu, (last.frames - first.frames) / (last.at - first.at),
                         sorted({str(x.get("mode")) for x in latest}))  # fmt: skip
            print(f"  {run}", flush=True)
            runs.append(run)
        print(f"cpu: baseline, {count} x ffmpeg + 1 detector process", flush=True)
        baseline = Baseline(urls, f"{frame_w}x{frame_h}", fps, args.cpu_threads)
        try:
            time.sleep(args.warmup)
            before, started = baseline.stats(), time.monotonic()
            each = cpu_each(baseline.pids, args.seconds)
            after, elapsed = baseline.stats(), time.monotonic() - started
        finally:
            baseline.stop()
        detected = (after.get("detected", 0) - before.get("detected", 0)) / elapsed
        dropped = after.get("dropped", 0) - before.get("dropped", 0)
        note = (
            f"ffmpegs {sum(each[1:]):.1f} %, detector {each[0]:.1f} %; {dropped} frames "
            f"dropped; {after.get('running', 0)}/{count} ffmpeg running"
        )
        runs.append(CpuRun("baseline", count, sum(each), detected, [], note, each[0]))
        print(f"  {runs[-1]}", flush=True)
        sim_cpu = 100 * (usage(sim.process.pid).cpu_s - sim_cpu0) / (time.monotonic() - sim_start)
    finally:
        sim.stop()
    return runs, sim_cpu


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="each measurement window")
    parser.add_argument("--warmup", type=float, default=10.0, help="after streams are detecting")
    parser.add_argument("--streams", default="1,4,16", help="throughput: stream counts")
    parser.add_argument("--detect-fps", type=float, default=5.0, help="throughput: detect.fps")
    parser.add_argument("--vigil-threads", type=int, default=0,
                        help="throughput: detection.threads (0: Vigil's default)")  # fmt: skip
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--threads", default="1,2", help="inference: intra-op thread counts")
    parser.add_argument("--infer-frames", type=int, default=240, help="frames per setting")
    parser.add_argument("--frame-size", default="640x480",
                        help="inference: frame size handed to the detector (vtest at "
                        "Vigil's 640 px working width)")  # fmt: skip
    parser.add_argument("--cpu-streams", type=int, default=4)
    parser.add_argument("--cpu-size", default="1920x1080")
    parser.add_argument("--cpu-fps", type=int, default=25, help="camera fps (1 s GOP)")
    parser.add_argument("--cpu-bitrate", type=int, default=4000, help="camera kbit/s")
    parser.add_argument("--cpu-detect-fps", type=float, default=1.0)
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="detector intra-op threads, both sides")  # fmt: skip
    parser.add_argument("--phases", default="inference,throughput,cpu")
    parser.add_argument("--quick", action="store_true",
                        help="short windows, 1 and 4 streams, 2 cameras for CPU")  # fmt: skip
    parser.add_argument("--wait-quiet", type=float, default=600,
                        help="seconds to wait for others' test runs to end")  # fmt: skip
    parser.add_argument("--output", type=Path, default=Path("docs/PERFORMANCE.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.infer_frames = 10.0, 5.0, 64
        args.streams, args.cpu_streams = "1,4", 2
    args.streams = [int(n) for n in str(args.streams).split(",") if n]
    args.batches = [int(n) for n in str(args.batches).split(",") if n]
    args.threads_list = [int(n) for n in str(args.threads).split(",") if n]
    args.phases = [p for p in args.phases.split(",") if p]
    return args


def main() -> None:
    args = parse_args()
    load_before, started = os.getloadavg(), time.monotonic()
    busy: list[str] = []
    timings: list[Timing] = []
    work: Arithmetic | None = None
    throughputs: list[Throughput] = []
    cpu_runs: list[CpuRun] = []
    sim_cpu = float("nan")
    with tempfile.TemporaryDirectory(prefix="vigil-bench-detection-") as tmp:
        if "inference" in args.phases:
            busy += wait_quiet(args.wait_quiet)
            timings, work = inference_phase(args)
        if "throughput" in args.phases:
            busy += wait_quiet(args.wait_quiet)
            throughputs = throughput_phase(args, Path(tmp))
        if "cpu" in args.phases:
            busy += wait_quiet(args.wait_quiet)
            cpu_runs, sim_cpu = cpu_phase(args, Path(tmp))
    report = render(
        args, timings, work, throughputs, cpu_runs, sim_cpu, machine(), sorted(set(busy)),
        (load_before, os.getloadavg()), time.monotonic() - started,
    )  # fmt: skip
    print(report)
    if not args.no_write:
        write_section(args.output, "detection", report)


if __name__ == "__main__":
    main()
