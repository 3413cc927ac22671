"""After the chaos: what is on disk, what the index says about it, and what was lost when.

Everything here reads the files themselves (PyAV for the packets' timestamps, ffprobe decoding
for whether a file plays) and Vigil's database read-only, after Vigil stopped; the pure parts
(timelines, holes, which fault a hole belongs to, stuck streams) take plain data.
"""

from __future__ import annotations

import bisect
import random
import re
import sqlite3
import statistics
import subprocess
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.chaos_faults import CAMERA_FAULTS, Fault
from benchmarks.chaos_monitor import Sample
from benchmarks.chaos_service import ServiceEvent

Interval = tuple[float, float]
PRE_S = 2.0  # a fault may take the fragment in flight (up to 1 s) before it with it


# -- the files ----------------------------------------------------------------------------------


@dataclass
class FileFacts:
    """One segment file as found on disk (`path` as Vigil names it, under the volume's slot)."""

    path: str
    stream: str
    named_start: float  # the second its name gives
    packets: int = 0
    duration: float = 0.0  # first packet's pts to the last one's end
    runs: list[Interval] = field(default_factory=list)  # contiguous video, s from the first pts
    keyframe_first: bool = False
    error: str = ""  # what PyAV could not read
    probed: bool = False  # decoded by ffprobe
    plays: bool | None = None
    decoded: int = 0
    ffprobe_errors: str = ""


def named_start(stream_root: Path, path: Path) -> float:
    """`<stream>/<YYYY-MM-DD>/<HH>/<MM.SS>[-n].mp4` → epoch seconds."""
    day, hour, name = path.relative_to(stream_root).parts
    minute_second = name.removesuffix(".mp4").split("-")[0]
    moment = datetime.strptime(f"{day} {hour} {minute_second}", "%Y-%m-%d %H %M.%S")
    return moment.replace(tzinfo=UTC).timestamp()


def find_files(disks: list[tuple[Path, Path]]) -> tuple[list[FileFacts], list[Path]]:
    """Segment files on each (disk, slot) pair, named by their slot path; and what lies in
    `.quarantine` (Vigil's unusable crash leftovers)."""
    found, quarantined = [], []
    for disk, slot in disks:
        quarantined += sorted((disk / ".quarantine").rglob("*.mp4"))
        for stream_dir in sorted(p for p in disk.iterdir() if p.is_dir()):
            if stream_dir.name.startswith("."):
                continue
            for path in sorted(stream_dir.rglob("*.mp4")):
                found.append(FileFacts(str(slot / path.relative_to(disk)), stream_dir.name,
                                       named_start(stream_dir, path)))  # fmt: skip
    return found, quarantined


def read_packets(facts: FileFacts, real: Path, fps: int) -> None:
    """Timestamps of every video packet, without decoding; a jump of more than 1.5 frames
    splits the file's video into runs."""
    import av

    try:
        with av.open(str(real)) as container:
            stream = container.streams.video[0]
            base = float(stream.time_base or 0)
            packets = [(p.pts, p.duration or 0, p.is_keyframe) for p in container.demux(stream)
                       if p.pts is not None]  # fmt: skip
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        facts.error = str(exc) or type(exc).__name__
        return
    if not packets:
        facts.error = "no video packets"
        return
    packets.sort()
    first = packets[0][0]
    facts.packets = len(packets)
    facts.keyframe_first = bool(packets[0][2])
    runs: list[Interval] = []
    frame = 1 / fps
    for pts, duration, _key in packets:
        at, length = (pts - first) * base, (duration * base) or frame
        if runs and at - runs[-1][1] <= 0.5 * frame:
            runs[-1] = (runs[-1][0], max(runs[-1][1], at + length))
        else:
            runs.append((at, at + length))
    facts.runs = runs
    facts.duration = runs[-1][1]


def ffprobe(facts: FileFacts, real: Path) -> None:
    """Decode the whole file with ffprobe: it plays if ffprobe succeeds and decodes frames."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=nb_read_frames", "-of", "csv=p=0", str(real)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = result.stdout.strip().rstrip(",")
    facts.probed = True
    facts.decoded = int(out) if out.isdigit() else 0
    facts.plays = result.returncode == 0 and facts.decoded > 0
    facts.ffprobe_errors = " ".join(result.stderr.split())[:300]


def examine(files: list[FileFacts], real_of: dict[str, Path], fps: int, probe_max: int,
            seed: int, workers: int = 2) -> str:  # fmt: skip
    """Read every file's packets; decode every file with ffprobe, or a seeded sample of
    `probe_max` when there are more. Returns what was decoded, in words."""
    for facts in files:
        read_packets(facts, real_of[facts.path], fps)
    chosen = files if len(files) <= probe_max else random.Random(seed).sample(files, probe_max)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda f: ffprobe(f, real_of[f.path]), chosen))
    if len(chosen) == len(files):
        return f"every file ({len(files)}) decoded by ffprobe"
    return f"a random sample of {len(chosen)} of the {len(files)} files decoded by ffprobe"


# -- the index ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    stream: str
    path: str
    start: float
    duration: float | None
    status: str


def read_rows(db: Path) -> list[Row]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute(
            "SELECT id, stream, path, start_us, duration_s, status FROM segments ORDER BY id"
        ).fetchall()
    finally:
        connection.close()
    return [Row(int(i), str(s), str(p), int(a) / 1e6, None if d is None else float(d), str(st))
            for i, s, p, a, d, st in rows]  # fmt: skip


@dataclass
class IndexCheck:
    rows: int = 0
    files: int = 0
    row_without_file: list[Row] = field(default_factory=list)  # status not `missing`
    marked_missing: int = 0  # rows Vigil itself marked missing (file quarantined or gone)
    file_without_row: list[str] = field(default_factory=list)
    duration_off: list[tuple[Row, float]] = field(default_factory=list)  # (row, file's)
    left_open: list[Row] = field(default_factory=list)  # `open` after a clean stop
    start_off: list[Row] = field(default_factory=list)  # start outside the second its name says

    @property
    def disagreeing(self) -> int:
        return (len(self.row_without_file) + len(self.file_without_row) + len(self.duration_off)
                + len(self.left_open) + len(self.start_off))  # fmt: skip


def check_index(rows: list[Row], files: list[FileFacts], fps: int) -> IndexCheck:
    """Rows against files: every row's file there, every file's row there, durations within a
    frame of what the file holds, nothing left open, starts within the named second."""
    by_path = {f.path: f for f in files}
    check = IndexCheck(rows=len(rows), files=len(files))
    paths = set()
    tolerance = 1 / fps + 0.001
    for row in rows:
        paths.add(row.path)
        facts = by_path.get(row.path)
        if row.status == "open":
            check.left_open.append(row)
        if facts is None:
            if row.status == "missing":
                check.marked_missing += 1
            else:
                check.row_without_file.append(row)
            continue
        if row.duration is not None and abs(row.duration - facts.duration) > tolerance:
            check.duration_off.append((row, facts.duration))
        if not facts.named_start <= row.start < facts.named_start + 1:
            check.start_off.append(row)
    check.file_without_row = sorted(f.path for f in files if f.path not in paths)
    return check


# -- timelines ----------------------------------------------------------------------------------


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def recorded(rows: list[Row], files: list[FileFacts]) -> dict[str, list[Interval]]:
    """Per stream, the wall-clock stretches its playable files hold: each file placed at its
    row's start, its video runs from there. A file without a row is placed within the second
    its name gives, as close to the end of the stream's previous file as that second allows
    (files follow each other without a gap unless something happened). A file ffprobe found
    unplayable holds nothing."""
    start_of = {r.path: r.start for r in rows}
    spans: dict[str, list[Interval]] = {}
    previous_end: dict[str, float] = {}
    for facts in sorted(files, key=lambda f: (f.stream, start_of.get(f.path, f.named_start))):
        start = start_of.get(facts.path)
        if start is None:
            after = previous_end.get(facts.stream, facts.named_start)
            start = min(max(after, facts.named_start), facts.named_start + 0.999)
        previous_end[facts.stream] = start + facts.duration
        if facts.plays is False or not facts.runs:
            continue
        spans.setdefault(facts.stream, []).extend((start + a, start + b) for a, b in facts.runs)
    return {stream: merge(found) for stream, found in spans.items()}


def holes(covered: list[Interval], t0: float, t1: float, min_s: float) -> list[Interval]:
    """Stretches of [t0, t1] not covered, each longer than `min_s`."""
    found, at = [], t0
    for a, b in covered:
        if b <= at:
            continue
        if a > at and min(a, t1) - at > min_s:
            found.append((at, min(a, t1)))
        at = max(at, b)
        if at >= t1:
            break
    if t1 - at > min_s:
        found.append((at, t1))
    return found


def length(intervals: Iterable[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def minus(hole: Interval, cut: Interval | None) -> float:
    """Length of `hole` outside `cut`."""
    if cut is None:
        return hole[1] - hole[0]
    inside = max(0.0, min(hole[1], cut[1]) - max(hole[0], cut[0]))
    return hole[1] - hole[0] - inside


@dataclass
class Loss:
    """Video lost, laid at the faults' doors."""

    # (fault index, stream) -> (seconds lost in holes touching the fault's window, of which
    # outside the fault's own stretch)
    per_fault: dict[tuple[int, str], tuple[float, float]] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)  # per stream, outside every fault
    baseline_holes: list[tuple[str, Interval]] = field(default_factory=list)
    fault_free_s: dict[str, float] = field(default_factory=dict)  # per stream


def attribute(streams: list[str], covered: dict[str, list[Interval]], faults: list[Fault],
              t0: float, t1: float, after_s: float, min_s: float) -> Loss:  # fmt: skip
    """Each hole of a stream goes, whole, to the first fault touching that stream whose window
    ([start - PRE_S, end + after_s]) it overlaps; holes overlapping no such window are the
    baseline. What a fault cost a stream beyond its own length is its holes' time outside the
    fault's own stretch (`Fault.own`)."""
    loss = Loss()
    for stream in streams:
        mine = [(i, f) for i, f in enumerate(faults) if stream in f.streams]
        windows = [(max(t0, f.start - PRE_S), min(t1, f.end + after_s)) for _, f in mine]
        for i, _fault in mine:
            loss.per_fault[(i, stream)] = (0.0, 0.0)
        loss.fault_free_s[stream] = (t1 - t0) - length(merge(windows))
        loss.baseline[stream] = 0.0
        for hole in holes(covered.get(stream, []), t0, t1, min_s):
            owner = next((k for k, (a, b) in enumerate(windows) if hole[0] < b and a < hole[1]),
                         None)  # fmt: skip
            if owner is None:
                loss.baseline[stream] += hole[1] - hole[0]
                loss.baseline_holes.append((stream, hole))
                continue
            i, fault = mine[owner]
            lost, beyond = loss.per_fault[(i, stream)]
            loss.per_fault[(i, stream)] = (
                lost + hole[1] - hole[0],
                beyond + minus(hole, fault.own),
            )
    return loss


# -- stuck streams ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stuck:
    stream: str
    since: float  # when it should have been writing from
    seen_at: float  # first sample that found it stuck
    until: float  # last sample that found it stuck
    around: str  # the faults near it


def vigil_up(events: list[ServiceEvent]) -> list[Interval]:
    """Stretches in which a Vigil process existed (from its start to its exit)."""
    up, started = [], None
    for event in events:
        if event.kind == "exec":
            started = event.at
        elif event.kind == "exit" and started is not None:
            up.append((started, event.at))
            started = None
    if started is not None:
        up.append((started, float("inf")))
    return up


def stuck_streams(samples: list[Sample], faults: list[Fault], events: list[ServiceEvent],
                  quiet_s: float) -> list[Stuck]:  # fmt: skip
    """A stream is stuck at a sample when it wrote nothing for `quiet_s` seconds although, for
    all that time, its camera was serving and reachable and a Vigil process was running."""
    up = vigil_up(events)
    starts = [a for a, _ in up]
    camera_down: dict[str, list[Interval]] = {}
    for fault in faults:
        if fault.kind in CAMERA_FAULTS and fault.own is not None:
            for stream in fault.streams:
                camera_down.setdefault(stream, []).append(fault.own)
    episodes: dict[str, list[tuple[float, float]]] = {}
    found: list[Stuck] = []
    for sample in samples:
        k = bisect.bisect_right(starts, sample.at) - 1
        if k < 0 or up[k][1] < sample.at:
            continue  # no Vigil running
        vigil_since = up[k][0]
        for stream, wrote in sample.last_write.items():
            downs = camera_down.get(stream, [])
            if any(a <= sample.at <= b for a, b in downs):
                continue
            camera_since = max((b for _a, b in downs if b <= sample.at), default=0.0)
            since = max(wrote, camera_since, vigil_since)
            if sample.at - since <= quiet_s:
                continue
            runs = episodes.setdefault(stream, [])
            if runs and runs[-1][0] == since:
                runs[-1] = (since, sample.at)
            else:
                runs.append((since, sample.at))
    for stream, runs in episodes.items():
        for since, until in runs:
            near = [f.name for f in faults if f.start - 60 <= since <= f.end + 60]
            found.append(Stuck(stream, since, since + quiet_s, until, ", ".join(near) or "none"))
    return sorted(found, key=lambda s: (s.since, s.stream))


# -- the log ------------------------------------------------------------------------------------

_LINE = re.compile(r"^\d\d:\d\d:\d\d\s+(ERROR|WARNING|CRITICAL)\s+(\S+): (.*)$")


def log_summary(log: Path, top: int = 12) -> tuple[Counter[str], list[str]]:
    """Warnings and errors of Vigil's log, by message with names and numbers folded
    (`camN`, `N`), most frequent first; and one full example line of each."""
    counts: Counter[str] = Counter()
    example: dict[str, str] = {}
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            if line.startswith("Traceback"):
                counts["Traceback"] += 1
                example.setdefault("Traceback", line)
            continue
        level, source, message = match.groups()
        folded = re.sub(r"\d+(\.\d+)?", "N", re.sub(r"cam\d+", "camN", message))
        folded = re.sub(r"/\S+", "PATH", folded)
        key = f"{level} {source}: {folded}"
        counts[key] += 1
        example.setdefault(key, line)
    return counts, [example[k] for k, _ in counts.most_common(top)]


def spread(values: Iterable[float]) -> str:
    """median / p95 / max, or — for nothing."""
    items = sorted(values)
    if not items:
        return "—"
    p95 = items[min(len(items) - 1, round(0.95 * (len(items) - 1)))]
    return f"{statistics.median(items):.2f} / {p95:.2f} / {items[-1]:.2f}"
