"""Consumer-group handovers on the bench broker (group "groups"): what an operator waits for.

Two `KafkaConsumerHarness` members of one group on a 4-partition topic, test client settings
(session 6 s, heartbeat 0.5 s):

- join: a second member starts; time until both own partitions (one rebalance);
- leave: one member stops gracefully (drain, commit, LeaveGroup); time until the other owns all
  partitions;
- crash: a member in a child process is SIGKILLed (no LeaveGroup); time until the other owns all
  partitions, which is the session timeout's job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable

from _common import BenchContext, BenchRow
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RecordContext
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import Event
from coffeebuddy.infra.kafka.topics import REMINDER_EVENT_TYPES, TopicConfig

GROUP = "groups"
PARTITIONS = 4


async def _topic(settings: KafkaSettings) -> TopicConfig:
    name = f"bench.groups.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**settings.admin_kwargs())
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1), NewTopic(name + ".dlq", 1, 1)], timeout_ms=10_000
        )
    finally:
        await admin.close()
    return TopicConfig(
        name=name,
        partitions=PARTITIONS,
        replication_factor=1,
        key_field="run_id",
        event_types=REMINDER_EVENT_TYPES,
        dead_letter_topic=name + ".dlq",
    )


class _Member:
    """One harness in the group, tracking which partitions it owns."""

    def __init__(self, settings: KafkaSettings, topic: TopicConfig, group: str) -> None:
        self.owned: set[int] = set()

        async def handler(event: Event, ctx: RecordContext) -> None:
            return None

        async def assigned(tps: list[object]) -> None:
            self.owned |= {tp.partition for tp in tps}  # type: ignore[attr-defined]

        async def revoked(tps: list[object]) -> None:
            self.owned -= {tp.partition for tp in tps}  # type: ignore[attr-defined]

        self.harness = KafkaConsumerHarness(
            settings,
            [topic],
            group,
            handler,
            metrics=KafkaMetrics(CollectorRegistry()),
            on_assign=assigned,
            on_revoke=revoked,
            stop_timeout=10.0,
        )
        self.task = asyncio.ensure_future(self.harness.run())

    async def stop(self) -> None:
        await self.harness.stop()
        await self.task


_CHILD = """
import asyncio, sys
from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness
from coffeebuddy.infra.kafka.topics import TopicConfig

async def main():
    async def handler(event, ctx):
        return None

    async def assigned(tps):
        print("assigned", len(tps), flush=True)

    topic = TopicConfig.model_validate_json(sys.argv[1])
    harness = KafkaConsumerHarness(
        KafkaSettings.from_env(), [topic], sys.argv[2], handler, on_assign=assigned
    )
    await harness.run()

asyncio.run(main())
"""


class _ChildMember:
    """A member in its own process, so that it can die the hard way."""

    def __init__(self, env: dict[str, str], topic: TopicConfig, group: str) -> None:
        self._env = {**os.environ, **env}
        self._args = [sys.executable, "-c", _CHILD, topic.model_dump_json(), group]
        self.process: asyncio.subprocess.Process | None = None

    async def start_owning(self, partitions: int) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self._args, env=self._env, stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), 60)
            if not line:
                raise RuntimeError(f"group bench child exited with {await self.process.wait()}")
            if line.split() == [b"assigned", str(partitions).encode()]:
                return

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


async def _until(condition: Callable[[], bool], limit: float = 60.0) -> float:
    begun = time.monotonic()
    while not condition():
        if time.monotonic() - begun > limit:
            raise TimeoutError(f"group handover took over {limit:g} s")
        await asyncio.sleep(0.01)  # sampling the handover's end, bounded by the limit above
    return time.monotonic() - begun


async def _round(
    settings: KafkaSettings, env: dict[str, str], topic: TopicConfig
) -> tuple[float, float, float]:
    group = f"bench-groups-{uuid.uuid4().hex[:6]}"
    child = _ChildMember(env, topic, group)
    await child.start_owning(PARTITIONS)
    second = _Member(settings, topic, group)
    join = await _until(lambda: bool(second.owned))
    begun = time.monotonic()
    await child.kill()
    await _until(lambda: len(second.owned) == PARTITIONS)
    crash = time.monotonic() - begun
    third = _Member(settings, topic, group)
    await _until(lambda: bool(second.owned) and bool(third.owned))
    begun = time.monotonic()
    await second.stop()
    await _until(lambda: len(third.owned) == PARTITIONS)
    leave = time.monotonic() - begun
    await third.stop()
    return join, leave, crash


async def run(ctx: BenchContext) -> list[BenchRow]:
    topic = await _topic(ctx.settings)
    results = [await _round(ctx.settings, dict(ctx.env), topic) for _ in range(ctx.rounds)]
    joins, leaves, crashes = ([r[i] * 1000 for r in results] for i in range(3))
    session = ctx.settings.session_timeout_ms
    return [
        BenchRow.of(GROUP, "second member joins: both own partitions after", joins, "ms"),
        BenchRow.of(GROUP, "member stops (LeaveGroup): the other owns all after", leaves, "ms"),
        BenchRow.of(
            GROUP,
            f"member SIGKILLed (no LeaveGroup, session {session} ms): other owns all after",
            crashes,
            "ms",
        ),
    ]
