"""probe_mp4 on hand-built boxes: the ISO-BMFF cases GStreamer's mp4mux does not produce."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vigil.recording.mp4probe import Mp4Error, probe_mp4

TIMESCALE = 90_000
VIDEO, AUDIO = 1, 2


def box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags), *parts)


def u32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def trak(
    track_id: int,
    handler: bytes,
    entry: bytes,
    *,
    tkhd_size: tuple[int, int] = (0, 0),
    samples: list[tuple[int, int]] | None = None,  # (duration, size) for a non-fragmented track
    chunks: list[int] | None = None,  # file offsets of chunks, samples_per_chunk each
    samples_per_chunk: int = 1,
) -> bytes:
    samples = samples or []
    tkhd = full(
        b"tkhd",
        0,
        7,
        u32(0, 0, track_id, 0, 0),
        bytes(52),
        u32(tkhd_size[0] << 16, tkhd_size[1] << 16),
    )
    mdhd = full(b"mdhd", 0, 0, u32(0, 0, TIMESCALE, 0), bytes(4))
    hdlr = full(b"hdlr", 0, 0, u32(0), handler, bytes(12), b"\0")
    stbl = box(
        b"stbl",
        full(b"stsd", 0, 0, u32(1), entry),
        full(b"stts", 0, 0, u32(len(samples)), *(u32(1, duration) for duration, _ in samples)),
        full(b"stsc", 0, 0, *([u32(1, 1, samples_per_chunk, 1)] if chunks else [u32(0)])),
        full(b"stsz", 0, 0, u32(0, len(samples)), *(u32(size) for _, size in samples)),
        full(b"stco", 0, 0, u32(len(chunks or [])), *(u32(offset) for offset in chunks or [])),
    )
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", stbl)))


def visual_entry(kind: bytes = b"avc1", width: int = 640, height: int = 360) -> bytes:
    return box(
        kind,
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HH", width, height),
        bytes(50),
    )


def movie(*tracks: bytes, trex: dict[int, tuple[int, int]] | None = None) -> bytes:
    mvex = (
        [box(b"mvex", *(full(b"trex", 0, 0, u32(t, 1, d, s, 0)) for t, (d, s) in trex.items()))]
        if trex is not None
        else []
    )
    return box(b"ftyp", b"isom", u32(512), b"isomiso2") + box(b"moov", *tracks, *mvex)


@dataclass
class Traf:
    track_id: int = VIDEO
    durations: list[int] | None = None  # per sample in the trun
    sizes: list[int] | None = field(default_factory=lambda: [100, 200, 300])
    count: int = 3
    tfhd_duration: int | None = None
    tfhd_size: int | None = None
    decode_time: int = 0
    wide_decode_time: bool = False
    explicit_base: bool = False  # tfhd base-data-offset instead of default-base-is-moof

    def data_size(self, default_size: int) -> int:
        return (
            sum(self.sizes)
            if self.sizes is not None
            else self.count * (self.tfhd_size or default_size)
        )


def fragment(trafs: list[Traf], *, at: int, trex_size: int = 0, extra_claimed: int = 0) -> bytes:
    """A moof and its mdat, to be written at file offset `at`."""

    def build(moof_size: int) -> bytes:
        data_at = moof_size + 8  # sample data right after the mdat header
        parts = [full(b"mfhd", 0, 0, u32(1))]
        for traf in trafs:
            flags, fields = 0, b""
            base = 0
            if traf.explicit_base:
                flags |= 0x01
                fields += struct.pack(">Q", at)
            else:
                flags |= 0x020000
            if traf.tfhd_duration is not None:
                flags |= 0x08
                fields += u32(traf.tfhd_duration)
            if traf.tfhd_size is not None:
                flags |= 0x10
                fields += u32(traf.tfhd_size)
            tfhd = full(b"tfhd", 0, flags, u32(traf.track_id), fields)
            version = 1 if traf.wide_decode_time else 0
            tfdt = full(
                b"tfdt", version, 0, struct.pack(">Q" if version else ">I", traf.decode_time)
            )
            run_flags = 0x001 | (0x100 if traf.durations else 0) | (0x200 if traf.sizes else 0)
            samples = b""
            for index in range(traf.count):
                if traf.durations:
                    samples += u32(traf.durations[index])
                if traf.sizes:
                    samples += u32(traf.sizes[index] + (extra_claimed if index == 0 else 0))
            trun = full(
                b"trun", 0, run_flags, u32(traf.count), struct.pack(">i", data_at + base), samples
            )
            parts.append(box(b"traf", tfhd, tfdt, trun))
            data_at += traf.data_size(trex_size)
        return box(b"moof", *parts)

    moof = build(build(0).__len__())
    data = bytes(sum(traf.data_size(trex_size) for traf in trafs))
    return moof + box(b"mdat", data)


def write(tmp_path: Path, *parts: bytes) -> Path:
    path = tmp_path / "built.mp4"
    path.write_bytes(b"".join(parts))
    return path


def fragmented_file(
    tmp_path: Path,
    fragments: list[list[Traf]],
    *,
    trex: tuple[int, int] = (0, 0),
    extra_claimed: int = 0,
) -> Path:
    head = movie(
        trak(VIDEO, b"vide", visual_entry()),
        trak(AUDIO, b"soun", box(b"mp4a", bytes(28))),
        trex={VIDEO: trex, AUDIO: (1024, 10)},
    )
    body = b""
    for trafs in fragments:
        body += fragment(
            trafs, at=len(head) + len(body), trex_size=trex[1], extra_claimed=extra_claimed
        )
    return write(tmp_path, head, body)


@pytest.mark.parametrize(
    ("traf", "trex", "expected_ticks"),
    [
        (Traf(durations=[3000, 3000, 6000]), (0, 0), 12000),
        (Traf(tfhd_duration=3000), (0, 0), 9000),
        (Traf(), (1500, 0), 4500),
        (Traf(tfhd_duration=3000), (1500, 0), 9000),
        (Traf(durations=[1000, 1000, 1000], tfhd_duration=3000), (1500, 0), 3000),
        (Traf(sizes=None, tfhd_duration=3000, tfhd_size=100), (0, 0), 9000),
        (Traf(sizes=None), (2000, 50), 6000),
        (Traf(durations=[3000, 3000, 3000], explicit_base=True), (0, 0), 9000),
    ],
    ids=[
        "trun durations",
        "tfhd default",
        "trex default",
        "tfhd beats trex",
        "trun beats tfhd",
        "all from tfhd",
        "all from trex",
        "explicit base offset",
    ],
)
def test_sample_durations(
    tmp_path: Path, traf: Traf, trex: tuple[int, int], expected_ticks: int
) -> None:
    path = fragmented_file(tmp_path, [[traf], [traf]], trex=trex)
    info = probe_mp4(path)
    assert info.fragments == 2
    assert info.timescale == TIMESCALE
    assert info.duration_s == pytest.approx(2 * expected_ticks / TIMESCALE)
    assert (info.codec, info.width, info.height) == ("h264", 640, 360)


def test_other_tracks_do_not_add_duration_but_their_data_must_be_there(tmp_path: Path) -> None:
    video = Traf(durations=[3000, 3000, 3000])
    audio = Traf(track_id=AUDIO, sizes=[50, 50, 50])  # 3 x 1024 ticks from trex, not counted
    path = fragmented_file(tmp_path, [[video, audio], [video, audio]])
    assert probe_mp4(path).duration_s == pytest.approx(18000 / TIMESCALE)

    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[:-20])  # inside the second fragment's audio data
    info = probe_mp4(cut)
    assert (info.fragments, info.partial_box) == (1, "mdat")
    assert info.duration_s == pytest.approx(9000 / TIMESCALE)


def test_first_pts_from_a_64_bit_decode_time(tmp_path: Path) -> None:
    start = 10 * TIMESCALE + (1 << 32)
    traf = Traf(durations=[3000] * 3, decode_time=start, wide_decode_time=True)
    info = probe_mp4(fragmented_file(tmp_path, [[traf]]))
    assert info.first_pts_s == pytest.approx(start / TIMESCALE)


def test_fragment_whose_samples_overrun_its_mdat_is_not_complete(tmp_path: Path) -> None:
    path = fragmented_file(tmp_path, [[Traf(tfhd_duration=3000)]], extra_claimed=1)
    info = probe_mp4(path)
    assert (info.fragments, info.duration_s, info.partial_box) == (0, 0.0, None)


@pytest.mark.parametrize(
    ("kind", "codec"),
    [(b"avc1", "h264"), (b"avc3", "h264"), (b"hvc1", "h265"), (b"hev1", "h265"), (b"mp4v", None)],
)
def test_codec_from_the_sample_entry(tmp_path: Path, kind: bytes, codec: str | None) -> None:
    path = write(tmp_path, movie(trak(VIDEO, b"vide", visual_entry(kind, 1920, 1080)), trex={}))
    info = probe_mp4(path)
    assert info.codec == codec
    if codec is not None:
        assert (info.width, info.height) == (1920, 1080)


def test_picture_size_falls_back_to_tkhd(tmp_path: Path) -> None:
    entry = visual_entry(b"avc1", 0, 0)
    path = write(tmp_path, movie(trak(VIDEO, b"vide", entry, tkhd_size=(1280, 720)), trex={}))
    assert (probe_mp4(path).width, probe_mp4(path).height) == (1280, 720)


def test_video_track_found_after_another_track(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        movie(
            trak(AUDIO, b"soun", box(b"mp4a", bytes(28))),
            trak(VIDEO, b"vide", visual_entry(b"hvc1")),
            trex={},
        ),
    )
    assert probe_mp4(path).codec == "h265"


def test_no_video_track(tmp_path: Path) -> None:
    path = write(tmp_path, movie(trak(AUDIO, b"soun", box(b"mp4a", bytes(28)))))
    with pytest.raises(Mp4Error, match="no video track"):
        probe_mp4(path)


def test_non_fragmented_counts_the_samples_on_disk(tmp_path: Path) -> None:
    samples = [(3000, 100)] * 4
    # Two chunks of two samples; the moov comes first, so its size fixes where the data starts.
    draft = movie(
        trak(VIDEO, b"vide", visual_entry(), samples=samples, chunks=[0, 0], samples_per_chunk=2)
    )
    data_at = len(draft) + 8
    head = movie(
        trak(
            VIDEO,
            b"vide",
            visual_entry(),
            samples=samples,
            chunks=[data_at, data_at + 200],
            samples_per_chunk=2,
        )
    )
    whole = head + box(b"mdat", bytes(400))
    path = write(tmp_path, whole)
    info = probe_mp4(path)
    assert (info.fragmented, info.fragments) == (False, 0)
    assert info.duration_s == pytest.approx(12000 / TIMESCALE)

    path.write_bytes(whole[: data_at + 250])  # inside the third sample
    info = probe_mp4(path)
    assert info.partial_box == "mdat"
    assert info.duration_s == pytest.approx(6000 / TIMESCALE)


def test_64_bit_box_sizes_and_a_last_box_running_to_the_end(tmp_path: Path) -> None:
    traf = Traf(durations=[3000] * 3)
    head = movie(trak(VIDEO, b"vide", visual_entry()), trex={VIDEO: (0, 0)})
    normal = fragment([traf], at=len(head))
    moof, mdat_payload = normal[: -(600 + 8)], normal[-600:]
    large_mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(mdat_payload)) + mdat_payload
    # The same fragment again but with its mdat declared as size 0 ("to the end of the file").
    # Its moof's data offsets are relative to the moof: 8 bytes more header is fine to re-point.
    second_at = len(head) + len(moof) + len(large_mdat)
    again = fragment([traf], at=second_at)
    moof2, payload2 = again[: -(600 + 8)], again[-600:]
    path = write(tmp_path, head, moof, large_mdat, moof2, struct.pack(">I4s", 0, b"mdat"), payload2)
    info = probe_mp4(path)
    assert info.partial_box is None
    assert info.complete_bytes == info.file_size
    # The first fragment's data offset assumed an 8-byte mdat header: its samples now end
    # 8 bytes before the mdat does, which is still inside it.
    assert info.fragments == 2
    assert info.duration_s == pytest.approx(18000 / TIMESCALE)
