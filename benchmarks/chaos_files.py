"""The chaos benchmark's look at the files and the index after the run: every segment file's
video packets (PyAV, without decoding), whether it plays (ffprobe decoding it), and every index
row checked against its file."""

from __future__ import annotations

import random
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

Interval = tuple[float, float]


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
    # (row, seconds): starts that long before the stream's previous row ends; one stream is
    # one recorder, so two of its files never hold the same moment
    overlapping: list[tuple[Row, float]] = field(default_factory=list)

    @property
    def disagreeing(self) -> int:
        return (len(self.row_without_file) + len(self.file_without_row) + len(self.duration_off)
                + len(self.left_open) + len(self.start_off) + len(self.overlapping))  # fmt: skip


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
    previous: dict[str, Row] = {}
    for row in sorted(rows, key=lambda r: (r.stream, r.start, r.id)):
        if row.status == "missing" or row.duration is None:
            continue
        before = previous.get(row.stream)
        if before is not None and before.duration is not None:
            overlap = before.start + before.duration - row.start
            if overlap > tolerance:
                check.overlapping.append((row, overlap))
        previous[row.stream] = row
    return check
