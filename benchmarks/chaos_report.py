"""The chaos benchmark's report: the section of docs/PERFORMANCE.md, and the details printed
after it (each stuck stream, unplayable file, disagreeing row, unplanned restart)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

from benchmarks.chaos_analysis import Loss, Stuck, spread
from benchmarks.chaos_faults import DURATIONS, KINDS, LABELS, Fault
from benchmarks.chaos_files import FileFacts, IndexCheck
from benchmarks.chaos_service import ServiceEvent
from benchmarks.common import machine


@dataclass
class Result:
    command: str
    cameras: int
    groups: int
    group_size: int
    size: str
    fps: int
    bitrate_kbit: int
    segment_seconds: int
    minutes: float
    t0: float
    t1: float
    faults: list[Fault]
    loss: Loss
    files: list[FileFacts]
    probed_how: str
    quarantined: list[FileFacts]  # files Vigil moved to .quarantine, read like the others
    check: IndexCheck
    stuck: list[Stuck]
    silent_at_end: list[str]
    unlisted: dict[str, tuple[float, float]]  # files the index missed for a while, during the run
    unplanned: list[ServiceEvent]
    unaccounted: list[tuple[str, tuple[float, float], float]]  # holes without a gap row
    restarts: list[tuple[float, float]]  # per kill: s from exec to READY=1, to all recording
    load: tuple[tuple[float, ...], tuple[float, ...]]  # load averages at the start, at the end
    restart_s: float
    watchdog_s: float
    after_s: float
    quiet_s: float
    min_hole_s: float
    log_top: list[tuple[str, int]]
    vigil_version: str


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


def _lasting(kind: str) -> str:
    low, high = DURATIONS[kind]
    return f", {low:g} to {high:g} s" if high else ""


def _seconds(found: list[tuple[str, tuple[float, float], float]]) -> str:
    return f" ({sum(x for _s, _h, x in found):.1f} s)" if found else ""


def _holding(files: list[FileFacts]) -> str:
    video = [f for f in files if f.packets]
    return f"{len(video)}, {sum(f.duration for f in video):.1f} s" if video else "0"


def _longest(unlisted: dict[str, tuple[float, float]]) -> str:
    if not unlisted:
        return ""
    return f" (longest seen unlisted: {max(b - a for a, b in unlisted.values()):.0f} s)"


def _shorter(r: Result) -> list[str]:
    if (r.cameras, r.minutes) == (50, 20):
        return []
    return ["**A smaller run than the default (50 cameras, 20 min): the figures are its own.**", ""]


def render(r: Result) -> str:
    rows = []
    for kind in KINDS:
        mine = [(i, f) for i, f in enumerate(r.faults) if f.kind == kind]
        if not mine:
            continue
        pairs = [r.loss.per_fault[(i, s)] for i, f in mine for s in f.streams]
        lengths = [f.end - f.start for _, f in mine]
        hit = sum(1 for _lost, beyond in pairs if beyond > 1.0)
        rows.append(
            f"| {LABELS[kind]} | {len(mine)} | {statistics.median(lengths):.1f} / "
            f"{max(lengths):.1f} | {len(pairs)} | {spread(b for _l, b in pairs)} | {hit} |"
        )
    baseline = list(r.loss.baseline.values())
    free_h = sum(r.loss.fault_free_s.values()) / 3600
    probed = [f for f in r.files if f.probed]
    unplayable = [f for f in probed if not f.plays]
    noisy = [f for f in probed if f.plays and f.ffprobe_errors]
    late_key = [f for f in r.files if f.runs and not f.keyframe_first]
    c = r.check
    streams_stuck = sorted({s.stream for s in r.stuck})
    started = datetime.fromtimestamp(r.t0, UTC)
    lines = [
        "## Chaos: random faults while recording",
        "",
        f"Command: `{r.command}`, run {started:%Y-%m-%d %H:%M} UTC on Vigil {r.vigil_version}. "
        f"Machine: {machine()}. Load average (1/5/15 min) at the start "
        f"{'/'.join(f'{x:.2f}' for x in r.load[0])}, at the end "
        f"{'/'.join(f'{x:.2f}' for x in r.load[1])}.",
        "",
        *_shorter(r),
        f"{r.cameras} simulated cameras ({r.size}, {r.fps} fps, 1 s GOP, {r.bitrate_kbit} kbit/s, "
        f"RTSP over TCP) in {r.groups} groups of up to {r.group_size}, each group one `vigil sim` "
        "inside a network namespace of its own (a veth pair with a /30 of 10/8 to the host, "
        "nothing else), recorded by one `vigil run` in "
        f"{r.segment_seconds} s segments onto two tmpfs volumes (`policy: spread`), each "
        "bind-mounted where Vigil looks. Vigil runs under a stand-in for systemd "
        f"(`Type=notify`, `Restart=always`, `RestartSec={r.restart_s:g}`, "
        f"`WatchdogSec={r.watchdog_s:g}`). For {r.minutes:g} min after every camera recorded, "
        "faults come one at a time from a seeded RNG, each after a quiet spell of 15 to 30 s:",
        "",
        *[f"- `{k}`: {LABELS[k]}" + _lasting(k) for k in KINDS],
        "",
        "The database is made slow by holding its write lock from another process: the one "
        "way to slow SQLite's writer that needs nothing but the database file (no FUSE or "
        "dm-delay layer under it), and what any second writer would do to it; the held times "
        "straddle Vigil's 5 s busy timeout.",
        "",
        "Everything is measured from outside, after Vigil stopped: the recorded timeline of each "
        "stream is its files' video packets (PyAV, not decoded), each file placed at its index "
        "row's start; "
        f"{r.probed_how}. A hole is a stretch of the measured {r.minutes:g} min longer than "
        f"{r.min_hole_s:g} s that no playable file covers. A hole belongs to the first fault "
        "touching that stream whose window (2 s before it to "
        f'{r.after_s:g} s after it) it overlaps; the rest is the baseline. "Lost beyond" is '
        "a hole's time outside the fault's own stretch: the cameras down or cut off, Vigil "
        "dead until restarted (nothing for a pulled volume or a locked database, since another "
        "volume had room and files do not wait for the index). A stream is stuck when none of "
        f"its files grew for {r.quiet_s:g} s although all that time its camera served and was "
        "reachable and Vigil ran and had said `READY=1` (file modification times, sampled "
        "every 2 s; a slow start after a kill shows in the kills' loss and restart times). "
        "The index is checked against the files at the end (after a clean stop) and, for "
        "files it does not list, every 10 s during the run. Faults never overlap, so each "
        "hole has one cause; what several faults at once do is not measured here.",
        "",
        "| fault | count | length s: median / max | stream-faults | lost beyond its length "
        "per stream s: median / p95 / max | stream-faults losing > 1 s beyond |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "| figure | measured | goal |",
        "|---|---|---|",
        f"| after a kill, s from systemd starting Vigil again (median / p95 / max) | to "
        f"`READY=1`: {spread(a for a, _b in r.restarts)}; to every stream recording: "
        f"{spread(b for _a, b in r.restarts)} | — |",
        f"| baseline: lost outside every fault, per stream s (median / p95 / max) | "
        f"{spread(baseline)} ({sum(baseline):.1f} s over {free_h:.1f} fault-free "
        "stream-hours) | 0 |",
        f"| stuck streams | {len(r.stuck)} episode(s), {len(streams_stuck)} stream(s)"
        f"{' (' + ', '.join(streams_stuck) + ')' if streams_stuck else ''}; at the end "
        f"{len(r.silent_at_end)} | 0 |",
        f"| files that do not play (of {len(probed)} decoded) | {len(unplayable)} | 0 |",
        f"| files that play with decoder errors / do not start on a keyframe | {len(noisy)} / "
        f"{len(late_key)} | 0 |",
        f"| index rows that disagree with the files (of {c.rows} rows, {c.files} files) | "
        f"{c.disagreeing}: {len(c.row_without_file)} without their file, "
        f"{len(c.file_without_row)} files without a row, {len(c.duration_off)} durations off "
        f"by more than a frame, {len(c.left_open)} left open, {len(c.start_off)} starting "
        f"outside their file's named second, {len(c.overlapping)} overlapping the stream's "
        "previous row | 0 |",
        f"| files on disk the index did not list for {r.quiet_s:g} s or more during the run "
        f"(checked every 10 s) | {len(r.unlisted)}{_longest(r.unlisted)} | 0 |",
        f"| rows Vigil marked `missing` / files it quarantined (of which holding video) | "
        f"{c.marked_missing} / {len(r.quarantined)} ({_holding(r.quarantined)}) | — |",
        f"| holes over 1 s that Vigil's gap rows do not account for | {len(r.unaccounted)}"
        f"{_seconds(r.unaccounted)} | 0 |",
        f"| Vigil restarts the benchmark did not cause (crash, watchdog, start timeout) | "
        f"{len(r.unplanned)} | 0 |",
        "",
    ]
    return "\n".join(lines)


def details(r: Result, limit: int = 25) -> str:
    """What a reader needs to check a figure by hand: each fault and what it cost, each
    misbehaviour. Printed, not written to the page."""
    out = ["Faults (UTC, length, streams, lost / beyond per stream: max):"]
    restarts = iter(r.restarts)
    for i, fault in enumerate(r.faults):
        pairs = [(s, *r.loss.per_fault[(i, s)]) for s in fault.streams]
        worst = max(pairs, key=lambda p: p[2])
        started = ""
        if fault.kind == "vigil_kill":
            ready, recording = next(restarts)
            started = (
                f"; READY=1 {ready:.1f} s after the restart, all recording after {recording:.1f} s"
            )
        out.append(f"  {_clock(fault.start)} {fault.name}: {fault.end - fault.start:.1f} s, "
                   f"{len(fault.streams)} streams, worst {worst[0]} lost {worst[1]:.2f} s, "
                   f"beyond {worst[2]:.2f} s{started}")  # fmt: skip
    out.append(f"Baseline holes ({len(r.loss.baseline_holes)}):")
    out += [f"  {s} {_clock(a)} {b - a:.2f} s" for s, (a, b) in r.loss.baseline_holes[:limit]]
    out.append(f"Stuck ({len(r.stuck)}):")
    out += [f"  {s.stream}: nothing written from {_clock(s.since)} to at least "
            f"{_clock(s.until)} ({s.until - s.since:.0f} s); faults around: {s.around}"
            for s in r.stuck[:limit]]  # fmt: skip
    out.append("Files that do not play / decoder errors:")
    out += [f"  {f.path}: plays={f.plays} decoded={f.decoded} packets={f.packets} "
            f"{f.ffprobe_errors or f.error}" for f in r.files
            if (f.probed and (not f.plays or f.ffprobe_errors)) or f.error][:limit]  # fmt: skip
    c = r.check
    out.append("Index disagreements:")
    out += [f"  row {w.id} {w.path} ({w.status}): file missing" for w in c.row_without_file[:limit]]
    out += [f"  {p}: no row" for p in c.file_without_row[:limit]]
    out += [f"  row {w.id} {w.path}: {w.duration:.3f} s in the index, {d:.3f} s in the file"
            for w, d in c.duration_off[:limit]]  # fmt: skip
    out += [f"  row {w.id} {w.path}: left open" for w in c.left_open[:limit]]
    out += [f"  row {w.id} {w.path}: starts {_clock(w.start)}" for w in c.start_off[:limit]]
    out += [f"  row {w.id} {w.path} ({w.status}): starts {o:.3f} s before the previous row ends"
            for w, o in c.overlapping[:limit]]  # fmt: skip
    out.append(f"Files unlisted by the index for {r.quiet_s:g} s or more during the run:")
    out += [f"  {p}: from {_clock(a)} to at least {_clock(b)}"
            for p, (a, b) in sorted(r.unlisted.items(), key=lambda i: i[1])[:limit]]  # fmt: skip
    out.append("Quarantined by Vigil:")
    out += [f"  {f.path}: {f.packets} packets, {f.duration:.2f} s {f.error}"
            for f in r.quarantined[:limit]]  # fmt: skip
    out.append("Holes without a gap row:")
    out += [f"  {s} {_clock(a)} {b - a:.2f} s, {x:.2f} s of it in no gap row"
            for s, (a, b), x in r.unaccounted[:limit]]  # fmt: skip
    out.append("Unplanned restarts:")
    out += [f"  {_clock(e.at)} {e.kind} {e.detail}" for e in r.unplanned]
    out.append("Vigil's log, warnings and errors (folded, most frequent first):")
    out += [f"  {n:5d}  {line}" for line, n in r.log_top]
    return "\n".join(out)
