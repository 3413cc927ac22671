"""The detection benchmark's section of docs/PERFORMANCE.md: inference time, throughput and CPU
per detected stream, with ratios to the baselines measured in the same run."""

from __future__ import annotations

import argparse
import statistics
from typing import TYPE_CHECKING

from benchmarks.detection_infer import Arithmetic, Timing

if TYPE_CHECKING:
    from benchmarks.detection import CpuRun, Throughput

NAN = float("nan")
TARGET_MS = 15.0  # issue 7: p50 per 416 px frame on one core
TARGET_RATIO = 3.0  # issue 7: baseline CPU per detected stream / Vigil's


def _f(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def command(args: argparse.Namespace) -> str:
    if args.quick:
        return "./dev bench detection --quick"
    return (
        f"./dev bench detection --seconds {args.seconds:g} --warmup {args.warmup:g} "
        f"--streams {','.join(map(str, args.streams))} --cpu-streams {args.cpu_streams} "
        f"--cpu-size {args.cpu_size} --cpu-fps {args.cpu_fps} "
        f"--cpu-detect-fps {args.cpu_detect_fps:g} --cpu-threads {args.cpu_threads}"
    )


def _inference(
    args: argparse.Namespace, timings: list[Timing], work: Arithmetic | None
) -> list[str]:
    lines = [
        "### Inference time per frame",
        "",
        f"`Detector.detect` (pre-processing, the ONNX Runtime run, decoding and NMS) on "
        f"{args.infer_frames} frames per setting: vtest.avi frames decoded once by ffmpeg to BGR "
        f"at {args.frame_size} (Vigil's working size for it), resized by the adapter to the "
        "model's 416x416. Per frame = a call's time / its batch; p50/p95 over the calls. "
        "The baseline rows time a plain onnxruntime session with the same options, `run` "
        "alone on tensors prepared beforehand: the difference is Vigil's pre- and "
        "post-processing. The default model's batch dimension is fixed at 1, so a batch is "
        "run as that many single runs (`Detector.max_batch`).",
        "",
        "| intra-op threads | batch | calls | p50 ms/frame | p95 ms/frame | mean ms/frame "
        "| p50 vs batch 1 | objects/frame |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        one = next((x for x in timings if x.threads == t.threads and x.batch == 1), None)
        ratio = t.p(0.5) / one.p(0.5) if one is not None else NAN
        batch = str(t.batch) if t.batch else "1, `session.run` alone (baseline)"
        lines.append(
            f"| {t.threads} | {batch} | {t.runs} | {_f(t.p(0.5))} | {_f(t.p(0.95))} "
            f"| {_f(t.mean_ms)} | {_f(ratio, 2)} | {_f(t.detections)} |"
        )
    single = next((t for t in timings if t.threads == 1 and t.batch == 1), None)
    if single is not None:
        met = "met" if single.p(0.5) <= TARGET_MS else "**missed**"
        lines += [
            "",
            f"- p50 ≤ {TARGET_MS:g} ms per 416 px frame on one core (1 thread, batch 1): "
            f"**{single.p(0.5):.1f} ms**, {met}.",
        ]
    alone = next((t for t in timings if t.threads == 1 and t.batch == 0), None)
    if work is not None and alone is not None:
        lines += [
            f"- What a frame costs in arithmetic: {work.gflop:.2f} GFLOP in {work.convs} "
            "convolutions (2 x multiply-adds, from the tensor shapes of an unoptimised ONNX "
            "Runtime profile). This core's dense FP32 rate, measured in the same run (numpy's "
            f"OpenBLAS sgemm, 2048x2048, 1 thread, best of 5): {work.core_gflops:.0f} GFLOP/s. "
            f"So no FP32 run of this model on one core takes less than {work.floor_ms:.1f} ms; "
            f"ONNX Runtime's session alone runs it at {work.gflops_at(alone.p(0.5)):.0f} GFLOP/s "
            f"({work.gflops_at(alone.p(0.5)) / work.core_gflops:.0%} of sgemm). "
            f"{TARGET_MS:g} ms per frame needs {work.gflops_at(TARGET_MS):.0f} GFLOP/s from one "
            f"core: {work.gflops_at(TARGET_MS) / work.core_gflops:.1f}x its sgemm rate.",
        ]
    return lines


def _throughput(args: argparse.Namespace, results: list[Throughput]) -> list[str]:
    lines = [
        "### Throughput across streams",
        "",
        f"`vigil sim` loops vtest.avi as N cameras (768x576, 10 fps, 1 s GOP, 1.5 Mbit/s, "
        f"RTSP/TCP); one `vigil run` records them all with `detect: {{enabled: true, fps: "
        f"{args.detect_fps:g}, motion: {{enabled: false}}}}` (every due frame goes to the "
        f"detector), `detection.threads: {args.vigil_threads}` (0: ONNX Runtime's default, one "
        f"per core), one worker, `max_batch` 8. After {args.warmup:g} s of detecting, "
        f"{args.seconds:g} s window: rates from `/metrics` deltas (`vigil_detection_frames_total`, "
        "`vigil_detection_skipped_frames_total`, `vigil_inference_batch_size`, "
        "`vigil_inference_seconds`); the API columns sum `processed_fps`/`skipped_fps` of each "
        "stream's `…/detections/latest` at the end.",
        "",
        "| streams | asked frames/s | detected frames/s | of asked | per stream | skipped/s "
        "(busy / motion) | mean batch | ms per run | API processed / skipped fps | decode mode "
        "| Vigil CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        asked = r.streams * args.detect_fps
        busy, motion = r.skipped_fps.get("busy", 0.0), r.skipped_fps.get("motion", 0.0)
        lines.append(
            f"| {r.streams} | {asked:g} | {r.detected_fps:.1f} | {r.detected_fps / asked:.2f} "
            f"| {r.detected_fps / r.streams:.2f} | {busy:.1f} / {motion:.1f} "
            f"| {r.mean_batch:.2f} | {r.mean_run_ms:.1f} "
            f"| {r.api_processed_fps:.1f} / {r.api_skipped_fps:.1f} | {', '.join(r.modes)} "
            f"| {r.vigil_cpu:.0f} |"
        )
    return lines


def _cpu(
    args: argparse.Namespace,
    runs: list[CpuRun],
    sim_cpu: float,
    timings: list[Timing],
    work: Arithmetic | None,
) -> list[str]:
    width, height = args.cpu_size.split("x")
    lines = [
        "### CPU per detected stream: Vigil against the Frigate-style baseline",
        "",
        f"{args.cpu_streams} simulated cameras, vtest.avi scaled to {width}x{height}, "
        f"{args.cpu_fps} fps, 1 s GOP, {args.cpu_bitrate} kbit/s, RTSP/TCP; detection at "
        f"{args.cpu_detect_fps:g} frame/s per camera, detector with {args.cpu_threads} intra-op "
        "thread(s) on both sides. Vigil: the same config with detection off (before and after, "
        "averaged), then `decode: keyframes`, then `decode: all` (no motion gate); CPU of the "
        f"`vigil run` process (utime+stime from /proc/PID/stat, 100 % = one core) over "
        f"{args.seconds:g} s after {args.warmup:g} s. Per detected stream = (with detection - "
        "off) / streams. Baseline: one `ffmpeg -rtsp_transport tcp -i URL -vf fps=F,scale=W:H "
        "-pix_fmt bgr24 -f rawvideo pipe:` per camera (every frame decoded, raw out at the "
        "detect size and rate: Vigil's working size) feeding one Python detector process that "
        "runs the same model (`Detector.detect`, batch 1) on each frame, one at a time "
        "(`benchmarks/detection_baseline.py`); per stream = (ffmpegs + detector) / streams. "
        f"The simulator's CPU ({_f(sim_cpu, 0)} % over the phase) is not counted.",
        "",
        "| side | CPU % | detected frames/s | decode mode | CPU % per detected stream "
        "| baseline / this |",
        "|---|---|---|---|---|---|",
    ]
    offs = [r.cpu for r in runs if r.side == "off"]
    off = statistics.fmean(offs) if offs else NAN
    base = next((r for r in runs if r.side == "baseline"), None)
    base_per = base.cpu / base.streams if base is not None else NAN
    verdicts = []
    for r in runs:
        if r.side == "off":
            lines.append(f"| Vigil, detection off | {r.cpu:.1f} | — | — | — | — |")
            continue
        if r.side == "baseline":
            name, per = "baseline: ffmpeg per camera + detector", r.cpu / r.streams
        else:
            name, per = f"Vigil, `decode: {r.side}`", (r.cpu - off) / r.streams
        ratio = base_per / per if per > 0 else NAN
        note = f" ({r.note})" if r.note else ""
        lines.append(
            f"| {name}{note} | {r.cpu:.1f} | {r.detected_fps:.2f} | {', '.join(r.modes) or '—'} "
            f"| {per:.2f} | {'' if r.side == 'baseline' else _f(ratio, 2)} |"
        )
        if r.side != "baseline":
            met = "met" if ratio >= TARGET_RATIO else "**missed**"
            verdicts.append(
                f"- ≥ {TARGET_RATIO:g}x lower CPU per detected stream than the baseline, "
                f"`decode: {r.side}`: **{_f(ratio, 2)}x** ({per:.2f} % vs {base_per:.2f} % of a "
                f"core per stream), {met}."
            )
    if base is not None and base.detected_fps > 0 and base.detector_cpu == base.detector_cpu:
        # The same model, threads and frame size on both sides: the baseline's detector process
        # measures what one inference costs in CPU; without it, what is left is decoding,
        # scaling and handing frames over.
        per_frame = base.detector_cpu / base.detected_fps  # % of a core per (frame/s)
        rest_base = (base.cpu - base.detector_cpu) / base.streams
        for r in runs:
            if r.side in ("keyframes", "all"):
                rest = (r.cpu - off) / r.streams - per_frame * r.detected_fps / r.streams
                verdicts.append(
                    f"- Without inference (the baseline detector's CPU per frame, "
                    f"{per_frame * 10:.1f} ms, taken off both sides), `decode: {r.side}`: "
                    f"{rest:.2f} % vs the ffmpegs' {rest_base:.2f} % of a core per stream, "
                    f"baseline / this **{_f(rest_base / rest if rest > 0 else NAN, 1)}x**."
                )
    single = next((t for t in timings if t.threads == args.cpu_threads and t.batch == 1), None)
    if single is not None and base is not None:
        share = single.p(0.5) / 10 * base.detected_fps / base.streams  # ms x frames/s -> %
        verdicts.append(
            f"- Of that, inference alone (the p50 above at {args.cpu_threads} thread(s), batch "
            f"1, times the frames detected per stream): ~{share:.2f} % of a core per stream, on "
            "either side; the rest is decoding, scaling and moving frames."
        )
    keyframes = next((r for r in runs if r.side == "keyframes"), None)
    if base is not None and keyframes is not None and base.detector_cpu == base.detector_cpu:
        verdicts.append(_break_even(base, keyframes, off, work))
    return [*lines, "", *verdicts]


def _break_even(base: CpuRun, vigil: CpuRun, off: float, work: Arithmetic | None) -> str:
    """The inference cost per frame below which Vigil's side is TARGET_RATIO x cheaper: with
    the same detector on both sides, (rest_base + i) / (rest + i) >= r  <=>  i <= (rest_base -
    r * rest) / (r - 1), i = ms per frame / 10 x frames/s per stream (% of a core)."""
    per_frame = base.detector_cpu / base.detected_fps
    rest_base = (base.cpu - base.detector_cpu) / base.streams
    rest = (vigil.cpu - off) / vigil.streams - per_frame * vigil.detected_fps / vigil.streams
    rate = vigil.detected_fps / vigil.streams
    limit_ms = 10 * (rest_base - TARGET_RATIO * rest) / (TARGET_RATIO - 1) / rate
    floor = (
        f"; this model's FP32 floor on this core is {work.floor_ms:.0f} ms (above)"
        if work is not None else ""
    )  # fmt: skip
    # Both sides decode the same whatever the detect rate below one frame per keyframe (Vigil
    # every keyframe, ffmpeg every frame); only the inference share changes with it.
    projected = ", ".join(
        f"{fps:g} frame/s {(rest_base + per_frame * fps) / (rest + per_frame * fps):.1f}x"
        for fps in (0.5, 0.2)
    )
    return (
        f"- Break-even: with the same detector on both sides, `decode: keyframes` is "
        f"{TARGET_RATIO:g}x cheaper once inference costs at most **{limit_ms:.0f} ms of CPU per "
        f"frame** at {rate:.2f} frame/s per stream (it costs {per_frame * 10:.0f} ms here{floor}). "
        f"At lower detect rates the same parts give (computed, not measured): {projected}."
    )


def render(
    args: argparse.Namespace,
    timings: list[Timing],
    work: Arithmetic | None,
    throughputs: list[Throughput],
    cpu_runs: list[CpuRun],
    sim_cpu: float,
    machine: str,
    busy: list[str],
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
    elapsed_s: float,
) -> str:
    before, after = ("/".join(f"{v:.2f}" for v in load) for load in loads)
    lines = [
        "## Detection: inference, throughput, CPU per detected stream",
        "",
        f"Command: `{command(args)}` (also `make bench`). Machine: {machine}. "
        f"Load average (1/5/15 min) at the start {before}, at the end {after}; "
        f"the run took {elapsed_s / 60:.1f} min.",
    ]
    if busy:
        lines += ["", "Other work was running during the run (figures skewed): "
                  + "; ".join(f"`{b}`" for b in busy[:5])]  # fmt: skip
    if timings:
        lines += ["", *_inference(args, timings, work)]
    if throughputs:
        lines += ["", *_throughput(args, throughputs)]
    if cpu_runs:
        lines += ["", *_cpu(args, cpu_runs, sim_cpu, timings, work)]
    return "\n".join(lines)
