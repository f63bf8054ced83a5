"""The per-partition worker: decodes and handles its queued batches one record at a time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coffeebuddy.infra.kafka.consumer._context import RecordContext
from coffeebuddy.infra.kafka.metrics import observe_many

if TYPE_CHECKING:
    from coffeebuddy.infra.kafka.consumer._failure import FailurePath
    from coffeebuddy.infra.kafka.consumer._flow import FlowControl
    from coffeebuddy.infra.kafka.consumer._partition import Partition
    from coffeebuddy.infra.kafka.consumer._types import Handler, RecordDecoder


async def run_worker(
    p: Partition,
    handler: Handler,
    decode: RecordDecoder,
    failures: FailurePath,
    flow: FlowControl,
    on_decode_failure: Callable[[Any, Exception], None] | None,
) -> None:
    """Handle `p`'s records in offset order until it closes; failures take `failures`."""
    queue = p.queue
    complete = p.tracker.complete
    tm = p.tm
    perf = time.perf_counter
    # Handler durations are collected in plain lists and flushed per batch.
    success: list[float] = []
    deferred: list[float] = []
    try:
        while not p.closed:
            if not queue:
                p.wake.clear()
                await p.wake.wait()
                continue
            records = queue.popleft()
            try:
                for record in records:
                    if p.closed:  # revoked or stopping: the rest is refetched later
                        break  # type: ignore[unreachable]
                    # Decoded right before handling: events that die young never reach
                    # the cyclic GC's older generations (batch decoding costs ~50% more).
                    try:
                        event = decode(record.value, record.headers)
                    except Exception as error:  # an injected decoder may raise anything
                        if on_decode_failure is not None:
                            on_decode_failure(record, error)
                        tm.error(error)
                        await failures.dead_letter(
                            p, record, error, "decode_error", 1, time.time(), pause=True
                        )
                        continue
                    ctx = RecordContext(p, record, event, 1, 0.0)
                    start = perf()
                    try:
                        await handler(event, ctx)
                    except Exception as exc:
                        elapsed = perf() - start
                        await failures.handle(
                            p,
                            record,
                            event,
                            exc,
                            attempt=1,
                            first_seen=time.time() - elapsed,
                            elapsed=elapsed,
                            pause=True,
                        )
                    else:
                        if ctx.is_deferred:
                            deferred.append(perf() - start)
                        else:
                            complete(record.offset)
                            success.append(perf() - start)
            finally:
                flow.release(len(records))
                if success:
                    observe_many(tm.success, success)
                    success.clear()
                if deferred:
                    observe_many(tm.deferred, deferred)
                    deferred.clear()
    finally:
        observe_many(tm.success, success)
        observe_many(tm.deferred, deferred)
