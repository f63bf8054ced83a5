"""Sends not yet settled, counted in records: what `outstanding` and a bounded `close` report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class InFlight:
    """Send futures awaiting the broker, each with the records it carries (one, or a batch's)."""

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: dict[asyncio.Future[Any], int] = {}

    def add(
        self, futures: Iterable[asyncio.Future[Any]], records: Iterable[int] | None = None
    ) -> None:
        """Track `futures`; `records` gives each one's record count (default: one each)."""
        if records is None:
            self._futures.update(dict.fromkeys(futures, 1))
        else:
            self._futures.update(zip(futures, records, strict=True))

    def forget(self, futures: Iterable[asyncio.Future[Any]]) -> None:
        pop = self._futures.pop
        for future in futures:
            pop(future, None)

    def unacknowledged(self) -> int:
        """Records whose send has not settled yet."""
        return sum(n for f, n in self._futures.items() if not f.done())

    def undelivered(self) -> int:
        """Records not settled, or settled with an error or a cancellation."""
        return sum(
            n
            for f, n in self._futures.items()
            if not f.done() or f.cancelled() or f.exception() is not None
        )

    def fail_all(self, error: BaseException) -> None:
        """Fail every unsettled send with `error` (its caller learns) and track none."""
        for future in self._futures:
            if not future.done():
                future.set_exception(error)
        self._futures.clear()
