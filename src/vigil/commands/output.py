"""Where the command line's messages go, and rich's markup escaping, with rich imported on first
use: every `vigil` command registers every other at start, and importing rich's console there
would cost each of them a tenth of a second (see cli.py)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@cache
def stderr(*, highlight: bool = False) -> Console:
    """The console for messages (stderr; soft-wrapped so paths and URLs stay whole)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=highlight)


def escape(text: str) -> str:
    """`rich.markup.escape`: `text` printed as it is, never read as markup."""
    from rich.markup import escape as escape_markup

    return escape_markup(text)
