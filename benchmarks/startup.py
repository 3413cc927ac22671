"""Start-up benchmark: how long the command line takes, and what a restart costs in video.

Measured, each several times (median and max), every process started fresh:

- floors: `python -c pass`, `import typer` (what any `vigil` command pays first) and
  GStreamer's initialisation (`import gi` + `Gst.init`);
- `vigil --help` and `vigil version`;
- `vigil streams list` against a running Vigil (the API client);
- `vigil run` from process start to the first recorded frame, with 1 and with 100 simulated
  cameras (`vigil sim`, which sends a keyframe when a client joins, like most cameras).

The first recorded frame of a camera: the keyframe that opens its first segment, at the
wall-clock time Vigil stamps on it (the segment row's start), counted once the segment's first
fragment (moof + mdat, whole) is in the file: from then on the frame survives a crash. The
fragment itself lands about `recording.fragment_seconds` later (1 s by default): a setting, not
start-up cost, so it is shown apart ("on disk", as seen here: the file is found through its
row, so no sooner than the row is inserted). Each `vigil run` restarts on the data of
the previous one (a current schema, volumes known), as after a crash or an upgrade; a first run
on empty data, not counted, warms up. The video a restart costs is this time plus however long
the old process took to stop.

Bytecode: an installed Vigil has its modules compiled; a shell with PYTHONDONTWRITEBYTECODE=1
(as some sandboxes set) recompiles them at every start (~0.35 s on the reference machine). The
children run with that variable dropped and a bytecode cache in a temporary directory, warmed
before measuring; `--as-is` keeps the environment as it is instead.

Run: `./dev bench startup [--repeat 10] [--runs 5] [--cameras 100] [--src DIR] [--write]`.
`--src` measures another source tree (e.g. an older commit's `src`, from `git archive`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import Simulator, free_port, machine, write_section

ROOT = Path(__file__).resolve().parents[1]
SIZE, FPS, BITRATE_KBIT = "640x360", 15, 500
POLL_S = 0.02


@dataclass(frozen=True)
class Figures:
    """Seconds measured over several runs of one thing (and the CPU seconds it used: on a
    machine shared with other work, the wall clock alone says little)."""

    values: list[float]
    cpu: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)


def environment(src: Path, cache: Path | None) -> dict[str, str]:
    """The children's environment: `src` first on the path, no VIGIL_* overrides, and unless
    `cache` is None a bytecode cache there (see the module's docstring)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    if cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def timed(command: Sequence[str], env: dict[str, str], repeat: int) -> Figures:
    """Wall-clock seconds of `command`, run `repeat` times to completion (after one warm-up)."""
    values, cpu = [], []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        errors = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stderr.close()
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {errors.decode()[-2000:]}")
        if attempt:
            values.append(elapsed)
            cpu.append(usage.ru_utime + usage.ru_stime)
    return Figures(values, cpu)


def whole_fragment(path: Path) -> bool:
    """True once `path` holds a moof followed by its whole mdat (a frame that plays)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    offset, seen_moof = 0, False
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        if size < 8 or offset + size > len(data):
            return False
        if kind == b"moof":
            seen_moof = True
        elif kind == b"mdat" and seen_moof:
            return True
        offset += size
    return False


@dataclass
class RunResult:
    """One `vigil run`: per camera, seconds from process start to its first recorded frame
    (the segment's stamped start) and to that frame's fragment being on disk."""

    recorded: list[float]
    on_disk: list[float]
    ready: float | None  # seconds to the summary line (API listening, READY sent)


class VigilRun:
    """`vigil run` recording `cameras` cameras of a simulator into `data`."""

    def __init__(self, work: Path, sim: Simulator, cameras: int, env: dict[str, str]) -> None:
        self.work, self.data, self.env = work, work / "data", dict(env)
        self.names = [f"cam{i}" for i in range(1, cameras + 1)]
        streams = "".join(
            f'  - {{name: {name}, source: "{sim.url(i)}", transport: tcp}}\n'
            for i, name in enumerate(self.names, start=1)
        )
        self.config = work / "vigil.yml"
        self.config.write_text(
            f"data_dir: {self.data}\nlog: {{level: warning}}\nstreams:\n{streams}"
        )
        self.api_port = free_port()
        self.env["VIGIL_API__LISTEN"] = f"127.0.0.1:{self.api_port}"
        self.env["VIGIL_RTSP__LISTEN"] = "127.0.0.1:0"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log(self) -> Path:
        return self.work / "vigil.log"

    def start(self) -> float:
        """Start `vigil run`; returns the wall-clock time (epoch s) just before the spawn."""
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            started = time.time()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vigil", "run", "-c", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=log, env=self.env,
            )  # fmt: skip
        return started

    def first_frames(self, started: float, timeout: float = 120) -> RunResult:
        """Poll the index and the files until every camera's first segment of this run has a
        whole fragment on disk; then read the summary line's time."""
        assert self.process is not None
        recorded: dict[str, float] = {}
        on_disk: dict[str, float] = {}
        pending: dict[str, tuple[float, Path]] = {}
        deadline = time.monotonic() + timeout
        database = self.data / "vigil.db"
        while len(on_disk) < len(self.names):
            if self.process.poll() is not None or time.monotonic() > deadline:
                missing = sorted(set(self.names) - set(on_disk))[:5]
                raise RuntimeError(f"no first frame from {missing}; see {self.log}")
            if len(pending) + len(on_disk) < len(self.names) and database.exists():
                for stream, start_us, location in _first_segments(database, started):
                    if stream not in pending and stream not in on_disk:
                        pending[stream] = (start_us / 1e6, Path(location))
            for stream, (start, path) in list(pending.items()):
                if whole_fragment(path):
                    now = time.time()
                    del pending[stream]
                    recorded[stream], on_disk[stream] = start - started, now - started
            time.sleep(POLL_S)
        ready = self._summary_line(started, deadline)
        return RunResult(sorted(recorded.values()), sorted(on_disk.values()), ready)

    def _summary_line(self, started: float, deadline: float) -> float | None:
        """Seconds to the line `vigil run` prints once every service is up (READY); its file's
        modification time, as it is the last line written until Ctrl-C."""
        assert self.process is not None
        while time.monotonic() < deadline and self.process.poll() is None:
            with self.log.open("rb") as log:
                log.seek(self._log_offset)
                if b"Press Ctrl-C to stop." in log.read():
                    return self.log.stat().st_mtime - started
            time.sleep(POLL_S)
        return None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _first_segments(database: Path, started: float) -> list[tuple[str, int, str]]:
    """Each stream's first segment that began after `started` (epoch s): (stream, start, path)."""
    try:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        rows = db.execute(
            "SELECT stream, start_us, path FROM segments s WHERE start_us >= ? AND start_us = "
            "(SELECT MIN(start_us) FROM segments t WHERE t.stream = s.stream AND start_us >= ?)",
            (int(started * 1e6), int(started * 1e6)),
        ).fetchall()
    except sqlite3.Error:
        return []  # not created yet
    finally:
        db.close()
    return [(str(stream), int(start), str(path)) for stream, start, path in rows]


def measure_run(
    work: Path, cameras: int, runs: int, env: dict[str, str], on_line: Callable[[str], None]
) -> list[RunResult]:
    """`runs` restarts of Vigil recording `cameras` simulated cameras (after a warm-up run)."""
    sim = Simulator(cameras, size=SIZE, fps=FPS, bitrate_kbit=BITRATE_KBIT)
    sim.start()
    results = []
    try:
        vigil = VigilRun(work, sim, cameras, env)
        for attempt in range(runs + 1):
            started = vigil.start()
            try:
                result = vigil.first_frames(started)
            finally:
                vigil.stop()
            if attempt:
                results.append(result)
                on_line(
                    f"  run {attempt}: first frame {result.recorded[0]:.2f} s, median "
                    f"{statistics.median(result.recorded):.2f} s, last {result.recorded[-1]:.2f} s"
                    f"; on disk (last) {result.on_disk[-1]:.2f} s; summary "
                    + (f"{result.ready:.2f} s" if result.ready is not None else "?")
                )
    finally:
        sim.stop()
    return results


def measure_client(work: Path, env: dict[str, str], repeat: int) -> Figures:
    """`vigil streams list` against a running Vigil recording one simulated camera."""
    sim = Simulator(1, size=SIZE, fps=FPS, bitrate_kbit=BITRATE_KBIT)
    sim.start()
    try:
        vigil = VigilRun(work, sim, 1, env)
        started = vigil.start()
        try:
            vigil.first_frames(started)
            command = [sys.executable, "-m", "vigil", "streams", "list", "--url", vigil.api_url]
            return timed(command, env, repeat)
        finally:
            vigil.stop()
    finally:
        sim.stop()


def report(
    floors: dict[str, Figures],
    commands: dict[str, Figures],
    runs: dict[int, list[RunResult]],
    note: str,
) -> str:
    base = floors["python -c pass"].median
    lines = [
        "## Start-up",
        "",
        f"Machine: {machine()}. {note}",
        "",
        "Command line (wall-clock seconds from spawn to exit; median / max):",
        "",
        "| what | median | max | x `python -c pass` | CPU s, median |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, figures in [*floors.items(), *commands.items()]:
        lines.append(
            f"| `{name}` | {figures.median:.3f} | {figures.max:.3f} | "
            f"{figures.median / base:.1f} | {statistics.median(figures.cpu):.3f} |"
        )
    gst = floors["gi + Gst.init"].median
    lines += [
        "",
        "`vigil run`, seconds from spawn to each camera's first recorded frame (median over "
        "the runs of each run's first camera / median camera / last camera; max of the last "
        "camera), then to the last camera's first fragment on disk and to the summary line "
        "(every service up, READY sent):",
        "",
        "| cameras | first | median | last | last, max | on disk | summary | last x Gst.init |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cameras, results in runs.items():
        first = statistics.median(r.recorded[0] for r in results)
        median = statistics.median(statistics.median(r.recorded) for r in results)
        last = [r.recorded[-1] for r in results]
        disk = statistics.median(r.on_disk[-1] for r in results)
        ready = [r.ready for r in results if r.ready is not None]
        summary = f"{statistics.median(ready):.2f}" if ready else "?"
        lines.append(
            f"| {cameras} | {first:.2f} | {median:.2f} | {statistics.median(last):.2f} | "
            f"{max(last):.2f} | {disk:.2f} | {summary} | {statistics.median(last) / gst:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="runs of each command")
    parser.add_argument("--runs", type=int, default=5, help="restarts of `vigil run` per size")
    parser.add_argument("--cameras", type=int, default=100, help="the larger run's cameras")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the Vigil to measure")
    parser.add_argument("--as-is", action="store_true", help="keep PYTHONDONTWRITEBYTECODE")
    parser.add_argument("--write", action="store_true", help="update docs/PERFORMANCE.md")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="vigil-startup-") as tmp:
        work = Path(tmp)
        env = environment(args.src.resolve(), None if args.as_is else work / "pycache")
        py = [sys.executable]
        floors = {
            "python -c pass": timed([*py, "-c", "pass"], env, args.repeat),
            "python -c 'import typer'": timed([*py, "-c", "import typer"], env, args.repeat),
            "gi + Gst.init": timed(
                [
                    *py,
                    "-c",
                    "import gi; gi.require_version('Gst', '1.0'); "
                    "from gi.repository import Gst; Gst.init(None)",
                ],
                env,
                args.repeat,
            ),
        }
        commands = {
            "vigil --help": timed([*py, "-m", "vigil", "--help"], env, args.repeat),
            "vigil version": timed([*py, "-m", "vigil", "version"], env, args.repeat),
        }
        for name, figures in [*floors.items(), *commands.items()]:
            say(f"{name}: median {figures.median:.3f} s, max {figures.max:.3f} s")
        (work / "client").mkdir()
        commands["vigil streams list"] = measure_client(work / "client", env, args.repeat)
        say(f"vigil streams list: median {commands['vigil streams list'].median:.3f} s")
        runs: dict[int, list[RunResult]] = {}
        for cameras in sorted({1, args.cameras}):
            say(f"vigil run, {cameras} camera(s):")
            (work / f"run{cameras}").mkdir()
            runs[cameras] = measure_run(work / f"run{cameras}", cameras, args.runs, env, say)
    note = (
        f"{args.repeat} runs of each command, {args.runs} restarts of `vigil run` per size"
        + (", bytecode as the environment has it" if args.as_is else ", bytecode cached")
        + f"; cameras {SIZE} at {FPS} fps, H.264, keyframe on join. "
        "Command: `./dev bench startup`."
    )
    text = report(floors, commands, runs, note)
    print(text)
    if args.write:
        write_section(ROOT / "docs" / "PERFORMANCE.md", "startup", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
