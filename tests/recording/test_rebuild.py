"""The pure parts of rebuilding the index: gaps found between segments, volumes chosen by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigil.config.resolve import VolumePlan
from vigil.recording.identity import VolumeIdentity
from vigil.recording.rebuild import FoundVolume, UnknownVolumeError, find_gaps, select
from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentRow

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def _row(
    stream: str,
    start_s: float,
    duration_s: float | None,
    status: SegmentStatus = SegmentStatus.REPAIRED,
) -> SegmentRow:
    start = T0 + timedelta(seconds=start_s)
    return SegmentRow(
        id=0, stream=stream, path=Path(f"/v/{stream}/{start_s}.mp4"), start=start,
        end=None if duration_s is None else start + timedelta(seconds=duration_s),
        duration_s=duration_s, size_bytes=None, codec=None, width=None, height=None,
        status=status, created_at=T0, closed_at=None, note=None,
    )  # fmt: skip


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("rows", "gaps"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param([_row("a", 0, 60), _row("a", 60, 60)], [], id="back-to-back"),
        pytest.param([_row("a", 0, 59.2), _row("a", 60, 60)], [], id="within-the-named-second"),
        pytest.param([_row("a", 0, 59), _row("a", 60, 60)], [], id="exactly-one-second"),
        pytest.param(
            [_row("a", 0, 58.9), _row("a", 60, 60)], [("a", _at(58.9), _at(60))], id="over-one"
        ),
        pytest.param(
            [_row("a", 0, 10), _row("b", 5, 10), _row("a", 30, 10), _row("b", 15, 10)],
            [("a", _at(10), _at(30))],
            id="streams-apart",
        ),
        pytest.param(
            [_row("a", 0, 30), _row("a", 5, 5), _row("a", 30, 10)], [], id="overlap-counts-once"
        ),
        pytest.param(
            [_row("a", 0, 10), _row("a", 10, 10, SegmentStatus.MISSING), _row("a", 20, 10)],
            [("a", _at(10), _at(20))],
            id="a-missing-file-covers-nothing",
        ),
        pytest.param(
            [_row("a", 0, 10), _row("a", 10, None, SegmentStatus.OPEN), _row("a", 20, 10)],
            [("a", _at(10), _at(20))],
            id="an-open-row-covers-nothing",
        ),
    ],
)
def test_find_gaps(rows: list[SegmentRow], gaps: list[tuple[str, datetime, datetime]]) -> None:
    assert find_gaps(sorted(rows, key=lambda row: row.start)) == gaps


def _volume(name: str, volume_id: str | None) -> FoundVolume:
    identity = None if volume_id is None else VolumeIdentity(volume_id, T0)
    return FoundVolume(VolumePlan(path=Path(f"/{name}")), identity)


VOLUMES = [
    _volume("a", "0a1b2c3d-0000-4000-8000-000000000001"),
    _volume("b", "0a1b9999-0000-4000-8000-000000000002"),
    _volume("c", None),
]


@pytest.mark.parametrize(
    ("wanted", "path"),
    [
        ("0a1b2c3d-0000-4000-8000-000000000001", "/a"),
        ("0a1b2", "/a"),
        ("0A1B9", "/b"),
        ("  0a1b9 ", "/b"),
    ],
)
def test_select_by_id_or_unique_prefix(wanted: str, path: str) -> None:
    assert select(VOLUMES, wanted).path == Path(path)


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ("0a1b", "volume id '0a1b' is ambiguous"),
        ("", "no volume has id ''"),
        ("ffff", "no volume has id 'ffff'"),
    ],
)
def test_select_refuses_naming_the_known_volumes(wanted: str, message: str) -> None:
    with pytest.raises(UnknownVolumeError) as error:
        select(VOLUMES, wanted)
    assert message in str(error.value)
    assert "0a1b2c3d-0000-4000-8000-000000000001 (/a)" in str(error.value)
    assert "(/c)" not in str(error.value), "a volume without identity has no id to give"


def test_select_with_no_volume_having_an_identity() -> None:
    with pytest.raises(UnknownVolumeError, match="none: no configured volume holds an identity"):
        select([_volume("c", None)], "0a1b")
