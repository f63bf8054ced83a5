"""Supervisor: runs the worker's background tasks, restarts a crashed one with backoff, and says
which are down (readiness names them until they make progress again)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from coffeebuddy.infra.kafka.consumer import Backoff

__all__ = ["Supervisor"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")


@dataclass(slots=True)
class _Task:
    work: Callable[[], Awaitable[None]]
    task: asyncio.Task[None] | None = None
    failure: str | None = None
    restarts: int = 0
    streak: int = 0


class Supervisor:
    """`start(name, work)` runs `work()` until it returns; an exception is logged, `work` is
    started again after a backoff, and the task counts as down until `ok(name)` is called (by
    the task, once it made progress) or it finishes."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self._backoff = backoff or Backoff(0.1, 5.0)
        self._tasks: dict[str, _Task] = {}
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    def start(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        running = self._tasks.get(name)
        if running is not None and running.task is not None and not running.task.done():
            return
        entry = self._tasks[name] = _Task(work)
        entry.task = asyncio.create_task(self._run(name, entry), name=f"reminder-{name}")

    def ok(self, name: str) -> None:
        """The task made progress: it is up again."""
        entry = self._tasks.get(name)
        if entry is not None and entry.failure is not None:
            log.info("%s recovered after %d restarts", name, entry.restarts)
            entry.failure = None
            entry.streak = 0

    def running(self, name: str) -> bool:
        entry = self._tasks.get(name)
        return entry is not None and entry.task is not None and not entry.task.done()

    def restarts(self, name: str) -> int:
        entry = self._tasks.get(name)
        return 0 if entry is None else entry.restarts

    @property
    def problems(self) -> list[str]:
        """One line per task that is down, naming it and its last error."""
        return [
            f"{name} failed ({t.failure}), restarted {t.restarts}x"
            for name, t in self._tasks.items()
            if t.failure is not None
        ]

    async def stop(self) -> None:
        tasks = [t.task for t in self._tasks.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _run(self, name: str, entry: _Task) -> None:
        while True:
            try:
                await entry.work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                entry.restarts += 1
                entry.streak += 1
                entry.failure = f"{type(exc).__name__}: {exc}"[:300]
                delay = self._backoff.delay(entry.streak, self._rng.random)
                log.exception(
                    "%s crashed (%s); restarting in %.2f s",
                    name,
                    type(exc).__name__,
                    delay,
                    extra={"task": name, "error_class": type(exc).__name__},
                )
                await asyncio.sleep(delay)
                continue
            entry.failure = None
            return
