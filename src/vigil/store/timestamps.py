"""Conversion between aware datetimes (the store interface) and UTC microseconds (the DB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """Return `moment` as integer microseconds since the Unix epoch (UTC).

    Naive datetimes are refused: guessing their zone is how recordings end up an hour off.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: pass a timezone-aware datetime")
    # timedelta // timedelta is exact integer arithmetic; .timestamp() would go through a float.
    return (moment - EPOCH) // _ONE_MICROSECOND


def from_us(microseconds: int) -> datetime:
    """Return the UTC datetime `microseconds` after the Unix epoch."""
    return EPOCH + timedelta(microseconds=microseconds)


def utc_now() -> datetime:
    """The default clock of the stores: the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)
