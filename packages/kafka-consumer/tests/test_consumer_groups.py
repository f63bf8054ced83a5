"""Rebalances, restarts, slow work: nothing lost, nothing handled twice, no needless rebalance."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import (
    KafkaConsumerHarness,
    RecordContext,
    RetryableError,
    RetryPolicy,
)
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import Event
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until


async def test_no_loss_no_duplicates_across_rebalance_with_poison(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    running: Any,
    kit: Any,
) -> None:
    topic = unique_topic(4)
    handled: Counter[tuple[int, int]] = Counter()
    poison: set[tuple[int, int]] = set()

    def handler_for(name: str) -> Any:
        async def handler(event: Event, ctx: RecordContext) -> None:
            await asyncio.sleep(0.001)  # some work, so records are in flight during rebalances
            handled[(ctx.partition, ctx.offset)] += 1

        return handler

    def make(name: str) -> KafkaConsumerHarness:
        return KafkaConsumerHarness(
            kafka_settings,
            [topic],
            group,
            handler_for(name),
            metrics=KafkaMetrics(CollectorRegistry()),
            commit_interval=0.2,
        )

    async def produce_wave(n: int) -> None:
        values = kit.events_bytes(n)
        values[n // 2] = b"poison"
        await kit.produce(kafka_settings, topic.name, values)

    first = make("a")
    async with running(first):
        await produce_wave(200)
        await wait_until(lambda: sum(handled.values()) >= 150, timeout=20, message="first wave")
        second = make("b")
        async with running(second):
            await produce_wave(200)
            await wait_until(
                lambda: second.assignment() and first.assignment(),
                timeout=20,
                message="both members own partitions",
            )
            assert len(first.assignment()) + len(second.assignment()) == 4
            await produce_wave(200)
            await wait_until(
                lambda: sum(handled.values()) >= 597,
                timeout=20,
                message="waves handled while both members are in the group",
            )
        # second left: first takes everything back
        await wait_until(lambda: len(first.assignment()) == 4, timeout=20, message="reassigned")
        await produce_wave(200)
        await wait_until(lambda: sum(handled.values()) >= 796, timeout=20, message="last wave")
    dead = await kit.read_topic(kafka_settings, topic.dead_letter_topic, 4, timeout=10)
    for record in dead:
        headers = dict(record.headers)
        poison.add(
            (
                int(headers["coffeebuddy.dlq.origin.partition"]),
                int(headers["coffeebuddy.dlq.origin.offset"]),
            )
        )
    duplicates = {k: v for k, v in handled.items() if v > 1}
    assert duplicates == {}
    assert len(poison) == 4
    assert sum(handled.values()) == 796
    assert not (set(handled) & poison)
    ends = await kit.committed(kafka_settings, group, topic.name, 4)
    assert sum(ends) == 800  # every record, good or poison, is committed


async def test_stop_and_restart_resumes_from_commit(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    running: Any,
    kit: Any,
) -> None:
    topic = unique_topic(2)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(100))
    handled: Counter[tuple[int, int]] = Counter()

    async def handler(event: Event, ctx: RecordContext) -> None:
        handled[(ctx.partition, ctx.offset)] += 1

    for _ in range(2):
        harness = KafkaConsumerHarness(
            kafka_settings, [topic], group, handler, metrics=KafkaMetrics(CollectorRegistry())
        )
        async with running(harness):
            target = sum(handled.values()) + (100 if not handled else 50)
            await wait_until(
                lambda t=target: sum(handled.values()) >= t, timeout=20, message=f"{target} handled"
            )
        if len(handled) == 100:
            await kit.produce(kafka_settings, topic.name, kit.events_bytes(50))
    assert len(handled) == 150
    assert set(handled.values()) == {1}
    assert sum(await kit.committed(kafka_settings, group, topic.name, 2)) == 150


async def test_slow_handler_and_backoff_do_not_cause_a_rebalance(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    registry: CollectorRegistry,
    metrics: KafkaMetrics,
    running: Any,
    kit: Any,
) -> None:
    settings = kafka_settings.with_overrides(max_poll_interval_ms=1500)
    topic = unique_topic(2)
    await kit.produce(settings, topic.name, kit.events_bytes(6), partition=0)
    await kit.produce(settings, topic.name, kit.events_bytes(6), partition=1)
    calls: list[tuple[int, int, int]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        calls.append((ctx.partition, ctx.offset, ctx.attempt))
        if ctx.partition == 0 and ctx.offset == 2:
            await asyncio.sleep(3.0)  # real slow work, twice max_poll_interval
        if ctx.partition == 1 and ctx.offset == 1 and ctx.attempt == 1:
            raise RetryableError("backoff longer than max_poll_interval")

    harness = KafkaConsumerHarness(
        settings,
        [topic],
        group,
        handler,
        metrics=metrics,
        retry_policy=RetryPolicy(initial_backoff=3.0, jitter=0.0),
    )
    async with running(harness):
        await wait_until(lambda: len(harness.assignment()) == 2, timeout=15, message="assigned")
        await wait_until(lambda: len(calls) == 13, timeout=15, message="all handled")
        assert harness.health().live
    assert (
        kit.sample(registry, "coffeebuddy_kafka_rebalances_total", group=group, kind="assigned")
        == 1
    )
    assert kit.sample(registry, "coffeebuddy_kafka_rebalances_total", group=group, kind="lost") == 0
    assert [c for c in calls if c[0] == 1] == [(1, 0, 1), (1, 1, 1), (1, 1, 2)] + [
        (1, o, 1) for o in range(2, 6)
    ]
    assert await kit.committed(settings, group, topic.name, 2) == [6, 6]


async def test_a_member_joins_a_new_group_with_one_join_group_request(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    running: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiokafka 0.14 sends one JoinGroup per configured assignor (aio-libs/aiokafka#1168), each
    with other protocol metadata: with two assignors, two members starting together kept each
    other rebalancing for minutes (a worker never ready in CI). One join is one JoinGroup, plus
    the member-id round trip of KIP-394 where the broker asks for it."""
    caplog.set_level(logging.DEBUG, logger="aiokafka.consumer.group_coordinator")

    async def handler(event: Event, ctx: RecordContext) -> None:
        return None

    harness = KafkaConsumerHarness(
        kafka_settings,
        [unique_topic(2)],
        group,
        handler,
        metrics=KafkaMetrics(CollectorRegistry()),
    )
    async with running(harness):
        await wait_until(lambda: harness.health().ready, timeout=60, message="assigned")
        messages = [r.getMessage() for r in caplog.records]
    attempts: list[int] = []  # JoinGroup requests sent per join attempt
    for message in messages:
        if message.startswith("(Re-)joining group"):
            attempts.append(0)
        elif message.startswith("Sending JoinGroup") and attempts:
            attempts[-1] += 1
    assert attempts, "aiokafka no longer logs its joins: find another witness"
    assert max(attempts) <= 2, attempts
