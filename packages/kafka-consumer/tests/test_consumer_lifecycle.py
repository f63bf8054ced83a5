"""Stopping (graceful, forced, broker gone), deferred completion and backpressure."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RecordContext
from coffeebuddy.infra.kafka.consumer._context import Completion
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import Event
from coffeebuddy.infra.kafka.testing import EmbeddedBroker, TopicFactory, create_topics, wait_until
from coffeebuddy.infra.kafka.topics import TopicConfig


async def test_stop_commits_what_finished_and_nothing_else(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    kit: Any,
) -> None:
    topic = unique_topic(2)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(10), partition=0)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(10), partition=1)
    release = asyncio.Event()
    started: list[tuple[int, int]] = []
    finished: list[tuple[int, int]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        started.append((ctx.partition, ctx.offset))
        if ctx.partition == 0 and ctx.offset == 4:
            await release.wait()  # finishes during the drain
        if ctx.partition == 1 and ctx.offset == 6:
            await asyncio.Event().wait()  # never finishes: cancelled at the deadline
        finished.append((ctx.partition, ctx.offset))

    harness = KafkaConsumerHarness(
        kafka_settings, [topic], group, handler, metrics=metrics, stop_timeout=3.0
    )
    task = asyncio.ensure_future(harness.run())
    await wait_until(
        lambda: (0, 4) in started and (1, 6) in started,
        timeout=15,
        message="both blocking handlers running",
    )
    loop = asyncio.get_running_loop()
    begun = loop.time()
    stopping = asyncio.ensure_future(harness.stop())
    await wait_until(lambda: not harness.health().ready, timeout=2, message="stopping")
    release.set()
    await stopping
    took = loop.time() - begun
    await task
    assert took < 3.5
    assert (0, 4) in finished
    assert (0, 5) not in started  # no new handler starts once stopping
    assert (1, 6) not in finished
    assert await kit.committed(kafka_settings, group, topic.name, 2) == [5, 6]


async def test_deferred_completion_pauses_at_cap_and_commits_lowest_incomplete(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    registry: CollectorRegistry,
    running: Any,
    kit: Any,
) -> None:
    topic = unique_topic(1)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(20), partition=0)
    completions: dict[int, Completion] = {}

    async def handler(event: Event, ctx: RecordContext) -> None:
        completions[ctx.offset] = ctx.defer()

    def committed_gauge() -> float | None:
        return registry.get_sample_value(
            "coffeebuddy_kafka_committed_offset",
            {"topic": topic.name, "group": group, "partition": "0"},
        )

    def paused() -> float:
        return kit.sample(registry, "coffeebuddy_kafka_paused_partitions", group=group)

    harness = KafkaConsumerHarness(
        kafka_settings,
        [topic],
        group,
        handler,
        metrics=metrics,
        max_incomplete_per_partition=5,
        max_records=2,
        commit_interval=0.05,
    )
    async with running(harness):
        # The cap counts records fetched and not yet settled, so the pause can come before
        # the partition's worker has handed those records to the handler.
        await wait_until(
            lambda: paused() == 1 and len(completions) >= 5,
            timeout=15,
            message="paused at the cap with the fetched records handled",
        )
        assert len(completions) <= 6  # at most one fetch beyond the cap
        assert kit.sample(registry, "coffeebuddy_kafka_incomplete_records", group=group) >= 0
        first_batch = len(completions)
        for offset in range(1, first_batch):
            completions[offset].done()
        await wait_until(
            lambda: len(completions) > first_batch, timeout=5, message="resumed below the cap"
        )
        await wait_until(lambda: committed_gauge() == 0, timeout=5, message="commit at 0")
        completions[0].done()
        await wait_until(
            lambda: committed_gauge() == first_batch,
            timeout=5,
            message="commit up to the lowest incomplete",
        )

        async def settle_everything() -> bool:
            for c in list(completions.values()):
                c.done()
            return len(completions) == 20 and all(c.is_settled for c in completions.values())

        await wait_until(settle_everything, timeout=10, message="all 20 delivered and settled")
        await wait_until(lambda: committed_gauge() == 20, timeout=5, message="all committed")
    assert completions[3].is_stale
    assert await kit.committed(kafka_settings, group, topic.name, 1) == [20]


async def test_stop_returns_within_deadline_when_broker_is_unreachable(
    kafka_settings: KafkaSettings,
    group: str,
    metrics: KafkaMetrics,
    kit: Any,
) -> None:
    with EmbeddedBroker() as broker:
        settings = kafka_settings.with_overrides(
            bootstrap_servers=[broker.bootstrap_servers], enable_idempotence=False
        )  # a private embedded broker, killed below: it has no idempotent producer
        await create_topics(settings, [("lonely", 1), ("lonely.dlq", 1)])
        topic = TopicConfig(
            name="lonely",
            partitions=1,
            replication_factor=1,
            key_field="run_id",
            dead_letter_topic="lonely.dlq",
        )
        await kit.produce(settings, "lonely", kit.events_bytes(5), partition=0)
        handled: list[int] = []

        async def handler(event: Event, ctx: RecordContext) -> None:
            handled.append(ctx.offset)

        harness = KafkaConsumerHarness(
            settings, [topic], group, handler, metrics=metrics, stop_timeout=3.0, commit_interval=60
        )
        task = asyncio.ensure_future(harness.run())
        await wait_until(lambda: len(handled) == 5, timeout=15, message="handled")
        broker.stop(timeout=0.2)
        loop = asyncio.get_running_loop()
        begun = loop.time()
        await harness.stop()
        took = loop.time() - begun
        await asyncio.wait({task}, timeout=5)
    assert task.done()
    assert took < 4.0
    assert kit.sample(metrics.registry, "coffeebuddy_kafka_commit_failures_total", group=group) >= 1


async def test_sigterm_stops_gracefully_and_second_signal_forces(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    kit: Any,
) -> None:
    topic = unique_topic(1)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(3), partition=0)
    started: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        started.append(ctx.offset)
        if ctx.offset == 1:
            await asyncio.Event().wait()  # would hold the graceful stop for stop_timeout

    harness = KafkaConsumerHarness(
        kafka_settings, [topic], group, handler, metrics=metrics, stop_timeout=30.0
    )
    task = asyncio.ensure_future(harness.run())
    harness.install_signal_handlers()
    loop = asyncio.get_running_loop()
    try:
        await wait_until(lambda: 1 in started, timeout=15, message="blocked handler")
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_until(lambda: not harness.health().ready, timeout=2, message="stopping")
        assert not task.done()  # graceful: waiting for the running handler
        begun = loop.time()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait({task}, timeout=10)
        assert task.done()
        assert loop.time() - begun < 5
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    assert await kit.committed(kafka_settings, group, topic.name, 1) == [1]
