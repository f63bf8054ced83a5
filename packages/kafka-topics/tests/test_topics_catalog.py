"""The shipped catalog: names, key rules, event types, lookups and environment overlays."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from coffeebuddy.infra.kafka.models import DLQ_REPLAYED, REMINDER_STATE, RUN_CREATED
from coffeebuddy.infra.kafka.topics import (
    CATALOG,
    DLQ_REPLAYER_PRINCIPAL,
    DLQ_REPLAYS_TOPIC,
    REMINDER_EVENT_TYPES,
    REMINDER_EVENTS_DLQ_TOPIC,
    REMINDER_EVENTS_TOPIC,
    REMINDER_HISTORY_TOPIC,
    REMINDER_STATE_CHANGELOG_TOPIC,
    REMINDER_WORKER_GROUP,
    REMINDER_WORKER_PRINCIPAL,
    RUN_EVENT_TYPES,
    RUN_EVENTS_DLQ_TOPIC,
    RUN_EVENTS_TOPIC,
    Catalog,
    ConsumerGroup,
    Environment,
    LogReaderRole,
    ProducerRole,
    TopicConfig,
    dead_letter_of,
)
from coffeebuddy.infra.kafka.topics._catalog import ENVIRONMENTS, get_environment
from coffeebuddy.infra.kafka.topics._definitions import DEAD_LETTER_RETENTION, MAX_REMINDER_HORIZON


def test_topic_names_and_keys_match_the_contract() -> None:
    assert RUN_EVENTS_TOPIC.name == "coffeebuddy.run.events"
    assert REMINDER_EVENTS_TOPIC.name == "coffeebuddy.reminder.events"
    assert RUN_EVENTS_DLQ_TOPIC.name == "coffeebuddy.run.events.dlq"
    assert REMINDER_EVENTS_DLQ_TOPIC.name == "coffeebuddy.reminder.events.dlq"
    assert REMINDER_STATE_CHANGELOG_TOPIC.name == "coffeebuddy.reminder.state-changelog"
    assert REMINDER_HISTORY_TOPIC.name == "coffeebuddy.reminder.history"
    assert RUN_EVENTS_TOPIC.key_field == REMINDER_EVENTS_TOPIC.key_field == "run_id"
    assert REMINDER_STATE_CHANGELOG_TOPIC.key_field == "state_key"
    assert RUN_EVENTS_TOPIC.dead_letter_topic == RUN_EVENTS_DLQ_TOPIC.name
    assert REMINDER_EVENTS_TOPIC.dead_letter_topic == REMINDER_EVENTS_DLQ_TOPIC.name
    assert REMINDER_WORKER_GROUP.name == "coffeebuddy.reminder-worker"
    assert set(REMINDER_WORKER_GROUP.topics) == {RUN_EVENTS_TOPIC.name, REMINDER_EVENTS_TOPIC.name}
    assert str(REMINDER_WORKER_GROUP) == "coffeebuddy.reminder-worker"


def test_dlq_replay_ledger_topic() -> None:
    assert DLQ_REPLAYS_TOPIC.name == "coffeebuddy.dlq.replays"
    assert DLQ_REPLAYS_TOPIC.kind == "log"
    assert DLQ_REPLAYS_TOPIC.partitions == 1
    assert DLQ_REPLAYS_TOPIC.cleanup_policy == "compact,delete"
    assert DLQ_REPLAYS_TOPIC.is_compacted
    assert DLQ_REPLAYS_TOPIC.retention == DEAD_LETTER_RETENTION == RUN_EVENTS_DLQ_TOPIC.retention
    assert DLQ_REPLAYS_TOPIC.key_field == "ref"
    assert DLQ_REPLAYS_TOPIC.event_types == {DLQ_REPLAYED} == {"coffeebuddy.dlq.replayed.v1"}
    assert DLQ_REPLAYS_TOPIC.dead_letter_topic is None
    assert DLQ_REPLAYS_TOPIC.owner == DLQ_REPLAYER_PRINCIPAL.service
    assert ProducerRole(topic=DLQ_REPLAYS_TOPIC.name) in DLQ_REPLAYER_PRINCIPAL.roles
    assert LogReaderRole(topic=DLQ_REPLAYS_TOPIC.name) in DLQ_REPLAYER_PRINCIPAL.roles
    assert CATALOG.topic("coffeebuddy.dlq.replays") == DLQ_REPLAYS_TOPIC
    assert CATALOG.topics_for_event_type(DLQ_REPLAYED) == [DLQ_REPLAYS_TOPIC]
    dev = CATALOG.for_environment("dev").topic(DLQ_REPLAYS_TOPIC.name)
    assert (dev.partitions, dev.replication_factor) == (1, 1)


def test_reminder_history_topic_keeps_every_state_record_for_14_days_by_time() -> None:
    history = REMINDER_HISTORY_TOPIC
    assert history.name == "coffeebuddy.reminder.history"
    assert history.kind == "log"
    # Deleted by time, never compacted: every copy of a state record stays its 14 days, even
    # after the changelog has tombstoned the key.
    assert history.cleanup_policy == "delete"
    assert not history.is_compacted
    assert history.retention == timedelta(days=14)
    assert history.configs["retention.ms"] == "1209600000"
    # Keyed as the changelog: a reminder's records, by reminder id, on one partition in order.
    assert history.key_field == REMINDER_STATE_CHANGELOG_TOPIC.key_field == "state_key"
    assert history.key_for(SimpleNamespace(data=SimpleNamespace(state_key="run-7:runner"))) == (
        b"run-7:runner"
    )
    assert history.event_types == {REMINDER_STATE} == {"coffeebuddy.reminder.state.v1"}
    assert history.dead_letter_topic is None
    assert history.owner == REMINDER_WORKER_PRINCIPAL.service == "reminder-worker"
    assert "copy of every reminder state record" in history.description
    assert "14 days" in history.description
    assert CATALOG.topic("coffeebuddy.reminder.history") == history
    assert CATALOG.topics_for_event_type(REMINDER_STATE) == [
        REMINDER_STATE_CHANGELOG_TOPIC,
        REMINDER_HISTORY_TOPIC,
    ]
    for env in ("dev", "staging", "prod"):
        rendered = CATALOG.for_environment(env).topic(history.name)
        assert rendered.configs["retention.ms"] == "1209600000", env
        assert rendered.cleanup_policy == "delete", env


def test_dead_letter_of_gives_the_catalogs_dlq_or_one_shaped_like_it() -> None:
    assert dead_letter_of(RUN_EVENTS_TOPIC) is RUN_EVENTS_DLQ_TOPIC
    assert dead_letter_of(REMINDER_EVENTS_TOPIC) is REMINDER_EVENTS_DLQ_TOPIC
    assert dead_letter_of(REMINDER_EVENTS_TOPIC) == CATALOG.dead_letter_for(REMINDER_EVENTS_TOPIC)
    # A test topic (a copy of a catalog topic under another name) gets a DLQ of its own name,
    # shaped as the catalog's: same kind, sizing, configs, key and owner.
    test_topic = REMINDER_EVENTS_TOPIC.model_copy(
        update={"name": "test.reminders.1", "dead_letter_topic": "test.reminders.1.dlq"}
    )
    dlq = dead_letter_of(test_topic)
    assert dlq.name == "test.reminders.1.dlq"
    shape = {"name", "description"}
    assert dlq.model_dump(exclude=shape) == REMINDER_EVENTS_DLQ_TOPIC.model_dump(exclude=shape)
    assert dlq.kind == "dead_letter"
    assert "test.reminders.1" in dlq.description
    # The name comes from the topic's own `dead_letter_topic`, not from a suffix rule.
    odd = test_topic.model_copy(update={"dead_letter_topic": "test.parking"})
    assert dead_letter_of(odd).name == "test.parking"
    for topic in (REMINDER_STATE_CHANGELOG_TOPIC, REMINDER_HISTORY_TOPIC, RUN_EVENTS_DLQ_TOPIC):
        with pytest.raises(KeyError, match=re.escape(f"topic {topic.name!r} has no dead-letter")):
            dead_letter_of(topic)


def test_event_types_per_topic() -> None:
    assert RUN_EVENTS_TOPIC.event_types == RUN_EVENT_TYPES
    assert all(t.startswith("coffeebuddy.run.") for t in RUN_EVENT_TYPES)
    assert (
        REMINDER_EVENTS_TOPIC.event_types
        == {
            "coffeebuddy.reminder.scheduled.v1",
            "coffeebuddy.reminder.cancelled.v1",
        }
        == REMINDER_EVENT_TYPES
    )
    assert REMINDER_STATE_CHANGELOG_TOPIC.event_types == {REMINDER_STATE}
    assert REMINDER_HISTORY_TOPIC.event_types == {REMINDER_STATE}
    assert RUN_EVENTS_TOPIC.allows(RUN_CREATED)
    assert not REMINDER_EVENTS_TOPIC.allows(RUN_CREATED)
    # A dead-letter topic takes whatever failed, whatever its type.
    assert RUN_EVENTS_DLQ_TOPIC.allows("anything.at.all")
    assert CATALOG.topics_for_event_type(RUN_CREATED) == [RUN_EVENTS_TOPIC]


def test_state_changelog_is_compacted_and_events_are_retained_beyond_the_horizon() -> None:
    assert REMINDER_STATE_CHANGELOG_TOPIC.is_compacted
    assert REMINDER_STATE_CHANGELOG_TOPIC.kind == "log"
    for topic in (RUN_EVENTS_TOPIC, REMINDER_EVENTS_TOPIC):
        assert topic.retention is not None
        assert topic.retention > MAX_REMINDER_HORIZON
        assert topic.retention == timedelta(days=14)
    for dlq in (RUN_EVENTS_DLQ_TOPIC, REMINDER_EVENTS_DLQ_TOPIC):
        assert dlq.kind == "dead_letter"
        assert dlq.retention == timedelta(days=30)


def test_key_for_reads_the_key_field_of_the_event_data() -> None:
    event = SimpleNamespace(data=SimpleNamespace(run_id="run-42", state_key="r-1"))
    assert RUN_EVENTS_TOPIC.key_for(event) == b"run-42"
    assert REMINDER_STATE_CHANGELOG_TOPIC.key_for(event) == b"r-1"
    assert RUN_EVENTS_TOPIC.key_for(SimpleNamespace(data={"run_id": "x"})) == b"x"
    assert RUN_EVENTS_TOPIC.key_for(SimpleNamespace(data=SimpleNamespace())) is None


def test_lookups() -> None:
    assert CATALOG.topic("coffeebuddy.run.events") is RUN_EVENTS_TOPIC
    assert CATALOG.dead_letter_for(RUN_EVENTS_TOPIC) is RUN_EVENTS_DLQ_TOPIC
    assert CATALOG.dead_letter_for("coffeebuddy.reminder.events") is REMINDER_EVENTS_DLQ_TOPIC
    assert CATALOG.origin_of(RUN_EVENTS_DLQ_TOPIC) is RUN_EVENTS_TOPIC
    assert CATALOG.group("coffeebuddy.reminder-worker") is REMINDER_WORKER_GROUP
    assert CATALOG.principal("User:reminder-worker").service == "reminder-worker"
    with pytest.raises(KeyError, match=r"no topic 'coffeebuddy\.nope'"):
        CATALOG.topic("coffeebuddy.nope")
    with pytest.raises(KeyError, match="has no dead-letter topic"):
        CATALOG.dead_letter_for(REMINDER_STATE_CHANGELOG_TOPIC)
    with pytest.raises(KeyError, match="no consumer group"):
        CATALOG.group("nope")


def test_acl_notes_are_derived_from_principals() -> None:
    notes = CATALOG.acl_notes(REMINDER_STATE_CHANGELOG_TOPIC)
    assert notes == [
        "User:reminder-worker (reminder-worker) produces",
        "User:reminder-worker (reminder-worker) reads by partition assignment",
        "User:reminder-operator (reminder-operator) reads by partition assignment",
    ]
    assert [p.name for p in CATALOG.producers_of(RUN_EVENTS_TOPIC)] == [
        "User:slack-app",
        "User:dlq-replayer",
    ]
    assert [p.name for p in CATALOG.consumers_of(RUN_EVENTS_DLQ_TOPIC)] == ["User:dlq-replayer"]


@pytest.mark.parametrize(
    ("env", "rf", "min_isr", "events_partitions"),
    [("dev", 1, "1", 3), ("staging", 3, "2", 6), ("prod", 3, "2", 12)],
)
def test_for_environment_applies_overlay(
    env: str, rf: int, min_isr: str, events_partitions: int
) -> None:
    rendered = CATALOG.for_environment(env)
    assert rendered.environment == env
    run_events = rendered.topic(RUN_EVENTS_TOPIC.name)
    assert run_events.replication_factor == rf
    assert run_events.configs["min.insync.replicas"] == min_isr
    assert run_events.partitions == events_partitions
    # Everything but sizing stays as defined.
    assert run_events.key_field == RUN_EVENTS_TOPIC.key_field
    assert run_events.event_types == RUN_EVENTS_TOPIC.event_types
    assert run_events.configs["retention.ms"] == RUN_EVENTS_TOPIC.configs["retention.ms"]
    assert [t.name for t in rendered.topics] == [t.name for t in CATALOG.topics]
    assert rendered.principals == CATALOG.principals


def test_for_environment_refuses_a_rendered_catalog_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="already rendered for 'dev'"):
        CATALOG.for_environment("dev").for_environment("prod")
    with pytest.raises(ValueError, match=r"unknown environment 'qa'.*'dev', 'prod', 'staging'"):
        CATALOG.for_environment("qa")
    assert get_environment("prod") is ENVIRONMENTS["prod"]


def test_custom_environment_with_legacy_broker_adds_idempotent_write() -> None:
    legacy = Environment(
        name="onprem",
        broker_count=3,
        replication_factor=3,
        min_insync_replicas=2,
        legacy_idempotent_write=True,
    )
    bindings = CATALOG.for_environment(legacy).acl_bindings()
    cluster = [b for b in bindings if b.resource_type == "CLUSTER"]
    assert {b.principal for b in cluster} == {  # every principal with a producer role
        "User:slack-app",
        "User:reminder-worker",
        "User:dlq-replayer",
        "User:reminder-operator",
    }
    assert {(b.resource_name, b.operation) for b in cluster} == {
        ("kafka-cluster", "IDEMPOTENT_WRITE")
    }
    assert not any(b.resource_type == "CLUSTER" for b in CATALOG.acl_bindings())


def test_topic_config_is_frozen_validated_and_hashable() -> None:
    with pytest.raises(ValidationError):
        RUN_EVENTS_TOPIC.partitions = 5
    with pytest.raises(ValidationError, match="partitions"):
        TopicConfig(name="coffeebuddy.x.y", partitions=0, replication_factor=1, key_field="run_id")
    with pytest.raises(ValidationError, match="name"):
        TopicConfig(name="bad name!", partitions=1, replication_factor=1, key_field="run_id")
    with pytest.raises(ValidationError, match="key_field"):
        TopicConfig(name="coffeebuddy.x.y", partitions=1, replication_factor=1, key_field="Run Id")
    with pytest.raises(ValidationError, match="kind"):
        TopicConfig(
            name="coffeebuddy.x.y",
            partitions=1,
            replication_factor=1,
            key_field="run_id",
            kind="stream",  # type: ignore[arg-type]
        )
    topic = TopicConfig(
        name="coffeebuddy.x.y",
        partitions=1,
        replication_factor=1,
        key_field="run_id",
        configs={"retention.ms": 1000, "unclean.leader.election.enable": False},  # type: ignore[dict-item]
    )
    assert topic.configs == {"retention.ms": "1000", "unclean.leader.election.enable": "false"}
    assert {RUN_EVENTS_TOPIC: 1}[CATALOG.topic(RUN_EVENTS_TOPIC.name)] == 1


def test_extend_adds_entries_and_roles_without_renaming() -> None:
    extra_topic = RUN_EVENTS_TOPIC.model_copy(update={"name": "coffeebuddy.team.events"})
    extra_group = ConsumerGroup(name="coffeebuddy.stats", owner="slack-app", topics=("x",))
    bigger = CATALOG.extend(topics=[extra_topic], groups=[extra_group])
    assert isinstance(bigger, Catalog)
    assert [t.name for t in bigger.topics][: len(CATALOG.topics)] == [
        t.name for t in CATALOG.topics
    ]
    assert bigger.topic("coffeebuddy.team.events") == extra_topic
    assert bigger.group("coffeebuddy.stats") == extra_group
    assert len(CATALOG.topics) == 7
