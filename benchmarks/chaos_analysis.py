"""After the chaos: what was lost when, and to which fault; which streams were stuck; what the
log says.

Pure functions over plain data: the files' video runs and the index rows (chaos_files.py), the
faults as they happened, the monitor's samples and the service's start/exit times.
"""

from __future__ import annotations

import bisect
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.chaos_faults import CAMERA_FAULTS, Fault
from benchmarks.chaos_files import FileFacts, Interval, Row
from benchmarks.chaos_monitor import Sample
from benchmarks.chaos_service import ServiceEvent
from benchmarks.resilience import stats

PRE_S = 2.0  # a fault may take the fragment in flight (up to 1 s) before it with it


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
    row's start, its video runs from there. A file without a row, or whose row starts before
    the stream's previous file ends (a row rebuilt from the file, which knows its start to the
    second only), is placed within the second its name gives, as close to the end of the
    previous file as that second allows: files follow each other without a gap unless
    something happened. A file ffprobe found unplayable holds nothing."""
    start_of = {r.path: r.start for r in rows}
    spans: dict[str, list[Interval]] = {}
    previous_end: dict[str, float] = {}
    for facts in sorted(files, key=lambda f: (f.stream, start_of.get(f.path, f.named_start))):
        start = start_of.get(facts.path)
        after = previous_end.get(facts.stream, facts.named_start)
        if start is None or start < after - 0.01:
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


# -- Vigil's own account ------------------------------------------------------------------------


def read_gaps(db: Path, until: float) -> dict[str, list[Interval]]:
    """Vigil's own account of what it did not record, per stream (a gap still open ends at
    `until`)."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = connection.execute("SELECT stream, start_us, end_us FROM gaps").fetchall()
    finally:
        connection.close()
    gaps: dict[str, list[Interval]] = {}
    for stream, start, end in rows:
        gaps.setdefault(str(stream), []).append(
            (int(start) / 1e6, until if end is None else int(end) / 1e6)
        )
    return {stream: merge(found) for stream, found in gaps.items()}


def unaccounted(streams: list[str], covered: dict[str, list[Interval]],
                gaps: dict[str, list[Interval]], t0: float, t1: float,
                tolerance: float = 1.0) -> list[tuple[str, Interval, float]]:  # fmt: skip
    """Holes longer than `tolerance` (Vigil's: closer segments count as contiguous) of which
    more than `tolerance` is in no gap row: (stream, hole, seconds unaccounted)."""
    found = []
    for stream in streams:
        for hole in holes(covered.get(stream, []), t0, t1, tolerance):
            inside = sum(max(0.0, min(hole[1], b) - max(hole[0], a))
                         for a, b in gaps.get(stream, []))  # fmt: skip
            if hole[1] - hole[0] - inside > tolerance:
                found.append((stream, hole, hole[1] - hole[0] - inside))
    return found


# -- stuck streams ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stuck:
    stream: str
    since: float  # when it should have been writing from
    until: float  # the last sample that found it stuck
    around: str  # the faults near it


def vigil_ready(events: list[ServiceEvent]) -> list[Interval]:
    """Stretches in which a Vigil process had said `READY=1` (its streams started) and had not
    exited."""
    ready, since = [], None
    for event in events:
        if event.kind == "ready":
            since = event.at
        elif event.kind == "exit" and since is not None:
            ready.append((since, event.at))
            since = None
    if since is not None:
        ready.append((since, float("inf")))
    return ready


def restart_times(faults: list[Fault], events: list[ServiceEvent],
                  covered: dict[str, list[Interval]]) -> list[tuple[float, float]]:  # fmt: skip
    """For each kill: seconds from systemd starting Vigil again to its `READY=1`, and to every
    stream's first recorded frame after it."""
    times = []
    for fault in faults:
        if fault.kind != "vigil_kill":
            continue
        ready = min((e.at for e in events if e.kind == "ready" and e.at > fault.end),
                    default=float("nan"))  # fmt: skip
        firsts = [next((a for a, _b in covered.get(s, []) if a >= fault.end - 0.5), float("nan"))
                  for s in fault.streams]  # fmt: skip
        times.append((ready - fault.end, max(firsts) - fault.end))
    return times


def stuck_streams(samples: list[Sample], faults: list[Fault], events: list[ServiceEvent],
                  quiet_s: float) -> list[Stuck]:  # fmt: skip
    """A stream is stuck at a sample when it wrote nothing for `quiet_s` seconds although, for
    all that time, its camera was serving and reachable and Vigil was running and had said
    `READY=1` (a slow start-up is in the kills' loss and restart times, not here)."""
    up = vigil_ready(events)
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
            continue  # no Vigil running, or not ready yet
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
            found.append(Stuck(stream, since, until, ", ".join(near) or "none"))
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
    """median / p95 / max, or — for nothing (as the resilience bench writes them)."""
    return stats(values)
