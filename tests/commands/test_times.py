"""What --start / --end accept and how tables show times, lengths and sizes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from vigil.commands.times import parse_when, show_duration, show_size, show_time

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-90s", NOW - timedelta(seconds=90)),
        ("-10m", NOW - timedelta(minutes=10)),
        ("-1.5h", NOW - timedelta(minutes=90)),
        ("-2d", NOW - timedelta(days=2)),
        ("2026-11-24T07:00:00Z", datetime(2026, 11, 24, 7, tzinfo=UTC)),
        ("2026-11-24 07:00", datetime(2026, 11, 24, 7, tzinfo=UTC)),  # no zone: UTC
        ("2026-11-24T08:00:00+01:00", datetime(2026, 11, 24, 7, tzinfo=UTC)),
        (" 2026-11-24T07:00:00.250Z ", datetime(2026, 11, 24, 7, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_accepted_times(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "10m", "-10x", "2026-13-01", ""])
def test_refused_times_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_when(text, NOW)


def test_shown_in_utc() -> None:
    assert show_time("2026-11-24T08:00:03+01:00") == "2026-11-24 07:00:03"
    assert show_time(datetime(2026, 11, 24, 7, tzinfo=timezone(timedelta(hours=-5)))) == (
        "2026-11-24 12:00:00"
    )
    assert show_time(None) == ""


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, ""), (4, "4.0 s"), (59.94, "59.9 s"), (125, "2 min 05 s"), (10920, "3 h 02 min")],
)
def test_durations(seconds: float | None, shown: str) -> None:
    assert show_duration(seconds) == shown


def test_sizes() -> None:
    assert (show_size(None), show_size(999), show_size(12_300_000)) == ("", "999 bytes", "12.3 MB")
