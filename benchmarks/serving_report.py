"""The serving benchmark's section of docs/PERFORMANCE.md: latency and fan-out tables, with
ratios to the baselines measured in the same run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from benchmarks.serving_latency import Latencies, percentile

if TYPE_CHECKING:
    from benchmarks.serving import FanOut

NAN = float("nan")
SKIP_S = 5.0  # start-up (first keyframe, jitter buffers filling) is not steady-state latency


def _ms(value: float) -> str:
    return "—" if value != value else f"{value:.0f}"  # NaN: no value


def _command(args: argparse.Namespace) -> str:
    batch = "" if args.read_batch_ms is None else f" --read-batch-ms {args.read_batch_ms}"
    if args.long_minutes > 0:
        return (
            f"./dev bench serving --long-minutes {args.long_minutes:g} --paths {args.paths}{batch}"
        )
    return (
        f"./dev bench serving --seconds {args.seconds:g} --paths {args.paths} "
        f"--rtsp-viewers {args.rtsp_viewers} --whep-viewers {args.whep_viewers} "
        f"--window {args.window:g} --warmup {args.warmup:g}{batch}"
        + (f" --whep-processes {args.whep_processes}" if args.whep_processes != 1 else "")
    )


ROWS = (
    ("baseline", "RTSP/TCP from the simulator (baseline)", False),
    ("rtsp", "RTSP/TCP via Vigil", False),
    ("baseline-udp", "RTSP/UDP from the simulator (baseline)", False),
    ("rtsp-udp", "RTSP/UDP via Vigil", False),
    ("whep", "WHEP via Vigil, decoded (out of aiortc)", False),
    ("whep", "WHEP via Vigil, frame's last RTP packet in", True),
)


def _p(
    latencies: dict[str, Latencies], path: str, fraction: float, complete: bool = False
) -> float:
    result = latencies.get(path)
    return percentile(result.values(SKIP_S, complete=complete), fraction) if result else NAN


def _latency_table(latencies: dict[str, Latencies], missing: dict[str, str]) -> list[str]:
    lines = [
        "| path | frames read after 5 s | unreadable (of which in the first 5 s) | p50 ms "
        "| p95 ms | p99 ms | max ms | p50 - baseline | p95 - baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path, name, complete in ROWS:
        if path in missing:
            if not complete:
                lines.append(f"| {name} | not measured: {missing[path]} |" + " |" * 7)
            continue
        if path not in latencies:
            continue
        result = latencies[path]
        values = result.values(SKIP_S, complete=complete)
        p50, p95, p99 = (percentile(values, f) for f in (0.5, 0.95, 0.99))
        top = float(max(values)) if values else NAN
        base = "baseline-udp" if path == "rtsp-udp" else "baseline"
        d50 = p50 - _p(latencies, base, 0.5)
        d95 = p95 - _p(latencies, base, 0.95)
        error = f" ({result.error})" if result.error else ""
        own = path.startswith("baseline")
        lines.append(
            f"| {name}{error} | {len(values)} | {result.unreadable} "
            f"({sum(at < SKIP_S for at in result.unreadable_at)}) | {_ms(p50)} | {_ms(p95)} "
            f"| {_ms(p99)} | {_ms(top)} | {'' if own or d50 != d50 else f'{d50:+.0f}'} "
            f"| {'' if own or d95 != d95 else f'{d95:+.0f}'} |"
        )
    return lines


def _targets(latencies: dict[str, Latencies]) -> list[str]:
    lines = []
    for complete, how in ((False, "decoded by aiortc"), (True, "last RTP packet in")):
        whep95 = _p(latencies, "whep", 0.95, complete)
        if whep95 == whep95:
            lines.append(
                f"- WHEP p95 < 100 ms on loopback ({how}): **{whep95:.0f} ms**, "
                f"{'met' if whep95 < 100 else 'NOT met'}."
            )
    for path, base, name in (("rtsp", "baseline", "TCP"), ("rtsp-udp", "baseline-udp", "UDP")):
        added = _p(latencies, path, 0.95) - _p(latencies, base, 0.95)
        if added == added:
            lines.append(
                f"- Vigil adds < 20 ms over the baseline (RTSP/{name}, p95 via Vigil - p95 from "
                f"the simulator, the same client): **{added:+.0f} ms**, "
                f"{'met' if added < 20 else 'NOT met'}."
            )
    return lines


def _per_minute(latencies: dict[str, Latencies]) -> list[str]:
    rows = [
        (name, latencies[path].complete if complete else latencies[path].samples)
        for path, name, complete in ROWS
        if path in latencies
    ]
    rows = [(name, samples) for name, samples in rows if samples]
    if not rows:
        return []
    # Whole minutes only: a last part-minute (the clients stop a few seconds apart) is noise.
    minutes = max(1, int(max(samples[-1][0] for _, samples in rows) // 60))
    lines = [
        "| minute | " + " | ".join(f"{name}: p95 ms" for name, _ in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]
    series: list[list[float]] = [[] for _ in rows]
    for minute in range(minutes):
        for column, (_, samples) in enumerate(rows):
            values = [v for at, v in samples if minute * 60 <= at < (minute + 1) * 60]
            series[column].append(percentile(values, 0.95))
        lines.append(f"| {minute + 1} | " + " | ".join(_ms(c[-1]) for c in series) + " |")
    slopes = []
    for (name, _), values in zip(rows, series, strict=True):
        points = [(i, v) for i, v in enumerate(values) if v == v]
        if len(points) >= 3:
            mean_x = sum(i for i, _ in points) / len(points)
            mean_y = sum(v for _, v in points) / len(points)
            slope = sum((i - mean_x) * (v - mean_y) for i, v in points) / sum(
                (i - mean_x) ** 2 for i, _ in points
            )
            slopes.append(f"{name} {slope:+.2f} ms/min")
    if slopes:
        lines += ["", "Least-squares slope of the per-minute p95: " + "; ".join(slopes) + "."]
    return lines


def _fanout_table(fanouts: list[FanOut]) -> list[str]:
    idles = [f for f in fanouts if f.kind == "none"]
    if not idles:
        return []
    cpu0 = sum(f.vigil_cpu for f in idles) / len(idles)
    rss0, pss0 = idles[0].vigil_rss_mb, idles[0].vigil_pss_mb
    lines = [
        "| viewers | opened / receiving | median per viewer | Vigil CPU % | x 0 viewers "
        "| CPU % per viewer | Vigil RSS MB | Vigil PSS MB | PSS MB per viewer "
        "| RSS MB per viewer | client CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in fanouts:
        if f.kind == "none":
            label = "0 (before)" if f is idles[0] else "0 (after)"
            lines.append(
                f"| {label} | | | {f.vigil_cpu:.1f} | {f.vigil_cpu / cpu0:.2f} | | "
                f"{f.vigil_rss_mb:.1f} | {f.vigil_pss_mb:.1f} | | | |"
            )
            continue
        unit = "kbit/s" if f.kind == "rtsp" else "RTP packets/s"
        n = f.viewers
        lines.append(
            f"| {n} {f.kind.upper()} | {f.opened} / {f.receiving} | {f.rate:.0f} {unit} "
            f"| {f.vigil_cpu:.1f} | {f.vigil_cpu / cpu0:.2f} | {(f.vigil_cpu - cpu0) / n:.2f} "
            f"| {f.vigil_rss_mb:.1f} | {f.vigil_pss_mb:.1f} | {(f.vigil_pss_mb - pss0) / n:.2f} "
            f"| {(f.vigil_rss_mb - rss0) / n:.2f} | {f.client_cpu:.1f} |"
        )
    return lines + _marginal(fanouts)


def _marginal(fanouts: list[FanOut]) -> list[str]:
    """Per viewer between the two largest counts of a kind: without the one-off cost of the
    first viewer (the RTSP media or the WebRTC fan-out pipeline being built)."""
    lines = []
    for kind in ("rtsp", "whep"):
        runs = sorted((f for f in fanouts if f.kind == kind), key=lambda f: f.viewers)
        if len(runs) < 2:
            continue
        low, high = runs[-2], runs[-1]
        n = high.viewers - low.viewers
        lines.append(
            f"- {kind.upper()}, from {low.viewers} to {high.viewers} viewers: "
            f"**{(high.vigil_cpu - low.vigil_cpu) / n:.3f} % of a core and "
            f"{(high.vigil_pss_mb - low.vigil_pss_mb) / n:.2f} MB PSS "
            f"({(high.vigil_rss_mb - low.vigil_rss_mb) / n:.2f} MB RSS) per viewer**; the "
            f"client: {(high.client_cpu - low.client_cpu) / n:.3f} % of a core per viewer."
        )
    return ["", *lines] if lines else []


def render(
    args: argparse.Namespace,
    latencies: dict[str, Latencies],
    fanouts: list[FanOut],
    missing: dict[str, str],
    machine_text: str,
    strays: list[str],
    loads: tuple[tuple[float, ...], tuple[float, ...]],
    sim_cpu: float,
) -> str:
    long_mode = args.long_minutes > 0
    title = "Serving, long run: latency per minute" if long_mode else "Serving: latency, fan-out"
    load = (
        f"Load average (1/5/15 min) at the start {'/'.join(f'{x:.2f}' for x in loads[0])}, "
        f"at the end {'/'.join(f'{x:.2f}' for x in loads[1])}; the simulator (encoding, and "
        f"stamping in Python) used {sim_cpu:.0f} % of a core."
        + (f" Other media processes were running: {len(strays)}." if strays else "")
    )
    lines = [
        f"## {title}",
        "",
        f"Command: `{_command(args)}`. Machine: {machine_text}. {load}",
        "",
        "One simulated camera, 1280x720 H.264 (x264 zerolatency, ultrafast), 25 fps, 2 Mbit/s, "
        "1 s GOP, stamps the wall-clock time into each raw frame just before its encoder "
        "(`vigil sim --stamp-time`); one Vigil ingests it over RTSP/TCP, records it and serves "
        "it. A client decodes every frame and reads the stamp on arrival: latency = arrival - "
        "stamp, same machine, same clock, so it includes encoding, sending, Vigil, the client's "
        "jitter buffer and decoding. RTSP clients: `rtspsrc latency=0 protocols=tcp|udp ! "
        "rtph264depay ! h264parse ! avdec_h264 max-threads=1 ! appsink`; WHEP: aiortc "
        f"(PyAV decoder), arrival = `track.recv()` returning. The first {SKIP_S:g} s of each "
        "client are left out (start-up).",
        "",
    ]
    if long_mode:
        lines += [
            "These paths ran at the same time, one decoding client each, sharing the 2 cores.",
            "",
            *_latency_table(latencies, missing),
            "",
            *_per_minute(latencies),
        ]
    else:
        lines += [
            "### Latency (paths one after the other, the same Vigil and camera)",
            "",
            *_latency_table(latencies, missing),
            "",
            *_targets(latencies),
            "",
            "### Fan-out: what each viewer costs Vigil",
            "",
            f"Viewers join, then after {args.warmup:g} s Vigil's CPU (utime+stime from "
            f"/proc/PID/stat over {args.window:g} s, 100 % = one core) and memory "
            "(/proc/PID/smaps_rollup at the end of the window) are read; per viewer = (with N - "
            "with 0) / N, against the same Vigil with no viewer (CPU: mean of the 0-viewer "
            "windows before and after; memory: before). Viewers do not decode and live in one "
            f"client process ({args.whep_processes} for WHEP; their CPU is shown apart): RTSP "
            "readers are Vigil's RTSP client for "
            "the handshake and then one thread reading the interleaved TCP streams into the "
            "void; WHEP viewers are aiortc peers whose decoder only counts frames (RTP, SRTP, "
            'RTCP and depayloading still run in Python). "Receiving" counts viewers that got '
            "at least half the median viewer's data in the window.",
            "",
            *_fanout_table(fanouts),
        ]
    return "\n".join(lines) + "\n"
