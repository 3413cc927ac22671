"""The command line's copies of configuration and store choices (vigil.commands.choices) match
their originals."""

from __future__ import annotations

from enum import StrEnum

import pytest

from vigil.commands import choices
from vigil.config.log import LogFormat
from vigil.config.recording import MAX_SEGMENT_SECONDS, MIN_SEGMENT_SECONDS
from vigil.config.sources import Transport
from vigil.config.streams import STREAM_NAME_PATTERN
from vigil.store.tokens import Role


@pytest.mark.parametrize(
    ("copy", "original"),
    [(choices.LogFormatChoice, LogFormat), (choices.TransportChoice, Transport),
     (choices.RoleChoice, Role)],
)  # fmt: skip
def test_each_choice_is_its_original(copy: type[StrEnum], original: type[StrEnum]) -> None:
    assert [(m.name, m.value) for m in copy] == [(m.name, m.value) for m in original]


def test_limits_are_the_configuration_s() -> None:
    assert choices.STREAM_NAME_PATTERN == STREAM_NAME_PATTERN
    assert (choices.MIN_SEGMENT_SECONDS, choices.MAX_SEGMENT_SECONDS) == (
        MIN_SEGMENT_SECONDS,
        MAX_SEGMENT_SECONDS,
    )
