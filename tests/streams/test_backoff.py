"""Back-off delays: exponential ceiling, full jitter, a floor and a cap."""

from __future__ import annotations

import random

from vigil.streams.backoff import Backoff


def test_delays_stay_under_a_doubling_ceiling_up_to_the_cap() -> None:
    backoff = Backoff(first=1.0, cap=30.0, floor=0.2, rng=random.Random(7))
    for attempt in range(12):
        ceiling = min(30.0, 2.0**attempt)
        delay = backoff.next_delay()
        assert 0.2 <= delay <= max(ceiling, 0.2)


def test_first_retry_is_within_a_second() -> None:
    for seed in range(50):
        assert Backoff(rng=random.Random(seed)).next_delay() <= 1.0


def test_jitter_spreads_retries() -> None:
    delays = {Backoff(rng=random.Random(seed), attempts=4).next_delay() for seed in range(20)}
    assert len(delays) == 20


def test_reset_starts_over() -> None:
    backoff = Backoff(rng=random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() <= 1.0
