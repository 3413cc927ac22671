"""Resilience benchmarks: how fast Vigil heals, what it loses, and whether it leaks while doing so.

`recovery`: N cameras (default 50) all drop at once (the simulator serving them stops) and come
back after an outage; per camera: seconds from the camera being back to Vigil recording it again
(the end of the gap Vigil stored), and video lost beyond the outage itself (from the recorded
files: the timeline's span minus the frames it holds). The baseline measured in the same run is a
cold start: seconds from Vigil's `READY=1` to each camera's first recorded frame.

`soak`: 100 cameras for 30 minutes, 1 in 10 flapping (down 30 s, up 30 s). Vigil's RSS, PSS,
open fds and threads are sampled every minute and their slope reported; every flap's recovery is
measured; at the end every camera must be recording again (no stuck stream) and the steady
cameras must have no gap at all (isolation).

Run: `./dev bench recovery [--cameras 50 --outages 5,30]`, `./dev bench soak [--minutes 30]`.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import Simulator, machine, probe_packets, sample, write_section

SIZE = "640x360"
FPS = 15
BITRATE_KBIT = 500


class NotifyListener:
    """Plays systemd's part of sd_notify: a datagram socket that records what Vigil says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ready_at: float | None = None
        self.status = ""
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.settimeout(0.5)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._done.is_set():
            try:
                message = self._socket.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            for line in message.splitlines():
                key, _, value = line.partition("=")
                self._on_line(key, value)

    def _on_line(self, key: str, value: str) -> None:
        if key == "READY" and self.ready_at is None:
            self.ready_at = time.time()
        elif key == "STATUS":
            self.status = value

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self._socket.close()


@dataclass
class VigilUnderTest:
    """`vigil run` recording `urls` as cam1…camN, told to notify us like systemd would."""

    work: Path
    urls: list[str]
    process: subprocess.Popen[bytes] | None = None
    notify: NotifyListener | None = None
    data: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = self.work / "vigil"

    @property
    def names(self) -> list[str]:
        return [f"cam{i}" for i in range(1, len(self.urls) + 1)]

    def start(self) -> None:
        config = self.work / "vigil.yml"
        streams = "".join(
            f'  - {{name: {name}, source: "{url}", transport: tcp}}\n'
            for name, url in zip(self.names, self.urls, strict=True)
        )
        config.write_text(f"data_dir: {self.data}\nlog: {{level: warning}}\nstreams:\n{streams}")
        self.notify = NotifyListener(self.work / "notify.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env["VIGIL_API__LISTEN"] = "127.0.0.1:0"
        env["NOTIFY_SOCKET"] = str(self.notify.path)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vigil", "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.work / "vigil.log", "wb"),  # noqa: SIM115 - closed with the process
            env=env,
        )
        deadline = time.monotonic() + 120
        while self.notify.ready_at is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vigil did not become ready; see {self.work / 'vigil.log'}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(120)
        if self.notify is not None:
            self.notify.close()

    def query(self, sql: str, *params: object) -> list[Any]:
        """Read Vigil's index as an operator would, while it runs (WAL: readers never block)."""
        db = sqlite3.connect(f"file:{self.data / 'vigil.db'}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def first_frames(self) -> dict[str, float]:
        """Each stream's first recorded frame (epoch s)."""
        rows = self.query("SELECT stream, MIN(start_us) FROM segments GROUP BY stream")
        return {str(stream): int(start) / 1e6 for stream, start in rows}

    def gaps(self, since: float) -> list[tuple[str, float, float | None, str]]:
        """(stream, start, end or None, reason) of the gaps that began at or after `since`."""
        rows = self.query(
            "SELECT stream, start_us, end_us, reason FROM gaps WHERE start_us >= ? "
            "ORDER BY start_us",
            int(since * 1e6),
        )
        return [
            (str(s), int(a) / 1e6, None if b is None else int(b) / 1e6, str(r))
            for s, a, b, r in rows
        ]

    def holes(self) -> dict[str, float]:
        """Per stream: recorded span minus the video the files hold (frames / fps), in seconds."""
        rows = self.query(
            "SELECT stream, path, start_us, duration_s FROM segments ORDER BY start_us"
        )
        by_stream: dict[str, list[tuple[Path, float, float]]] = {}
        for stream, path, start_us, duration in rows:
            by_stream.setdefault(str(stream), []).append(
                (Path(str(path)), int(start_us) / 1e6, float(duration or 0.0))
            )
        holes = {}
        for stream, segments in by_stream.items():
            frames = sum(probe_packets(path)[0] for path, _start, _duration in segments)
            span = segments[-1][1] + segments[-1][2] - segments[0][1]
            holes[stream] = max(0.0, span - frames / FPS)
        return holes

    def silent_streams(self, quiet_s: float) -> list[str]:
        """Streams none of whose files was written in the last `quiet_s` seconds."""
        newest: dict[str, float] = {}
        root = self.data / "recordings"
        for stream_dir in root.iterdir() if root.exists() else []:
            for path in stream_dir.rglob("*.mp4"):
                newest[stream_dir.name] = max(newest.get(stream_dir.name, 0.0),
                                              path.stat().st_mtime)  # fmt: skip
        now = time.time()
        return [name for name in self.names if now - newest.get(name, 0.0) > quiet_s]


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def stats(values: Iterable[float]) -> str:
    items = sorted(values)
    if not items:
        return "—"
    p95 = items[min(len(items) - 1, round(0.95 * (len(items) - 1)))]
    return f"{statistics.median(items):.2f} / {p95:.2f} / {items[-1]:.2f}"


# -- recovery ----------------------------------------------------------------------------------


@dataclass
class Round:
    outage_s: float
    down_at: float
    up_at: float
    recovery: dict[str, float]  # stream -> seconds from camera back to recording again
    reasons: set[str]


def recovery(args: argparse.Namespace) -> str:
    outages = [float(x) for x in args.outages.split(",")]
    sim = Simulator(args.cameras, size=SIZE, fps=FPS, bitrate_kbit=BITRATE_KBIT)
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        sim.start()
        vigil = VigilUnderTest(Path(tmp), [sim.url(i) for i in range(1, args.cameras + 1)])
        try:
            vigil.start()
            assert vigil.notify is not None and vigil.notify.ready_at is not None
            ready_at = vigil.notify.ready_at
            if not wait_until(lambda: len(vigil.first_frames()) == args.cameras, 120):
                raise RuntimeError("not every camera was recording 120 s after start")
            cold = {k: v - ready_at for k, v in vigil.first_frames().items()}
            print(f"cold start: {stats(cold.values())} s (median / p95 / max)", flush=True)
            for outage in outages:
                time.sleep(args.steady)
                down_at = time.time()
                sim.stop()
                # Vigil probes a vanished camera every second: a random extra fraction of a
                # second samples where in that second the camera comes back.
                time.sleep(outage + random.uniform(0, 1))
                up_at = sim.start()

                def healed(since: float = down_at) -> bool:
                    gaps = vigil.gaps(since - 1)
                    healed_streams = {g[0] for g in gaps if g[2] is not None}
                    return len(healed_streams) == int(args.cameras)

                if not wait_until(healed, 180, 0.5):
                    print("not every camera recovered within 180 s", flush=True)
                gaps = vigil.gaps(down_at - 1)
                first_end: dict[str, float] = {}
                for stream, _start, end, _reason in gaps:
                    if end is not None and stream not in first_end:
                        first_end[stream] = end
                rounds.append(Round(
                    outage_s=up_at - down_at, down_at=down_at, up_at=up_at,
                    recovery={s: end - up_at for s, end in first_end.items()},
                    reasons={g[3] for g in gaps},
                ))  # fmt: skip
                print(f"outage {outage:g} s: recovered {len(first_end)}/{args.cameras}, "
                      f"{stats(rounds[-1].recovery.values())} s", flush=True)  # fmt: skip
            time.sleep(args.steady)
        finally:
            vigil.stop()
            sim.stop()
        holes = vigil.holes()
        gap_count = len(vigil.gaps(0))
    outage_total = sum(r.outage_s for r in rounds)
    beyond = {s: h - outage_total for s, h in holes.items()}
    return render_recovery(args, cold, rounds, beyond, gap_count)


def render_recovery(
    args: argparse.Namespace,
    cold: dict[str, float],
    rounds: list[Round],
    beyond: dict[str, float],
    gap_count: int,
) -> str:
    cold_max = max(cold.values())
    lines = [
        "| event | cameras back recording | seconds to recording: median / p95 / max "
        "| all recording after | vs cold start (max/max) |",
        "|---|---|---|---|---|",
        f"| cold start (from READY=1) | {len(cold)}/{args.cameras} | {stats(cold.values())} "
        f"| {cold_max:.2f} s | 1.00 |",
    ]
    for r in rounds:
        worst = max(r.recovery.values(), default=float("nan"))
        lines.append(
            f"| all cameras down {r.outage_s:.1f} s | {len(r.recovery)}/{args.cameras} "
            f"| {stats(r.recovery.values())} | {worst:.2f} s | {worst / cold_max:.2f} |"
        )
    outages = ", ".join(f"{r.outage_s:.1f}" for r in rounds)
    return "\n".join([
        "## Recovery: every camera drops at once and comes back",
        "",
        f"Command: `./dev bench recovery --cameras {args.cameras} --outages {args.outages} "
        f"--steady {args.steady:g}`. Machine: {machine()}.",
        "",
        f"{args.cameras} simulated cameras ({SIZE}, {FPS} fps, 1 s GOP, {BITRATE_KBIT} kbit/s, "
        "RTSP over TCP) served by one simulator process, which is stopped (every connection "
        "closes, the port refuses) and started again after the outage (plus a random fraction "
        "of a second, so that rounds sample where in Vigil's 1 s reachability probe the cameras "
        "return). \"Seconds to recording\" "
        "runs from the moment the cameras serve again to the end of the gap Vigil stored (its "
        "first recorded frame after the outage); the baseline is a cold start, from Vigil's "
        "`READY=1` to each camera's first recorded frame, in the same run.",
        "",
        *lines,
        "",
        f"Video lost beyond the outages ({outages} s) per camera, from the recorded files "
        "(timeline span minus frames / fps, minus the outages): median / p95 / max "
        f"**{stats(beyond.values())} s**. Gaps stored: {gap_count} "
        f"({len(rounds)} per camera expected: {len(rounds) * args.cameras}).",
        "",
    ])  # fmt: skip


# -- soak --------------------------------------------------------------------------------------


@dataclass
class Flap:
    stream: str
    down_at: float
    up_at: float | None = None


@dataclass(frozen=True)
class Usage:
    at: float
    rss_mb: float
    pss_mb: float
    fds: int
    threads: int
    cpu_s: float


def usage(pid: int) -> Usage:
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    now = sample([pid])
    return Usage(
        at=time.time(),
        rss_mb=int(status["VmRSS"].split()[0]) / 1024,
        pss_mb=now.pss_mb,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(status["Threads"]),
        cpu_s=now.cpu_s,
    )


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (time s, value), per hour."""
    if len(points) < 2:
        return float("nan")
    return float(statistics.linear_regression(*zip(*points, strict=True)).slope) * 3600


class Flapper:
    """Stops and starts each flapping camera every `period` seconds, each in its own thread (a
    simulator takes a second or two to start: one thread for all would bunch the flaps up)."""

    def __init__(self, cameras: list[tuple[str, Simulator]], period: float) -> None:
        self.cameras, self.period = cameras, period
        self.flaps: list[Flap] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(name, sim, i * period / len(cameras)),
                             daemon=True)
            for i, (name, sim) in enumerate(cameras)
        ]  # fmt: skip

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self, name: str, sim: Simulator, offset: float) -> None:
        if self._done.wait(offset):
            return
        while not self._done.is_set():
            sim.stop()
            flap = Flap(name, time.time())
            with self._lock:
                self.flaps.append(flap)
            if self._done.wait(self.period):
                return
            flap.up_at = sim.start()
            if self._done.wait(self.period):
                return

    def halt(self) -> None:
        """Stop flapping, leaving the cameras as they are."""
        self._done.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(120)

    def stop(self) -> None:
        """Stop flapping, leaving every camera up."""
        self.halt()
        for name, sim in self.cameras:
            if sim.process is None:
                up_at = sim.start()
                next(f for f in reversed(self.flaps) if f.stream == name).up_at = up_at


def soak(args: argparse.Namespace) -> str:
    flapping = args.cameras // 10
    steady = Simulator(args.cameras - flapping, size=SIZE, fps=FPS, bitrate_kbit=BITRATE_KBIT)
    flappers = [Simulator(1, size=SIZE, fps=FPS, bitrate_kbit=BITRATE_KBIT)
                for _ in range(flapping)]  # fmt: skip
    samples: list[Usage] = []
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        try:
            steady.start()
            for sim in flappers:
                sim.start()
        except BaseException:
            for sim in (steady, *flappers):
                sim.stop()
            raise
        urls = [steady.url(i) for i in range(1, steady.cameras + 1)] + [f.url(1) for f in flappers]
        vigil = VigilUnderTest(Path(tmp), urls)
        flapper = Flapper(list(zip(vigil.names[steady.cameras:], flappers, strict=True)),
                          args.period)  # fmt: skip
        try:
            vigil.start()
            assert vigil.notify is not None
            started = time.time()
            if not wait_until(lambda: len(vigil.first_frames()) == len(urls), 180):
                raise RuntimeError("not every camera was recording 180 s after start")
            flapper.start()
            end = time.monotonic() + args.minutes * 60
            while time.monotonic() < end:
                samples.append(usage(vigil.pid))
                s = samples[-1]
                print(f"{(s.at - started) / 60:5.1f} min: RSS {s.rss_mb:.1f} MB, PSS "
                      f"{s.pss_mb:.1f} MB, {s.fds} fds, {s.threads} threads; "
                      f"{vigil.notify.status}", flush=True)  # fmt: skip
                time.sleep(min(args.sample_every, max(0.0, end - time.monotonic())))
            samples.append(usage(vigil.pid))
            flapper.stop()
            settle_start = time.monotonic()
            wait_until(lambda: not vigil.silent_streams(args.quiet), args.settle, 1.0)
            settled_in = time.monotonic() - settle_start
            stuck = vigil.silent_streams(args.quiet)
            status = vigil.notify.status
            gaps = vigil.gaps(started)
        finally:
            flapper.halt()
            vigil.stop()
            steady.stop()
            for sim in flappers:
                sim.stop()
    flap_streams = {name for name, _ in flapper.cameras}
    recoveries: list[float] = []
    unrecovered = 0
    for flap in flapper.flaps:
        assert flap.up_at is not None
        match = [g for g in gaps if g[0] == flap.stream and flap.down_at - 2 <= g[1] <= flap.up_at]
        if match and match[0][2] is not None:
            recoveries.append(match[0][2] - flap.up_at)
        else:
            unrecovered += 1
    steady_gaps = [g for g in gaps if g[0] not in flap_streams]
    return render_soak(args, samples, recoveries, unrecovered, len(flapper.flaps), steady_gaps,
                       stuck, settled_in, status)  # fmt: skip


def render_soak(
    args: argparse.Namespace,
    samples: list[Usage],
    recoveries: list[float],
    unrecovered: int,
    flaps: int,
    steady_gaps: list[tuple[str, float, float | None, str]],
    stuck: list[str],
    settled_in: float,
    status: str,
) -> str:
    warm = [s for s in samples if s.at - samples[0].at >= args.warmup * 60] or samples
    first, last = warm[0], warm[-1]
    hours = (last.at - first.at) / 3600
    cpu = 100 * (samples[-1].cpu_s - samples[0].cpu_s) / max(1e-9, samples[-1].at - samples[0].at)

    def row(label: str, values: list[tuple[float, float]], unit: str) -> str:
        slope = slope_per_hour(values)
        start = values[0][1]
        relative = 100 * slope / start if start else float("nan")
        return (f"| {label} | {start:.1f} | {values[-1][1]:.1f} | {slope:+.2f} {unit}/h "
                f"| {relative:+.1f} %/h |")  # fmt: skip

    table = [
        "| measure | at warm-up end | at the end | slope | slope / start |",
        "|---|---|---|---|---|",
        row("RSS MB", [(s.at, s.rss_mb) for s in warm], "MB"),
        row("PSS MB", [(s.at, s.pss_mb) for s in warm], "MB"),
        row("open fds", [(s.at, float(s.fds)) for s in warm], "fds"),
        row("threads", [(s.at, float(s.threads)) for s in warm], "threads"),
    ]
    series = ", ".join(f"{s.rss_mb:.0f}" for s in samples)
    return "\n".join([
        "## Soak: 100 cameras, 1 in 10 flapping",
        "",
        f"Command: `./dev bench soak --cameras {args.cameras} --minutes {args.minutes:g} "
        f"--period {args.period:g}`. Machine: {machine()}.",
        "",
        f"{args.cameras} simulated cameras ({SIZE}, {FPS} fps, {BITRATE_KBIT} kbit/s, RTSP over "
        f"TCP); {args.cameras // 10} of them each from their own simulator process, stopped and "
        f"started every {args.period:g} s (staggered). Vigil's memory, fds and threads sampled "
        f"every {args.sample_every:g} s for {args.minutes:g} min; slopes are least-squares over "
        f"the samples after the first {args.warmup:g} min ({hours * 60:.0f} min). Vigil's CPU "
        f"over the whole run: {cpu:.1f} % of one core.",
        "",
        *table,
        "",
        f"RSS samples (MB, one per {args.sample_every:g} s): {series}.",
        "",
        f"Flaps: {flaps}; recovered {len(recoveries)}, not recovered {unrecovered}. Seconds from "
        f"the camera serving again to Vigil recording it (median / p95 / max): "
        f"**{stats(recoveries)}**.",
        f"Stuck streams at the end (no file written for {args.quiet:g} s, "
        f"{settled_in:.0f} s after every camera was up): **{len(stuck)}**"
        + (f" ({', '.join(stuck)})" if stuck else "") + ". "
        f"Gaps on the {args.cameras - args.cameras // 10} steady cameras: **{len(steady_gaps)}**. "
        f"Last STATUS=: `{status}`.",
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="which", required=True)
    rec = sub.add_parser("recovery", help="every camera drops at once and comes back")
    rec.add_argument("--cameras", type=int, default=50)
    rec.add_argument("--outages", default="5,10,20,30", help="outage lengths (s), one per round")
    rec.add_argument("--steady", type=float, default=15.0, help="seconds recorded between rounds")
    soak_parser = sub.add_parser("soak", help="many cameras, a tenth flapping, for a long time")
    soak_parser.add_argument("--cameras", type=int, default=100)
    soak_parser.add_argument("--minutes", type=float, default=30.0)
    soak_parser.add_argument("--period", type=float, default=30.0, help="flap half-period, s")
    soak_parser.add_argument("--sample-every", type=float, default=60.0)
    soak_parser.add_argument("--warmup", type=float, default=5.0, help="minutes left out of slopes")
    soak_parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="seconds allowed, once every camera is up, to record all again",
    )
    soak_parser.add_argument(
        "--quiet",
        type=float,
        default=10.0,
        help="a stream whose files were not written for this long is stuck",
    )
    for p in (rec, soak_parser):
        p.add_argument("--output", type=Path, default=Path("docs/PERFORMANCE.md"))
    args = parser.parse_args(argv)
    report = recovery(args) if args.which == "recovery" else soak(args)
    print(report)
    write_section(args.output, args.which, report)


if __name__ == "__main__":
    main()
