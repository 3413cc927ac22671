"""Storage benchmarks: the recording index at a million segments, and retention keeping a small
volume recording while 100 cameras fill it.

`index`: real SQLite databases (the migrated schema) holding segment rows as Vigil writes them
(60 s segments, every stream's newest still open): 10,000 rows (1 stream, ~7 days: the
baseline), 1,000,000 rows (100 streams x ~7 days) and 1,000,000 rows deep (10 streams x ~69
days). On each: a day of one stream's segments as the API lists it (SegmentStore, 1000 a page,
keyset cursor), the same over HTTP, and retention's queries; then, on the wide million, one
space-retention pass with the oldest segments held.

`retention`: 100 simulated cameras recorded by `vigil run` onto a tmpfs (the only volume, with
a `min_free_bytes` threshold) that a ballast file has nearly filled, so that retention deletes
throughout the measurement; sampled every second (free space, what retention deleted, blocked
streams, CPU of the DB-writer thread and of the process), then gaps and holes from the index.
The baseline is the same run on a volume with room (retention runs and finds nothing to do).

Run: `./dev bench storage [--only index|retention] [--rows 1000000] [--seconds 180]`; the
retention part mounts a tmpfs, so it needs root. Past STYLE.md's 800 lines because one run
writes one section from both halves; they would split cleanly (index / retention) if it grows.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import itertools
import logging
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from benchmarks.common import TICKS, Simulator, free_port, machine, sample, write_section

T = TypeVar("T")
MIB = 1024 * 1024
TARGET_MS = 50.0  # issue 5: index queries at a million segments
PAGE = 1000  # the API's largest page
SEGMENT = timedelta(seconds=60)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
TOP = Path(__file__).resolve().parents[1]
WRITER_THREAD = "db-writer_0"

# -- index --------------------------------------------------------------------------------------

INSERT = (
    "INSERT INTO segments (stream, path, start_us, end_us, duration_s, size_bytes, codec, width, "
    "height, status, created_at_us, closed_at_us, note, volume) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
DAY_LIST = "list a day (SegmentStore, 2 pages)"
DAY_SQL = "first page of the day, its SQL alone"
DAY_SQL_BOUNDED = "the same SQL + `start_us >= day - 1 h` (what-if)"
OLDEST = "RetentionStore.oldest(volume, limit=64)"
OLDEST_DEEP = "oldest(volume, after=cursor half-way or deeper)"
OLDEST_DEEP_BOUNDED = "its SQL + `start_us >= cursor` (what-if)"
EXPIRED = "RetentionStore.expired(stream, cutoff, limit=256)"
AGE_PASS = "by-age pass over every stream, nothing expired"
OLDEST_START = "RetentionStore.oldest_start()"
NOT_JUDGED = (DAY_SQL, DAY_SQL_BOUNDED, OLDEST_DEEP_BOUNDED, AGE_PASS)


@dataclass(frozen=True)
class Layout:
    """A database shape: `streams` streams of `per_stream` consecutive 60 s segments."""

    name: str
    streams: int
    per_stream: int

    @property
    def rows(self) -> int:
        return self.streams * self.per_stream

    @property
    def days(self) -> int:
        """Whole days every stream has recorded."""
        return int(self.per_stream * SEGMENT / timedelta(days=1))

    @property
    def names(self) -> list[str]:
        return [f"cam{s:03d}" for s in range(1, self.streams + 1)]


@dataclass(frozen=True)
class Stats:
    """Timings in ms: median, 95th percentile, maximum."""

    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        items = sorted(values)
        return cls(statistics.median(items), items[round(0.95 * (len(items) - 1))], items[-1])

    def text(self) -> str:
        return f"{self.p50:.1f} / {self.p95:.1f} / {self.max:.1f}"


def _ms(fn: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _rows(layout: Layout, root: Path, volume: str) -> Iterator[tuple[Any, ...]]:
    """Rows in the order Vigil writes them: every stream's minute, then the next minute."""
    for i in range(layout.per_stream):
        start = EPOCH + i * SEGMENT
        start_us, end_us = _us(start), _us(start + SEGMENT)
        relative = start.strftime("%Y-%m-%d/%H/%M.%S.mp4")
        open_ = i == layout.per_stream - 1
        for name in layout.names:
            yield (
                name, f"{root}/{name}/{relative}", start_us, None if open_ else end_us,
                None if open_ else 60.0, None if open_ else 1_500_000, "h264", 1280, 720,
                "open" if open_ else "complete", start_us, None if open_ else end_us, None, volume,
            )  # fmt: skip


def build_index(path: Path, layout: Layout, root: Path, volume: str) -> float:
    """A migrated database holding `layout`; returns the seconds the rows took to insert."""
    from vigil.store.db import Database

    db = Database(path)
    db.migrate()
    db.close()
    started = time.monotonic()
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA cache_size=-262144")  # 256 MiB: the indexes stay in memory
        with connection:  # one transaction
            connection.executemany(INSERT, _rows(layout, root, volume))
    finally:
        connection.close()
    return time.monotonic() - started


@dataclass
class IndexResult:
    layout: Layout
    insert_s: float
    timings: dict[str, Stats] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    walked: float = 0.0  # median index entries the day query walks
    held: list[tuple[int, float, int]] = field(default_factory=list)  # (held, pass ms, deleted)


class IndexBench:
    """One database of `layout`, its stores, and the SQL they send (caught, to be explained
    and re-run on its own)."""

    def __init__(self, layout: Layout, folder: Path, seed: int) -> None:
        from sqlalchemy import event

        from vigil.config.resolve import VolumePlan
        from vigil.recording.volumes import VolumePool
        from vigil.store.db import Database
        from vigil.store.recordings import SegmentStore
        from vigil.store.retention import RetentionStore

        self.layout = layout
        root = folder / "volume"
        # A real volume, always short of space, so that a retention pass can run on the index.
        self.pool = VolumePool((VolumePlan(path=root, implicit=True, min_free_bytes=2**62,
                                           max_usage_percent=100),))  # fmt: skip
        logging.getLogger("vigil.recording.volumes").setLevel(logging.ERROR)  # "-> full": meant
        self.pool.scan()
        self.volume = next(iter(self.pool.usable()))
        path = folder / "vigil.db"
        self.result = IndexResult(layout, build_index(path, layout, root, self.volume))
        self.db = Database(path)
        self.raw = sqlite3.connect(path)
        self.segments, self.retention = SegmentStore(self.db), RetentionStore(self.db)
        self.rng = random.Random(seed)
        self._timings: dict[str, list[float]] = {}
        self._walked: list[int] = []
        self._caught: list[tuple[str, tuple[Any, ...]]] = []
        event.listen(self.db.engine, "before_cursor_execute", self._catch)

    def _catch(self, _conn: Any, _cursor: Any, statement: str, parameters: Any,
               _context: Any, _many: bool) -> None:  # fmt: skip
        if statement.lstrip().upper().startswith("SELECT"):
            self._caught.append((statement, tuple(parameters)))

    def timed(self, name: str, fn: Callable[[], T]) -> T:
        """Run `fn`, keep its time under `name` and the plan of the last SELECT it sent."""
        self._caught.clear()
        ms, result = _ms(fn)
        self._timings.setdefault(name, []).append(ms)
        if name not in self.result.plans and self._caught:
            self.result.plans[name] = self.plan(*self._caught[-1])
        return result

    def plan(self, statement: str, parameters: tuple[Any, ...]) -> str:
        rows = self.raw.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
        return "; ".join(str(row[-1]) for row in rows)

    def sql_alone(self, name: str, statement: str, parameters: tuple[Any, ...]) -> None:
        ms, _rows = _ms(lambda: self.raw.execute(statement, parameters).fetchall())
        self._timings.setdefault(name, []).append(ms)
        if name not in self.result.plans:
            self.result.plans[name] = self.plan(statement, parameters)

    def day(self) -> None:
        """A day of one stream, page after page as the API asks for it."""
        stream = self.rng.choice(self.layout.names)
        start = EPOCH + timedelta(days=self.rng.randrange(self.layout.days))
        end = start + timedelta(days=1)
        total, after, first = 0.0, None, None
        while True:
            self._caught.clear()
            ms, page = _ms(lambda a=after: self.segments.list_segments(  # type: ignore[misc]
                stream=stream, start=start, end=end, limit=PAGE, after=a))  # fmt: skip
            first = first or self._caught[-1]
            total += ms
            if len(page) < PAGE:
                break
            after = (page[-1].start, page[-1].id)
        self._timings.setdefault(DAY_LIST, []).append(total)
        self.result.plans.setdefault(DAY_LIST, self.plan(*first))
        self.sql_alone(DAY_SQL, *first)
        # What a lower bound on start_us would save: segments last at most an hour.
        bounded = first[0].replace("WHERE ", "WHERE segments.start_us >= ? AND ", 1)
        self.sql_alone(DAY_SQL_BOUNDED, bounded, (_us(start - timedelta(hours=1)), *first[1]))
        self._walked.append(self.raw.execute(
            "SELECT count(*) FROM segments WHERE stream = ? AND start_us < ?", (stream, _us(end))
        ).fetchone()[0])  # fmt: skip

    def retention_queries(self) -> None:
        self.timed(OLDEST, lambda: self.retention.oldest(self.volume, limit=64))
        # Within a pass, each refill continues after the last candidate seen: deep when many
        # of the oldest segments are held (or open, or offline).
        depth = self.rng.randrange(self.layout.rows // 2, self.layout.rows - 64)
        cursor = self.raw.execute(
            "SELECT start_us, id FROM segments WHERE volume = ? ORDER BY start_us, id "
            "LIMIT 1 OFFSET ?", (self.volume, depth),
        ).fetchone()  # fmt: skip
        after = (int(cursor[0]), int(cursor[1]))
        self.timed(OLDEST_DEEP, lambda: self.retention.oldest(self.volume, after=after, limit=64))
        statement, parameters = self._caught[-1]
        bounded = statement.replace("WHERE ", "WHERE segments.start_us >= ? AND ", 1)
        self.sql_alone(OLDEST_DEEP_BOUNDED, bounded, (after[0], *parameters))
        stream = self.rng.choice(self.layout.names)
        cutoff = _us(EPOCH + timedelta(days=self.rng.randrange(1, self.layout.days + 1)))
        self.timed(EXPIRED, lambda: self.retention.expired(stream, cutoff, limit=256))

    def whole_index(self) -> None:
        self.timed(AGE_PASS, self._age_pass)
        self.timed(OLDEST_START, self.retention.oldest_start)

    def _age_pass(self) -> None:
        """What retention by age does (once a minute) when nothing has expired, retain_days set
        on every stream: one `expired` query and one gap deletion per stream."""
        cutoff = _us(EPOCH - timedelta(days=1))
        for name in self.layout.names:
            self.retention.expired(name, cutoff, limit=256)
            self.retention.delete_gaps_before(name, cutoff)

    def held_passes(self) -> None:
        """One space-retention pass with 0, 2 and 6 hours of every stream held at the head of
        the volume. The volume always wants space, so a pass deletes until it has looked at its
        limit of candidates (5,000)."""
        from vigil.recording.retention import Retention
        from vigil.store.holds import HoldStore

        holds = HoldStore(self.db)
        retention = Retention(self.pool, self.retention, holds, retain_days=dict, writing=set)
        for hours in (0, 2, 6):
            oldest = self.retention.oldest_start()
            assert oldest is not None
            hold = holds.add(stream=None, start=oldest, end=oldest + timedelta(hours=hours),
                             until=None, reason="benchmark") if hours else None  # fmt: skip
            ms, report = _ms(retention.run)
            self.result.held.append((report.held, ms, report.by_space))
            print(f"  space pass, {report.held:,} held: {ms:.0f} ms, {report.by_space:,} deleted")
            if hold is not None:
                holds.remove(hold.id)

    def forget(self) -> None:
        self._timings.clear()
        self._walked.clear()

    def finish(self, api: dict[str, list[float]]) -> IndexResult:
        self.raw.close()
        self.db.close()
        self.result.timings = {n: Stats.of(v) for n, v in {**self._timings, **api}.items()}
        self.result.walked = statistics.median(self._walked)
        return self.result


def measure_index(layout: Layout, folder: Path, samples: int, seed: int) -> IndexResult:
    bench = IndexBench(layout, folder, seed)
    print(f"{layout.name}: {layout.rows:,} rows inserted in {bench.result.insert_s:.1f} s",
          flush=True)  # fmt: skip
    for _ in range(3):  # untimed: the first queries also compile SQLAlchemy's statement cache
        bench.day()
        bench.retention_queries()
    bench.forget()
    for _ in range(samples):
        bench.day()
        bench.retention_queries()
    for _ in range(max(3, samples // 10)):
        bench.whole_index()
    api = asyncio.run(measure_api(bench.db, layout, samples, bench.rng))
    if layout.name == "wide":
        bench.held_passes()
    return bench.finish(api)


class NoStreams:
    """The stream manager as the API sees it, with nothing running: the API then checks that
    the stream has recordings (one indexed lookup) before listing them."""

    def statuses(self) -> list[Any]:
        return []

    def status(self, name: str) -> Any:
        return None

    async def snapshot(self, name: str) -> bytes | None:
        return None


async def measure_api(
    db: Any, layout: Layout, samples: int, rng: random.Random
) -> dict[str, list[float]]:
    """The segment listing over HTTP: Vigil's own API app, served by its own server (uvicorn)
    on loopback, in this process."""
    from vigil.api.app import create_api
    from vigil.api.server import ApiServer
    from vigil.api.services import ApiServices
    from vigil.events import EventBus
    from vigil.store.recordings import GapStore, SegmentStore
    from vigil.store.tokens import TokenStore

    services = ApiServices(
        bus=EventBus(), db=db, segments=SegmentStore(db), gaps=GapStore(db),
        tokens=TokenStore(db), streams=NoStreams(), version="bench", gstreamer_version="-",
        started_at=datetime.now(UTC), ready=lambda: True,
    )  # fmt: skip
    server = ApiServer(create_api(services), "127.0.0.1", 0)
    await server.start()
    timings: dict[str, list[float]] = {}
    try:
        for reuse in (True, False):
            await _api_samples(server.url, layout, samples, rng, reuse, timings)
    finally:
        await server.stop()
    return timings


async def _api_samples(
    url: str, layout: Layout, samples: int, rng: random.Random, reuse: bool,
    timings: dict[str, list[float]],
) -> None:  # fmt: skip
    """`reuse`: one keep-alive connection, as browsers and HTTP libraries do; else a new
    connection per request. Pages are followed by their `Link: rel="next"` header, so the
    client never parses a body: the time is the server's, plus loopback."""
    how = "keep-alive" if reuse else "new connection per request"
    limits = httpx.Limits(max_keepalive_connections=1 if reuse else 0)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        for _ in range(samples):
            stream = rng.choice(layout.names)
            for label, limit, start in (
                ("a day (limit=1000, 2 pages)", PAGE,
                 EPOCH + timedelta(days=rng.randrange(layout.days))),
                ("one page (default limit 100)", None,
                 EPOCH + rng.randrange(layout.per_stream - 1) * SEGMENT),
            ):  # fmt: skip
                query = {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}
                if limit is not None:
                    query["limit"] = str(limit)
                started = time.perf_counter()
                response = await client.get(f"/api/v1/streams/{stream}/segments", params=query)
                response.raise_for_status()
                while limit == PAGE and "next" in response.links:
                    response = await client.get(response.links["next"]["url"])
                    response.raise_for_status()
                elapsed = (time.perf_counter() - started) * 1000
                timings.setdefault(f"GET …/segments, {label}, {how}", []).append(elapsed)


# -- retention under load -----------------------------------------------------------------------


def run_vigil_with_thread_names() -> None:
    """Entry point of the Vigil subprocess: Vigil itself, with each Python thread's name also
    given to its OS thread. Python 3.11 leaves every thread's /proc name "python", and the
    DB-writer thread ("db-writer_0") is the one whose CPU this benchmark reports."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_name = 15
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        libc.prctl(pr_set_name, self.name.encode()[:15], 0, 0, 0)
        original(self)

    threading.Thread.run = run  # type: ignore[method-assign]
    from vigil.cli import main

    sys.argv = ["vigil", *sys.argv[1:]]
    main()


def _mount_tmpfs(path: Path, size_mib: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs",
                    str(path)], check=True, capture_output=True, timeout=30)  # fmt: skip


def _unmount(path: Path) -> None:
    for _ in range(10):  # bounded: a mount still busy is then detached lazily
        if not os.path.ismount(path):
            return
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            time.sleep(0.5)
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _free(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize  # as Vigil counts it


def _ballast(volume: Path, leave_bytes: int) -> None:
    """Fill `volume` until `leave_bytes` stay free."""
    left = max(0, _free(volume) - leave_bytes)
    chunk = b"\0" * MIB
    with open(volume / "ballast.bin", "wb") as handle:
        while left > 0:
            left -= handle.write(chunk[: min(left, MIB)])


def _thread_cpu(pid: int, name: str) -> float | None:
    """CPU seconds of `pid`'s thread called `name` (None if it has none)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == name:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / TICKS
        except (FileNotFoundError, ProcessLookupError):
            continue
    return None


@dataclass(frozen=True)
class Tick:
    """One second of a recording run."""

    at: float
    free: int
    segments_deleted: int
    bytes_deleted: int
    state: str
    writer_cpu: float
    process_cpu: float


@dataclass
class RunResult:
    """One recording run's figures."""

    volume_mib: int
    ticks: list[Tick]
    gaps: int
    holes: int  # consecutive segments of one stream more than 1 s apart
    streams_recording: int
    max_blocked: int
    rows: int
    files: int
    mismatches: int  # files without a row, rows without a file
    writer_found: bool

    @property
    def seconds(self) -> float:
        return self.ticks[-1].at - self.ticks[0].at

    def delta(self, attribute: str) -> float:
        return float(getattr(self.ticks[-1], attribute) - getattr(self.ticks[0], attribute))

    def percent(self, attribute: str) -> float:
        """CPU % of one core over the measurement."""
        return 100 * self.delta(attribute) / self.seconds

    def windows(self, attribute: str, size: int) -> list[float]:
        """CPU % of one core in each `size`-second window: how much it varies by itself."""
        ticks = self.ticks[::size]
        return [100 * (getattr(b, attribute) - getattr(a, attribute)) / (b.at - a.at)
                for a, b in itertools.pairwise(ticks)]  # fmt: skip


def recording_run(
    args: argparse.Namespace, work: Path, sim: Simulator, volume_mib: int, leave_bytes: int | None
) -> RunResult:
    """Vigil recording every camera onto a fresh tmpfs; with `leave_bytes`, a ballast first
    leaves only that much free and the measurement starts once retention deletes."""
    volume, data, config = work / "volume", work / "data", work / "vigil.yml"
    work.mkdir(parents=True)
    streams = "".join(
        f'  - {{name: cam{i}, source: "{sim.url(i)}", transport: tcp}}\n'
        for i in range(1, args.cameras + 1)
    )
    config.write_text(
        f"data_dir: {data}\nlog: {{level: warning}}\n"
        f"recording: {{segment_seconds: {args.segment_seconds}}}\n"
        f"storage:\n  check_interval_s: {args.check_interval:g}\n  volumes:\n"
        f"    - {{path: {volume}, min_free_bytes: {args.min_free_mib}MiB, "
        f"max_usage_percent: 100}}\nstreams:\n{streams}"
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_API__LISTEN"] = f"127.0.0.1:{port}"
    process: subprocess.Popen[bytes] | None = None
    _mount_tmpfs(volume, volume_mib)
    try:
        if leave_bytes is not None:
            _ballast(volume, leave_bytes)
        with open(work / "vigil.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c",
                 "from benchmarks.storage import run_vigil_with_thread_names as run; run()",
                 "run", "-c", str(config)],
                stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=TOP,
            )  # fmt: skip
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            ticks, max_blocked, recording = _observe(args, process, client, volume, leave_bytes)
        process.send_signal(signal.SIGINT)
        process.wait(120)
        gaps, holes, paths = _index_after(data / "vigil.db")
        files = {str(Path(root, name)) for root, _dirs, names in os.walk(volume)
                 for name in names if name.endswith(".mp4")}  # fmt: skip
        return RunResult(
            volume_mib=volume_mib, ticks=ticks, gaps=gaps, holes=holes,
            streams_recording=recording, max_blocked=max_blocked, rows=len(paths),
            files=len(files), mismatches=len(files ^ paths),
            writer_found=any(t.writer_cpu > 0 for t in ticks),
        )  # fmt: skip
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        _unmount(volume)


def _storage(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/v1/storage")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _observe(
    args: argparse.Namespace, process: subprocess.Popen[bytes], client: httpx.Client,
    volume: Path, leave_bytes: int | None,
) -> tuple[list[Tick], int, int]:  # fmt: skip
    """(a tick a second, most streams seen blocked, streams recording at the end)."""
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("vigil did not start: see vigil.log in the work directory")
        try:
            if client.get("/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    if leave_bytes is None:
        time.sleep(args.warmup)
    else:
        deadline = time.monotonic() + args.fill_timeout
        while _storage(client)["segments_deleted"] == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"retention deleted nothing within {args.fill_timeout:g} s")
            time.sleep(1)
        time.sleep(args.settle)  # past the first burst, into the steady state
    ticks: list[Tick] = []
    max_blocked = 0
    seconds = args.seconds if leave_bytes is not None else args.baseline_seconds
    started = time.monotonic()
    for second in itertools.count():  # bounded by `seconds`
        body = _storage(client)
        blocked = len(body["blocked_streams"])
        if second % 10 == 0:
            streams = client.get("/api/v1/streams").json()
            blocked = max(blocked, sum(1 for s in streams if s["recording_blocked"]))
        max_blocked = max(max_blocked, blocked)
        ticks.append(Tick(
            at=time.monotonic(), free=_free(volume), segments_deleted=body["segments_deleted"],
            bytes_deleted=body["bytes_deleted"],
            state=body["volumes"][0]["state"] if body["volumes"] else "none",
            writer_cpu=_thread_cpu(process.pid, WRITER_THREAD) or 0.0,
            process_cpu=sample([process.pid]).cpu_s,
        ))  # fmt: skip
        if time.monotonic() - started >= seconds:
            break
        time.sleep(max(0.0, started + second + 1 - time.monotonic()))
    streams = client.get("/api/v1/streams").json()
    recording = sum(1 for s in streams if s["state"] == "streaming" and not s["recording_blocked"])
    return ticks, max_blocked, recording


def _index_after(path: Path) -> tuple[int, int, set[str]]:
    """(gaps stored, holes over 1 s between a stream's consecutive segments, paths of rows)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        gaps = int(db.execute("SELECT count(*) FROM gaps").fetchone()[0])
        rows = db.execute(
            "SELECT stream, path, start_us, end_us FROM segments ORDER BY stream, start_us, id"
        ).fetchall()
    finally:
        db.close()
    holes = sum(
        1 for (stream, _p, _s, end), (after, _q, start, _e) in itertools.pairwise(rows)
        if stream == after and end is not None and start - end > 1_000_000
    )  # fmt: skip
    return gaps, holes, {str(row[1]) for row in rows}


# -- report -------------------------------------------------------------------------------------


def render_index(results: list[IndexResult], samples: int) -> list[str]:
    baseline, wide, deep = results

    def shape(r: IndexResult) -> str:
        return f"{r.layout.rows:,} rows ({r.layout.streams} x {r.layout.days} days)"

    lines = [
        "### Index queries at a million segments",
        "",
        f"Databases: {shape(baseline)} as the baseline, {shape(wide)} and {shape(deep)}; 60 s "
        "segments (1,440 a day; each stream's newest open), the migrated schema, rows inserted "
        "in one `executemany` transaction in "
        f"{baseline.insert_s:.1f} s / {wide.insert_s:.1f} s / {deep.insert_s:.1f} s. "
        f"{samples} random samples (stream, whole day, cursor) per query, a tenth of that for "
        'the whole-index ones; ms as median / p95 / max, sequential, warm cache. "SQL alone" '
        "re-runs the statement SQLAlchemy sent on a plain sqlite3 connection: the rest of the "
        "SegmentStore time is building ORM objects and `SegmentRow`s. The what-if rows add one "
        "term to that SQL (not in Vigil).",
        "",
        f"| query | {baseline.layout.rows:,} | {wide.layout.rows:,} | ratio (p50) "
        f"| {deep.layout.rows:,} deep | < {TARGET_MS:g} ms at p95, {wide.layout.rows:,} |",
        "|---|---|---|---|---|---|",
    ]
    for name, w in wide.timings.items():
        b, d = baseline.timings[name], deep.timings[name]
        verdict = "—" if name in NOT_JUDGED else "met" if w.p95 < TARGET_MS else "**missed**"
        lines.append(f"| {name} | {b.text()} | {w.text()} | {w.p50 / b.p50:.2f} | {d.text()} "
                     f"| {verdict} |")  # fmt: skip
    lines += [
        "",
        "Index entries the day query walks (`stream = ? AND start_us < end of day`: from the "
        f"stream's first segment), median: {baseline.walked:,.0f} / {wide.walked:,.0f} / "
        f"{deep.walked:,.0f}.",
        "",
        f"Query plans (`EXPLAIN QUERY PLAN`, {wide.layout.rows:,} rows):",
        "",
        *[f"- {name}: `{plan}`" for name, plan in wide.plans.items()],
    ]
    if wide.held:
        lines += [
            "",
            f"One space-retention pass on the {wide.layout.rows:,}-row index (on a volume that "
            "wants space throughout: a pass goes on until it has looked at 5,000 candidates), "
            "with 0, 2 and 6 hours of every stream held at the head:",
            "",
            "| segments held | pass ms (on the DB-writer thread) | segments deleted |",
            "|---|---|---|",
            *[f"| {held:,} | {ms:,.0f} | {deleted:,} |" for held, ms, deleted in wide.held],
        ]
    return lines


def render_run(retention: RunResult, baseline: RunResult, args: argparse.Namespace) -> list[str]:
    threshold = args.min_free_mib * MIB
    frees = [t.free for t in retention.ticks]
    deleted, deleted_mib = (
        retention.delta("segments_deleted"),
        retention.delta("bytes_deleted") / MIB,
    )
    writer = [r.percent("writer_cpu") for r in (retention, baseline)]
    whole = [r.percent("process_cpu") for r in (retention, baseline)]
    extra = writer[0] - writer[1]
    # Noise: the spread of the baseline's own windows, each two segments long (every camera
    # cuts at the same moment, the simulator's keyframes being shared: shorter windows alias).
    window = 2 * args.segment_seconds
    spread = max(baseline.windows("writer_cpu", window)) - min(
        baseline.windows("writer_cpu", window)
    )
    cost = f"{extra:+.2f} % of a core"
    if deleted and extra > spread:
        cost += f", {10 * extra * retention.seconds / deleted:.2f} ms per deleted segment"
    else:
        cost += f": within the baseline's own spread over {window} s windows ({spread:.2f})"
    seconds = retention.seconds

    def row(label: str, *cells: object) -> str:
        return f"| {label} | " + " | ".join(str(c) for c in cells) + " |"

    lines = [
        f"### {args.cameras} cameras on a small volume, retention deleting throughout",
        "",
        f"{args.cameras} simulated cameras ({args.size}, {args.fps} fps, 1 s GOP, {args.bitrate} "
        f"kbit/s, RTSP over TCP, one `vigil sim`) recorded by `vigil run` in "
        f"{args.segment_seconds} s segments onto one tmpfs volume of {args.volume_mib} MiB "
        f"(`min_free_bytes: {args.min_free_mib}MiB`, `max_usage_percent: 100`, "
        f"`check_interval_s: {args.check_interval:g}`). A ballast file left "
        f"{args.min_free_mib + args.room_mib} MiB free, so retention starts after "
        f"~{args.room_mib} MiB of recordings; the measurement begins {args.settle:g} s after "
        "its first deletion. Every second: `statvfs` free space, `GET /api/v1/storage` "
        "(deleted, volume state, blocked streams), every 10 s `GET /api/v1/streams`, and the CPU "
        "of the DB-writer thread (retention runs there, with every segment-row write) from "
        "`/proc/PID/task/TID/stat`. Baseline: the same cameras onto a "
        f"{baseline.volume_mib} MiB volume without ballast (retention runs every check and "
        f"finds nothing to do), measured after a {args.warmup:g} s warm-up. Gaps and holes "
        "are read from the index after Vigil stopped.",
        "",
        "| | retention deleting | baseline |",
        "|---|---|---|",
        row("measured", f"{seconds:.0f} s", f"{baseline.seconds:.0f} s"),
        row("free MiB: min / median / max", f"{min(frees) / MIB:.1f} / "
            f"{statistics.median(frees) / MIB:.1f} / {max(frees) / MIB:.1f} (threshold "
            f"{args.min_free_mib})", f"{min(t.free for t in baseline.ticks) / MIB:,.0f} (min)"),
        row("samples below the threshold", f"{sum(f < threshold for f in frees)} of "
            f"{len(frees)}, at worst {(min(frees) - threshold) / MIB:+.1f} MiB", "—"),
        row("seconds the volume was `full`", sum(t.state == "full" for t in retention.ticks),
            sum(t.state == "full" for t in baseline.ticks)),
        row("deleted while measured", f"{deleted:,.0f} segments, {deleted_mib:,.0f} MiB "
            f"({deleted / seconds:.1f} segments/s, {deleted_mib / seconds:.2f} MiB/s)",
            f"{baseline.delta('segments_deleted'):.0f} segments"),
        row("streams recording at the end", f"{retention.streams_recording}/{args.cameras}",
            f"{baseline.streams_recording}/{args.cameras}"),
        row("`recording_blocked` streams, most seen", retention.max_blocked,
            baseline.max_blocked),
        row("gaps stored / holes > 1 s between segments", f"{retention.gaps} / "
            f"{retention.holes}", f"{baseline.gaps} / {baseline.holes}"),
        row("rows / files / mismatches at the end", f"{retention.rows} / {retention.files} / "
            f"{retention.mismatches}", f"{baseline.rows} / {baseline.files} / "
            f"{baseline.mismatches}"),
        row(f"DB-writer thread CPU % ({window} s windows: min to max)", f"{writer[0]:.2f} "
            f"({_range(retention.windows('writer_cpu', window))})", f"{writer[1]:.2f} "
            f"({_range(baseline.windows('writer_cpu', window))})"),
        row(f"whole process CPU % ({window} s windows: min to max)", f"{whole[0]:.1f} "
            f"({_range(retention.windows('process_cpu', window), 1)})", f"{whole[1]:.1f} "
            f"({_range(baseline.windows('process_cpu', window), 1)})"),
        "",
        f"Retention deleting, against the baseline: DB-writer thread "
        f"**{writer[0] / writer[1]:.2f}x** ({cost}); whole process **{whole[0] / whole[1]:.2f}x**.",
    ]  # fmt: skip
    if not (retention.writer_found and baseline.writer_found):
        lines += ["", f"**No thread named {WRITER_THREAD} was found: its CPU is not measured.**"]
    return lines


def _range(values: list[float], digits: int = 2) -> str:
    return f"{min(values):.{digits}f} to {max(values):.{digits}f}"


# -- main ---------------------------------------------------------------------------------------


def _plain(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--only", choices=["index", "retention"], default=None)
    add("--rows", type=int, default=1_000_000, help="rows of the two large indexes")
    add("--streams", type=int, default=100, help="streams of the wide index")
    add("--samples", type=int, default=60, help="samples per index query")
    add("--seed", type=int, default=1)
    add("--cameras", type=int, default=100)
    add("--size", default="640x360")
    add("--fps", type=int, default=15)
    add("--bitrate", type=int, default=256, help="kbit/s per camera")
    add("--segment-seconds", type=int, default=10)
    add("--check-interval", type=float, default=2.0, help="storage.check_interval_s")
    add("--volume-mib", type=int, default=512)
    add("--baseline-volume-mib", type=int, default=2048)
    add("--min-free-mib", type=int, default=64)
    add("--room-mib", type=int, default=128, help="free above the threshold after the ballast")
    add("--seconds", type=float, default=180.0, help="measurement with retention deleting")
    add("--baseline-seconds", type=float, default=90.0)
    add("--warmup", type=float, default=20.0, help="before the baseline's measurement")
    add("--settle", type=float, default=10.0, help="from the first deletion to measuring")
    add("--fill-timeout", type=float, default=180.0)
    add("--output", type=Path, default=Path("docs/PERFORMANCE.md"))
    args = parser.parse_args()
    if args.only != "index" and os.geteuid() != 0:
        parser.error("the retention run mounts a tmpfs: run it as root, or use --only index")
    shown = ("rows", "streams", "samples", "cameras", "bitrate", "segment-seconds", "volume-mib",
             "min-free-mib", "room-mib", "seconds", "baseline-seconds")  # fmt: skip
    command = "./dev bench storage" + "".join(
        f" --{name} {_plain(getattr(args, name.replace('-', '_')))}" for name in shown
    ) + (f" --only {args.only}" if args.only else "")  # fmt: skip
    sections = [
        "## Storage: the index at scale, retention under load",
        "",
        f"Command: `{command}` (also `make bench-storage`). Machine: {machine()}.",
        "",
    ]
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        work = Path(tmp)
        if args.only != "retention":
            deep = max(1, args.streams // 10)
            layouts = [
                Layout("baseline", 1, args.rows // args.streams),
                Layout("wide", args.streams, args.rows // args.streams),
                Layout("deep", deep, args.rows // deep),
            ]
            results = []
            for layout in layouts:
                results.append(measure_index(layout, work / layout.name, args.samples, args.seed))
                for path in (work / layout.name).glob("vigil.db*"):
                    path.unlink()  # a million rows is ~300 MB: gone before the next
            sections += [*render_index(results, args.samples), ""]
        if args.only != "index":
            sim = Simulator(args.cameras, size=args.size, fps=args.fps, bitrate_kbit=args.bitrate)
            sim.start()
            try:
                leave = (args.min_free_mib + args.room_mib) * MIB
                retention = recording_run(args, work / "run-retention", sim, args.volume_mib, leave)
                print(f"retention run: {retention.ticks[-1]}", flush=True)
                baseline = recording_run(args, work / "run-baseline", sim, args.baseline_volume_mib,
                                         None)  # fmt: skip
                print(f"baseline run: {baseline.ticks[-1]}", flush=True)
            finally:
                sim.stop()
            sections += [*render_run(retention, baseline, args), ""]
    report = "\n".join(sections)
    print(report)
    write_section(args.output, "storage", report)


if __name__ == "__main__":
    main()
