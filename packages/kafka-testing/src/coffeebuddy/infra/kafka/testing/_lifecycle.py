"""The lifecycle every broker started from tests shares: start/stop, ``with``/``async with``,
and waiting for its processes to answer (or reporting why they did not)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from coffeebuddy.infra.kafka.testing._errors import BrokerStartError

__all__ = ["BrokerStartError", "ContextManaged", "wait_ready"]


class ContextManaged:
    """``with`` / ``async with`` and ``astart``/``astop`` for anything with ``start``/``stop``.

    Subclasses implement the blocking ``start`` and ``stop``; the async twins run them in a
    worker thread, so an event loop is never blocked by a process start-up.
    """

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        raise NotImplementedError

    async def astart(self) -> Self:
        """Async :meth:`start` (runs the blocking start in a worker thread)."""
        return await asyncio.to_thread(self.start)

    async def astop(self, grace: float | None = None) -> None:
        """Async :meth:`stop`; SIGKILL after ``grace`` seconds (None: the broker's default)."""
        if grace is None:
            await asyncio.to_thread(self.stop)
        else:
            await asyncio.to_thread(self.stop, grace)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()


def wait_ready(
    probe: Callable[[], bool],
    *,
    exited: Callable[[], str | None],
    timeout: float,
    timed_out: Callable[[str], str],
    interval: float = 0.02,
) -> None:
    """Poll ``probe`` until it returns True, within ``timeout`` seconds.

    ``exited`` returns why a process of the broker died (None while all run): that ends the
    wait at once. A probe that raises is "not ready yet"; its last error goes into
    ``timed_out(problem)``, the message of the BrokerStartError raised at the deadline.
    """
    deadline = time.monotonic() + timeout
    problem = "no answer yet"
    while True:
        died = exited()
        if died is not None:
            raise BrokerStartError(died)
        try:
            if probe():
                return
        except Exception as exc:  # not ready yet; reported if the deadline passes
            problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise BrokerStartError(timed_out(problem))
        time.sleep(interval)  # polling child processes' readiness, bounded by the deadline
