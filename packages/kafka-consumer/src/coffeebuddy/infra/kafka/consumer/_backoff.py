"""Backoff: the one exponential-backoff-with-jitter rule of the consumer and the reminder worker."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]

_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays `initial * multiplier**(attempt - 1)`, capped at `maximum`, each shortened by a
    random share of up to `jitter` (0.5: "equal jitter", half fixed and half random), so
    callers that failed together do not retry together, and no delay exceeds `maximum`."""

    initial: float
    maximum: float
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0:
            raise ValueError(f"Backoff delays must be >= 0, got {self.initial}, {self.maximum}")
        if self.multiplier < 1:
            raise ValueError(f"Backoff multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff jitter must be within [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The delay after failed attempt `attempt` (1-based)."""
        exponent = min(max(0, attempt - 1), _MAX_EXPONENT)
        base = min(self.maximum, self.initial * self.multiplier**exponent)
        return base * (1.0 - self.jitter * rng()) if self.jitter else base
