"""Recording benchmark: Vigil against one `ffmpeg -c copy` recorder per camera (as Frigate does).

For each camera count N the same simulated cameras (1280x720 H.264, ~2 Mbit/s, 25 fps) are
recorded for the same time by Vigil (one process) and by N ffmpeg processes, one after the
other. Reported per side: CPU % (utime+stime over the measurement window, 100 % = one core),
memory as PSS summed over the side's processes (so shared libraries count once), and the
seconds of video missing from the recorded timeline. The simulator's own CPU is measured
separately and not counted. Run: `./dev bench [--counts 1,10,50,100,200] [--seconds 30]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Simulator, machine, measure, probe_packets, write_section

FPS = 25
SIZE = "1280x720"
BITRATE_KBIT = 2000


@dataclass(frozen=True)
class Result:
    """One side's figures for one camera count."""

    cpu_percent: float
    pss_mb: float
    missing_s: float


def run_vigil(port: int, cameras: int, seconds: float, warmup: float, work: Path) -> Result:
    data = work / "vigil"
    config = work / "vigil.yml"
    streams = "".join(
        f'  - {{name: cam{i}, source: "rtsp://127.0.0.1:{port}/cam{i}", transport: tcp}}\n'
        for i in range(1, cameras + 1)
    )
    config.write_text(f"data_dir: {data}\nlog: {{level: warning}}\nstreams:\n{streams}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_API__LISTEN"] = "127.0.0.1:0"
    process = subprocess.Popen(
        [sys.executable, "-m", "vigil", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    time.sleep(warmup)
    cpu, pss = measure([process.pid], seconds)
    process.send_signal(signal.SIGINT)
    process.wait(120)
    db = sqlite3.connect(data / "vigil.db")
    rows = db.execute("SELECT stream, path, start_us, duration_s FROM segments ORDER BY start_us")
    by_stream: dict[str, list[tuple[Path, float, float]]] = {}
    for stream, path, start_us, duration in rows:
        by_stream.setdefault(stream, []).append((Path(path), start_us / 1e6, duration or 0.0))
    db.close()
    missing = 0.0
    for segments in by_stream.values():
        frames = sum(probe_packets(path)[0] for path, _start, _duration in segments)
        span = segments[-1][1] + segments[-1][2] - segments[0][1]
        missing += max(0.0, span - frames / FPS)
    missing += (cameras - len(by_stream)) * seconds  # a camera never recorded misses it all
    shutil.rmtree(data, ignore_errors=True)
    return Result(cpu, pss, missing / cameras)


def run_ffmpeg(port: int, cameras: int, seconds: float, warmup: float, work: Path) -> Result:
    root = work / "ffmpeg"
    processes = []
    for i in range(1, cameras + 1):
        folder = root / f"cam{i}"
        folder.mkdir(parents=True)
        processes.append(subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
             "-i", f"rtsp://127.0.0.1:{port}/cam{i}", "-c", "copy", "-f", "segment",
             "-segment_time", "60", str(folder / "%05d.mp4")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
    time.sleep(warmup)
    cpu, pss = measure([p.pid for p in processes], seconds)
    for process in processes:
        process.send_signal(signal.SIGINT)
    for process in processes:
        process.wait(60)
    missing = 0.0
    for i in range(1, cameras + 1):
        files = sorted((root / f"cam{i}").glob("*.mp4"))
        probes = [probe_packets(path) for path in files]
        probes = [p for p in probes if p[0]]
        if not probes:
            missing += seconds
            continue
        frames = sum(p[0] for p in probes)
        span = max(p[2] for p in probes) + 1 / FPS - min(p[1] for p in probes)
        missing += max(0.0, span - frames / FPS)
    shutil.rmtree(root, ignore_errors=True)
    return Result(cpu, pss, missing / cameras)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,50,100,200")
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=15.0, help="time before measuring")
    parser.add_argument("--output", type=Path, default=Path("docs/PERFORMANCE.md"))
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    results: dict[int, tuple[float, Result, Result]] = {}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        work = Path(tmp)
        for n in counts:
            sim = Simulator(n, size=SIZE, fps=FPS, bitrate_kbit=BITRATE_KBIT)
            sim.start()
            try:
                assert sim.process is not None
                sim_idle, _ = measure([sim.process.pid], 5)
                print(f"N={n}: simulator idle {sim_idle:.1f}% CPU", flush=True)
                vigil = run_vigil(sim.port, n, args.seconds, args.warmup, work)
                print(f"N={n}: vigil  {vigil}", flush=True)
                ffmpeg = run_ffmpeg(sim.port, n, args.seconds, args.warmup, work)
                print(f"N={n}: ffmpeg {ffmpeg}", flush=True)
                results[n] = (sim_idle, vigil, ffmpeg)
            finally:
                sim.stop()
    report = render(results, counts, args, machine())
    print(report)
    write_section(args.output, "recording", report)


def render(
    results: dict[int, tuple[float, Result, Result]],
    counts: list[int],
    args: argparse.Namespace,
    machine_text: str,
) -> str:
    lines = [
        "| N | Vigil CPU % | ffmpeg CPU % | CPU ratio | Vigil PSS MB | ffmpeg PSS MB "
        "| Vigil MB/stream | ffmpeg MB/stream | missing s/stream Vigil | ffmpeg | sim idle CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in counts:
        sim_idle, v, f = results[n]
        ratio = v.cpu_percent / f.cpu_percent if f.cpu_percent else float("nan")
        lines.append(
            f"| {n} | {v.cpu_percent:.1f} | {f.cpu_percent:.1f} | {ratio:.2f} | {v.pss_mb:.1f} "
            f"| {f.pss_mb:.1f} | {v.pss_mb / n:.2f} | {f.pss_mb / n:.2f} | {v.missing_s:.2f} "
            f"| {f.missing_s:.2f} | {sim_idle:.1f} |"
        )
    marginal = ""
    if 10 in results and 100 in results:
        per_stream = (results[100][1].pss_mb - results[10][1].pss_mb) / 90
        ffmpeg_one = results[100][2].pss_mb / 100
        marginal = (
            f"\nVigil's marginal memory per stream, (PSS at 100 - PSS at 10) / 90: "
            f"**{per_stream:.2f} MB**, against {ffmpeg_one:.2f} MB PSS per ffmpeg recorder "
            f"(ratio {per_stream / ffmpeg_one:.2f}; target <= 0.10).\n"
        )
    command = (
        f"./dev bench --counts {','.join(map(str, counts))} --seconds {args.seconds:g} "
        f"--warmup {args.warmup:g}"
    )
    return "\n".join(
        [
            "## Recording: Vigil against one `ffmpeg -c copy` per camera",
            "",
            f"Command: `{command}` (also `make bench`). Machine: {machine_text}.",
            "",
            "Each side records the same simulated cameras (1280x720 H.264, 2 Mbit/s CBR, 25 fps, "
            "1 s GOP, RTSP over TCP) for the same time; the two sides run one after the other, "
            "never together. CPU % is utime+stime over the measurement window (100 % = one core), "
            "PSS is summed over each side's processes (`/proc/PID/smaps_rollup`), so shared "
            'libraries count once. "missing" is, per stream, the recorded timeline\'s span minus '
            "the video it holds (frames / fps): holes, not start-up or shut-down. The simulator's "
            "own CPU (shown idle, encoding only) is not counted. ffmpeg runs "
            "`ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60 out%05d.mp4`.",
            "",
            *lines,
            marginal,
            "The machine has 2 cores shared with the simulator (which sends N x 2 Mbit/s): from "
            "about N = 100 the box is saturated and both sides' figures include waiting for CPU.",
            "",
        ]
    )


if __name__ == "__main__":
    main()
