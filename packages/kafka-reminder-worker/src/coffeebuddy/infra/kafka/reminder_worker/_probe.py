"""AuthProbe: whether the sender's credentials work (checked at start and, after a configuration
error, again with backoff until they do); delivery waits meanwhile."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from coffeebuddy.infra.kafka.consumer import Backoff
from coffeebuddy.infra.kafka.reminder_worker._sender import ReminderSender, SendOutcome, SendResult

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.reminder_worker._supervisor import Supervisor

__all__ = ["AuthProbe"]

log = logging.getLogger("coffeebuddy.infra.kafka.reminder_worker")


class AuthProbe:
    """`ok` until a send reports a configuration error (or the first check fails); then
    `check_auth()` is probed with backoff by a supervised task until it passes."""

    def __init__(self, sender: ReminderSender, backoff: Backoff, supervisor: Supervisor) -> None:
        self._sender = sender
        self._backoff = backoff
        self._supervisor = supervisor
        self._rng = random.Random()  # noqa: S311 - jitter, not security
        self.ok = True
        self.error: str | None = None

    def start(self) -> None:
        """Check the credentials now (in the background); `ok` says the answer."""
        self.ok = False
        self.error = "checking the sender's credentials"
        self._supervisor.start("auth-probe", self._run)

    def failed(self, error: str | None) -> None:
        """A send reported a configuration error: stop delivery, probe until it works."""
        self.ok = False
        self.error = error or "configuration error"
        self._supervisor.start("auth-probe", lambda: self._run(first_delay=True))

    async def _run(self, *, first_delay: bool = False) -> None:
        attempt = 0
        while True:
            if first_delay or attempt:
                await asyncio.sleep(self._backoff.delay(attempt + 1, self._rng.random))
            attempt += 1
            try:
                result = await self._sender.check_auth()
            except Exception as exc:
                result = SendResult.transient(type(exc).__name__)
            if result.outcome is SendOutcome.SENT:
                fixed = first_delay or attempt > 1
                log.info(
                    "sender configuration fixed; delivery resumes"
                    if fixed
                    else "sender credentials checked: ok"
                )
                self.ok = True
                self.error = None
                return
            if result.outcome is SendOutcome.CONFIGURATION:
                self.error = result.error or self.error
            log.warning(
                "sender not usable (%s: %s); delivery waits, backlog kept",
                result.outcome.value,
                result.error or "",
                extra={"outcome": result.outcome.value, "error": result.error or ""},
            )
