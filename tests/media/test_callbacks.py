"""Guarded callbacks: an exception is reported once per cause, logged with its traceback and
answered with the safe value; a rebuild (reset) makes the same cause news again."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from vigil.media.callbacks import CallbackFaults
from vigil.media.messages import CallbackFailed


def _errors(stream: str, where: str) -> float:
    value = REGISTRY.get_sample_value(
        "vigil_callback_errors_total", {"stream": stream, "callback": where}
    )
    return value or 0.0


def test_an_exception_is_reported_once_per_cause_and_counted_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported: list[CallbackFailed] = []
    faults = CallbackFaults("guarded-cam", reported.append)
    calls = {"n": 0}

    def probe(value: int) -> str:
        calls["n"] += 1
        if value < 0:
            raise ValueError(f"negative {value // 100}")
        return "ok"

    guarded = faults.guard("test probe", probe, "fallback", in_source=True)
    assert guarded(1) == "ok"
    with caplog.at_level(logging.ERROR):
        answers = [guarded(-5) for _ in range(50)]  # one cause, fifty buffers
        guarded(-500)  # another cause
    assert set(answers) == {"fallback"} and calls["n"] == 52
    assert reported == [
        CallbackFailed("test probe", "ValueError: negative -1", True),
        CallbackFailed("test probe", "ValueError: negative -5", True),
    ]
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 2
    assert "guarded-cam: exception in test probe" in tracebacks[0].getMessage()
    assert _errors("guarded-cam", "test probe") == 51

    faults.reset()
    guarded(-5)
    assert len(reported) == 3, "after a rebuild the same cause is reported again"


def test_the_wrapped_callback_keeps_its_name() -> None:
    def on_pad_added() -> None:
        return None

    guarded = CallbackFaults("cam", lambda _m: None).guard("pad-added", on_pad_added, None)
    assert guarded.__name__ == "on_pad_added"
