"""probe_mp4 on real GStreamer recordings, crash-cut copies of them, and hand-built boxes."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from recorded_media import (
    FPS,
    FRAGMENTED,
    H264,
    Box,
    cut_copy,
    ffprobe_decoded_frames,
    ffprobe_format_duration,
    ffprobe_packet_durations,
    fragments,
    pipeline,
    top_level_boxes,
)

from vigil.recording.mp4probe import Mp4Error, probe_mp4

FRAME = 1 / FPS

Fragments = list[tuple[Box, Box]]
Cut = Callable[[Fragments, dict[str, Box]], int]


# --- complete files ----------------------------------------------------------------------


def test_complete_h264_segments_match_ffprobe(h264_segments: list[Path]) -> None:
    for path in h264_segments:
        info = probe_mp4(path)
        assert (info.codec, info.width, info.height) == ("h264", 320, 240)
        assert info.fragmented
        assert info.fragments == len(fragments(top_level_boxes(path))) == 5
        assert info.complete_bytes == info.file_size == path.stat().st_size
        assert info.partial_box is None
        assert info.first_pts_s == 0.0
        assert info.timescale > 0
        assert abs(info.duration_s - ffprobe_format_duration(path)) <= FRAME
        packets = ffprobe_packet_durations(path)
        assert packets is not None
        assert info.duration_s == pytest.approx(sum(packets))


def test_complete_h265_segment_matches_ffprobe(h265_segment: Path) -> None:
    info = probe_mp4(h265_segment)
    assert (info.codec, info.width, info.height) == ("h265", 320, 240)
    assert info.fragmented and info.fragments >= 4
    assert abs(info.duration_s - ffprobe_format_duration(h265_segment)) <= FRAME
    assert info.duration_s == pytest.approx(4.0)


def test_non_fragmented_segment_uses_the_sample_table(plain_h264_segment: Path) -> None:
    info = probe_mp4(plain_h264_segment)
    assert not info.fragmented
    assert info.fragments == 0
    assert info.codec == "h264"
    assert abs(info.duration_s - ffprobe_format_duration(plain_h264_segment)) <= FRAME
    assert info.duration_s == pytest.approx(5.0)


# --- crash-cut copies --------------------------------------------------------------------

# (name, where to cut given the boxes, expected complete fragments, expected partial box)
CUTS: list[tuple[str, Cut, int, str | None]] = [
    ("right after moov", lambda f, b: b["moov"].end, 0, None),
    ("inside the first moof", lambda f, b: f[0][0].start + 100, 0, "moof"),
    ("inside a moof", lambda f, b: (f[2][0].start + f[2][0].end) // 2, 2, "moof"),
    ("inside an mdat header", lambda f, b: f[2][0].end + 4, 2, "?"),
    ("moof without its mdat", lambda f, b: f[2][0].end, 2, None),
    ("inside an mdat", lambda f, b: (f[2][1].start + f[2][1].end) // 2, 2, "mdat"),
    ("one byte short of a fragment", lambda f, b: f[2][1].end - 1, 2, "mdat"),
    ("on a fragment boundary", lambda f, b: f[2][1].end, 3, None),
    ("inside the index at the end", lambda f, b: b["mfra"].start + 10, 5, "mfra"),
]


@pytest.mark.parametrize(
    ("where", "expected_fragments", "expected_partial"),
    [(where, fragments, partial) for _, where, fragments, partial in CUTS],
    ids=[name for name, *_ in CUTS],
)
def test_cut_file_counts_complete_fragments(
    h264_segments: list[Path],
    tmp_path: Path,
    where: Cut,
    expected_fragments: int,
    expected_partial: str | None,
) -> None:
    source = h264_segments[0]
    boxes = top_level_boxes(source)
    pairs = fragments(boxes)
    by_kind = {box.kind: box for box in boxes}
    cut_at = where(pairs, by_kind)
    cut = cut_copy(source, tmp_path / "cut.mp4", cut_at)

    info = probe_mp4(cut)

    assert info.fragments == expected_fragments
    assert info.partial_box == expected_partial
    assert info.file_size == cut_at
    last_whole_box = max(box.end for box in boxes if box.end <= cut_at)
    assert info.complete_bytes == last_whole_box
    # Reference: what ffprobe reads from the same file cut at the end of its last complete
    # fragment (on the cut file itself, ffprobe also counts the samples of the cut fragment).
    boundary = pairs[expected_fragments - 1][1].end if expected_fragments else by_kind["moov"].end
    reference = ffprobe_packet_durations(cut_copy(source, tmp_path / "ref.mp4", boundary))
    assert reference is not None
    assert info.duration_s == pytest.approx(sum(reference))
    if expected_partial != "moof":
        # ffprobe still opens it, and finds at least the samples we count.
        packets = ffprobe_packet_durations(cut)
        assert packets is not None
        assert len(packets) >= round(info.duration_s * FPS)


def test_zeros_after_the_last_fragment_are_not_a_box(
    h264_segments: list[Path], tmp_path: Path
) -> None:
    """A power cut can leave a file longer than what was written, padded with zeros."""
    end = fragments(top_level_boxes(h264_segments[0]))[1][1].end
    padded = tmp_path / "padded.mp4"
    padded.write_bytes(h264_segments[0].read_bytes()[:end] + bytes(65536))
    info = probe_mp4(padded)
    assert (info.fragments, info.partial_box) == (2, "?")
    assert info.complete_bytes == end


def test_killed_live_recording_is_readable_up_to_its_last_fragment(tmp_path: Path) -> None:
    """SIGKILL the recorder in the middle of a live recording, as a crash would."""
    encoder = [*H264[:2], "tune=zerolatency", *H264[2:]]  # no encoder latency to wait for
    command = pipeline(tmp_path, encoder, FRAGMENTED, buffers=None, live=True)
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # ~4 s, and at least until a second moof is on disk (so the first fragment is whole).
        deadline = started + 60
        while time.monotonic() < deadline:
            files = sorted(tmp_path.glob("seg*.mp4"))
            if (
                time.monotonic() - started >= 4
                and files
                and files[-1].read_bytes().count(b"moof") >= 2
            ):
                break
            assert process.poll() is None, "gst-launch-1.0 exited early"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        wall_s = time.monotonic() - started
    finally:
        process.kill()
        process.wait(timeout=30)

    last = sorted(tmp_path.glob("seg*.mp4"))[-1]
    info = probe_mp4(last)
    assert info.codec == "h264"
    assert info.fragments >= 1
    assert 0 < info.duration_s <= wall_s
    assert ffprobe_decoded_frames(last) >= round(info.duration_s * FPS)


# --- unusable files ----------------------------------------------------------------------


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(Mp4Error, match="empty") as caught:
        probe_mp4(path)
    assert str(path) in str(caught.value)


def test_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(random.Random(7).randbytes(100_000))
    with pytest.raises(Mp4Error, match="not an MP4"):
        probe_mp4(path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video, just some words in a file\n" * 10)
    with pytest.raises(Mp4Error, match="not an MP4"):
        probe_mp4(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_mp4(tmp_path / "nope.mp4")


@pytest.mark.parametrize(
    ("length", "message"),
    [
        (lambda b: 10, "ftyp"),
        (lambda b: b["moov"].start, "no moov"),
        (lambda b: b["moov"].start + 200, "moov box is cut"),
    ],
    ids=["inside ftyp", "ftyp only", "inside moov"],
)
def test_killed_before_the_header_was_written(
    h264_segments: list[Path], tmp_path: Path, length: Callable[[dict[str, Box]], int], message: str
) -> None:
    by_kind = {box.kind: box for box in top_level_boxes(h264_segments[0])}
    cut = cut_copy(h264_segments[0], tmp_path / "cut.mp4", length(by_kind))
    with pytest.raises(Mp4Error, match=message):
        probe_mp4(cut)


def test_non_fragmented_file_cut_before_its_moov(plain_h264_segment: Path, tmp_path: Path) -> None:
    """What a crash leaves of a plain MP4: media but no index. Nothing to count on."""
    moov = next(box for box in top_level_boxes(plain_h264_segment) if box.kind == "moov")
    cut = cut_copy(plain_h264_segment, tmp_path / "cut.mp4", moov.start - 1000)
    with pytest.raises(Mp4Error, match="no moov"):
        probe_mp4(cut)
