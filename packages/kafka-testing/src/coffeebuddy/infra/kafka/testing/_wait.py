"""Polling with a deadline: the only way tests wait for a condition (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["wait_until", "wait_until_sync"]


def _timeout_error(message: str, timeout: float, last: object, error: BaseException | None) -> str:
    text = f"{message} (not true after {timeout:g} s; last value: {last!r}"
    if error is not None:
        text += f"; last error: {type(error).__name__}: {error}"
    return text + ")"


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
    if timeout <= 0:
        raise ValueError(f"wait_until: timeout must be > 0, got {timeout!r}")
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            last, error = value, None
            if value:
                return value
        except ignore as exc:
            error = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(_timeout_error(message, timeout, last, error))
        await asyncio.sleep(min(interval, remaining))


def wait_until_sync(
    predicate: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.02,
    message: str = "condition",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Blocking twin of :func:`wait_until` for synchronous code and sync tests."""
    if timeout <= 0:
        raise ValueError(f"wait_until_sync: timeout must be > 0, got {timeout!r}")
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                if inspect.iscoroutine(value):
                    value.close()  # never awaited on purpose; no "never awaited" warning
                raise TypeError("wait_until_sync got an async predicate; use await wait_until(...)")
            last, error = value, None
            if value:
                return value
        except ignore as exc:
            error = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(_timeout_error(message, timeout, last, error))
        time.sleep(min(interval, remaining))
