"""What a recorded, possibly crash-truncated, MP4 file holds: codec, picture size, and the
duration of the samples that are entirely on disk.

A small ISO-BMFF reader written here rather than taken from a library: Vigil's files are simple
(one video track; ftyp, moov, then moof+mdat pairs from mp4mux), and start-up repair needs
byte-exact knowledge of which fragments are complete. ffprobe does not give that: it counts
the samples a cut fragment announces, decodes what it finds of a cut mdat, and refuses a file
that ends inside a moof. This reader reads box headers and the small moov/moof boxes only,
never the media data.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

Codec = Literal["h264", "h265"]

_CODECS: dict[bytes, Codec] = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "h265", b"hev1": "h265"}
# moov and moof are read whole; one bigger than this is garbage, not a recording.
_MAX_METADATA_BOX = 64 * 1024 * 1024
# tfhd flags (ISO/IEC 14496-12, 8.8.7)
_TFHD_BASE_DATA_OFFSET = 0x01
_TFHD_SAMPLE_DESCRIPTION_INDEX = 0x02
_TFHD_DEFAULT_DURATION = 0x08
_TFHD_DEFAULT_SIZE = 0x10
_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
# trun flags (8.8.8)
_TRUN_DATA_OFFSET = 0x001
_TRUN_FIRST_SAMPLE_FLAGS = 0x004
_TRUN_DURATION = 0x100
_TRUN_SIZE = 0x200
_TRUN_FLAGS = 0x400
_TRUN_CTS_OFFSET = 0x800


class Mp4Error(Exception):
    """The file is not an MP4 this reader can use: empty, no header, garbage, malformed."""


@dataclass(frozen=True, slots=True)
class Mp4Info:
    """What `probe_mp4` found. Durations count only samples whose bytes are all on disk."""

    codec: Codec | None
    width: int | None
    height: int | None
    timescale: int
    duration_s: float
    fragments: int  # complete fragments: a moof and the mdat holding its samples
    complete_bytes: int  # end of the last complete top-level box
    file_size: int
    fragmented: bool
    first_pts_s: float  # baseMediaDecodeTime of the first complete fragment, in seconds
    # The top-level box the file ends inside: "?" when even its header is cut or is not a box
    # header (zeros left by a power cut); None when the file ends on a box boundary.
    partial_box: str | None


@dataclass(frozen=True, slots=True)
class _Track:
    """The video track as the moov describes it."""

    track_id: int
    timescale: int
    codec: Codec | None
    width: int | None
    height: int | None
    tick_runs: tuple[tuple[int, int], ...]  # stts (sample count, duration)
    sample_count: int  # stsz
    uniform_size: int  # stsz: the size of every sample, or 0 when `sample_sizes` lists them
    sample_sizes: tuple[int, ...]
    chunk_runs: tuple[tuple[int, int], ...]  # stsc (first chunk, samples per chunk)
    chunk_offsets: tuple[int, ...]  # stco / co64


@dataclass(frozen=True, slots=True)
class _Movie:
    """What the moov says: the video track, and per-track fragment defaults (trex)."""

    track: _Track
    fragmented: bool
    trex: dict[int, tuple[int, int]]  # track id -> (default duration, default size)


@dataclass(frozen=True, slots=True)
class _Fragment:
    ticks: int  # summed sample durations of the video track
    decode_time: int | None  # tfdt of the video track
    data_end: int  # file offset just past the last sample byte, any track


# --- boxes in memory (pure) --------------------------------------------------------------


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, payload start, payload end) of each box in ``data[start:end]``."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise Mp4Error(f"box {kind.decode('latin-1')!r} at {offset} overruns its parent")
        yield kind, offset + header, offset + size
        offset += size


def _child(data: bytes, span: tuple[int, int], kind: bytes) -> tuple[int, int] | None:
    for found, start, end in _children(data, *span):
        if found == kind:
            return start, end
    return None


def _version(data: bytes, offset: int) -> int:
    return data[offset]


def _table(data: bytes, span: tuple[int, int], fmt: str, skip: int = 0) -> list[tuple[int, ...]]:
    """Entries of a full box laid out as version/flags, `skip` bytes, count, entries."""
    (count,) = struct.unpack_from(">I", data, span[0] + 4 + skip)
    size = struct.calcsize(fmt)
    first = span[0] + 8 + skip
    if first + count * size > span[1]:
        raise Mp4Error(f"a table of {count} entries overruns its box")
    return [struct.unpack_from(fmt, data, first + index * size) for index in range(count)]


def _entries(
    moov: bytes, boxes: dict[bytes, tuple[int, int]], kind: bytes, fmt: str
) -> list[tuple[int, ...]]:
    return _table(moov, boxes[kind], fmt) if kind in boxes else []


def _parse_moov(moov: bytes) -> _Movie:
    """The first video track of a moov payload and the fragment defaults."""
    whole = (0, len(moov))
    trex: dict[int, tuple[int, int]] = {}
    mvex = _child(moov, whole, b"mvex")
    for kind, start, _ in _children(moov, *mvex) if mvex else ():
        if kind == b"trex":
            track_id, _index, duration, size = struct.unpack_from(">IIII", moov, start + 4)
            trex[track_id] = (duration, size)
    for kind, start, end in _children(moov, *whole):
        if kind == b"trak":
            track = _parse_trak(moov, (start, end))
            if track is not None:
                return _Movie(track=track, fragmented=mvex is not None, trex=trex)
    raise Mp4Error("no video track in moov")


def _parse_trak(moov: bytes, trak: tuple[int, int]) -> _Track | None:
    """The track's description, or None if it is not a video track."""
    tkhd = _child(moov, trak, b"tkhd")
    mdia = _child(moov, trak, b"mdia")
    hdlr = mdia and _child(moov, mdia, b"hdlr")
    if tkhd is None or mdia is None or hdlr is None:
        raise Mp4Error("track without tkhd, mdia or hdlr")
    if moov[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
        return None
    long_times = _version(moov, tkhd[0]) == 1
    (track_id,) = struct.unpack_from(">I", moov, tkhd[0] + (20 if long_times else 12))
    # Presentation size, 16.16 fixed point; used when the sample entry gives none.
    fixed_width, fixed_height = struct.unpack_from(
        ">II", moov, tkhd[0] + (88 if long_times else 76)
    )
    mdhd = _child(moov, mdia, b"mdhd")
    minf = _child(moov, mdia, b"minf")
    stbl = minf and _child(moov, minf, b"stbl")
    if mdhd is None or stbl is None:
        raise Mp4Error("video track without mdhd or sample table")
    (timescale,) = struct.unpack_from(">I", moov, mdhd[0] + (20 if _version(moov, mdhd[0]) else 12))
    if timescale == 0:
        raise Mp4Error("video track with a timescale of 0")
    boxes = {kind: (start, end) for kind, start, end in _children(moov, *stbl)}

    codec: Codec | None = None
    width, height = (fixed_width >> 16) or None, (fixed_height >> 16) or None
    if b"stsd" in boxes:
        for kind, entry, _ in _children(moov, boxes[b"stsd"][0] + 8, boxes[b"stsd"][1]):
            codec = _CODECS.get(kind)
            if codec is not None:  # a visual sample entry: width and height at fixed places
                entry_width, entry_height = struct.unpack_from(">HH", moov, entry + 24)
                width, height = entry_width or width, entry_height or height
            break
    uniform, count, sizes = 0, 0, []
    if b"stsz" in boxes:
        uniform, count = struct.unpack_from(">II", moov, boxes[b"stsz"][0] + 4)
        if not uniform:
            sizes = [size for (size,) in _table(moov, boxes[b"stsz"], ">I", skip=4)]
    offsets_box, offset_fmt = (b"co64", ">Q") if b"co64" in boxes else (b"stco", ">I")
    return _Track(
        track_id=track_id,
        timescale=timescale,
        codec=codec,
        width=width,
        height=height,
        tick_runs=tuple((n, delta) for n, delta in _entries(moov, boxes, b"stts", ">II")),
        sample_count=count,
        uniform_size=uniform,
        sample_sizes=tuple(sizes),
        chunk_runs=tuple((first, n) for first, n, _ in _entries(moov, boxes, b"stsc", ">III")),
        chunk_offsets=tuple(offset for (offset,) in _entries(moov, boxes, offsets_box, offset_fmt)),
    )


def _present_sample_ticks(track: _Track, data_limit: int) -> int:
    """Duration of the moov-described samples whose bytes lie before `data_limit`, counted in
    decode order up to the first one that does not."""
    present = 0
    # A stsc run lasts until the next run's first chunk; the last one until the last chunk.
    runs = [*track.chunk_runs, (len(track.chunk_offsets) + 1, 0)]
    for (first, per_chunk), (next_first, _) in itertools.pairwise(runs):
        for chunk in range(first, min(next_first, len(track.chunk_offsets) + 1)):
            cursor = track.chunk_offsets[chunk - 1]
            for _ in range(min(per_chunk, track.sample_count - present)):
                cursor += track.uniform_size or track.sample_sizes[present]
                if cursor > data_limit:
                    return _ticks_of_first(track.tick_runs, present)
                present += 1
    return _ticks_of_first(track.tick_runs, present)


def _ticks_of_first(runs: tuple[tuple[int, int], ...], samples: int) -> int:
    ticks = 0
    for count, delta in runs:
        taken = min(count, samples)
        ticks += taken * delta
        samples -= taken
    return ticks


def _parse_moof(moof: bytes, moof_start: int, movie: _Movie) -> _Fragment:
    """Sum a fragment's video sample durations and find where its sample data ends.

    Sample durations come from the trun when it carries them, else from the tfhd default,
    else from the trex default; data offsets count from the moof unless the tfhd says otherwise.
    """
    ticks, decode_time, data_end = 0, None, 0
    previous_data_end = moof_start
    for kind, start, end in _children(moof, 0, len(moof)):
        if kind != b"traf":
            continue
        tfhd = _child(moof, (start, end), b"tfhd")
        if tfhd is None:
            raise Mp4Error("traf without tfhd")
        (flags,) = struct.unpack_from(">I", moof, tfhd[0])
        (track_id,) = struct.unpack_from(">I", moof, tfhd[0] + 4)
        cursor = tfhd[0] + 8
        # A traf without base offset or default-base-is-moof continues where the last one ended.
        base = moof_start if flags & _TFHD_DEFAULT_BASE_IS_MOOF else previous_data_end
        if flags & _TFHD_BASE_DATA_OFFSET:
            (base,) = struct.unpack_from(">Q", moof, cursor)
            cursor += 8
        if flags & _TFHD_SAMPLE_DESCRIPTION_INDEX:
            cursor += 4
        is_video = track_id == movie.track.track_id
        default_duration, default_size = movie.trex.get(track_id, (0, 0))
        if flags & _TFHD_DEFAULT_DURATION:
            (default_duration,) = struct.unpack_from(">I", moof, cursor)
            cursor += 4
        if flags & _TFHD_DEFAULT_SIZE:
            (default_size,) = struct.unpack_from(">I", moof, cursor)
        data_cursor = base
        for box, box_start, _ in _children(moof, start, end):
            if box == b"tfdt" and is_video:
                wide = _version(moof, box_start) == 1
                (decode_time,) = struct.unpack_from(">Q" if wide else ">I", moof, box_start + 4)
            elif box == b"trun":
                run_ticks, data_cursor = _parse_trun(
                    moof, box_start, base, data_cursor, default_duration, default_size
                )
                if is_video:
                    ticks += run_ticks
                data_end = max(data_end, data_cursor)
        previous_data_end = data_cursor
    return _Fragment(ticks=ticks, decode_time=decode_time, data_end=data_end)


def _parse_trun(
    moof: bytes, start: int, base: int, data_cursor: int, default_duration: int, default_size: int
) -> tuple[int, int]:
    """(summed durations, end of sample data) of one trun."""
    (flags,) = struct.unpack_from(">I", moof, start)
    (count,) = struct.unpack_from(">I", moof, start + 4)
    cursor = start + 8
    if flags & _TRUN_DATA_OFFSET:
        (data_offset,) = struct.unpack_from(">i", moof, cursor)
        data_cursor = base + data_offset
        cursor += 4
    if flags & _TRUN_FIRST_SAMPLE_FLAGS:
        cursor += 4
    fields = [
        bool(flags & bit) for bit in (_TRUN_DURATION, _TRUN_SIZE, _TRUN_FLAGS, _TRUN_CTS_OFFSET)
    ]
    if not (fields[0] or fields[1]):
        return count * default_duration, data_cursor + count * default_size
    record = 4 * sum(fields)
    if cursor + count * record > len(moof):
        raise Mp4Error(f"trun of {count} samples overruns its moof")
    ticks = 0
    for index in range(count):
        at = cursor + index * record
        if fields[0]:
            (duration,) = struct.unpack_from(">I", moof, at)
            at += 4
        else:
            duration = default_duration
        if fields[1]:
            (size,) = struct.unpack_from(">I", moof, at)
        else:
            size = default_size
        ticks += duration
        data_cursor += size
    return ticks, data_cursor


# --- the file (I/O) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Box:
    kind: str
    start: int
    header: int
    end: int


def _top_level(file: BinaryIO, file_size: int) -> Iterator[_Box | str]:
    """Yield the complete top-level boxes, then (if the file does not end on a box boundary)
    the type of the box it ends inside, or "?" when what follows is not a box header."""
    offset = 0
    while offset < file_size:
        file.seek(offset)
        head = file.read(16)
        if len(head) < 8:
            yield "?"
            return
        size, raw_kind = struct.unpack_from(">I4s", head)
        if not all(0x20 <= byte <= 0x7E for byte in raw_kind):
            yield "?"
            return
        kind = raw_kind.decode("ascii")
        header = 8
        if size == 1:
            if len(head) < 16:
                yield "?"
                return
            (size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        elif size == 0:  # "extends to the end of the file"
            size = file_size - offset
        if size < header:
            yield "?"
            return
        if offset + size > file_size:
            yield kind
            return
        yield _Box(kind, offset, header, offset + size)
        offset += size


def _payload(file: BinaryIO, box: _Box) -> bytes:
    size = box.end - box.start - box.header
    if size > _MAX_METADATA_BOX:
        raise Mp4Error(f"{box.kind!r} box of {size} bytes is too big to be real")
    file.seek(box.start + box.header)
    return file.read(size)


def probe_mp4(path: Path) -> Mp4Info:
    """Describe the MP4 file at `path`, counting only what is entirely on disk.

    A fragment counts when its moof and the mdat after it are complete and its sample data lies
    within them; for a non-fragmented file, samples count in decode order while their bytes are
    in the file. Edit lists are ignored. Raises `Mp4Error` (naming the file and the problem)
    when the file is empty, has no ftyp or moov, or is malformed, and `OSError` when it cannot
    be read.
    """
    try:
        return _probe(path)
    except (Mp4Error, struct.error, IndexError) as exc:
        # struct.error and IndexError: a field read past the end of a box that claimed it.
        raise Mp4Error(f"{path}: {exc}") from exc


def _probe(path: Path) -> Mp4Info:
    with path.open("rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        if file_size == 0:
            raise Mp4Error("empty file")
        movie: _Movie | None = None
        complete_bytes = 0
        partial_box: str | None = None
        seen_moof = False
        pending: _Fragment | None = None  # a complete moof waiting for its mdat
        fragments, fragment_ticks = 0, 0
        first_decode_time: int | None = None
        for box in _top_level(file, file_size):
            if isinstance(box, str):
                partial_box = box
                break
            if box.start == 0 and box.kind != "ftyp":
                raise Mp4Error(f"not an MP4 file: starts with {box.kind!r}, not 'ftyp'")
            complete_bytes = box.end
            if box.kind == "moov" and movie is None:
                movie = _parse_moov(_payload(file, box))
            elif box.kind == "moof":
                if movie is None:
                    raise Mp4Error("moof before moov")
                pending = _parse_moof(_payload(file, box), box.start, movie)
                seen_moof = True
            elif box.kind == "mdat" and pending is not None:
                if pending.data_end <= box.end:
                    fragments += 1
                    fragment_ticks += pending.ticks
                    if first_decode_time is None:
                        first_decode_time = pending.decode_time
                pending = None
        if complete_bytes == 0:
            if partial_box == "ftyp":
                raise Mp4Error("cut inside its ftyp box, before the header was written")
            raise Mp4Error("not an MP4 file: no ftyp box at its start")
        if movie is None:
            cut = "its moov box is cut" if partial_box == "moov" else "it has no moov box"
            raise Mp4Error(f"{cut}: the recording stopped before its index was written")
        track = movie.track
        # Bytes after the last complete box are sample data only if they belong to an mdat.
        data_limit = file_size if partial_box == "mdat" else complete_bytes
        ticks = fragment_ticks + _present_sample_ticks(track, data_limit)
        return Mp4Info(
            codec=track.codec,
            width=track.width,
            height=track.height,
            timescale=track.timescale,
            duration_s=ticks / track.timescale,
            fragments=fragments,
            complete_bytes=complete_bytes,
            file_size=file_size,
            fragmented=movie.fragmented or seen_moof,
            first_pts_s=(first_decode_time or 0) / track.timescale,
            partial_box=partial_box,
        )
