"""Exponential back-off with full jitter (AWS architecture blog's "full jitter"), time-free."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before the n-th retry: uniform(0, min(cap, first * 2**n)), at least `floor`."""

    first: float = 1.0
    cap: float = 30.0
    floor: float = 0.2
    attempts: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        """The delay before the next attempt; counts the attempt."""
        ceiling = min(self.cap, self.first * (2**self.attempts))
        self.attempts += 1
        return max(self.floor, self.rng.uniform(0, ceiling))

    def reset(self) -> None:
        """Forget past failures (the stream has been stable)."""
        self.attempts = 0
