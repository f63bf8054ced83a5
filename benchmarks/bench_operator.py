"""Operator commands (group "operator"): `coffeebuddy-kafka reminders list` over 100,000 pending
reminders, end to end: the console script's `main` (argument parsing, settings, a group-less
consumer reading all 12 changelog partitions to their end, decoding every record with the models'
`decode_state`, folding by key, sorting by due time, writing the table or the JSON lines to
/dev/null). The records are written with the models' `encode_state`, as the worker writes them,
straight into a changelog topic shaped like the catalog's (12 partitions, key = reminder id,
partition = the run id's).

Baseline: reading the same topic with the same reader (the dlq tools' `KafkaTopicReader`), no
decoding: what the command adds on top of fetching the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from _common import BenchContext, BenchRow, input_frozen, merge_rounds
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from coffeebuddy.infra.kafka.models import ReminderScheduledData, ReminderStatus, encode_state
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import main
from coffeebuddy.infra.kafka.provision.dlq import KafkaTopicReader
from coffeebuddy.infra.kafka.provision.reminders import partition_of
from coffeebuddy.infra.kafka.topics import REMINDER_STATE_CHANGELOG_TOPIC, TopicConfig

GROUP = "operator"
PARTITIONS = 12


async def _changelog(ctx: BenchContext) -> TopicConfig:
    topic = REMINDER_STATE_CHANGELOG_TOPIC.model_copy(
        update={"name": f"bench.operator.{uuid.uuid4().hex[:8]}", "partitions": PARTITIONS}
    )
    admin = AIOKafkaAdminClient(**ctx.settings.admin_kwargs())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic.name, PARTITIONS, 1)])
        for _ in range(100):
            described = await admin.describe_topics([topic.name])
            if described and len(described[0].get("partitions", [])) == PARTITIONS:
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return topic


async def _fill(ctx: BenchContext, topic: TopicConfig, n: int) -> None:
    """`n` scheduled reminders over the next week, four per run, as the worker writes them."""
    now = datetime.now(UTC)
    records: list[tuple[bytes | None, bytes | None, int | None]] = []
    for i in range(n):
        rid, run = f"bench-{i}", f"run-{i // 4}"
        due = now + timedelta(seconds=60 + (i * 6047) % (7 * 86400))
        data = ReminderScheduledData(
            run_id=run,
            reminder_id=rid,
            kind="runner" if i % 4 == 0 else "last_call",
            team_id="T0COFFEE",
            channel_id="C0COFFEE",
            recipient_user_id=f"U0B{i % 500}",
            due_at=due,
            expires_at=due + timedelta(minutes=15),
            place="Corner Cafe",
            order_count=3,
        )
        value = encode_state(
            state_key=rid,
            status=ReminderStatus.SCHEDULED,
            run_id=run,
            keep_until=(due + timedelta(hours=1, minutes=15)).timestamp(),
            now=now.timestamp(),
            source="/coffeebuddy/reminder-worker",
            writer="reminder-worker-bench",
            reminder=data.model_dump_json().encode(),
            reminder_id=rid,
            event_id=str(uuid.uuid4()),
            event_time=now.timestamp(),
            event_source="/coffeebuddy/slack-app",
            origin_topic="coffeebuddy.reminder.events",
            origin_partition=partition_of(run, PARTITIONS),
            origin_offset=i,
        )
        records.append((rid.encode(), value, partition_of(run, PARTITIONS)))
    async with KafkaEventProducer(ctx.settings) as producer:
        for start in range(0, n, 10_000):
            await producer.send_raw_many(topic, records[start : start + 10_000])


def _cli(argv: list[str]) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) `main(argv)` takes with its output to /dev/null
    (exit 0 required). The CPU time leaves out the broker's and other processes' share, so it
    moves less than the wall time on a shared machine."""
    with (
        open(os.devnull, "w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        started, cpu = time.perf_counter(), time.process_time()
        code = main(argv)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
    if code != 0:
        raise RuntimeError(f"coffeebuddy-kafka {' '.join(argv)} exited {code}")
    return took, cpu


async def _bare_read(ctx: BenchContext, topic: TopicConfig, n: int) -> float:
    started = time.perf_counter()
    records = await KafkaTopicReader(ctx.settings, timeout=120).read(topic.name)
    took = time.perf_counter() - started
    if len(records) < n:
        raise RuntimeError(f"read {len(records)} of {n} records")
    return took


async def run(ctx: BenchContext) -> list[BenchRow]:
    n = 10_000 if ctx.quick else 100_000
    topic = await _changelog(ctx)
    await _fill(ctx, topic, n)
    env = {**ctx.env, "KAFKA_BOOTSTRAP_SERVERS": ctx.bootstrap_servers}
    argv = ["reminders", "list", "--changelog-topic", topic.name, "--timeout", "120"]
    rounds: list[list[BenchRow]] = []
    with contextlib.ExitStack() as stack:
        for key, value in env.items():  # main() reads KafkaSettings.from_env() like the CLI
            stack.enter_context(_env(key, value))
        for _ in range(ctx.rounds):
            with input_frozen():
                bare = await _bare_read(ctx, topic, n)
                table, table_cpu = await asyncio.to_thread(_cli, argv)
                lines, _ = await asyncio.to_thread(_cli, [*argv, "--json"])
            rounds.append(
                [
                    BenchRow(
                        GROUP,
                        f"reminders list, {n:,} pending, end to end (table to /dev/null)",
                        table,
                        "s",
                        baseline="same topic read to its end, no decoding (KafkaTopicReader)",
                        baseline_value=bare,
                        target="<= 5",
                        met=table <= 5,
                    ),
                    BenchRow(
                        GROUP,
                        f"reminders list, {n:,} pending: CPU time of the command's process",
                        table_cpu,
                        "s",
                    ),
                    BenchRow(
                        GROUP,
                        f"reminders list --json, {n:,} pending, end to end (to /dev/null)",
                        lines,
                        "s",
                        baseline="same topic read to its end, no decoding (KafkaTopicReader)",
                        baseline_value=bare,
                    ),
                ]
            )
    return merge_rounds(rounds)


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
