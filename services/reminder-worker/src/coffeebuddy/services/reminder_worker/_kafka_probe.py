"""Is the Kafka cluster answering? A metadata round trip every few seconds, for /readyz: the
consumer keeps its assignment while every broker is gone, so the harness alone would stay ready
through an outage; with this probe readiness says why not until some broker answers again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from coffeebuddy.infra.kafka.config import KafkaSettings

__all__ = ["KafkaProbe"]

log = logging.getLogger("coffeebuddy.reminder_worker.service")

_ATTEMPTS = 3  # requests per probe: each goes to a random known broker, one may be down


class KafkaProbe:
    """`ok` / `problem` from the last metadata request; `run(stop)` until `stop` is set. A round
    trip every `interval` s; one slower than `timeout` s counts as no answer."""

    def __init__(
        self, settings: KafkaSettings, *, interval: float = 2.0, timeout: float = 5.0
    ) -> None:
        self._settings = settings
        self._interval = interval
        self._timeout = timeout
        self.ok = True  # the start-up check_connection just passed
        self.problem = ""

    async def run(self, stop: asyncio.Event) -> None:
        admin: Any = None
        try:
            while not stop.is_set():
                try:
                    if admin is None:
                        admin = await self._connect()
                    await self._round_trip(admin)
                except Exception as exc:
                    self._down(exc)
                    if admin is not None:  # reconnect from the bootstrap list next time
                        await _close(admin)
                        admin = None
                else:
                    self._up()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._interval)
        finally:
            if admin is not None:
                await _close(admin)

    async def _connect(self) -> Any:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(**self._settings.admin_kwargs())
        try:
            await asyncio.wait_for(admin.start(), self._timeout)
        except BaseException:
            await _close(admin)
            raise
        return admin

    async def _round_trip(self, admin: Any) -> None:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                await asyncio.wait_for(admin.describe_cluster(), self._timeout)
                return
            except Exception:
                if attempt == _ATTEMPTS:
                    raise

    def _down(self, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        problem = (
            f"no Kafka broker answered a metadata request within {self._timeout:g} s ({reason})"
        )
        if self.ok:
            log.error("%s; not ready until a broker answers", problem)
        self.ok, self.problem = False, problem

    def _up(self) -> None:
        if not self.ok:
            log.info("Kafka answers again; ready when the consumer is assigned")
        self.ok, self.problem = True, ""


async def _close(admin: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(admin.close(), 5.0)
