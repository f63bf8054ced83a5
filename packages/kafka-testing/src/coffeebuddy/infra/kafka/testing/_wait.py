"""Polling with a deadline: the only way tests wait for a condition (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["wait_until", "wait_until_sync"]


class _Poll:
    """One wait's state: its deadline and the last value or error seen (for the timeout message)."""

    def __init__(self, name: str, timeout: float, message: str) -> None:
        if timeout <= 0:
            raise ValueError(f"{name}: timeout must be > 0, got {timeout!r}")
        self.timeout = timeout
        self.message = message
        self.deadline = time.monotonic() + timeout
        self.last: Any = None
        self.error: BaseException | None = None

    def saw(self, value: object) -> bool:
        self.last, self.error = value, None
        return bool(value)

    def pause(self, interval: float) -> float:
        """How long to sleep before the next try; TimeoutError once the deadline has passed."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            text = f"{self.message} (not true after {self.timeout:g} s; last value: {self.last!r}"
            if self.error is not None:
                text += f"; last error: {type(self.error).__name__}: {self.error}"
            raise TimeoutError(text + ")")
        return min(interval, remaining)


async def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,  # noqa: ASYNC109 - the documented contract; polling needs its own deadline
    interval: float = 0.02,
    message: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll ``predicate`` (sync or async) until it returns a truthy value; return that value.

    Raises ``TimeoutError`` naming ``message`` and the last observed value after ``timeout``
    seconds. Exceptions listed in ``ignore`` count as "not yet" (the last one is reported).
    """
    poll = _Poll("wait_until", timeout, message)
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if poll.saw(value):
                return value
        except ignore as exc:
            poll.error = exc
        await asyncio.sleep(poll.pause(interval))


def wait_until_sync(
    predicate: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.02,
    message: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Blocking twin of :func:`wait_until` for synchronous code and sync tests."""
    poll = _Poll("wait_until_sync", timeout, message)
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                if inspect.iscoroutine(value):
                    value.close()  # never awaited on purpose; no "never awaited" warning
                raise TypeError("wait_until_sync got an async predicate; use await wait_until(...)")
            if poll.saw(value):
                return value
        except ignore as exc:
            poll.error = exc
        time.sleep(poll.pause(interval))
