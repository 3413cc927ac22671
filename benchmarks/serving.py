"""Serving benchmark (issue 6): glass-to-glass latency over RTSP and WHEP, and what each viewer
costs Vigil.

One simulated camera (1280x720 H.264, 25 fps, 2 Mbit/s, 1 s GOP) stamps the wall-clock time into
every frame just before its encoder (`vigil sim --stamp-time`); one Vigil ingests it (RTSP/TCP),
records it and serves it. Latency clients decode every frame on arrival and read the stamp
(`benchmarks.serving_latency`): RTSP straight from the simulator is the baseline, then RTSP and
WHEP through Vigil. Fan-out: viewer processes (`benchmarks.serving_viewers`) hold N viewers that
do not decode; Vigil's CPU and memory with them are compared with the same Vigil with none.
Run: `./dev bench serving [--seconds 60] [--long-minutes 10]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import machine, write_section
from benchmarks.serving_latency import Latencies, percentile, rtsp_latencies, whep_latencies
from benchmarks.serving_procs import StampingSimulator, Usage, Viewers, Vigil, usage
from benchmarks.serving_report import render

SIZE, FPS, BITRATE_KBIT = "1280x720", 25, 2000
PATHS = {
    "baseline": "RTSP/TCP from the simulator",
    "rtsp": "RTSP/TCP via Vigil",
    "baseline-udp": "RTSP/UDP from the simulator",
    "rtsp-udp": "RTSP/UDP via Vigil",
    "whep": "WHEP via Vigil",
}


@dataclass(frozen=True)
class FanOut:
    """Vigil and its viewers' client over one measurement window with `viewers` viewers."""

    kind: str
    viewers: int
    opened: int
    receiving: int
    rate: float  # median per viewer: kbit/s (RTSP) or RTP packets/s (WHEP)
    vigil_cpu: float  # % of one core
    vigil_rss_mb: float
    vigil_pss_mb: float
    client_cpu: float


def strays() -> list[str]:
    """Other simulators, Vigils and gst-launch processes on the box (not ours: reported)."""
    found, own = [], os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(w.decode(errors="replace") for w in words if w)
        if any(k in line for k in ("vigil sim", "vigil run", "gst-launch")):
            found.append(f"{entry.name}: {line[:120]}")
    return found


def latency_phase(
    sim: StampingSimulator, vigil: Vigil, paths: list[str], seconds: float, concurrent: bool
) -> dict[str, Latencies]:
    """Each path's latencies for `seconds`, one after the other (or all at once)."""
    runs: dict[str, Callable[[], Latencies]] = {
        "baseline": lambda: rtsp_latencies(sim.url, seconds),
        "rtsp": lambda: rtsp_latencies(vigil.rtsp_url, seconds),
        "baseline-udp": lambda: rtsp_latencies(sim.url, seconds, protocols="udp"),
        "rtsp-udp": lambda: rtsp_latencies(vigil.rtsp_url, seconds, protocols="udp"),
        "whep": lambda: asyncio.run(whep_latencies(vigil.whep_url, seconds)),
    }
    results: dict[str, Latencies] = {}
    if not concurrent:
        for path in paths:
            print(f"latency: {PATHS[path]} for {seconds:g} s", flush=True)
            results[path] = runs[path]()
            show(path, results[path])
        return results

    def run(path: str) -> None:
        results[path] = runs[path]()

    threads = [threading.Thread(target=run, args=(path,)) for path in paths]
    print(f"latency: {', '.join(PATHS[p] for p in paths)} at once for {seconds:g} s", flush=True)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * seconds + 60)
    for path in paths:
        show(path, results.setdefault(path, Latencies(error="did not finish")))
    return results


def show(path: str, result: Latencies) -> None:
    values = result.values(5.0)
    print(
        f"  {PATHS[path]}: {result.frames} frames, {result.unreadable} unreadable, "
        f"p50/p95/p99 {percentile(values, 0.5):.0f}/{percentile(values, 0.95):.0f}/"
        f"{percentile(values, 0.99):.0f} ms{f', error: {result.error}' if result.error else ''}",
        flush=True,
    )


def window(pids: list[int], seconds: float) -> list[tuple[float, Usage]]:
    """Per pid: (CPU % of one core over `seconds`, usage at the end)."""
    first, started = [usage(pid) for pid in pids], time.monotonic()
    time.sleep(seconds)
    last, elapsed = [usage(pid) for pid in pids], time.monotonic() - started
    return [(100 * (b.cpu_s - a.cpu_s) / elapsed, b) for a, b in zip(first, last, strict=True)]


def idle(vigil: Vigil, seconds: float) -> FanOut:
    print(f"fan-out: 0 viewers for {seconds:g} s", flush=True)
    [(cpu, now)] = window([vigil.process.pid], seconds)
    return FanOut("none", 0, 0, 0, 0.0, cpu, now.rss_mb, now.pss_mb, 0.0)


def fan_out(kind: str, url: str, count: int, vigil: Vigil, args: argparse.Namespace) -> FanOut:
    """`count` viewers of `url`; Vigil's and the client's usage over the window."""
    print(f"fan-out: {count} {kind.upper()} viewers", flush=True)
    budget = args.window + args.warmup + 240
    # WHEP viewers (per-packet Python) may be spread over a few processes; RTSP readers need one.
    processes = max(1, min(args.whep_processes if kind == "whep" else 1, count))
    shares = [count // processes + (i < count % processes) for i in range(processes)]
    clients = [Viewers(kind, url, share, budget) for share in shares]
    try:
        time.sleep(args.warmup)
        before = [c for v in clients for c in v.stats().get("counts", [])]
        measured = window([vigil.process.pid, *(v.process.pid for v in clients)], args.window)
        after = [c for v in clients for c in v.stats().get("counts", [])]
    finally:
        for viewers in clients:
            viewers.stop()
    (vigil_cpu, now), client_cpu = measured[0], sum(cpu for cpu, _ in measured[1:])
    deltas = [b - a for a, b in zip(before, after, strict=False)]
    typical = statistics.median(deltas) if deltas else 0.0
    receiving = sum(1 for d in deltas if typical and d >= 0.5 * typical)
    rate = typical * 8 / 1000 / args.window if kind == "rtsp" else typical / args.window
    result = FanOut(
        kind, count, sum(v.opened for v in clients), receiving, rate, vigil_cpu, now.rss_mb,
        now.pss_mb, client_cpu,
    )  # fmt: skip
    print(f"  {result}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="latency run per path")
    parser.add_argument(
        "--long-minutes", type=float, default=0.0, help="all paths at once, p95 per minute"
    )
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--rtsp-viewers", default="1,50,200")
    parser.add_argument("--whep-viewers", default="1,10,50")
    parser.add_argument("--whep-processes", type=int, default=2, help="WHEP client processes")
    parser.add_argument("--window", type=float, default=20.0, help="fan-out measurement window")
    parser.add_argument("--warmup", type=float, default=8.0, help="after viewers joined")
    parser.add_argument(
        "--read-batch-ms", type=int, default=None, help="Vigil's ingest.rtsp_read_batch_ms"
    )
    parser.add_argument("--output", type=Path, default=Path("docs/PERFORMANCE.md"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p in PATHS]
    rtsp_counts = [int(n) for n in args.rtsp_viewers.split(",") if n]
    whep_counts = [int(n) for n in args.whep_viewers.split(",") if n]
    long_mode = args.long_minutes > 0
    stray = strays()
    for line in stray:
        print(f"warning: not ours, skews the figures: {line}", flush=True)
    load_before, started = os.getloadavg(), time.monotonic()
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-serving-") as tmp:
        sim = StampingSimulator(SIZE, FPS, BITRATE_KBIT)
        vigil = Vigil(sim.url, Path(tmp), args.read_batch_ms)
        try:
            vigil.wait_streaming()
            why = vigil.serves_rtsp()
            if why is not None:
                missing["rtsp"] = f"Vigil's RTSP server did not play cam1 ({why})"
                missing["rtsp-udp"] = missing["rtsp"]
            why = vigil.whep_missing()
            if why is not None:
                missing["whep"] = why
            live = [p for p in paths if p not in missing]
            seconds = args.long_minutes * 60 if long_mode else args.seconds
            latencies = latency_phase(sim, vigil, live, seconds, long_mode)
            fanouts: list[FanOut] = []
            if not long_mode:
                fanouts.append(idle(vigil, args.window))
                for kind, url, counts in (
                    ("rtsp", vigil.rtsp_url, rtsp_counts),
                    ("whep", vigil.whep_url, whep_counts),
                ):
                    if kind not in missing:
                        fanouts += [fan_out(kind, url, n, vigil, args) for n in counts]
                fanouts.append(idle(vigil, args.window))
            sim_cpu = 100 * usage(sim.process.pid).cpu_s / (time.monotonic() - started)
        finally:
            vigil.stop()
            sim.stop()
    load_after = os.getloadavg()
    report = render(
        args, latencies, fanouts, missing, machine(), stray, (load_before, load_after), sim_cpu
    )
    print(report)
    if not args.no_write:
        write_section(args.output, "serving-long" if long_mode else "serving", report)


if __name__ == "__main__":
    main()
