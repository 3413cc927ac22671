"""Times, lengths and sizes in the command-line client: what `--start` / `--end` accept, and how
tables show them (UTC, like the recording paths and `vigil tokens list`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ACCEPTED = "ISO 8601 (e.g. 2026-11-24T07:00:00Z; no zone: UTC), 'now', or -90s / -10m / -2h / -1d"


def parse_when(text: str, now: datetime) -> datetime:
    """`text` as an aware datetime: ISO 8601 (read as UTC when it names no zone), ``now``, or a
    time before `now` such as ``-90s``, ``-10m``, ``-2h``, ``-1d``. Raises ``ValueError``."""
    text = text.strip()
    if text.lower() == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(seconds=float(amount) * _UNIT_SECONDS[unit])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time; use {ACCEPTED}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def option_time(text: str) -> datetime:
    """Typer's parser of a time option: `parse_when` against the clock, a usage error if bad."""
    try:
        return parse_when(text, datetime.now(UTC))
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def check_range(start: datetime | None, end: datetime | None) -> None:
    """A usage error unless `end` is after `start` (when both are given)."""
    if start is not None and end is not None and end <= start:
        raise typer.BadParameter(
            f"must be after --start ({show_time(start)} UTC)", param_hint="'--end'"
        )


StartOption = Annotated[
    datetime | None,
    typer.Option(parser=option_time, metavar="TIME", help=f"From: {ACCEPTED}.", show_default=False),
]
EndOption = Annotated[
    datetime | None,
    typer.Option(parser=option_time, metavar="TIME", help="Until (same forms as --start).",
                 show_default=False),
]  # fmt: skip


def show_time(when: datetime | str | None) -> str:
    """A time as UTC ``YYYY-MM-DD HH:MM:SS`` (ISO text from the API is accepted); '' for None."""
    if when is None:
        return ""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def show_duration(seconds: float | None) -> str:
    """``4.0 s``, ``2 min 05 s``, ``3 h 02 min``; '' for None."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def show_size(size_bytes: int | None) -> str:
    """``12.3 MB`` (decimal units, like `ls -h --si`); '' for None."""
    if size_bytes is None:
        return ""
    from rich.filesize import decimal

    return decimal(size_bytes)
