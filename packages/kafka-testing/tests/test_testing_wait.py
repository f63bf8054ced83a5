"""wait_until / wait_until_sync: deadlines, last value in the error, sync and async predicates."""

from __future__ import annotations

import itertools

import pytest

from coffeebuddy.infra.kafka.testing import wait_until, wait_until_sync


async def test_wait_until_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert await wait_until(lambda: next(counter) >= 3 and "done", timeout=5) == "done"


async def test_wait_until_accepts_async_predicates() -> None:
    calls: list[int] = []

    async def predicate() -> list[int]:
        calls.append(1)
        return calls if len(calls) >= 2 else []

    assert await wait_until(predicate, timeout=5, interval=0.001) == [1, 1]


async def test_wait_until_times_out_with_message_and_last_value() -> None:
    counter = itertools.count()
    with pytest.raises(TimeoutError, match=r"partition 3 assigned \(not true after 0.05 s; last"):
        await wait_until(lambda: next(counter) < 0, timeout=0.05, message="partition 3 assigned")


async def test_wait_until_reports_the_last_ignored_error() -> None:
    def boom() -> bool:
        raise ConnectionError("broker not there")

    with pytest.raises(TimeoutError, match="last error: ConnectionError: broker not there"):
        await wait_until(boom, timeout=0.05, ignore=(ConnectionError,))


def test_wait_until_sync_last_value_and_errors() -> None:
    values = iter([0, 0, 7])
    assert wait_until_sync(lambda: next(values), timeout=5, interval=0.001) == 7
    with pytest.raises(TimeoutError, match=r"lag is zero \(not true after 0.02 s; last value: 0\)"):
        wait_until_sync(lambda: 0, timeout=0.02, message="lag is zero")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        wait_until_sync(lambda: True, timeout=0)


def test_wait_until_sync_refuses_async_predicates() -> None:
    async def predicate() -> bool:
        return True

    with pytest.raises(TypeError, match="use await wait_until"):
        wait_until_sync(predicate, timeout=1)  # type: ignore[unused-coroutine]
