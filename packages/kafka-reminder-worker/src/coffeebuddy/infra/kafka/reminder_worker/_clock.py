"""The worker's clock: epoch seconds, the wall clock unless a test injects one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

__all__ = ["Clock"]


class Clock:
    """`now()` in epoch seconds; `wait_until(at)`. An injected datetime clock (tests) may jump,
    so waits on it re-read it every 50 ms."""

    def __init__(self, source: Callable[[], datetime] | None = None) -> None:
        self.now: Callable[[], float] = (
            time.time if source is None else (lambda: source().timestamp())
        )
        self.wall = source is None

    async def wait_until(self, at: float) -> None:
        while (left := at - self.now()) > 0:  # noqa: ASYNC110 - a clock reading, no event
            await asyncio.sleep(left if self.wall else min(left, 0.05))
