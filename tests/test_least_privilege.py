"""Least privilege on Apache Kafka: each catalog principal as its SCRAM user, only its ACLs.

The ACLs are the catalog's, applied by the provisioning code (`catalog_kafka`). Each service
does its job with them (the worker as a process, end to end to the fake Slack) and is refused,
with an error naming the resource, for everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.models import (
    ReminderCancelled,
    ReminderCancelledData,
    RunCreated,
    RunCreatedData,
    encode_event,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.provision import ensure_topics
from coffeebuddy.infra.kafka.provision.dlq import (
    DeadLetterFilter,
    TopicReplayLedger,
    inspect_dead_letters,
    replay_dead_letters,
)
from coffeebuddy.infra.kafka.testing import ApacheKafka, wait_until
from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    REMINDER_EVENTS_DLQ_TOPIC,
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_WORKER_GROUP,
    RUN_EVENTS_TOPIC,
    TopicConfig,
)
from coffeebuddy.services.fake_slack import FakeSlackServer

if TYPE_CHECKING:
    from conftest import LeakCheck, Workers

pytestmark = [pytest.mark.usefixtures("leak_check")]

PRINCIPALS = {p.name.removeprefix("User:"): p for p in CATALOG.principals}


def as_user(cluster: ApacheKafka, user: str) -> KafkaSettings:
    return cluster.settings("SASL_SSL", user=user, mechanism="SCRAM-SHA-512")


async def test_worker_as_its_principal_delivers_end_to_end(
    catalog_kafka: ApacheKafka,
    fake_slack: FakeSlackServer,
    workers: Workers,
    leak_check: LeakCheck,
) -> None:
    worker = workers.start(catalog_kafka, fake_slack)
    await worker.wait_ready()
    due = datetime.now(UTC) + timedelta(seconds=2)
    events = [workers.reminder(f"lp-{i}", f"U0LP{i}", due) for i in range(5)]
    async with KafkaEventProducer(as_user(catalog_kafka, "slack-app")) as producer:
        await producer.publish_many(REMINDER_EVENTS_TOPIC, events)
    ids = {e.data.reminder_id for e in events}
    await wait_until(
        lambda: ids <= set(workers.delivered(fake_slack)), timeout=30, message="five DMs delivered"
    )
    assert worker.terminate() == 0, worker.log_tail()
    assert {k: v for k, v in workers.delivered(fake_slack).items() if k in ids} == dict.fromkeys(
        ids, 1
    )
    assert "Authorization" not in worker.logs(), worker.log_tail()


async def _write(settings: KafkaSettings, topic: TopicConfig) -> str | None:
    """None when the principal may write `topic`, else the error. The probe is a tombstone:
    every reader of the catalog's topics skips or dead-letters it without harm."""
    async with KafkaEventProducer(settings) as producer:
        try:
            await producer.send_raw(topic, None, key=b"lp-probe")
        except KafkaError as exc:
            return f"{type(exc).__name__}: {exc}"
    return None


async def _read(settings: KafkaSettings, topic: str, group: str | None = None) -> str | None:
    """None when the principal may read `topic` (assigned, or as a member of `group`)."""
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(group))
    try:
        if group is None:
            await consumer.start()
            if topic not in await consumer.topics():  # aiokafka only logs this refusal
                return f"not authorized to describe topic {topic} (absent from its metadata)"
            consumer.assign([TopicPartition(topic, 0)])
        else:
            consumer.subscribe([topic])
            await consumer.start()
        await consumer.getmany(timeout_ms=1500)
        if group is not None:  # a member that was refused the group never gets assigned
            await consumer.getmany(timeout_ms=1500)
    except KafkaError as exc:
        return f"{type(exc).__name__}: {exc}"
    except ConnectionError as exc:  # aiokafka wraps a refused group join at start
        return f"{type(exc).__name__}: {exc}"
    finally:
        await consumer.stop()
    return None


def _granted(user: str, operation: str) -> set[str]:
    return {
        b.resource_name
        for b in PRINCIPALS[user].acl_bindings()
        if b.resource_type == "TOPIC" and b.operation == operation
    }


@pytest.mark.parametrize(
    ("user", "writes", "reads"),
    [
        # What each service needs, written out: the catalog must grant exactly this.
        ("slack-app", {RUN_EVENTS_TOPIC.name, REMINDER_EVENTS_TOPIC.name}, set()),
        (
            "dlq-replayer",
            {RUN_EVENTS_TOPIC.name, REMINDER_EVENTS_TOPIC.name, "coffeebuddy.dlq.replays"},
            {f"{RUN_EVENTS_TOPIC.name}.dlq", f"{REMINDER_EVENTS_TOPIC.name}.dlq"}
            | {"coffeebuddy.dlq.replays"},
        ),
        # `reminders list|show|cancel`: reads the worker's state and history, publishes
        # cancellations to the reminder events.
        (
            "reminder-operator",
            {REMINDER_EVENTS_TOPIC.name},
            {REMINDER_STATE_CHANGELOG_TOPIC.name, REMINDER_HISTORY_TOPIC.name},
        ),
        # The worker's own topics change with the worker: its grants are the catalog's,
        # minus the refusals the issue names (it only reads run and reminder events).
        ("reminder-worker", None, None),
    ],
)
async def test_each_principal_writes_and_reads_exactly_its_topics(
    catalog_kafka: ApacheKafka,
    user: str,
    writes: set[str] | None,
    reads: set[str] | None,
    leak_check: LeakCheck,
) -> None:
    writes = _granted(user, "WRITE") if writes is None else writes
    reads = _granted(user, "READ") if reads is None else reads
    assert _granted(user, "WRITE") == writes, "the catalog grants other writes"
    assert _granted(user, "READ") == reads, "the catalog grants other reads"
    settings = as_user(catalog_kafka, user)
    outcome: dict[str, tuple[bool, bool]] = {}
    for topic in CATALOG.topics:
        write_error = await _write(settings, topic)
        read_error = await _read(settings, topic.name)
        for error in (write_error, read_error):
            if error is not None:  # a refusal names what was refused
                assert "AuthorizationFailed" in error or "not authorized" in error, error
                assert topic.name in error, error
        outcome[topic.name] = (write_error is None, read_error is None)
    expected = {t.name: (t.name in writes, t.name in reads) for t in CATALOG.topics}
    assert outcome == expected


async def test_reminder_worker_refused_outside_its_grants(
    catalog_kafka: ApacheKafka, leak_check: LeakCheck
) -> None:
    settings = as_user(catalog_kafka, "reminder-worker")
    assert REMINDER_WORKER_GROUP.name not in {"coffeebuddy.dlq-replayer", "someone-else"}
    # It only reads reminder and run events: writing them is refused, naming the topic.
    for topic in (REMINDER_EVENTS_TOPIC, RUN_EVENTS_TOPIC):
        error = await _write(settings, topic)
        assert error is not None
        assert f"TopicAuthorizationFailedError: {topic.name}" in error, error
    # Its own group works; another team's group is refused, naming the group.
    assert await _read(settings, REMINDER_EVENTS_TOPIC.name, REMINDER_WORKER_GROUP.name) is None
    for group in ("coffeebuddy.dlq-replayer", "someone-else"):
        error = await _read(settings, REMINDER_EVENTS_TOPIC.name, group)
        assert error is not None
        assert f"GroupAuthorizationFailedError: {group}" in error, error
    # Creating a topic (here through the provisioning code) is refused, naming the topic.
    extra = TopicConfig(
        name="coffeebuddy.not-in-the-catalog",
        partitions=1,
        replication_factor=1,
        configs={},
        key_field="run_id",
    )
    report = await ensure_topics(settings, "dev", topics=[extra])
    (result,) = report.results
    assert result.status == "failed"
    assert "not authorized to create topic 'coffeebuddy.not-in-the-catalog'" in result.message
    admin = AIOKafkaAdminClient(**catalog_kafka.settings().admin_kwargs())
    await admin.start()
    try:
        assert extra.name not in await admin.list_topics()
    finally:
        await admin.close()


async def test_other_services_join_no_group_and_create_no_topic(
    catalog_kafka: ApacheKafka, leak_check: LeakCheck
) -> None:
    for user in ("slack-app", "dlq-replayer", "reminder-operator"):
        settings = as_user(catalog_kafka, user)
        topic = next(iter(_granted(user, "READ")), RUN_EVENTS_TOPIC.name)
        for group in (REMINDER_WORKER_GROUP.name, f"coffeebuddy.{user}"):
            error = await _read(settings, topic, group)
            assert error is not None, (user, group)
            assert f"GroupAuthorizationFailedError: {group}" in error, error
        extra = TopicConfig(
            name=f"coffeebuddy.{user}.adhoc", partitions=1, replication_factor=1,
            configs={}, key_field="run_id",
        )  # fmt: skip
        (result,) = (await ensure_topics(settings, "dev", topics=[extra])).results
        assert result.status == "failed"
        assert f"not authorized to create topic {extra.name!r}" in result.message


async def test_slack_app_publishes_run_events(
    catalog_kafka: ApacheKafka, leak_check: LeakCheck
) -> None:
    run = RunCreated.create(
        data=RunCreatedData(
            run_id="run-lp-1",
            team_id="T0COFFEE",
            channel_id="C0COFFEE",
            organizer_user_id="U0ORG",
            place="Corner Cafe",
            closes_at=datetime.now(UTC) + timedelta(minutes=30),
        )
    )
    async with KafkaEventProducer(as_user(catalog_kafka, "slack-app")) as producer:
        where = await producer.publish(RUN_EVENTS_TOPIC, run)
    assert where.topic == RUN_EVENTS_TOPIC.name


async def test_reminder_operator_publishes_a_cancellation(
    catalog_kafka: ApacheKafka, leak_check: LeakCheck
) -> None:
    """`reminders cancel` publishes with the idempotent producer: its grants suffice for it."""
    cancel = ReminderCancelled.create(
        data=ReminderCancelledData(
            reminder_id="run-lp-op:runner", run_id="run-lp-op", reason="operator"
        )
    )
    async with KafkaEventProducer(as_user(catalog_kafka, "reminder-operator")) as producer:
        where = await producer.publish(REMINDER_EVENTS_TOPIC, cancel)
    assert where.topic == REMINDER_EVENTS_TOPIC.name


async def test_dlq_replayer_inspects_and_replays_with_its_grants(
    catalog_kafka: ApacheKafka, workers: Workers, leak_check: LeakCheck
) -> None:
    """`dlq inspect` and `dlq replay` (shared ledger topic) as `dlq-replayer`, nothing more."""
    # Long expired: once replayed, the session's worker drops it instead of holding it pending
    # (the fault tests wait for an empty backlog on the same broker).
    letter = workers.reminder("lp-dead-1", "U0DEAD", datetime.now(UTC) - timedelta(hours=1))
    key = letter.data.run_id.encode()
    async with KafkaEventProducer(catalog_kafka.settings()) as admin_producer:  # the worker's job
        await admin_producer.send_raw(
            REMINDER_EVENTS_DLQ_TOPIC,
            encode_event(letter),
            key=key,
            headers=[
                ("coffeebuddy.dlq.origin.topic", REMINDER_EVENTS_TOPIC.name.encode()),
                ("coffeebuddy.dlq.origin.partition", b"0"),
                ("coffeebuddy.dlq.origin.offset", b"0"),
                ("coffeebuddy.dlq.reason", b"non_retryable"),
                ("coffeebuddy.dlq.error.type", b"LeastPrivilegeProbe"),
            ],
        )
    settings = as_user(catalog_kafka, "dlq-replayer")
    where = DeadLetterFilter(error_type="LeastPrivilegeProbe")
    found = await inspect_dead_letters(REMINDER_EVENTS_TOPIC, settings=settings, where=where)
    assert [d.key for d in found] == [key]
    ledger = TopicReplayLedger(settings=settings, replayed_by="least-privilege-test")
    report = await replay_dead_letters(
        REMINDER_EVENTS_TOPIC, ledger=ledger, settings=settings, where=where
    )
    assert len(report.replayed) == 1, report.to_json()
    again = await replay_dead_letters(
        REMINDER_EVENTS_TOPIC, ledger=ledger, settings=settings, where=where
    )
    assert again.replayed == [], "the shared ledger must stop a second replay"
    assert len(again.already_replayed) == 1
