"""The one failure path: classify, retry with backoff, or dead-letter (retrying the write).

Inline failures (the handler raised) pause their partition while they wait, so later records
of it wait too; detached ones (a deferred completion failed, the record is already out of
order) wait without pausing. Either way a closed partition ends the path and leaves the record
incomplete: it is redelivered to the partition's next owner.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.consumer._context import RecordContext
from coffeebuddy.infra.kafka.consumer._errors import ErrorClass, ErrorClassifier, RetryPolicy

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer._dead_letter import DeadLetterWriter
    from coffeebuddy.infra.kafka.consumer._partition import Partition
    from coffeebuddy.infra.kafka.consumer._types import Handler


class FailurePath:
    """Runs failed records of every partition to an outcome: handled, dead-lettered or left."""

    def __init__(
        self,
        handler: Handler,
        classify: ErrorClassifier,
        policy: RetryPolicy,
        dead_letters: DeadLetterWriter,
    ) -> None:
        self._handler = handler
        self._classify = classify
        self._policy = policy
        self._dead_letters = dead_letters
        self._detached: set[asyncio.Task[None]] = set()

    async def handle(
        self,
        p: Partition,
        record: Any,
        event: Any,
        exc: BaseException,
        *,
        attempt: int,
        first_seen: float,
        elapsed: float | None,
        pause: bool,
    ) -> None:
        """`record` failed with `exc` at `attempt` (after `elapsed` s in the handler, None when
        not measured): retry it in place or dead-letter it."""
        policy = self._policy
        while True:
            p.tm.error(exc)
            retry = self._classify(exc) is ErrorClass.RETRYABLE
            if not (retry and policy.should_retry(attempt)):
                if elapsed is not None:
                    p.tm.dead_letter.observe(elapsed)
                reason = "retries_exhausted" if retry else "non_retryable"
                await self.dead_letter(p, record, exc, reason, attempt, first_seen, pause=pause)
                return
            if elapsed is not None:
                p.tm.retry.observe(elapsed)
            if not await p.wait(policy.backoff(attempt), pause=pause):
                return
            attempt += 1
            ctx = RecordContext(p, record, event, attempt, first_seen)
            start = time.perf_counter()
            try:
                await self._handler(event, ctx)
            except Exception as again:
                exc = again
                elapsed = time.perf_counter() - start
                continue
            if ctx.is_deferred:
                p.tm.deferred.observe(time.perf_counter() - start)
            else:
                p.complete(record.offset)
                p.tm.success.observe(time.perf_counter() - start)
            return

    async def dead_letter(
        self,
        p: Partition,
        record: Any,
        error: BaseException,
        reason: str,
        attempts: int,
        first_seen: float,
        *,
        pause: bool,
    ) -> None:
        """Write `record` to the dead-letter topic (retrying a failed write), then complete it."""
        delay_attempt = 1
        while not p.closed:
            if await self._dead_letters.write(
                p.config.name, record, error, reason, attempts, first_seen
            ):
                p.complete(record.offset)
                return
            if not await p.wait(self._policy.backoff(delay_attempt), pause=pause):
                return
            delay_attempt += 1

    def detach(
        self,
        p: Partition,
        record: Any,
        event: Any,
        attempt: int,
        first_seen: float,
        exc: BaseException,
    ) -> None:
        """Run the failure path of a deferred record in its own task (`Completion.fail`)."""
        task = asyncio.ensure_future(
            self.handle(
                p,
                record,
                event,
                exc,
                attempt=attempt,
                first_seen=first_seen or time.time(),
                elapsed=None,
                pause=False,
            )
        )
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    def owns(self, task: asyncio.Task[Any]) -> bool:
        """True if `task` runs the failure path of a deferred record."""
        return task in self._detached

    def cancel_detached(self) -> None:
        for task in list(self._detached):
            task.cancel()
