"""Segment paths: layout, UTC, never overwriting, and reading them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from vigil.recording.paths import claim_segment_path, parse_segment_path, segment_path

START = datetime(2026, 11, 24, 3, 4, 5, 600_000, tzinfo=UTC)


def test_layout_is_stream_day_hour_minute_second(tmp_path: Path) -> None:
    assert segment_path(tmp_path, "gate", START) == tmp_path / "gate/2026-11-24/03/04.05.mp4"


def test_times_are_utc_whatever_the_zone(tmp_path: Path) -> None:
    local = START.astimezone(timezone(timedelta(hours=-5)))
    assert segment_path(tmp_path, "gate", local) == segment_path(tmp_path, "gate", START)


def test_claim_never_returns_an_existing_file(tmp_path: Path) -> None:
    first = claim_segment_path(tmp_path, "gate", START)
    first.write_bytes(b"recorded")
    second = claim_segment_path(tmp_path, "gate", START)
    third = claim_segment_path(tmp_path, "gate", START)
    assert first.read_bytes() == b"recorded"
    assert [first.name, second.name, third.name] == ["04.05.mp4", "04.05-1.mp4", "04.05-2.mp4"]


def test_parse_reads_back_stream_and_start(tmp_path: Path) -> None:
    path = claim_segment_path(tmp_path, "gate", START)
    assert parse_segment_path(tmp_path, path) == ("gate", START.replace(microsecond=0))
    duplicate = claim_segment_path(tmp_path, "gate", START)
    assert parse_segment_path(tmp_path, duplicate) == ("gate", START.replace(microsecond=0))
    assert parse_segment_path(tmp_path, tmp_path / "gate" / "notes.txt") is None
    assert parse_segment_path(tmp_path, tmp_path / "a/b/c/xx.yy.mp4") is None
